"""Validation, the loaders and inference apply the same image rules: what trains is what is validated.

(a) every file type the trainer reads is checked by validation; (b) the pixel limit is the same
for validation and the loader; (c) validation, loader and inference accept the same label modes.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from transfigure.data import images as image_loader
from transfigure.data import rules
from transfigure.data.datasets import AlignedDataset
from transfigure.data.images import ImageLoadError, load_image, load_label_map
from transfigure.data.layout import IMAGE_EXTENSIONS
from transfigure.data.transforms import TransformConfig
from transfigure.inference import label_ids_from_image
from transfigure.validation import (
    ValidationConfig,
    build_image_metadata,
    inspect_image,
    run_validation,
    validate_dataset,
)

#: every PIL mode a decoded file can have
ALL_MODES = (
    "1",
    "L",
    "P",
    "I",
    "F",
    "I;16",
    "I;16B",
    "I;16L",
    "I;16N",
    "LA",
    "PA",
    "La",
    "RGB",
    "RGBA",
    "RGBa",
    "RGBX",
    "CMYK",
    "YCbCr",
    "LAB",
    "HSV",
)
SIZE = (64, 32)  # an aligned pair of two 32x32 halves


def _save(path: Path, ext: str) -> Path:
    """A valid image with extension ``ext`` (PBM holds 1-bit, PGM greyscale pixels)."""
    rng = np.random.default_rng(len(ext))
    img = Image.fromarray(rng.integers(0, 256, (SIZE[1], SIZE[0], 3), dtype=np.uint8))
    img = img.convert({".pbm": "1", ".pgm": "L"}.get(ext, "RGB"))
    img.save(path, Image.registered_extensions()[ext])
    return path


def _one_file_per_extension(root: Path, corrupt: bool) -> list[str]:
    folder = root / "train"
    folder.mkdir(parents=True)
    for ext in sorted(IMAGE_EXTENSIONS):
        path = folder / f"{ext[1:]}{ext.upper()}"  # upper case: extensions match case-insensitively
        if corrupt:
            path.write_bytes(b"not an image at all")
        else:
            _save(path, ext)
    return sorted(f"train/{p.name}" for p in folder.iterdir())


@pytest.mark.parametrize("corrupt", [False, True], ids=["valid", "corrupt"])
def test_every_extension_the_trainer_reads_is_validated(tmp_path: Path, corrupt: bool) -> None:
    files = _one_file_per_extension(tmp_path, corrupt)

    trained = AlignedDataset(tmp_path, "train", transform=TransformConfig("none", 32, 32, False))
    assert sorted(p.relative_to(tmp_path).as_posix() for p in trained.paths) == files
    report = validate_dataset(tmp_path, "aligned")

    if corrupt:
        assert not report.success
        failure = next(f for f in report.failures if f.check == "decodable")
        assert sorted(failure.files) == files
        for path in trained.paths:
            with pytest.raises(ImageLoadError):
                load_image(path)
    else:
        assert report.success, report.format()
        assert all(load_image(path).size == SIZE for path in trained.paths)


def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header declares width x height pixels but holds almost no data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")
    )
    return path


def test_an_image_just_over_the_pixel_limit_is_refused_by_validation_and_loader(tmp_path: Path) -> None:
    path = _png_header_only(tmp_path / "big.png", rules.MAX_SIDE + 1, rules.MAX_SIDE)
    info = inspect_image(path)
    assert not info.decodable and "decompression bomb" in info.error
    with pytest.raises(ImageLoadError, match="max_pixels"):
        load_image(path)


@pytest.mark.parametrize("limit", [SIZE[0] * SIZE[1], SIZE[0] * SIZE[1] - 1], ids=["at", "over"])
def test_validation_and_loader_follow_the_one_pixel_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, limit: int
) -> None:
    monkeypatch.setattr(rules, "MAX_PIXELS", limit)
    (tmp_path / "train").mkdir()
    path = _save(tmp_path / "train" / "pair.png", ".png")

    report = validate_dataset(tmp_path, "aligned")

    if limit >= SIZE[0] * SIZE[1]:
        assert report.success, report.format()
        assert load_image(path).size == SIZE
    else:
        assert [f.files for f in report.failures if f.check == "decodable"] == [["train/pair.png"]]
        with pytest.raises(ImageLoadError, match=f"max_pixels={limit:,}"):
            load_image(path)


def _accepted_by_loader(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    accepted = set()
    for mode in ALL_MODES:
        monkeypatch.setattr(image_loader, "_open_decoded", lambda path, max_pixels, m=mode: Image.new(m, (4, 4)))
        try:
            load_label_map("label.png")
        except ImageLoadError:
            continue
        accepted.add(mode)
    return accepted


def _accepted_by_inference() -> set[str]:
    accepted = set()
    for mode in ALL_MODES:
        try:
            label_ids_from_image(Image.new(mode, (4, 4)))
        except ValueError:
            continue
        accepted.add(mode)
    return accepted


def _accepted_by_validation(tmp_path: Path) -> set[str]:
    """Validate a table with one label map of every mode (rows of a real scan, modes replaced)."""
    for sub, mode in (("train_label", "L"), ("train_img", "RGB")):
        (tmp_path / sub).mkdir()
        Image.new(mode, (32, 32)).save(tmp_path / sub / "x.png")
    scanned = build_image_metadata(tmp_path, "labelmap")
    label = scanned[scanned["domain"] == "label"].iloc[0]
    rows = [label.to_dict() | {"path": f"train_label/{mode}.png", "pair_id": mode, "mode": mode} for mode in ALL_MODES]
    table = pd.concat([scanned[scanned["domain"] == "image"], pd.DataFrame(rows)], ignore_index=True)
    report = run_validation(table, "labelmap", ValidationConfig(check_pairs=False))
    refused = {path for f in report.failures if f.check in ("mode", "label_mode") for path in f.files}
    return {mode for mode in ALL_MODES if f"train_label/{mode}.png" not in refused}


def test_label_modes_agree_between_loader_validation_and_inference(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loader = _accepted_by_loader(monkeypatch)
    assert "I;16N" in loader and "RGB" not in loader
    assert _accepted_by_validation(tmp_path) == loader
    assert _accepted_by_inference() == loader
