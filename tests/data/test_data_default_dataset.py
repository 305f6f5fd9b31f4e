"""The embedded default dataset: layout, counts, determinism, disjoint scenes, usability."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from transfigure.data import (
    CLASSES,
    DEFAULT_SUBSETS,
    TransformConfig,
    build_default_dataset,
    make_dataset,
)
from transfigure.data.default_dataset import main, verify_default_dataset

SMALL: dict[str, Any] = {"size": 32, "n_train": 5, "n_test": 3, "seed": 0}


@pytest.fixture(scope="module")
def default_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default-parameter build."""
    root = tmp_path_factory.mktemp("default") / "dataset"
    build_default_dataset(root)
    return root


def _pixels_digest(path: Path) -> str:
    img = Image.open(path)
    return hashlib.sha256(img.mode.encode() + np.asarray(img).tobytes()).hexdigest()


def _files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.png"))


def test_layout_and_counts(default_root: Path) -> None:
    root = default_root
    expected = {
        "day2night/trainA": 48,
        "day2night/trainB": 48,
        "day2night/testA": 12,
        "day2night/testB": 12,
        "edges2photo/train": 48,
        "edges2photo/test": 12,
        **{f"labels2photo/{s}_{k}": n for s, n in (("train", 48), ("test", 12)) for k in ("img", "label", "inst")},
        "photo2painting/trainA": 48,
        "photo2painting/trainB": 48,
        "photo2painting/testA": 12,
        "photo2painting/testB": 12,
    }
    for rel, n in expected.items():
        files = _files(root / rel)
        assert len(files) == n, rel
        assert files[0].name == "0000.png"
    manifest = json.loads((root / "MANIFEST.json").read_text())
    assert manifest["counts"] == expected
    assert manifest["parameters"] == {
        "size": 64,
        "n_train": 48,
        "n_test": 12,
        "seed": 0,
        "generator_version": 2,
    }
    assert manifest["classes"] == list(CLASSES) and manifest["subsets"] == DEFAULT_SUBSETS
    assert len(manifest["files"]) == sum(expected.values())
    rel = "labels2photo/test_label/0003.png"
    assert manifest["files"][rel] == hashlib.sha256((root / rel).read_bytes()).hexdigest()
    assert verify_default_dataset(root) == []


def test_image_formats(default_root: Path) -> None:
    root = default_root
    day = Image.open(root / "day2night/trainA/0000.png")
    assert (day.mode, day.size) == ("RGB", (64, 64))
    pair = Image.open(root / "edges2photo/train/0000.png")
    assert (pair.mode, pair.size) == ("RGB", (128, 64))
    sketch = np.asarray(pair)[:, :64]
    assert set(np.unique(sketch).tolist()) == {0, 255}  # pure black lines on white
    assert (sketch == 255).mean() > 0.6
    for i in range(12):
        label = Image.open(root / f"labels2photo/test_label/{i:04d}.png")
        inst = Image.open(root / f"labels2photo/test_inst/{i:04d}.png")
        img = Image.open(root / f"labels2photo/test_img/{i:04d}.png")
        assert label.mode == "L" and inst.mode == "L" and img.mode == "RGB"
        assert label.size == inst.size == img.size == (64, 64)
        ids = np.asarray(label)
        assert ids.max() < len(CLASSES) and (ids == CLASSES.index("sky")).any()
        assert np.asarray(inst).max() >= 1  # at least the sun/moon is an object


def test_all_classes_used(default_root: Path) -> None:
    root = default_root
    seen: set[int] = set()
    for path in _files(root / "labels2photo/train_label"):
        seen |= set(np.unique(np.asarray(Image.open(path))).tolist())
    assert seen == set(range(len(CLASSES)))


def test_scenes_are_disjoint(default_root: Path) -> None:
    root = default_root
    d = {
        rel: {_pixels_digest(p) for p in _files(root / rel)}
        for rel in (
            "day2night/trainA",
            "day2night/trainB",
            "day2night/testA",
            "day2night/testB",
            "edges2photo/train",
            "edges2photo/test",
            "labels2photo/train_label",
            "labels2photo/test_label",
            "photo2painting/trainA",
            "photo2painting/trainB",
            "photo2painting/testA",
            "photo2painting/testB",
        )
    }
    for rel, digests in d.items():
        assert len(digests) == len(_files(root / rel)), f"duplicate images inside {rel}"
    pairs = [
        ("day2night/trainA", "day2night/trainB"),
        ("day2night/testA", "day2night/testB"),
        ("day2night/trainA", "day2night/testA"),
        ("day2night/trainB", "day2night/testB"),
        ("edges2photo/train", "edges2photo/test"),
        ("labels2photo/train_label", "labels2photo/test_label"),
        ("photo2painting/trainA", "photo2painting/testA"),
        ("photo2painting/trainB", "photo2painting/testB"),
    ]
    for a, b in pairs:
        assert not d[a] & d[b], f"{a} and {b} share an image"
    # beyond pixels, the *layouts* differ: every scene appears in one place only
    # (labels2photo's img/label/inst triple being one scene)
    scenes = json.loads((root / "MANIFEST.json").read_text())["scenes"]
    assert set(scenes) == set(json.loads((root / "MANIFEST.json").read_text())["files"])
    owners: dict[str, set[str]] = {}
    for rel, scene in scenes.items():
        folder, name = rel.rsplit("/", 1)
        owners.setdefault(scene, set()).add(f"{folder.split('_')[0]}/{name}")
    assert all(len(places) == 1 for places in owners.values())
    assert len(owners) == 120 + 60 + 60 + 120  # day2night, edges2photo, labels2photo, photo2painting


def test_day_and_night_are_distinct_domains(default_root: Path) -> None:
    root = default_root
    for split in ("train", "test"):
        day = [np.asarray(Image.open(p)).mean() for p in _files(root / f"day2night/{split}A")]
        night = [np.asarray(Image.open(p)).mean() for p in _files(root / f"day2night/{split}B")]
        assert min(day) > max(night) + 40  # every day image brighter than every night one
        assert np.mean(day) > 2.5 * np.mean(night)


def test_same_parameters_give_identical_bytes(tmp_path: Path) -> None:
    a = build_default_dataset(tmp_path / "a", **SMALL)
    b = build_default_dataset(tmp_path / "b", **SMALL)
    ma, mb = (json.loads((r / "MANIFEST.json").read_text()) for r in (a, b))
    assert ma["files"] == mb["files"] and len(ma["files"]) == 8 * 2 + 8 + 8 * 3 + 8 * 2
    assert (a / "MANIFEST.json").read_bytes() == (b / "MANIFEST.json").read_bytes()
    c = build_default_dataset(tmp_path / "c", **{**SMALL, "seed": 1})
    mc = json.loads((c / "MANIFEST.json").read_text())
    assert set(mc["files"].values()).isdisjoint(ma["files"].values())


def test_idempotent_and_overwrite(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    build_default_dataset(root, **SMALL)
    probe = root / "day2night/trainA/0000.png"
    mtime = probe.stat().st_mtime_ns
    assert build_default_dataset(root, **SMALL) == root
    assert probe.stat().st_mtime_ns == mtime  # not rewritten
    with pytest.raises(FileExistsError, match="overwrite=True"):
        build_default_dataset(root, **{**SMALL, "size": 16})
    (root / "keep.txt").write_text("user file")
    build_default_dataset(root, **{**SMALL, "size": 16}, overwrite=True)
    assert Image.open(probe).size == (16, 16)
    assert (root / "keep.txt").read_text() == "user file"
    assert not list(tmp_path.glob(".ds.building-*"))  # temporary build folder cleaned up
    probe.unlink()  # a damaged build is detected and rebuilt
    build_default_dataset(root, **{**SMALL, "size": 16})
    assert probe.is_file() and verify_default_dataset(root) == []
    manifest = json.loads((root / "MANIFEST.json").read_text())
    manifest["parameters"]["generator_version"] = 0  # a build by an older generator is replaced
    (root / "MANIFEST.json").write_text(json.dumps(manifest))
    build_default_dataset(root, **{**SMALL, "size": 16})
    assert json.loads((root / "MANIFEST.json").read_text())["parameters"]["generator_version"] == 2
    (root / "MANIFEST.json").unlink()
    with pytest.raises(FileExistsError, match=r"without a MANIFEST\.json"):
        build_default_dataset(root, **SMALL)


def test_invalid_parameters(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="size must be an int >= 16"):
        build_default_dataset(tmp_path, size=8)
    with pytest.raises(ValueError, match="n_test"):
        build_default_dataset(tmp_path, n_test=0)


def test_cli(tmp_path: Path) -> None:
    assert main([str(tmp_path / "cli"), "--size", "16", "--n-train", "2", "--n-test", "1"]) == 0
    assert len(_files(tmp_path / "cli/day2night/trainA")) == 2
    assert main([str(tmp_path / "bad"), "--size", "4"]) == 2


def test_subsets_load_with_their_formats(default_root: Path) -> None:
    root = default_root
    cfg = TransformConfig(preprocess="resize_and_crop", load_size=72, crop_size=64)
    for name, fmt in DEFAULT_SUBSETS.items():
        extra = {"label_nc": len(CLASSES), "use_instance": True} if fmt == "labelmap" else {}
        for split, n in (("train", 48), ("test", 12)):
            ds = make_dataset(fmt, root / name, split, transform=cfg, **extra)
            assert len(ds) == n
            item = ds[n - 1]
            if fmt == "labelmap":
                assert item["label"].shape == (1, 64, 64) and item["image"].shape == (3, 64, 64)
                assert int(item["label"].max()) < len(CLASSES)
            else:
                assert item["A"].shape == item["B"].shape == (3, 64, 64)
    edges = make_dataset("aligned", root / "edges2photo", "train", transform=cfg)[0]
    assert edges["A"].amin() == -1 and edges["A"].amax() == 1  # A is the sketch
    assert float((edges["A"] > 0.9).float().mean()) > 0.5


def _colours(path: Path) -> int:
    return len(np.unique(np.asarray(Image.open(path).convert("RGB")).reshape(-1, 3), axis=0))


def _edges(path: Path) -> float:
    grey = np.asarray(Image.open(path).convert("L"), dtype=np.float64)
    return float(np.abs(np.diff(grey, axis=1)).mean() + np.abs(np.diff(grey, axis=0)).mean())


def test_photo2painting_is_an_unaligned_style_transfer_set_whose_domains_differ(default_root: Path) -> None:
    """A: day photos; B: paintings of other scenes (posterised colours, brush-stroke texture, warmer palette)."""
    root = default_root / "photo2painting"
    assert DEFAULT_SUBSETS["photo2painting"] == "unaligned"
    assert sorted(p.name for p in root.iterdir()) == ["testA", "testB", "trainA", "trainB"]
    a, b = _files(root / "trainA"), _files(root / "trainB")
    assert not {_pixels_digest(p) for p in a} & {_pixels_digest(p) for p in b}
    assert all(Image.open(p).size == (64, 64) and Image.open(p).mode == "RGB" for p in a[:4] + b[:4])
    # posterised: far fewer distinct colours than a photo (6 levels per channel, and the canvas weave)
    colours_a, colours_b = np.mean([_colours(p) for p in a]), np.mean([_colours(p) for p in b])
    assert colours_b < 0.1 * colours_a
    # brush strokes: busier local contrast than the smooth, slightly blurred photos
    assert np.mean([_edges(p) for p in b]) > 1.2 * np.mean([_edges(p) for p in a])

    # warmer palette: more red than blue, relative to the photos
    def warmth(files: list[Path]) -> float:
        rgb = np.stack([np.asarray(Image.open(p), dtype=np.float64).mean(axis=(0, 1)) for p in files])
        return float((rgb[:, 0] - rgb[:, 2]).mean())

    assert warmth(b) > warmth(a) + 10


def test_photo2painting_builds_deterministically(tmp_path: Path) -> None:
    first = build_default_dataset(tmp_path / "one", **SMALL)
    second = build_default_dataset(tmp_path / "two", **SMALL)
    files = json.loads((first / "MANIFEST.json").read_text())["files"]
    painting = {k: v for k, v in files.items() if k.startswith("photo2painting/")}
    assert len(painting) == 2 * (SMALL["n_train"] + SMALL["n_test"])
    assert painting == {
        k: v for k, v in json.loads((second / "MANIFEST.json").read_text())["files"].items() if k in painting
    }
