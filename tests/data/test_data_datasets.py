"""Datasets: layouts, shared crop/flip for pairs, direction, determinism, label ids, errors."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from transfigure.data import (
    DATASET_FORMATS,
    AlignedDataset,
    DataConfig,
    LabelIdError,
    LabelMapDataset,
    PairedDataset,
    TransformConfig,
    UnalignedDataset,
    list_images,
    make_dataset,
)
from transfigure.data.layout import Holdout

CROP = TransformConfig(preprocess="resize_and_crop", load_size=36, crop_size=32, flip=True)


def _same_geometry_seen(items: list[dict[str, torch.Tensor]]) -> None:
    """A carries the pattern in red, B the same pattern in blue: equal iff same crop/flip."""
    for item in items:
        torch.testing.assert_close(item["A"][0], item["B"][2], rtol=0, atol=0)
        assert item["A"][2].eq(-1).all() and item["B"][0].eq(-1).all()


def _flips(ds: AlignedDataset | PairedDataset, n_epochs: int = 6) -> set[bool]:
    """Which flips occurred (detected by comparing with the un-flipped transform)."""
    no_flip = TransformConfig(CROP.preprocess, CROP.load_size, CROP.crop_size, flip=False)
    seen = set()
    for epoch in range(n_epochs):
        ds.set_epoch(epoch)
        ref = type(ds)(ds.root, ds.split, transform=no_flip, seed=ds.seed)
        ref.set_epoch(epoch)
        for i in range(len(ds)):
            seen.add(not torch.equal(ds[i]["A"], ref[i]["A"]))
    return seen


# ------------------------------------------------------------------ listing


def test_list_images_sorted_recursive_case_insensitive(tmp_path: Path) -> None:
    for rel in ["b.PNG", "a.jpg", "sub/c.JpEg", "sub/deeper/d.tiff", "e.webp", "f.ppm", "g.bmp"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    for rel in ["notes.txt", ".hidden.png", ".cache/x.png", "h.gif"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    got = [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path)]
    assert got == ["a.jpg", "b.PNG", "e.webp", "f.ppm", "g.bmp", "sub/c.JpEg", "sub/deeper/d.tiff"]
    with pytest.raises(FileNotFoundError, match="missing"):
        list_images(tmp_path / "missing")


# ------------------------------------------------------------------ aligned


@pytest.fixture
def aligned_root(tmp_path: Path, write_pair_halves: Callable[..., Path]) -> Path:
    for i in range(4):
        write_pair_halves(tmp_path / "train" / f"{i}.png", 40, 30, seed=i)
    return tmp_path


def test_aligned_item_shapes_and_shared_params(aligned_root: Path) -> None:
    ds = AlignedDataset(aligned_root, "train", transform=CROP)
    assert len(ds) == 4
    item = ds[1]
    assert item["A"].shape == (3, 32, 32) and item["B"].shape == (3, 32, 32)
    assert item["A_paths"] == item["B_paths"] == str(aligned_root / "train" / "1.png")
    items = []
    for epoch in range(6):
        ds.set_epoch(epoch)
        items += [ds[i] for i in range(len(ds))]
    _same_geometry_seen(items)
    assert _flips(ds) == {True, False}


def test_aligned_direction_swaps(aligned_root: Path) -> None:
    a2b = AlignedDataset(aligned_root, transform=CROP, seed=3)
    b2a = AlignedDataset(aligned_root, transform=CROP, seed=3, direction="BtoA")
    for i in range(len(a2b)):
        torch.testing.assert_close(b2a[i]["A"], a2b[i]["B"], rtol=0, atol=0)
        torch.testing.assert_close(b2a[i]["B"], a2b[i]["A"], rtol=0, atol=0)
    with pytest.raises(ValueError, match="direction"):
        AlignedDataset(aligned_root, transform=CROP, direction="AB")


def test_aligned_greyscale_channels(aligned_root: Path) -> None:
    ds = AlignedDataset(aligned_root, transform=CROP, input_nc=1)
    item = ds[0]
    assert item["A"].shape == (1, 32, 32) and item["B"].shape == (3, 32, 32)
    both = AlignedDataset(aligned_root, transform=CROP, input_nc=1, output_nc=1)
    assert both[0]["B"].shape == (1, 32, 32)
    with pytest.raises(ValueError, match="input_nc must be 1"):
        AlignedDataset(aligned_root, transform=CROP, input_nc=4)


def test_aligned_odd_width_names_file(tmp_path: Path) -> None:
    (tmp_path / "train").mkdir()
    Image.new("RGB", (41, 20)).save(tmp_path / "train" / "odd.png")
    ds = AlignedDataset(tmp_path, transform=CROP)
    with pytest.raises(ValueError, match=r"odd\.png' is 41x20: its width must be even"):
        ds[0]


def test_aligned_crop_too_large_names_file(aligned_root: Path) -> None:
    ds = AlignedDataset(aligned_root, transform=TransformConfig(preprocess="crop", crop_size=64))
    with pytest.raises(ValueError, match=r"0\.png.*smaller than crop_size=64"):
        ds[0]


def test_index_errors(aligned_root: Path) -> None:
    ds = AlignedDataset(aligned_root, transform=CROP)
    with pytest.raises(IndexError):
        ds[4]
    assert ds[-1]["A_paths"] == ds[3]["A_paths"]


# ------------------------------------------------------------------ paired


def _write_paired(root: Path, names: list[str], pattern: Callable[..., np.ndarray], split: str = "train") -> None:
    for i, name in enumerate(names):
        p = pattern(30, 24, seed=i)
        a = np.zeros((24, 30, 3), np.uint8)
        a[..., 0] = p
        b = np.zeros((24, 30, 3), np.uint8)
        b[..., 2] = p
        (root / f"{split}A").mkdir(parents=True, exist_ok=True)
        (root / f"{split}B").mkdir(parents=True, exist_ok=True)
        Image.fromarray(a).save(root / f"{split}A" / f"{name}.png")
        Image.fromarray(b).save(root / f"{split}B" / f"{name}.bmp")  # extension may differ


def test_paired_matches_by_stem_and_shares_params(tmp_path: Path, pattern: Callable[..., np.ndarray]) -> None:
    _write_paired(tmp_path, ["x", "y", "z"], pattern)
    ds = PairedDataset(tmp_path, transform=CROP)
    assert len(ds) == 3
    item = ds[2]
    assert Path(item["A_paths"]).name == "z.png" and Path(item["B_paths"]).name == "z.bmp"
    items = []
    for epoch in range(5):
        ds.set_epoch(epoch)
        items += [ds[i] for i in range(3)]
    _same_geometry_seen(items)
    assert _flips(ds) == {True, False}
    swapped = PairedDataset(tmp_path, transform=CROP, direction="BtoA")[2]
    assert Path(swapped["A_paths"]).name == "z.bmp"
    torch.testing.assert_close(swapped["A"], item["B"], rtol=0, atol=0)


def test_paired_orphans_named(tmp_path: Path, pattern: Callable[..., np.ndarray]) -> None:
    _write_paired(tmp_path, ["x", "y"], pattern)
    Image.new("RGB", (30, 24)).save(tmp_path / "trainA" / "only_a.png")
    Image.new("RGB", (30, 24)).save(tmp_path / "trainB" / "only_b.jpg")
    with pytest.raises(ValueError, match="incomplete pairs") as err:
        PairedDataset(tmp_path, transform=CROP)
    assert "only_a.png" in str(err.value) and "only_b.jpg" in str(err.value)
    assert "x.png" not in str(err.value)


def test_paired_size_mismatch(tmp_path: Path, pattern: Callable[..., np.ndarray]) -> None:
    _write_paired(tmp_path, ["x"], pattern)
    Image.new("RGB", (40, 24)).save(tmp_path / "trainB" / "x.bmp")
    ds = PairedDataset(tmp_path, transform=TransformConfig(preprocess="crop", crop_size=16))
    with pytest.raises(ValueError, match=r"differ in size.*x\.png' is 30x24.*x\.bmp' is 40x24"):
        ds[0]
    # resize_and_crop maps both to load_size x load_size, so it is allowed
    assert PairedDataset(tmp_path, transform=CROP)[0]["B"].shape == (3, 32, 32)


# ------------------------------------------------------------------ unaligned


@pytest.fixture
def unaligned_root(tmp_path: Path, write_rgb: Callable[..., Path]) -> Path:
    for i in range(5):
        write_rgb(tmp_path / "trainA" / f"a{i}.png", 24, 20, seed=i)
    for i in range(3):
        write_rgb(tmp_path / "trainB" / f"b{i}.jpg", 30, 26, seed=100 + i)
    return tmp_path


def test_unaligned_length_order_and_determinism(unaligned_root: Path) -> None:
    ds = UnalignedDataset(unaligned_root, transform=CROP, seed=1)
    assert len(ds) == 5
    assert [Path(ds[i]["A_paths"]).name for i in range(5)] == [f"a{i}.png" for i in range(5)]
    again = UnalignedDataset(unaligned_root, transform=CROP, seed=1)
    for i in range(5):
        x, y = ds[i], again[i]
        assert x["B_paths"] == y["B_paths"]
        assert torch.equal(x["A"], y["A"]) and torch.equal(x["B"], y["B"])
    sequences = set()
    for epoch in range(4):
        ds.set_epoch(epoch)
        sequences.add(tuple(ds[i]["B_paths"] for i in range(5)))
    assert len(sequences) > 1  # B is re-drawn per epoch
    ds.set_epoch(2)
    again.set_epoch(2)
    assert [ds[i]["B_paths"] for i in range(5)] == [again[i]["B_paths"] for i in range(5)]
    other_seed = UnalignedDataset(unaligned_root, transform=CROP, seed=2)
    assert any(not torch.equal(other_seed[i]["A"], again[i]["A"]) for i in range(5))


def test_unaligned_serial_batches_and_direction(unaligned_root: Path) -> None:
    ds = UnalignedDataset(unaligned_root, transform=CROP, serial_batches=True)
    assert [Path(ds[i]["B_paths"]).name for i in range(5)] == [
        "b0.jpg",
        "b1.jpg",
        "b2.jpg",
        "b0.jpg",
        "b1.jpg",
    ]
    rev = UnalignedDataset(unaligned_root, transform=CROP, direction="BtoA", serial_batches=True)
    assert len(rev) == 5
    assert [Path(rev[i]["A_paths"]).name for i in range(5)] == [
        "b0.jpg",
        "b1.jpg",
        "b2.jpg",
        "b0.jpg",
        "b1.jpg",
    ]
    assert Path(rev[4]["B_paths"]).name == "a4.png"


def test_unaligned_loader_workers_match_direct_indexing(unaligned_root: Path) -> None:
    ds = UnalignedDataset(unaligned_root, transform=CROP, seed=5)
    ds.set_epoch(3)
    loader = DataLoader(ds, batch_size=2, shuffle=False, num_workers=2)
    batches = list(loader)
    direct = torch.stack([ds[i]["B"] for i in range(5)])
    assert torch.equal(torch.cat([b["B"] for b in batches]), direct)
    assert [p for b in batches for p in b["B_paths"]] == [ds[i]["B_paths"] for i in range(5)]


# ------------------------------------------------------------------ labelmap


def _write_labelmap(root: Path, labels: dict[str, np.ndarray], split: str = "train", inst: bool = True) -> None:
    for name, label in labels.items():
        for sub in ("label", "img", "inst"):
            (root / f"{split}_{sub}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(label.astype(np.uint8)).save(root / f"{split}_label" / f"{name}.png")
        photo = np.stack([label * 20, label * 10, 255 - label], -1).astype(np.uint8)
        Image.fromarray(photo).save(root / f"{split}_img" / f"{name}.jpg")
        if inst:
            Image.fromarray((label * 3 + 1).astype(np.uint8)).save(root / f"{split}_inst" / f"{name}.png")


def _labels(seed: int, ids: list[int], w: int = 37, h: int = 29) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.kron(rng.choice(ids, (h // 4 + 1, w // 4 + 1)), np.ones((4, 4), np.int64))[:h, :w]


def test_labelmap_items_nearest_and_aligned(tmp_path: Path) -> None:
    _write_labelmap(tmp_path, {"s0": _labels(0, [0, 2, 5]), "s1": _labels(1, [0, 2, 5])})
    ds = LabelMapDataset(tmp_path, transform=CROP, label_nc=6, use_instance=True)
    assert len(ds) == 2
    for epoch in range(3):
        ds.set_epoch(epoch)
        for i in range(2):
            item = ds[i]
            label, inst = item["label"], item["instance"]
            assert label.dtype == torch.int64 and label.shape == (1, 32, 32)
            assert set(label.unique().tolist()) <= {0, 2, 5}
            assert inst.dtype == torch.float32 and inst.shape == (1, 32, 32)
            torch.testing.assert_close(inst, (label * 3 + 1).float())  # same crop/flip as the label
            assert item["image"].shape == (3, 32, 32)
            assert item["path"].endswith(f"s{i}.jpg")
    no_inst = LabelMapDataset(tmp_path, transform=CROP, label_nc=6)[0]["instance"]
    assert no_inst.numel() == 0


def test_labelmap_bad_ids_raise_label_id_error(tmp_path: Path) -> None:
    _write_labelmap(tmp_path, {"good": _labels(0, [0, 1]), "bad": _labels(1, [0, 9, 12])})
    ds = LabelMapDataset(tmp_path, transform=CROP, label_nc=8)
    assert [Path(it["label"]).name for it in ds.items] == ["bad.png", "good.png"]
    with pytest.raises(LabelIdError) as err:
        ds[0]
    text = str(err.value)
    assert str(tmp_path / "train_label" / "bad.png") in text
    assert "[9, 12]" in text and "label_nc=8" in text and "0..7" in text
    assert err.value.ids == [9, 12]
    assert isinstance(err.value, ValueError)
    assert ds[1]["label"].max() <= 1
    with pytest.raises(LabelIdError):
        ds.check_labels()


def test_labelmap_dontcare(tmp_path: Path) -> None:
    _write_labelmap(tmp_path, {"s": _labels(3, [0, 3, 255])}, inst=False)
    with pytest.raises(LabelIdError, match=r"\[255\].*contain_dontcare_label=True"):
        LabelMapDataset(tmp_path, transform=CROP, label_nc=4)[0]
    ds = LabelMapDataset(tmp_path, transform=CROP, label_nc=4, contain_dontcare_label=True)
    ids = set(ds[0]["label"].unique().tolist())
    assert 255 not in ids and ids <= {0, 3, 4} and 4 in ids  # 255 -> label_nc


def test_labelmap_structure_errors(tmp_path: Path) -> None:
    _write_labelmap(tmp_path, {"s": _labels(0, [0, 1])}, inst=False)
    with pytest.raises(FileNotFoundError, match=r"train_inst.*holds no images"):
        LabelMapDataset(tmp_path, transform=CROP, label_nc=2, use_instance=True)
    Image.new("RGB", (37, 29)).save(tmp_path / "train_img" / "extra.png")
    with pytest.raises(ValueError, match=r"extra\.png"):
        LabelMapDataset(tmp_path, transform=CROP, label_nc=2)
    (tmp_path / "train_img" / "extra.png").unlink()
    Image.new("L", (37, 29)).save(tmp_path / "train_label" / "lossy.jpg")
    Image.new("RGB", (37, 29)).save(tmp_path / "train_img" / "lossy.png")
    with pytest.raises(ValueError, match=r"lossless.*lossy\.jpg"):
        LabelMapDataset(tmp_path, transform=CROP, label_nc=2)
    with pytest.raises(ValueError, match="direction='AtoB'"):
        LabelMapDataset(tmp_path, transform=CROP, label_nc=2, direction="BtoA")


def test_labelmap_colour_label_refused(tmp_path: Path) -> None:
    _write_labelmap(tmp_path, {"s": _labels(0, [0, 1])}, inst=False)
    Image.new("RGB", (37, 29), (0, 1, 0)).save(tmp_path / "train_label" / "s.png")
    with pytest.raises(ValueError, match="class ids, not colours"):
        LabelMapDataset(tmp_path, transform=CROP, label_nc=2)[0]


# ------------------------------------------------------------------ errors and factory


@pytest.mark.parametrize(
    ("fmt", "folder", "extra"),
    [
        ("aligned", "train", {}),
        ("paired", "trainA", {}),
        ("unaligned", "trainA", {}),
        ("labelmap", "train_label", {"label_nc": 3}),
    ],
)
def test_missing_and_empty_folders(tmp_path: Path, fmt: str, folder: str, extra: dict[str, int]) -> None:
    with pytest.raises(FileNotFoundError, match=rf"{folder}' does not exist; expected layout"):
        make_dataset(fmt, tmp_path, "train", transform=CROP, **extra)
    for sub in ("train", "trainA", "trainB", "train_label", "train_img"):
        (tmp_path / sub).mkdir()
    (tmp_path / folder / "readme.txt").write_text("no images here")
    with pytest.raises(FileNotFoundError, match=rf"{folder}' holds no images"):
        make_dataset(fmt, tmp_path, "train", transform=CROP, **extra)


def test_make_dataset_factory(aligned_root: Path) -> None:
    assert set(DATASET_FORMATS) == {"aligned", "paired", "unaligned", "labelmap"}
    ds = make_dataset("aligned", aligned_root, "train", transform=CROP)
    assert isinstance(ds, AlignedDataset) and len(ds) == 4
    with pytest.raises(ValueError, match=r"unknown dataset format 'folder'.*aligned, paired, unaligned, labelmap"):
        make_dataset("folder", aligned_root)
    with pytest.raises(TypeError, match="TransformConfig"):
        make_dataset("aligned", aligned_root, transform={"load_size": 8})


# ------------------------------------------------------------------ the held-out part of train (no test/ or val/)
_TRAIN_FOLDERS = {
    "aligned": {"AB": "train"},
    "paired": {"A": "trainA", "B": "trainB"},
    "unaligned": {"A": "trainA", "B": "trainB"},
    "labelmap": {"label": "train_label", "image": "train_img", "instance": "train_inst"},
}


def _train_only(root: Path, fmt: str, names: list[str]) -> Path:
    """A ``fmt`` dataset with only a train split: one tiny PNG per name and folder (unaligned B: other names)."""
    for domain, folder in _TRAIN_FOLDERS[fmt].items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        for i, name in enumerate(names):
            stem = f"{name}_b" if fmt == "unaligned" and domain == "B" else name
            if domain in ("label", "instance"):
                Image.fromarray(np.full((8, 8), i % 4, np.uint8), mode="L").save(root / folder / f"{stem}.png")
            else:
                size = (16, 8) if fmt == "aligned" else (8, 8)
                Image.new("RGB", size, (i * 7 % 256, 90, 200)).save(root / folder / f"{stem}.png")
    return root


def _listing(ds) -> dict[str, list[str]]:
    """The file names a dataset reads, per domain."""
    if isinstance(ds, AlignedDataset):
        lists = {"AB": ds.paths}
    elif isinstance(ds, PairedDataset):
        lists = {"A": [a for a, _ in ds.pairs], "B": [b for _, b in ds.pairs]}
    elif isinstance(ds, UnalignedDataset):
        lists = {"A": ds.A_paths, "B": ds.B_paths}
    else:
        lists = {role: [item[role] for item in ds.items] for role in ("label", "image", "instance")}
    return {domain: [p.stem for p in paths] for domain, paths in lists.items()}


@pytest.mark.parametrize("fmt", sorted(_TRAIN_FOLDERS))
def test_held_out_part_of_train_for_every_format(tmp_path: Path, fmt: str, caplog) -> None:
    names = [f"f{i:03d}" for i in range(30)]
    root = _train_only(tmp_path / fmt, fmt, names)
    # min_count 1: the hash threshold alone decides (a larger minimum tops small sets up, see test_data_layout)
    data = DataConfig(
        load_size=8, crop_size=8, label_nc=4, use_instance=True, holdout_fraction=0.2, holdout_min_count=1
    )
    rule = data.holdout(root, fmt)
    assert rule == Holdout(0.2, 1, "train")

    with caplog.at_level(logging.INFO, logger="transfigure.data.datasets"):
        train = data.make_dataset(root, fmt)  # the train split leaves its held-out part out
    held = data.make_dataset(root, fmt, holdout=rule.held_out())
    everything = data.model_copy(update={"holdout_fraction": None}).make_dataset(root, fmt)
    assert "held out for evaluation" in caplog.text

    expected = rule.held_out_keys(names)
    for domain, all_files in _listing(everything).items():
        trained, evaluated = _listing(train)[domain], _listing(held)[domain]
        assert not set(trained) & set(evaluated) and sorted(trained + evaluated) == sorted(all_files), domain
        stems = {s.removesuffix("_b") for s in evaluated}
        if fmt == "unaligned" and domain == "B":  # unpaired data: each folder is held out on its own names
            assert stems == {n for n in names if f"{n}_b" in rule.held_out_keys([f"{m}_b" for m in names])}
        else:  # pairs (and label, photo, instance) are held out together
            assert stems == expected, domain
    summary = train.holdout_summary
    assert summary["part"] == "train" and summary["fraction"] == 0.2 and "sha256" in summary["rule"]
    if fmt == "unaligned":
        assert summary["held_out"] == {"A": len(held.A_paths), "B": len(held.B_paths)}
    else:
        assert summary["held_out"] == {"pairs": len(held)} and len(train) + len(held) == len(everything)
    train[0], held[0]  # the items still load

    # the same names give the same split in a new dataset object; adding files moves none of the old ones
    assert _listing(data.make_dataset(root, fmt)) == _listing(train)
    _train_only(root, fmt, [f"g{i:03d}" for i in range(10)])
    held_again = _listing(data.make_dataset(root, fmt, holdout=rule.held_out()))
    for domain, evaluated in _listing(held).items():
        assert [s for s in held_again[domain] if s.startswith("f")] == evaluated


def test_a_train_split_too_small_to_hold_out_from_is_named(tmp_path: Path, caplog) -> None:
    root = _train_only(tmp_path / "one", "aligned", ["only"])
    data = DataConfig(load_size=8, crop_size=8)
    with caplog.at_level(logging.WARNING, logger="transfigure.data.datasets"):
        assert len(data.make_dataset(root, "aligned")) == 1  # trains on it, and says evaluation will fail
    assert "too few pairs (1) to hold any out" in caplog.text
    with pytest.raises(ValueError, match=r"no test/ or val/ split.*too few pairs \(1\)"):
        data.make_dataset(root, "aligned", holdout=data.holdout(root, "aligned").held_out())
