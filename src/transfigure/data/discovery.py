"""Find which dataset format a folder holds, so pointing a pipeline at data is one parameter."""

from __future__ import annotations

from pathlib import Path

FORMATS = ("aligned", "paired", "unaligned", "labelmap")


def detect_format(root: str | Path) -> str:
    """Guess the layout of ``root``.

    * ``train_label/`` -> ``labelmap``
    * ``trainA/`` + ``trainB/`` -> ``unaligned`` (CycleGAN layout; use ``format: paired``
      explicitly when the files are matched pairs)
    * ``train/`` -> ``aligned`` (pix2pix A|B side-by-side)
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder '{root}' does not exist")
    if (root / "train_label").is_dir():
        return "labelmap"
    if (root / "trainA").is_dir() and (root / "trainB").is_dir():
        return "unaligned"
    if (root / "train").is_dir():
        return "aligned"
    found = sorted(p.name for p in root.iterdir() if p.is_dir())
    raise ValueError(
        f"cannot tell the format of '{root}' (sub-folders: {found or 'none'}). Expected trainA/ + trainB/ "
        "(unaligned or paired), train/ (aligned A|B images) or train_label/ + train_img/ (labelmap); "
        "set data.format explicitly if the layout is one of these under other names"
    )


def resolve_format(root: str | Path, fmt: str | None) -> str:
    """``fmt`` if given (validated), else :func:`detect_format`."""
    if fmt in (None, "", "auto"):
        return detect_format(root)
    if fmt not in FORMATS:
        raise ValueError(f"unknown data.format {fmt!r}: use one of {FORMATS} or 'auto'")
    return fmt
