"""The held-out split an evaluation runs on, loaded deterministically, with its file list and fingerprint.

The split is the dataset's ``test`` split (``testA/`` + ``testB/``, ``test/``, ``test_label/`` +
``test_img/`` [+ ``test_inst/``]), or ``val`` when there is no ``test``; data validation has
already checked that no image of it is also in ``train``. A dataset with neither is evaluated on
the part of ``train`` that training left out (``data.holdout_fraction``; recorded as split
``train-holdout``; :class:`transfigure.data.layout.Holdout` chooses it). Preprocessing is fixed: every image
is resized to ``size x size`` (bicubic; label and instance maps nearest), no crop, no flip, so
the same files always give the same tensors. ``max_images`` keeps the first N files (per
domain for unpaired data, pairs otherwise) in sorted order.

The fingerprint is the sha256 over, for each file in evaluation order, its path relative to
the dataset root and the sha256 of its bytes: it changes when any file used changes, is
added, removed or renamed, and not when unused files change.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image

from transfigure.data.config import DataConfig
from transfigure.data.images import load_image
from transfigure.data.layout import HOLDOUT_SPLIT, Holdout, evaluation_split
from transfigure.data.transforms import TransformConfig, TransformParams, apply_transform, tensor_to_pil

Kind = Literal["unpaired", "paired", "labelmap"]


@dataclass
class HeldOutSet:
    """The images of one evaluation, as PIL images of ``size x size``, and where they came from.

    ``kind`` "unpaired": ``a`` and ``b`` are the two domains (any lengths). "paired": ``a[i]`` is
    the input of target ``b[i]``. "labelmap": ``a[i]`` is a label map (mode ``I``, raw ids),
    ``instances[i]`` its instance map (or None), ``b[i]`` the photo. ``split`` is the folder split,
    or ``train-holdout`` with ``holdout`` describing how that part of train was chosen.
    """

    kind: Kind
    root: str
    format: str
    split: str
    size: int
    files: list[str]
    a: list[Image.Image]
    b: list[Image.Image]
    instances: list[Image.Image | None] = field(default_factory=list)
    holdout: dict[str, Any] | None = None

    @property
    def n(self) -> int:
        """Evaluated samples: images of both domains (unpaired) or pairs."""
        return len(self.a) + len(self.b) if self.kind == "unpaired" else len(self.a)

    def fingerprint(self) -> str:
        return files_fingerprint(Path(self.root), self.files)

    def describe(self) -> dict[str, Any]:
        """``{"root", "format", "split", "files", "n", "fingerprint", "size", "kind", "holdout"}`` (JSON-able)."""
        return {
            "root": self.root,
            "format": self.format,
            "split": self.split,
            "files": list(self.files),
            "n": self.n,
            "fingerprint": self.fingerprint(),
            "size": self.size,
            "kind": self.kind,
            "holdout": self.holdout,
        }


def files_fingerprint(root: Path, files: list[str]) -> str:
    """sha256 over (relative path, sha256 of the bytes) of each file, in order."""
    h = hashlib.sha256()
    for rel in files:
        h.update(rel.encode() + b"\0")
        h.update(hashlib.sha256((root / rel).read_bytes()).digest())
    return h.hexdigest()


def _fixed_transform(size: int) -> tuple[TransformConfig, TransformParams]:
    """Resize to ``size`` x ``size``; no crop (crop = whole image), no flip."""
    return TransformConfig("resize_and_crop", load_size=size, crop_size=size, flip=False), TransformParams(
        (0, 0), False
    )


def _rel(path: str | Path, root: Path) -> str:
    return Path(path).relative_to(root).as_posix()


def _cap(items: list[Any], max_images: int | None) -> list[Any]:
    return items if max_images is None else items[:max_images]


def _dataset(root: Path, fmt: str, split: str, data: DataConfig, size: int, holdout: Holdout | None) -> Any:
    """The dataset class of ``fmt`` lists the files (and the held-out part of train), as training does."""
    cfg, _ = _fixed_transform(size)
    return data.make_dataset(root, fmt, split, seed=0, transform=cfg, holdout=holdout)


def _load_unpaired(
    root: Path, split: str, data: DataConfig, size: int, max_images: int | None, holdout: Holdout | None
) -> HeldOutSet:
    ds = _dataset(root, "unaligned", split, data, size, holdout)
    cfg, params = _fixed_transform(size)
    domains: list[list[Image.Image]] = []
    files: list[str] = []
    for paths, mode in ((ds.A_paths, ds.mode_A), (ds.B_paths, ds.mode_B)):
        paths = _cap(paths, max_images)
        files += [_rel(p, root) for p in paths]
        domains.append([apply_transform(load_image(p, mode), cfg, params, Image.Resampling.BICUBIC) for p in paths])
    return HeldOutSet("unpaired", str(root), "unaligned", split, size, files, domains[0], domains[1])


def _load_paired(
    root: Path, fmt: str, split: str, data: DataConfig, size: int, max_images: int | None, holdout: Holdout | None
) -> HeldOutSet:
    ds = _dataset(root, fmt, split, data, size, holdout)
    n = len(ds) if max_images is None else min(len(ds), max_images)
    a, b, files = [], [], []
    for i in range(n):
        item = ds[i]
        a.append(tensor_to_pil(item["A"]))
        b.append(tensor_to_pil(item["B"]))
        for key in ("A_paths", "B_paths"):
            rel = _rel(item[key], root)
            if rel not in files[-2:]:
                files.append(rel)
    return HeldOutSet("paired", str(root), fmt, split, size, files, a, b)


def _load_labelmap(
    root: Path, split: str, data: DataConfig, size: int, max_images: int | None, holdout: Holdout | None
) -> HeldOutSet:
    ds = _dataset(root, "labelmap", split, data, size, holdout)
    n = len(ds) if max_images is None else min(len(ds), max_images)
    labels, photos, instances, files = [], [], [], []
    for i in range(n):
        item = ds[i]
        ids = item["label"][0].numpy().astype(np.int32)
        if ds.contain_dontcare_label:  # the dataset maps 255 to label_nc; the translator wants the file's ids
            ids = np.where(ids == ds.label_nc, 255, ids)
        labels.append(Image.fromarray(ids, mode="I"))
        inst = item["instance"]
        instances.append(Image.fromarray(inst[0].numpy().astype(np.int32), mode="I") if inst.numel() else None)
        photos.append(tensor_to_pil(item["image"]))
        files += [_rel(p, root) for p in (ds.items[i]["label"], ds.items[i]["image"], ds.items[i].get("instance")) if p]
    return HeldOutSet("labelmap", str(root), "labelmap", split, size, files, labels, photos, instances)


def load_held_out(
    dataset: dict[str, Any],
    data: dict[str, Any] | DataConfig,
    *,
    split: str | None = None,
    size: int | None = None,
    max_images: int | None = None,
) -> HeldOutSet:
    """Load the held-out split of ``dataset`` (``{"root", "format", ...}`` from the validation pipeline).

    ``split`` (``evaluation.split``) defaults to ``test``, else ``val``, else the part of ``train``
    held out from training (``data.holdout_fraction``). ``size`` defaults to ``data.crop_size``.
    Errors name the folder and what was expected.
    """
    for key in ("root", "format"):
        if key not in dataset:
            raise ValueError(
                f"dataset must have a {key!r} (the validated_dataset of the validation pipeline), got {sorted(dataset)}"
            )
    root, fmt = Path(dataset["root"]), str(dataset["format"])
    data = DataConfig.from_params(data)
    size = int(size or data.crop_size)
    if size < 16:
        raise ValueError(f"evaluation size {size} is too small; use at least 16 px (evaluation.size)")
    chosen, holdout = evaluation_split(root, fmt, split, data.holdout(root, fmt))
    if fmt == "unaligned":
        held = _load_unpaired(root, chosen, data, size, max_images, holdout)
    elif fmt == "labelmap":
        held = _load_labelmap(root, chosen, data, size, max_images, holdout)
    else:
        held = _load_paired(root, fmt, chosen, data, size, max_images, holdout)
    if holdout is not None:
        held.split = HOLDOUT_SPLIT
        held.holdout = holdout.describe()
    return held


def to_batch(images: list[Image.Image]) -> torch.Tensor:
    """PIL ``RGB``/``L`` images of one size -> ``NxCxHxW`` float32 in [0, 1]."""
    arrays = [np.asarray(img, dtype=np.float32) / 255.0 for img in images]
    arrays = [a[:, :, None] if a.ndim == 2 else a for a in arrays]
    return torch.from_numpy(np.stack(arrays).transpose(0, 3, 1, 2).copy())
