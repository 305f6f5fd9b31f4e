"""build_image_metadata on real files: clean datasets and broken inputs."""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image, ImageFile

from transfigure.validation import FORMATS, METADATA_COLUMNS, build_image_metadata, inspect_image


def _row(table: pd.DataFrame, path: str) -> pd.Series:
    rows = table[table["path"] == path]
    assert len(rows) == 1, f"{path} not listed once in {list(table['path'])}"
    return rows.iloc[0]


@pytest.mark.parametrize("fmt", FORMATS)
def test_clean_dataset_table(fmt: str, make_dataset: Callable[..., Path]) -> None:
    root = make_dataset(fmt)
    table = build_image_metadata(root, fmt)

    assert list(table.columns) == METADATA_COLUMNS
    per_pair = {"aligned": 1, "paired": 2, "unaligned": 2, "labelmap": 3}[fmt]
    assert len(table) == 5 * per_pair
    assert table["decodable"].all()
    assert (table["error"] == "").all()
    assert (table["width"] >= 32).all() and (table["height"] == 40).all()
    assert set(table["split"]) == {"train", "test"}
    expected_domains = {
        "aligned": {"AB"},
        "paired": {"A", "B"},
        "unaligned": {"A", "B"},
        "labelmap": {"label", "image", "instance"},
    }[fmt]
    assert set(table["domain"]) == expected_domains
    assert not any(path.startswith("/") or "\\" in path for path in table["path"])
    assert table["content_hash"].str.fullmatch(r"[0-9a-f]{64}").all()
    assert table["content_hash"].is_unique
    if fmt == "unaligned":
        assert table["pair_id"].isna().all()
    else:
        assert (table["pair_id"] == table["path"].map(lambda p: Path(p).stem)).all()
    for path, size in zip(table["path"], table["bytes"], strict=True):
        assert (root / path).stat().st_size == size


def test_unknown_format_and_missing_root(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="aligned, labelmap, paired, unaligned"):
        build_image_metadata(tmp_path, "side-by-side")
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match="nowhere"):
        build_image_metadata(missing, "aligned")


def test_broken_files_are_listed_not_decodable(
    make_dataset: Callable[..., Path], image_writer: Callable[..., Path]
) -> None:
    root = make_dataset("unaligned")
    good = image_writer(root / "trainA" / "good.jpg", (48, 48), seed=7)
    data = good.read_bytes()
    (root / "trainA" / "truncated.jpg").write_bytes(data[: len(data) // 2])
    png = image_writer(root / "trainB" / "whole.png", (48, 48), seed=8).read_bytes()
    (root / "trainB" / "truncated.png").write_bytes(png[: len(png) // 2])
    (root / "trainB" / "empty.jpg").write_bytes(b"")
    (root / "testA" / "notes.png").write_text("this is not an image\n")

    table = build_image_metadata(root, "unaligned")

    for path in (
        "trainA/truncated.jpg",
        "trainB/truncated.png",
        "trainB/empty.jpg",
        "testA/notes.png",
    ):
        row = _row(table, path)
        assert not row["decodable"], path
        assert row["error"], path
        assert (row["width"], row["height"], row["mode"]) == (0, 0, "")
        raw = (root / path).read_bytes()
        assert row["content_hash"] == hashlib.sha256(raw).hexdigest()
        assert row["bytes"] == len(raw)
    assert "empty" in _row(table, "trainB/empty.jpg")["error"]
    assert "not a recognised image" in _row(table, "testA/notes.png")["error"]
    assert "truncated" in _row(table, "trainA/truncated.jpg")["error"]
    assert _row(table, "trainA/good.jpg")["decodable"]


def test_truncated_detected_even_if_pil_allows_truncated_loads(
    make_dataset: Callable[..., Path],
    image_writer: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = make_dataset("aligned")
    data = image_writer(root / "train" / "cut.jpg", (64, 48), seed=3).read_bytes()
    (root / "train" / "cut.jpg").write_bytes(data[: len(data) // 2])
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)

    table = build_image_metadata(root, "aligned")

    assert not _row(table, "train/cut.jpg")["decodable"]
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # restored afterwards


def _png_with_header(path: Path, width: int, height: int) -> Path:
    """A tiny PNG whose IHDR declares ``width`` x ``height`` (a decompression bomb)."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        body = kind + payload
        return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


@pytest.mark.parametrize("side", [50_000, 12_000])
def test_decompression_bomb_is_refused_without_decoding(tmp_path: Path, side: int) -> None:
    bomb = _png_with_header(tmp_path / "bomb.png", side, side)
    info = inspect_image(bomb)
    assert not info.decodable
    assert "bomb" in info.error
    assert info.content_hash == hashlib.sha256(bomb.read_bytes()).hexdigest()


def test_resaved_pixels_share_content_hash(
    make_dataset: Callable[..., Path], image_writer: Callable[..., Path]
) -> None:
    root = make_dataset("unaligned")
    jpeg = image_writer(root / "testA" / "photo.jpg", (48, 40), seed=11)
    with Image.open(jpeg) as decoded:
        decoded.save(root / "trainA" / "photo_copy.png")

    table = build_image_metadata(root, "unaligned")

    original = _row(table, "testA/photo.jpg")
    copy = _row(table, "trainA/photo_copy.png")
    assert original["bytes"] != copy["bytes"]
    assert original["content_hash"] == copy["content_hash"]


def test_extensions_recursion_ignored_files_and_missing_splits(
    tmp_path: Path, image_writer: Callable[..., Path]
) -> None:
    root = tmp_path / "facades_like"
    image_writer(root / "train" / "a.JPG", (64, 32), seed=1)
    image_writer(root / "train" / "nested" / "b.png", (64, 32), seed=2)
    image_writer(root / "train" / "c.TIFF", (64, 32), seed=3)
    (root / "train" / "README.txt").write_text("not an image")
    (root / "train" / ".DS_Store").write_bytes(b"\x00\x01")

    table = build_image_metadata(root, "aligned")  # no test split on disk

    assert list(table["path"]) == ["train/a.JPG", "train/c.TIFF", "train/nested/b.png"]
    assert set(table["split"]) == {"train"}
    assert table.attrs["ignored_files"] == 2
    assert set(table.attrs["ignored_examples"]) == {"train/README.txt", "train/.DS_Store"}


def test_empty_root_gives_empty_table_with_columns(tmp_path: Path) -> None:
    table = build_image_metadata(tmp_path, "paired")
    assert list(table.columns) == METADATA_COLUMNS
    assert table.empty
