"""Atomic checkpoints holding everything needed to continue a run exactly.

A checkpoint is written to a temporary file in the same folder, flushed to disk and
renamed over the target, so a run killed mid-write leaves the previous checkpoint
intact. It loads with ``torch.load(weights_only=True)``: only tensors and plain
containers, never pickled code.

A checkpoint folder holds one run's files only: a new run (not resuming) moves what an
earlier run left there into ``previous/<time>-step<N>[-<run id>]/`` first
(:func:`archive_checkpoints`), so its ``last.pt`` never sits beside another run's
``step_*.pt``, and nothing is overwritten.

With ``training.remote_dir`` set, :class:`RemoteCheckpoints` mirrors the folder to
``<remote_dir>/checkpoints/`` (any fsspec URL: ``s3://bucket/prefix``, ``file:///shared``): each
checkpoint is uploaded after it is written locally (the numbered file first, ``last.pt`` last,
each under a temporary name then moved), rotated the same way, an earlier run's remote files are
moved to ``previous/`` like the local ones, and a resumed run on a machine without (or with an
older) local ``last.pt`` downloads the remote one first.
"""

from __future__ import annotations

import logging
import os
import random
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from transfigure.runtime.storage import TMP_PREFIX, RemoteFolder, modified_time

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 1
#: sub-folder of a checkpoint folder where earlier runs' files are moved
PREVIOUS_DIR = "previous"


def capture_rng_state() -> dict[str, Any]:
    """Python, NumPy and torch (CPU and CUDA) generator states, as weights-only-safe objects."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "name": np_state[0],
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state(
        (n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` to ``path`` via a temporary file + fsync + rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :class:`~transfigure.training.engine.Trainer` (weights only)."""
    path = Path(path)
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:  # corrupt / truncated / not a checkpoint
        raise ValueError(f"cannot read checkpoint '{path}': {exc}") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"'{path}' is not a transfigure checkpoint (format {CHECKPOINT_FORMAT})")
    return ckpt


def numbered_name(step: int) -> str:
    return f"step_{step:08d}.pt"


_NUMBERED = re.compile(r"step_(\d+)\.pt")


def numbered_steps(names: Any) -> list[tuple[int, str]]:
    """(step, name) of the numbered checkpoint names among ``names``, oldest first."""
    return sorted((int(m.group(1)), n) for n in names if (m := _NUMBERED.fullmatch(n)))


def rotate_checkpoints(folder: Path, keep: int) -> None:
    """Keep the newest ``keep`` numbered checkpoints (``step_*.pt``); ``last.pt`` is never removed."""
    numbered = sorted(Path(folder).glob("step_*.pt"))
    for old in numbered[:-keep]:
        old.unlink(missing_ok=True)
        logger.debug("removed old checkpoint %s", old)


def _archive_name(newest: float, step: int | None, run_id: str | None) -> str:
    name = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(newest))
    if step is not None:
        name += f"-step{step}"
    if run_id:
        name += f"-{run_id[:12]}"
    return name


@dataclass(frozen=True)
class ArchivedRun:
    """Where :func:`archive_checkpoints` moved an earlier run's files, and what it knew of that run.

    ``folder`` is a local path, or a URL for :meth:`RemoteCheckpoints.archive`.
    """

    folder: Path | str
    files: tuple[str, ...]
    step: int | None = None
    run_id: str | None = None


def checkpoint_step(path: Path) -> int | None:
    """The step ``path`` (a ``last.pt``) holds; None when it is missing or unreadable (weights not read)."""
    return _describe_last(Path(path))[0]


def _describe_last(path: Path) -> tuple[int | None, str | None]:
    """(step, MLflow run id) recorded in ``last.pt``, or Nones when it is missing or unreadable.

    Memory-mapped: only the small fields are read, not the weights.
    """
    if not path.is_file():
        return None, None
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        run_id = ckpt.get("run_metadata", {}).get("mlflow_run_id")
        return int(ckpt["step"]), str(run_id) if run_id else None
    except Exception:  # a corrupt checkpoint is archived all the same
        return None, None


def archive_checkpoints(folder: Path) -> ArchivedRun | None:
    """Move everything in ``folder`` except :data:`PREVIOUS_DIR` into a new ``previous/<name>/``.

    ``<name>`` is the UTC time of the newest file moved (when that run last wrote), then
    ``-step<N>`` and the first 12 characters of the MLflow run id when ``last.pt`` records
    them (``20261201T101500Z-step480-1a2b3c4d5e6f``); ``-2``, ``-3`` ... if taken. Files are
    moved by rename (same file system: instant, nothing copied). Returns None when there was
    nothing to move. The caller runs it once per training (rank 0 under torchrun).
    """
    folder = Path(folder)
    if not folder.is_dir():
        return None
    entries = sorted(p for p in folder.iterdir() if p.name != PREVIOUS_DIR)
    if not entries:
        return None
    step, run_id = _describe_last(folder / "last.pt")
    newest = max(p.lstat().st_mtime for p in entries)
    name = _archive_name(newest, step, run_id)
    base = folder / PREVIOUS_DIR
    dest, n = base / name, 1
    while dest.exists():
        n += 1
        dest = base / f"{name}-{n}"
    dest.mkdir(parents=True)
    for entry in entries:
        os.replace(entry, dest / entry.name)
    return ArchivedRun(dest, tuple(p.name for p in entries), step, run_id)


class RemoteCheckpoints:
    """``<remote_dir>/checkpoints/``: the copy of a run's checkpoint folder other machines resume from.

    The trainer calls it on rank 0 only. Uploads go under a temporary name and are then moved
    (:meth:`RemoteFolder.upload`), the numbered file before ``last.pt``: whoever lists the folder
    sees whole files, and ``last.pt`` never names a step whose numbered file is missing.
    """

    def __init__(self, remote_dir: str) -> None:
        self.root = RemoteFolder(remote_dir)
        self.folder = self.root.child("checkpoints")

    @property
    def url(self) -> str:
        return self.folder.url

    def check(self) -> None:
        """Fail now, naming the URL, when the remote folder cannot be written (not after an hour of training)."""
        self.root.check_writable()

    def _names(self) -> dict[str, dict]:
        return {n: info for n, info in self.folder.files().items() if not n.startswith(TMP_PREFIX)}

    def latest_step(self) -> int | None:
        """The step of the newest numbered checkpoint there (= the step of its ``last.pt``); None if none."""
        numbered = numbered_steps(self._names())
        return numbered[-1][0] if numbered else None

    def has_last(self) -> bool:
        return "last.pt" in self._names()

    def upload(self, step: int, numbered: Path, last: Path, keep: int) -> None:
        """Upload the checkpoint of ``step`` just written locally (as ``step_N.pt``, then ``last.pt``), rotate to ``keep``."""
        self.folder.upload(numbered, numbered_name(step))
        self.folder.upload(last, "last.pt")
        for _, old in numbered_steps(self._names())[:-keep]:
            self.folder.remove(old)
            logger.debug("removed old remote checkpoint %s", self.folder.url_of(old))

    def download_last(self, local: Path) -> Path:
        """Copy the remote ``last.pt`` to ``local`` (temporary file + rename)."""
        return self.folder.download("last.pt", local)

    def archive(self) -> ArchivedRun | None:
        """Move an earlier run's files to ``previous/<time>-step<N>/`` there, like :func:`archive_checkpoints`.

        ``<time>`` is when that run last wrote, ``<N>`` its newest numbered checkpoint (the MLflow run
        id is not in the name: reading it would mean downloading ``last.pt``). None: nothing to move.
        """
        entries = self.folder.files()  # with any temporary upload a killed run left
        if not entries:
            return None
        numbered = numbered_steps(entries)
        step = numbered[-1][0] if numbered else None
        times = [t for info in entries.values() if (t := modified_time(info)) is not None]
        name = _archive_name(max(times) if times else time.time(), step, None)
        existing = set(self.folder.folders(PREVIOUS_DIR)) | set(self.folder.files(PREVIOUS_DIR))
        dest, n = name, 1
        while dest in existing:
            n += 1
            dest = f"{name}-{n}"
        for entry in sorted(entries):
            self.folder.move(entry, f"{PREVIOUS_DIR}/{dest}/{entry}")
        return ArchivedRun(self.folder.url_of(f"{PREVIOUS_DIR}/{dest}"), tuple(sorted(entries)), step, None)
