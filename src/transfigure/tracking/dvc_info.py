"""The DVC version of the data a training reads, recorded as MLflow tags.

A registered model must trace back to the exact data it learned from. When DVC tracks the data
folder (added with ``dvc add``: ``<folder>.dvc``; a stage output in ``dvc.lock``, such as
``data/01_raw/default`` of the ``prepare_data`` stage; or a stage dependency whose hash ``dvc.lock``
recorded, such as ``data/01_raw/default/day2night`` of ``validate_cyclegan``), the md5 DVC recorded
names its content: ``dvc checkout``/``dvc pull`` at the same git commit restores exactly those bytes.

Cheap and offline: only ``dvc.lock`` and ``.dvc`` files (YAML) are read, and the workspace is
compared with the recorded file count and byte size (a ``stat`` per file, no hashing), so a
folder changed after its last ``dvc repro``/``dvc add`` is tagged ``modified``. Outside a DVC
repository, or for data DVC does not track, the tags say ``untracked``. DVC itself is not
imported (``dvc repro`` holds the repository lock while a stage runs).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from transfigure.tracking.config import dvc_root_from_env, dvc_stage_from_env

logger = logging.getLogger(__name__)

UNTRACKED = "untracked"
LOCK_FILE = "dvc.lock"


@dataclass(frozen=True)
class TrackedOutput:
    """One output DVC records: its path (relative to the repository root) and recorded hash/size."""

    path: str
    md5: str
    size: int | None
    nfiles: int | None
    source: str  # "dvc.lock:<stage>", "dvc.lock:<stage> (dependency)" or "<path>.dvc"


@dataclass(frozen=True)
class DvcDataVersion:
    """What DVC knows of one data folder (all fields are strings, ready to be MLflow tags)."""

    path: str  # the data folder, relative to the DVC root (absolute when outside it)
    status: str  # "clean" (matches what DVC recorded) | "modified" | "untracked"
    md5: str  # md5 DVC recorded for ``out`` (".dir" for folders), "untracked" when DVC has none
    out: str  # the path that hash is of: the data folder itself or the tracked output holding it
    source: str  # where DVC records it (see TrackedOutput.source; "" when untracked)
    lock_md5: str  # md5 of dvc.lock's bytes: the pipeline state the run started from
    stage: str  # the DVC stage running this process ($DVC_STAGE), "" when not run by DVC

    def tags(self) -> dict[str, str]:
        """MLflow tags ``dvc_data_*``, ``dvc_lock_md5``, ``dvc_stage`` (empty values left out)."""
        tags = {
            "dvc_data_path": self.path,
            "dvc_data_status": self.status,
            "dvc_data_md5": self.md5,
            "dvc_data_out": self.out,
            "dvc_data_source": self.source,
            "dvc_lock_md5": self.lock_md5,
            "dvc_stage": self.stage,
        }
        return {k: v for k, v in tags.items() if v}


def find_dvc_root(start: str | Path | None = None) -> Path | None:
    """The DVC repository root: ``$DVC_ROOT`` (set by ``dvc repro``), else the nearest folder at or
    above ``start`` (default: the working directory) that holds a ``.dvc/`` folder; None outside one."""
    env_root = dvc_root_from_env()
    if env_root and (Path(env_root) / ".dvc").is_dir():
        return Path(env_root).resolve()
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / ".dvc").is_dir():
            return folder
    return None


def _as_int(value: Any) -> int | None:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def _output(entry: Any, source: str) -> TrackedOutput | None:
    if not isinstance(entry, dict) or not entry.get("path") or not entry.get("md5"):
        return None
    return TrackedOutput(
        str(entry["path"]).rstrip("/"),
        str(entry["md5"]),
        _as_int(entry.get("size")),
        _as_int(entry.get("nfiles")),
        source,
    )


def _load_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        logger.warning("could not read %s (%s); treating its data as untracked", path, exc)
        return None


def lock_entries(root: Path, kind: str = "outs") -> list[TrackedOutput]:
    """Every output (``kind="outs"``) or dependency (``"deps"``) ``dvc.lock`` records, with its stage."""
    lock = _load_yaml(root / LOCK_FILE) if (root / LOCK_FILE).is_file() else None
    stages = lock.get("stages", {}) if isinstance(lock, dict) else {}
    found = []
    for stage, entry in (stages if isinstance(stages, dict) else {}).items():
        listed = entry.get(kind) if isinstance(entry, dict) else None
        for out in listed if isinstance(listed, list) else []:
            if (tracked := _output(out, f"{LOCK_FILE}:{stage}")) is not None:
                found.append(tracked)
    return found


def dvc_file_output(root: Path, rel: Path) -> TrackedOutput | None:
    """The output recorded by ``<rel or an ancestor>.dvc`` (``dvc add``), if any; paths relative to ``root``."""
    for candidate in (rel, *rel.parents):
        if candidate == Path("."):
            break
        dvc_file = root / candidate.parent / f"{candidate.name}.dvc"
        if dvc_file.is_file():
            doc = _load_yaml(dvc_file)
            outs = doc.get("outs", []) if isinstance(doc, dict) else []
            for out in outs or []:
                tracked = _output(out, str(dvc_file.relative_to(root)))
                if tracked is not None:
                    # the path in a .dvc file is relative to the .dvc file's folder
                    path = (candidate.parent / tracked.path).as_posix()
                    return TrackedOutput(path, tracked.md5, tracked.size, tracked.nfiles, tracked.source)
    return None


def _containing(outputs: list[TrackedOutput], rel: Path) -> TrackedOutput | None:
    """The deepest output that is ``rel`` or one of its parents."""
    holders = [o for o in outputs if rel == Path(o.path) or Path(o.path) in rel.parents]
    return max(holders, key=lambda o: len(Path(o.path).parts), default=None)


def _locked(root: Path, rel: Path) -> TrackedOutput | None:
    """What ``dvc.lock`` records for ``rel``: a stage output of exactly that path; else the hash a stage
    recorded for exactly that path as a dependency and the workspace still matches (the folder's own
    hash, e.g. ``data/01_raw/default/day2night`` as ``validate_cyclegan`` used it); else the output that
    contains it (``data/01_raw/default`` of ``prepare_data``); else a stale dependency entry."""
    outs = lock_entries(root, "outs")
    exact = [o for o in outs if Path(o.path) == rel]
    if exact:
        return exact[0]
    deps = [
        TrackedOutput(d.path, d.md5, d.size, d.nfiles, f"{d.source} (dependency)")
        for d in lock_entries(root, "deps")
        if Path(d.path) == rel
    ]
    current = [d for d in deps if _workspace_matches(root, d)]
    return (current[0] if current else None) or _containing(outs, rel) or (deps[0] if deps else None)


def _workspace_matches(root: Path, out: TrackedOutput) -> bool:
    """Whether the workspace copy has the file count and byte size DVC recorded (no hashing)."""
    path = root / out.path
    if path.is_file():
        return out.size is None or path.stat().st_size == out.size
    if not path.is_dir():
        return False
    files = [p for p in path.rglob("*") if p.is_file()]
    if out.nfiles is not None and len(files) != out.nfiles:
        return False
    return out.size is None or sum(p.stat().st_size for p in files) == out.size


def file_md5(path: Path) -> str:
    """md5 of a file's bytes."""
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


def dvc_data_version(data_path: str | Path, root: str | Path | None = None) -> DvcDataVersion:
    """The DVC version of ``data_path`` (relative paths start at the working directory).

    ``root``: the DVC repository (default: :func:`find_dvc_root`). Never raises for missing or
    unreadable DVC files: the answer is then ``untracked``.
    """
    stage = dvc_stage_from_env()
    dvc_root = Path(root).resolve() if root else find_dvc_root()
    data = Path(data_path).expanduser().resolve()
    if dvc_root is None:
        return DvcDataVersion(str(data), UNTRACKED, UNTRACKED, "", "", UNTRACKED, stage)
    lock = dvc_root / LOCK_FILE
    lock_md5 = file_md5(lock) if lock.is_file() else UNTRACKED
    try:
        rel = data.relative_to(dvc_root)
    except ValueError:  # outside the repository
        return DvcDataVersion(str(data), UNTRACKED, UNTRACKED, "", "", lock_md5, stage)
    out = dvc_file_output(dvc_root, rel) or _locked(dvc_root, rel)
    if out is None:
        return DvcDataVersion(rel.as_posix(), UNTRACKED, UNTRACKED, "", "", lock_md5, stage)
    status = "clean" if _workspace_matches(dvc_root, out) else "modified"
    if status == "modified":
        logger.warning(
            "data '%s' differs from what DVC recorded in %s (md5 %s): run `dvc repro`/`dvc add` "
            "so that the run can be traced to versioned data",
            rel,
            out.source,
            out.md5,
        )
    return DvcDataVersion(rel.as_posix(), status, out.md5, out.path, out.source, lock_md5, stage)


def dvc_tags(data_path: str | Path | None) -> dict[str, str]:
    """MLflow tags for the DVC version of ``data_path`` (``{"dvc_data_md5": "untracked", ...}`` when
    DVC does not track it; ``{}`` when no path is given)."""
    if not data_path:
        return {}
    return dvc_data_version(data_path).tags()
