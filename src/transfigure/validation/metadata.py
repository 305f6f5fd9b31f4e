"""Scan an image-to-image dataset on disk into a per-file metadata table.

The table (one row per image file, columns :data:`METADATA_COLUMNS`) is what
:func:`transfigure.validation.suites.run_validation` checks with Great
Expectations. Files are only *read* here, with PIL; nothing is written.

The layouts (``fmt``), their folders and domains are those of
:mod:`transfigure.data.layout`, and the files listed are exactly the ones the trainer
reads (:func:`transfigure.data.layout.scan_folder`). ``pair_id`` is the file stem, or
``None`` for ``unaligned`` data (no pairs).

For the ``labelmap`` format every decodable single-channel label map (domain ``label``) is
also read for the class ids it holds: ``label_max`` (the largest id) and ``label_ids`` (all
distinct ids, space-separated, ascending); other rows have ``-1`` and ``""``. The suite
checks them against ``label_nc`` (:class:`~transfigure.validation.suites.ValidationConfig`).

The default splits are :data:`transfigure.data.layout.SPLITS` (``train``, ``test``, ``val``);
a split whose folders are absent is simply not listed.

Files with an image extension (:data:`transfigure.data.layout.IMAGE_EXTENSIONS`, case-insensitive) are
always listed, decodable or not. Other files inside the image folders are not
listed; their count is logged and kept in ``DataFrame.attrs["ignored_files"]``
(and ``attrs["ignored_examples"]``) for the report summary. Hidden files (``.DS_Store``,
``._x.png``) are never listed, as the trainer never reads them; they count as ignored.
Hidden folders are not entered.
"""

from __future__ import annotations

import hashlib
import logging
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from PIL import Image, ImageFile, UnidentifiedImageError

from transfigure.data import rules
from transfigure.data.layout import LAYOUTS, SPLITS, check_format, scan_folder

logger = logging.getLogger(__name__)

__all__ = [
    "METADATA_COLUMNS",
    "build_image_metadata",
    "inspect_image",
]

METADATA_COLUMNS: list[str] = [
    "path",
    "split",
    "domain",
    "width",
    "height",
    "mode",
    "bytes",
    "decodable",
    "error",
    "pair_id",
    "content_hash",
    "label_max",
    "label_ids",
]

#: Columns added for label maps; tables written before they existed lack them (filled with -1 / "").
LABEL_COLUMNS: tuple[str, ...] = ("label_max", "label_ids")

_MAX_REASON_CHARS = 200
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


@dataclass(frozen=True)
class ImageInfo:
    """What :func:`inspect_image` learned about one file."""

    width: int
    height: int
    mode: str
    bytes: int
    decodable: bool
    error: str
    content_hash: str


def _short_reason(exc: BaseException, path: Path) -> str:
    """A one-line, path-free description of why ``path`` could not be decoded."""
    message = str(exc).splitlines()[0] if str(exc) else ""
    for spelling in {str(path), str(path.resolve()), repr(str(path))}:
        message = message.replace(spelling, path.name)
    if isinstance(exc, UnidentifiedImageError):
        reason = "not a recognised image file"
    elif isinstance(exc, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        reason = f"decompression bomb refused: {message}"
    else:
        reason = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return reason[:_MAX_REASON_CHARS]


def _pixel_hash(image: Image.Image) -> str:
    """sha256 of the decoded pixels, mode and size (and palette, for palette modes)."""
    digest = hashlib.sha256()
    digest.update(f"{image.mode}\0{image.width}x{image.height}\0".encode())
    if image.mode in ("P", "PA"):
        palette = image.getpalette()
        if palette is not None:
            digest.update(bytes(palette))
        digest.update(b"\0")
    digest.update(image.tobytes())
    return digest.hexdigest()


def _file_hash(path: Path) -> str:
    """sha256 of the raw file bytes, or ``""`` when the file cannot be read."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    except OSError:
        return ""
    return digest.hexdigest()


def inspect_image(path: str | Path, max_pixels: int | None = None) -> ImageInfo:
    """Open and fully decode one image file, never raising for a bad file.

    Args:
        path: the file to inspect.
        max_pixels: images whose header declares more pixels than this are
            reported as not decodable without allocating their pixels; default
            :data:`transfigure.data.rules.MAX_PIXELS`, the limit the loaders apply.

    Returns:
        An :class:`ImageInfo`; ``decodable`` is True only when PIL identified
        the file and ``Image.load()`` decoded all of its pixel data. The hash
        is over the decoded pixels when decodable, over the raw bytes otherwise.
    """
    path = Path(path)
    if max_pixels is None:  # read at call time, like the loaders
        max_pixels = rules.MAX_PIXELS
    try:
        size = path.stat().st_size
    except OSError as exc:
        return ImageInfo(0, 0, "", 0, False, f"unreadable: {_short_reason(exc, path)}", "")
    if size == 0:
        return ImageInfo(0, 0, "", 0, False, "empty file (0 bytes)", _EMPTY_SHA256)

    width = height = 0
    mode = ""
    try:
        with warnings.catch_warnings():
            # PIL only warns between MAX_IMAGE_PIXELS and twice that: make it an error.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                mode = image.mode
                if rules.exceeds_pixel_limit(width, height, max_pixels):
                    return ImageInfo(
                        width,
                        height,
                        mode,
                        size,
                        False,
                        f"decompression bomb refused: header declares {width}x{height} = "
                        f"{width * height} pixels (> {max_pixels})",
                        _file_hash(path),
                    )
                image.load()
                return ImageInfo(width, height, mode, size, True, "", _pixel_hash(image))
    except Exception as exc:  # any decode failure (DecompressionBombWarning included)
        return ImageInfo(0, 0, "", size, False, _short_reason(exc, path), _file_hash(path))


def _empty_table() -> pd.DataFrame:
    """A zero-row table with the metadata columns and their dtypes."""
    return pd.DataFrame(
        {
            "path": pd.Series([], dtype=object),
            "split": pd.Series([], dtype=object),
            "domain": pd.Series([], dtype=object),
            "width": pd.Series([], dtype="int64"),
            "height": pd.Series([], dtype="int64"),
            "mode": pd.Series([], dtype=object),
            "bytes": pd.Series([], dtype="int64"),
            "decodable": pd.Series([], dtype=bool),
            "error": pd.Series([], dtype=object),
            "pair_id": pd.Series([], dtype=object),
            "content_hash": pd.Series([], dtype=object),
            "label_max": pd.Series([], dtype="int64"),
            "label_ids": pd.Series([], dtype=object),
        }
    )


def label_id_info(path: str | Path) -> tuple[int, str]:
    """``(largest id, "id id ...")`` of a single-channel label map; ``(-1, "")`` if it is not one."""
    import numpy as np

    try:
        with Image.open(path) as image:
            if image.mode not in rules.LABEL_MODES:
                return -1, ""
            ids = np.unique(np.asarray(image).astype(np.int64))
    except Exception:  # undecodable files are reported by the "decodable" check
        return -1, ""
    if ids.size == 0:
        return -1, ""
    return int(ids[-1]), " ".join(str(int(i)) for i in ids)


def parse_label_ids(value: object) -> list[int]:
    """The ``label_ids`` cell (possibly mangled by a CSV round trip: NaN, ``3.0``) -> ids."""
    if value is None or (isinstance(value, float) and value != value):
        return []
    return [int(float(token)) for token in str(value).split()]


def build_image_metadata(
    root: str | Path,
    fmt: str,
    splits: Sequence[str] = SPLITS,
    *,
    max_pixels: int | None = None,
) -> pd.DataFrame:
    """Build the per-file metadata table of a dataset.

    Args:
        root: dataset root folder.
        fmt: one of :data:`transfigure.data.layout.FORMATS`.
        splits: split names to scan; a split whose folders do not exist is
            simply absent from the table.
        max_pixels: decompression bomb guard passed to :func:`inspect_image`.

    Returns:
        A DataFrame with columns :data:`METADATA_COLUMNS`, one row per image
        file, ordered by split, domain and path. ``attrs["ignored_files"]``
        counts non-image files found in the image folders.

    Raises:
        ValueError: unknown ``fmt`` or an empty ``splits``.
        FileNotFoundError: ``root`` does not exist.
        NotADirectoryError: ``root`` is not a folder.
    """
    check_format(fmt)
    if isinstance(splits, str):
        splits = (splits,)
    if not splits:
        raise ValueError("splits must name at least one split, e.g. ('train', 'test')")
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"dataset root not found: {root}")
    if not root.is_dir():
        raise NotADirectoryError(f"dataset root is not a folder: {root}")

    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    ignored: list[str] = []
    restore_truncated = ImageFile.LOAD_TRUNCATED_IMAGES
    if restore_truncated:
        logger.warning(
            "PIL.ImageFile.LOAD_TRUNCATED_IMAGES is True; disabling it while scanning "
            "so that truncated images are detected"
        )
        ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        for split in splits:
            for layout_folder in LAYOUTS[fmt]:
                folder, domain = layout_folder.path(root, split), layout_folder.domain
                if not folder.is_dir():
                    continue
                images, others = scan_folder(folder)
                ignored += [file.relative_to(root).as_posix() for file in others]
                for file in images:
                    relative = file.relative_to(root).as_posix()
                    info = inspect_image(file, max_pixels=max_pixels)
                    label_max, label_ids = -1, ""
                    if fmt == "labelmap" and domain == "label" and info.decodable:
                        label_max, label_ids = label_id_info(file)
                    rows.append(
                        {
                            "path": relative,
                            "split": split,
                            "domain": domain,
                            "width": info.width,
                            "height": info.height,
                            "mode": info.mode,
                            "bytes": info.bytes,
                            "decodable": info.decodable,
                            "error": info.error,
                            "pair_id": None if fmt == "unaligned" else file.stem,
                            "content_hash": info.content_hash,
                            "label_max": label_max,
                            "label_ids": label_ids,
                        }
                    )
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = restore_truncated

    if rows:
        table = pd.DataFrame(rows, columns=METADATA_COLUMNS)
        table = table.astype(
            {"width": "int64", "height": "int64", "bytes": "int64", "decodable": bool, "label_max": "int64"}
        )
        table["pair_id"] = table["pair_id"].astype(object)
    else:
        table = _empty_table()
    table.attrs["ignored_files"] = len(ignored)
    table.attrs["ignored_examples"] = ignored[:20]

    if ignored:
        logger.warning(
            "%d non-image file(s) ignored under %s (e.g. %s)",
            len(ignored),
            root,
            ", ".join(ignored[:3]),
        )
    bad = int((~table["decodable"]).sum())
    logger.info(
        "scanned %d image file(s) (%d not decodable) under %s as %r in %.2fs",
        len(table),
        bad,
        root,
        fmt,
        time.perf_counter() - started,
    )
    return table
