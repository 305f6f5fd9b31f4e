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

Kept free of torch and PIL so that validation and tooling can import it cheaply.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

__all__ = [
    "DOMAINS",
    "FORMATS",
    "HELD_OUT_SPLITS",
    "IMAGE_EXTENSIONS",
    "LAYOUTS",
    "LOSSY_EXTENSIONS",
    "SPLITS",
    "Folder",
    "check_format",
    "detect_format",
    "domain_folders",
    "held_out_split",
    "is_image_file",
    "list_images",
    "resolve_format",
    "scan_folder",
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
        "training; add a test split or set evaluation.split"
    )


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
