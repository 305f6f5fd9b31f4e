"""CMP facades colour labels -> class ids, on tiny synthetic facades-like A|B images made here."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from transfigure.data.datasets import make_dataset
from transfigure.data.facades import CMP_CLASSES, CMP_PALETTE, colours_to_ids, convert_facades, main
from transfigure.data.transforms import TransformConfig


def facade_ids(rng: np.random.Generator, size: int = 64) -> np.ndarray:
    """Background border, a facade, windows with sills, a door and a shop: 8x8-aligned blocks."""
    ids = np.full((size, size), 1, np.uint8)  # facade
    ids[:, :8] = 0  # background strip
    for y in (8, 24):
        for x in (16, 40):
            ids[y : y + 8, x : x + 8] = 2 if rng.random() < 0.7 else 7  # window or blind
            ids[y + 8 : y + 10, x : x + 8] = 5  # sill
    ids[48:, 16:32] = 3  # door
    ids[48:, 40:56] = 11  # shop
    return ids


def write_pairs(folder: Path, n: int, ext: str = "jpg", size: int = 64, seed: int = 0) -> list[np.ndarray]:
    """n A|B files: photo left, CMP colour label right (JPEG like the real data, or lossless PNG)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    truth = []
    for i in range(n):
        ids = facade_ids(rng, size)
        photo = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        colours = np.asarray(CMP_PALETTE, np.uint8)[ids]
        ab = Image.fromarray(np.concatenate([photo, colours], 1))
        ab.save(folder / f"{i + 1}.{ext}", **({"quality": 90} if ext == "jpg" else {}))
        truth.append(ids)
    return truth


def test_palette_and_classes():
    assert len(CMP_CLASSES) == len(CMP_PALETTE) == len(set(CMP_PALETTE)) == 12
    assert CMP_CLASSES[2] == "window" and CMP_CLASSES[11] == "shop"
    pal = np.asarray(CMP_PALETTE, np.uint8)[None]
    assert colours_to_ids(pal).tolist() == [list(range(12))]
    # JPEG-like drift still lands on the nearest colour
    noisy = np.clip(pal.astype(int) + np.array([12, -10, 9]), 0, 255).astype(np.uint8)
    assert colours_to_ids(noisy).tolist() == [list(range(12))]


def test_lossless_pairs_convert_exactly(tmp_path):
    truth = write_pairs(tmp_path / "src", 3, ext="png")
    doc = convert_facades(tmp_path / "src", tmp_path / "out", test_fraction=0.0)
    assert doc["label_nc"] == 12 and doc["splits"] == {"train": ["1", "2", "3"], "test": []}
    for i, ids in enumerate(truth, start=1):
        label = Image.open(tmp_path / "out" / "train_label" / f"{i}.png")
        assert label.mode == "L" and label.size == (64, 64)
        assert np.array_equal(np.asarray(label), ids)
        photo = Image.open(tmp_path / "out" / "train_img" / f"{i}.png")
        assert photo.size == (64, 64) and photo.mode == "RGB"
    assert not (tmp_path / "out" / "test_label").exists()


def test_jpeg_pairs_convert_inside_regions(tmp_path):
    truth = write_pairs(tmp_path / "src", 2, ext="jpg")
    convert_facades(tmp_path / "src", tmp_path / "out", test_fraction=0.0)
    for i, ids in enumerate(truth, start=1):
        got = np.asarray(Image.open(tmp_path / "out" / "train_label" / f"{i}.png"))
        # away from region borders, JPEG's approximate colours map back to the right class
        interior = np.ones_like(ids, bool)
        for axis in (0, 1):
            for shift in (-2, -1, 1, 2):
                interior &= np.roll(ids, shift, axis) == ids
        assert interior.sum() > 1000
        assert np.array_equal(got[interior], ids[interior])
        assert (got == ids).mean() > 0.9


def test_hold_out_is_deterministic_and_readable_as_labelmap(tmp_path):
    write_pairs(tmp_path / "src", 10, ext="png")
    a = convert_facades(tmp_path / "src", tmp_path / "a", test_fraction=0.25, seed=3)
    b = convert_facades(tmp_path / "src", tmp_path / "b", test_fraction=0.25, seed=3)
    c = convert_facades(tmp_path / "src", tmp_path / "c", test_fraction=0.25, seed=4)
    assert a["splits"] == b["splits"] and len(a["splits"]["test"]) == 3 and len(a["splits"]["train"]) == 7
    assert a["splits"] != c["splits"]
    assert not set(a["splits"]["test"]) & set(a["splits"]["train"])
    for name in a["splits"]["test"]:
        assert (tmp_path / "a" / "test_label" / f"{name}.png").read_bytes() == (
            tmp_path / "b" / "test_label" / f"{name}.png"
        ).read_bytes()
    saved = json.loads((tmp_path / "a" / "classes.json").read_text())
    assert saved["classes"] == list(CMP_CLASSES) and saved["palette"][0] == [0, 0, 222]
    ds = make_dataset(
        "labelmap", tmp_path / "a", "train", transform=TransformConfig(preprocess="none", flip=False), label_nc=12
    )
    assert len(ds) == 7 and int(ds[0]["label"].max()) <= 11


def test_command_line_and_errors(tmp_path):
    write_pairs(tmp_path / "src", 2, ext="png")
    assert main([str(tmp_path / "src"), str(tmp_path / "out"), "--test-fraction", "0.5"]) == 0
    assert len(list((tmp_path / "out" / "test_label").iterdir())) == 1
    assert main([str(tmp_path / "src"), str(tmp_path / "out")]) == 2  # exists: needs --overwrite
    assert main([str(tmp_path / "src"), str(tmp_path / "out"), "--overwrite", "--test-fraction", "0"]) == 0
    assert not (tmp_path / "out" / "test_label").exists()
    Image.new("RGB", (33, 16)).save(tmp_path / "src" / "odd.png")
    with pytest.raises(ValueError, match="odd.png.*even width"):
        convert_facades(tmp_path / "src", tmp_path / "other")
    with pytest.raises(ValueError, match="test_fraction"):
        convert_facades(tmp_path / "src", tmp_path / "other", test_fraction=1.0)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="holds no images"):
        convert_facades(tmp_path / "empty", tmp_path / "other")
