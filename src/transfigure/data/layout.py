"""Dataset layouts on disk: the formats, their folders, which files are images, which splits exist.

The trainer (:mod:`transfigure.data.datasets`), format detection, data validation
(:mod:`transfigure.validation.metadata`) and evaluation all read datasets through this
module, so a file the trainer would read is exactly a file validation checks.

=============  ==============================================  ==========================
format         folders under ``root`` for split ``s``          domains
=============  ==============================================  ==========================
``aligned``    ``s/``: each file A|B side by side              ``AB``
``paired``     ``sA/``, ``sB/``: files matched by name          ``A``, ``B``
``unaligned``  ``sA/``, ``sB/``: unpaired (CycleGAN)            ``A``, ``B``
``labelmap``   ``s_label/``, ``s_img/``, optional ``s_inst/``   ``label``, ``image``, ``instance``
=============  ==============================================  ==========================

The held-out split evaluation uses is ``test``, else ``val``. A dataset with neither gives up a
fraction of ``train`` instead (:class:`Holdout`, ``data.holdout_fraction``): training skips those
files and evaluation reads only them. Which files is a pure function of their names, so the
training and evaluation nodes (separate processes, even) agree without sharing state.

Kept free of torch and PIL so that validation and tooling can import it cheaply.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar, Final, Literal, TypeVar

__all__ = [
    "DOMAINS",
    "FORMATS",
    "HELD_OUT_SPLITS",
    "HOLDOUT_SPLIT",
    "IMAGE_EXTENSIONS",
    "LAYOUTS",
    "LOSSY_EXTENSIONS",
    "SPLITS",
    "Folder",
    "Holdout",
    "check_format",
    "detect_format",
    "domain_folders",
    "evaluation_split",
    "file_key",
    "has_held_out_split",
    "held_out_split",
    "holdout_score",
    "is_image_file",
    "list_images",
    "resolve_format",
    "scan_folder",
    "train_holdout",
]

#: File extensions (lower case, with the dot) of the images the trainer reads and validation
#: checks; matched case-insensitively. Anything else in a dataset folder is ignored (and counted
#: by validation).
IMAGE_EXTENSIONS: Final[frozenset[str]] = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"}
)
#: Lossy encodings: refused for label and instance maps (compression changes ids).
LOSSY_EXTENSIONS: Final[frozenset[str]] = frozenset({".jpg", ".jpeg"})

#: The splits validation scans by default. COCO-Stuff/ADE20K-style datasets call their
#: held-out split ``val``.
SPLITS: Final[tuple[str, ...]] = ("train", "test", "val")
#: Held-out split names tried, in order, when none is requested.
HELD_OUT_SPLITS: Final[tuple[str, ...]] = ("test", "val")


@dataclass(frozen=True)
class Folder:
    """One folder of a layout: ``template`` with ``{split}`` substituted holds ``domain``'s files."""

    template: str
    domain: str
    required: bool = True

    def path(self, root: str | os.PathLike[str], split: str) -> Path:
        return Path(root) / self.template.format(split=split)


#: The folders of each format, in table order. The first folder of a format is its probe: a
#: split exists when that folder does.
LAYOUTS: Final[dict[str, tuple[Folder, ...]]] = {
    "aligned": (Folder("{split}", "AB"),),
    "paired": (Folder("{split}A", "A"), Folder("{split}B", "B")),
    "unaligned": (Folder("{split}A", "A"), Folder("{split}B", "B")),
    "labelmap": (
        Folder("{split}_label", "label"),
        Folder("{split}_img", "image"),
        Folder("{split}_inst", "instance", required=False),
    ),
}

#: Supported dataset formats.
FORMATS: Final[tuple[str, ...]] = tuple(LAYOUTS)

#: Domain names of each format, in table order.
DOMAINS: Final[dict[str, tuple[str, ...]]] = {
    fmt: tuple(folder.domain for folder in folders) for fmt, folders in LAYOUTS.items()
}

#: ``auto`` tries these in order on the ``train`` split (``paired`` has the same folders as
#: ``unaligned`` and is never guessed: pairing must be asked for).
_DETECT_ORDER: Final = ("labelmap", "unaligned", "aligned")


def check_format(fmt: str) -> str:
    """Return ``fmt`` if it is a supported dataset format, else raise ``ValueError``."""
    if fmt not in LAYOUTS:
        raise ValueError(f"unknown dataset format {fmt!r}; expected one of: {', '.join(sorted(FORMATS))}")
    return fmt


def domain_folders(root: str | os.PathLike[str], fmt: str, split: str) -> dict[str, Path]:
    """``{domain: folder}`` of one split of a ``fmt`` dataset (whether the folders exist or not)."""
    return {folder.domain: folder.path(root, split) for folder in LAYOUTS[check_format(fmt)]}


def _has_required_folders(root: Path, fmt: str, split: str) -> bool:
    return all(f.path(root, split).is_dir() for f in LAYOUTS[fmt] if f.required)


def _subfolders(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def detect_format(root: str | os.PathLike[str]) -> str:
    """Guess the layout of ``root`` from its ``train`` folders.

    * ``train_label/`` + ``train_img/`` -> ``labelmap``
    * ``trainA/`` + ``trainB/`` -> ``unaligned`` (CycleGAN layout; use ``format: paired``
      explicitly when the files are matched pairs)
    * ``train/`` -> ``aligned`` (pix2pix A|B side-by-side)
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder '{root}' does not exist")
    for fmt in _DETECT_ORDER:
        if _has_required_folders(root, fmt, "train"):
            return fmt
    raise ValueError(
        f"cannot tell the format of '{root}' (sub-folders: {_subfolders(root) or 'none'}). Expected "
        "trainA/ + trainB/ (unaligned or paired), train/ (aligned A|B images) or train_label/ + "
        "train_img/ (labelmap); set data.format explicitly if the layout is one of these under other names"
    )


def resolve_format(root: str | os.PathLike[str], fmt: str | None) -> str:
    """``fmt`` if given (validated), else :func:`detect_format` (``None``, ``""`` or ``"auto"``)."""
    if fmt in (None, "", "auto"):
        return detect_format(root)
    if fmt not in LAYOUTS:
        raise ValueError(f"unknown data.format {fmt!r}: use one of {FORMATS} or 'auto'")
    return fmt


def held_out_split(root: str | os.PathLike[str], fmt: str, requested: str | None = None) -> str:
    """The split to evaluate on: ``requested``, or the first of :data:`HELD_OUT_SPLITS` present.

    Raises:
        ValueError: ``requested`` is ``train`` (metrics must come from held-out images) or
            ``fmt`` is unknown.
        FileNotFoundError: the split (or none of the held-out splits) exists.
    """
    root = Path(root)
    probe = LAYOUTS[check_format(fmt)][0]
    if requested == "train":
        raise ValueError(
            f"evaluation.split 'train' is the training split of '{root}': metrics must come from "
            "held-out images (test/ or val/)"
        )
    candidates = [requested] if requested else list(HELD_OUT_SPLITS)
    for split in candidates:
        if probe.path(root, split).is_dir():
            return split
    expected = " or ".join(f"'{probe.template.format(split=s)}/'" for s in candidates)
    raise FileNotFoundError(
        f"no held-out split to evaluate on in '{root}': expected {expected} "
        f"(sub-folders: {_subfolders(root) or 'none'}). Evaluation needs images never used in "
        "training; add a test split, set evaluation.split, or set data.holdout_fraction (e.g. 0.1) "
        "to hold out part of train"
    )


def has_held_out_split(root: str | os.PathLike[str], fmt: str) -> bool:
    """Whether ``root`` has one of :data:`HELD_OUT_SPLITS` (its probe folder exists)."""
    probe = LAYOUTS[check_format(fmt)][0]
    return any(probe.path(root, split).is_dir() for split in HELD_OUT_SPLITS)


# -- the held-out part of train, for datasets without a test/val split -------------------------------
#: What evaluations record as their split when they used the held-out part of ``train``.
HOLDOUT_SPLIT: Final = "train-holdout"

T = TypeVar("T")


def file_key(path: str | os.PathLike[str], folder: str | os.PathLike[str]) -> str:
    """A file's key: its path relative to ``folder`` without extension, ``/``-separated.

    It pairs files across folders (``trainA/x.png`` with ``trainB/x.jpg``) and chooses the
    held-out files, so a pair is held out or trained on as a whole.
    """
    return Path(path).relative_to(folder).with_suffix("").as_posix()


def holdout_score(key: str) -> float:
    """A number in [0, 1) that depends on ``key`` alone: the first 8 bytes of its sha256, / 2**64.

    Not Python's ``hash`` (salted per process) nor an RNG: every process, on every machine,
    gives a file the same score, whatever else is in the folder and in what order it is listed.
    """
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") / 2.0**64


@dataclass(frozen=True)
class Holdout:
    """A fixed part of a ``train`` split held out for evaluation, when there is no test/val split.

    A file is held out when :func:`holdout_score` of its :func:`file_key` is below ``fraction``:
    about ``fraction`` of the files, and adding files never moves the existing ones. When that
    gives fewer than ``min(min_count, n // 2)`` of the ``n`` files (small datasets), the files
    with the next lowest scores are added up to that number; only in this small regime can a new
    file displace an old one. At least one file is always left to train on, so a single file is
    never held out. Unpaired data is held out per domain folder.

    ``part`` says which side a dataset reads: ``train`` (all but the held-out files) or ``held_out``.
    """

    fraction: float
    min_count: int = 8
    part: Literal["train", "held_out"] = "train"

    #: how the files are chosen, in words (recorded with the training run)
    RULE: ClassVar[str] = "sha256 of the file path relative to its folder, without extension, below the fraction"

    def __post_init__(self) -> None:
        if not 0 < self.fraction <= 0.5:
            raise ValueError(f"holdout fraction must be in (0, 0.5], got {self.fraction!r}")
        if self.min_count < 1:
            raise ValueError(f"holdout min_count must be at least 1, got {self.min_count!r}")
        if self.part not in ("train", "held_out"):
            raise ValueError(f"holdout part must be 'train' or 'held_out', got {self.part!r}")

    def held_out(self) -> Holdout:
        """The same rule reading the held-out side."""
        return replace(self, part="held_out")

    def held_out_keys(self, keys: Collection[str]) -> frozenset[str]:
        """The keys (of one folder) that are held out; none of fewer than two."""
        unique = set(keys)
        n = len(unique)
        if n < 2:
            return frozenset()
        ranked = sorted(unique, key=lambda k: (holdout_score(k), k))
        count = sum(holdout_score(k) < self.fraction for k in ranked)
        count = max(count, min(self.min_count, n // 2))
        return frozenset(ranked[: min(count, n - 1)])

    def select(self, items: Sequence[T], key: Callable[[T], str]) -> list[T]:
        """The items of :attr:`part`, in their order (``key`` gives an item's :func:`file_key`)."""
        keys = [key(item) for item in items]
        held = self.held_out_keys(keys)
        want = self.part == "held_out"
        return [item for item, k in zip(items, keys) if (k in held) == want]

    def describe(self) -> dict[str, Any]:
        """The rule as JSON-able values (recorded with runs and evaluations)."""
        return {"fraction": self.fraction, "min_count": self.min_count, "rule": self.RULE}


def train_holdout(root: str | os.PathLike[str], fmt: str, fraction: float | None, min_count: int = 8) -> Holdout | None:
    """The :class:`Holdout` (``part="train"``) of ``root``'s train split; None when the dataset has a
    test/val split (evaluation uses that) or ``fraction`` is None/0 (holding out is off)."""
    if not fraction or has_held_out_split(root, fmt):
        return None
    return Holdout(float(fraction), int(min_count))


def evaluation_split(
    root: str | os.PathLike[str], fmt: str, requested: str | None = None, holdout: Holdout | None = None
) -> tuple[str, Holdout | None]:
    """The split to evaluate on and, when it is the held-out part of ``train``, that part.

    ``requested`` (``evaluation.split``) or the first of :data:`HELD_OUT_SPLITS` present, as
    :func:`held_out_split`; without either, ``("train", holdout.held_out())`` when ``holdout``
    (:func:`train_holdout`) is given.

    Raises:
        ValueError, FileNotFoundError: as :func:`held_out_split`, when no split applies.
    """
    if requested or holdout is None or has_held_out_split(root, fmt):
        return held_out_split(root, fmt, requested), None
    return "train", holdout.held_out()


def _is_hidden(name: str) -> bool:
    return name.startswith(".")


def is_image_file(path: str | os.PathLike[str]) -> bool:
    """Whether the trainer reads this file: a non-hidden name with an :data:`IMAGE_EXTENSIONS` suffix."""
    p = Path(path)
    return not _is_hidden(p.name) and p.suffix.lower() in IMAGE_EXTENSIONS


def scan_folder(folder: str | os.PathLike[str]) -> tuple[list[Path], list[Path]]:
    """``(images, other files)`` under ``folder``, recursively, each sorted by relative path.

    Images are the files :func:`is_image_file` accepts; hidden files (names starting with
    ``.``, e.g. macOS ``._x.png``) are never images and go with the others. Hidden folders
    are not entered. Symlinked folders are followed once each, so link loops are harmless.

    Raises:
        FileNotFoundError: ``folder`` does not exist.
        NotADirectoryError: ``folder`` is a file.
    """
    root = Path(folder)
    if not root.exists():
        raise FileNotFoundError(f"image folder '{root}' does not exist")
    if not root.is_dir():
        raise NotADirectoryError(f"'{root}' is not a folder")
    images: list[tuple[str, Path]] = []
    others: list[tuple[str, Path]] = []
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = sorted(d for d in dirnames if not _is_hidden(d))
        for name in filenames:
            # Not filtered by is_file(): a broken link named like an image is read by the
            # trainer (and fails there), so validation must see and report it too.
            path = Path(dirpath) / name
            entry = (path.relative_to(root).as_posix(), path)
            (images if is_image_file(name) else others).append(entry)
    return [p for _, p in sorted(images)], [p for _, p in sorted(others)]


def list_images(folder: str | os.PathLike[str]) -> list[Path]:
    """All image files under ``folder`` (see :func:`scan_folder`), sorted by relative path."""
    return scan_folder(folder)[0]
