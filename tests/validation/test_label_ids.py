"""Label ids outside label_nc are refused in three places: the dataset, data validation, inference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from transfigure.data.datasets import LabelIdError, make_dataset
from transfigure.data.transforms import TransformConfig
from transfigure.inference import Translator
from transfigure.models import SPADE
from transfigure.models.io import save_generators
from transfigure.validation import ValidationConfig, build_image_metadata, run_validation


def write_labelmap(root: Path, labels: dict[str, np.ndarray], split: str = "train", instances: bool = False) -> Path:
    """One photo per label map (random pixels), label maps saved as mode L PNGs."""
    rng = np.random.default_rng(len(labels))
    for sub in ("label", "img") + (("inst",) if instances else ()):
        (root / f"{split}_{sub}").mkdir(parents=True, exist_ok=True)
    for name, ids in labels.items():
        Image.fromarray(ids.astype(np.uint8), mode="L").save(root / f"{split}_label" / f"{name}.png")
        photo = rng.integers(0, 256, (*ids.shape, 3), dtype=np.uint8)
        Image.fromarray(photo).save(root / f"{split}_img" / f"{name}.png")
        if instances:
            Image.fromarray((ids > 0).astype(np.uint8), mode="L").save(root / f"{split}_inst" / f"{name}.png")
    return root


def ids(*values: int, size: int = 32) -> np.ndarray:
    out = np.zeros((size, size), np.uint8)
    for i, v in enumerate(values):
        out[i] = v
    return out


# -- (2) the metadata table and the Great Expectations suite ---------------------------------
def test_metadata_records_the_ids_of_every_label_map(tmp_path):
    root = write_labelmap(tmp_path / "d", {"a": ids(0, 3, 1), "b": ids(2)}, instances=True)
    write_labelmap(root, {"c": ids(5)}, split="val")  # COCO-Stuff-style held-out split: scanned too
    table = build_image_metadata(root, "labelmap")
    labels = table[table["domain"] == "label"].set_index("path")
    assert labels.loc["train_label/a.png", "label_ids"] == "0 1 3" and labels.loc["train_label/a.png", "label_max"] == 3
    assert labels.loc["train_label/b.png", "label_ids"] == "0 2"
    assert labels.loc["val_label/c.png", "label_max"] == 5 and set(table["split"]) == {"train", "val"}
    others = table[table["domain"] != "label"]
    assert (others["label_max"] == -1).all() and (others["label_ids"] == "").all()
    # other formats carry the columns, empty
    assert "label_ids" in build_image_metadata(tmp_path / "d", "aligned").columns


@pytest.mark.slow
def test_suite_fails_naming_files_and_ids(tmp_path):
    root = write_labelmap(tmp_path / "d", {"good": ids(0, 1, 2, 3), "bad": ids(0, 4, 9), "dc": ids(1, 255)})
    table = build_image_metadata(root, "labelmap")
    report = run_validation(table, "labelmap", ValidationConfig(label_nc=4))
    assert not report.success
    failure = next(f for f in report.failures if f.check == "label_ids")
    assert failure.files == ["train_label/bad.png", "train_label/dc.png"]
    assert failure.details["train_label/bad.png"] == "class ids [4, 9] outside 0..3 (label_nc=4)"
    assert "class ids [255]" in failure.details["train_label/dc.png"]
    text = report.format()
    assert "label maps hold only class ids 0..3 (label_nc=4)" in text
    assert "train_label/bad.png: class ids [4, 9]" in text
    assert report.summary["bad_label_files"] == 2 and report.summary["label_max"] == 255
    # 255 is fine once it means "don't care"; 4 and 9 still are not
    report = run_validation(table, "labelmap", ValidationConfig(label_nc=4, contain_dontcare_label=True))
    assert next(f for f in report.failures if f.check == "label_ids").files == ["train_label/bad.png"]
    # a large enough label_nc passes; no label_nc, no check
    assert run_validation(table, "labelmap", ValidationConfig(label_nc=256)).success
    unchecked = run_validation(table, "labelmap", ValidationConfig())
    assert unchecked.success and "label_ids" not in {f.check for f in unchecked.failures}


def test_ids_survive_a_csv_round_trip(tmp_path):
    """The pipeline stores the table as CSV: a lone id ("4") or an empty cell must still parse."""
    one_id = np.ones((32, 32), np.uint8)
    root = write_labelmap(tmp_path / "d", {"a": one_id * 4, "b": one_id})
    table = build_image_metadata(root, "labelmap")
    csv = tmp_path / "meta.csv"
    table.to_csv(csv, index=False)
    loaded = pd.read_csv(csv)
    assert loaded["label_ids"].dtype == float  # "4", "1" and empty cells come back as 4.0, 1.0, NaN
    report = run_validation(loaded, "labelmap", ValidationConfig(label_nc=4))
    failure = next(f for f in report.failures if f.check == "label_ids")
    assert failure.files == ["train_label/a.png"] and "class ids [4]" in failure.details["train_label/a.png"]
    # a table written before the label columns existed still validates
    old = loaded.drop(columns=["label_max", "label_ids"])
    assert run_validation(old, "labelmap", ValidationConfig(label_nc=4)).success


def test_validation_config_label_keys():
    cfg = ValidationConfig.from_dict({"label_nc": 12, "contain_dontcare_label": True})
    assert cfg.label_nc == 12 and cfg.to_dict()["contain_dontcare_label"] is True
    with pytest.raises(ValueError, match="label_nc must be a positive integer"):
        ValidationConfig(label_nc=0)
    with pytest.raises(ValueError, match="contain_dontcare_label must be true or false"):
        ValidationConfig(label_nc=3, contain_dontcare_label="yes")


# -- (1) the dataset ---------------------------------------------------------------------------
def test_dataset_refuses_ids_outside_label_nc(tmp_path):
    root = write_labelmap(tmp_path / "d", {"a": ids(0, 1), "b": ids(0, 6)})
    transform = TransformConfig(preprocess="none", flip=False)
    ds = make_dataset("labelmap", root, "train", transform=transform, label_nc=4)
    assert ds[0]["label"].max() == 1
    with pytest.raises(LabelIdError, match=r"train_label/b\.png' holds class ids \[6\].*label_nc=4") as err:
        ds[1]
    assert err.value.ids == [6]
    dc = write_labelmap(tmp_path / "e", {"a": ids(0, 255)})
    item = make_dataset("labelmap", dc, "train", transform=transform, label_nc=4, contain_dontcare_label=True)[0]
    assert set(item["label"].unique().tolist()) == {0, 4}  # 255 -> label_nc, as in SPADE


# -- (3) inference ------------------------------------------------------------------------------
@pytest.fixture
def translator(tmp_path) -> Translator:
    torch.manual_seed(0)
    model = SPADE(
        label_nc=4,
        contain_dontcare_label=True,
        use_instance=True,
        ngf=4,
        ndf=4,
        spade_hidden=8,
        crop_size=32,
        norm_G="spectralspadeinstance3x3",
    )
    folder = save_generators(tmp_path / "generator", model.generators(), variant="spade")
    return Translator.from_folder(folder, device="cpu")


def test_translator_refuses_bad_ids_and_colour_maps(translator):
    label = ids(0, 1, 2, 3, 255, size=40)  # 255 = don't care: accepted
    out = translator.translate(Image.fromarray(label, mode="L"))
    assert out.size == (40, 40) and out.mode == "RGB"
    assert translator.translate(Image.fromarray(label, mode="L").convert("P")).size == (40, 40)  # palette indices
    assert translator.translate(Image.fromarray(label.astype(np.int32), mode="I")).size == (40, 40)
    with pytest.raises(LabelIdError, match=r"\[5, 17\].*label_nc=4") as err:
        translator.translate(Image.fromarray(ids(0, 5, 17, size=40), mode="L"))
    assert err.value.ids == [5, 17]
    with pytest.raises(ValueError, match="mode 'RGB'.*class id per pixel"):
        translator.translate(Image.fromarray(label, mode="L").convert("RGB"))
    with pytest.raises(ValueError, match="same size"):
        translator.translate(Image.fromarray(label, mode="L"), instance=Image.new("L", (20, 20)))
    with pytest.raises(ValueError, match="style encoder"):
        translator.translate(Image.fromarray(label, mode="L"), style=Image.new("RGB", (20, 20)))
