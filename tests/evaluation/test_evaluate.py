"""evaluate_translator on the embedded default data with tiny exported generators of all four variants."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from omegaconf import OmegaConf
from PIL import Image

from _support import make_aligned, make_unaligned
from transfigure.evaluation import PSNR_CAP, EvaluationResult, evaluate_translator
from transfigure.evaluation.data import load_held_out
from transfigure.inference import Translator
from transfigure.models import VARIANTS
from transfigure.models.io import save_generators
from transfigure.pipelines.training.nodes import build_dataset, model_config

PROJECT = Path(__file__).resolve().parents[2]
#: variant -> (default subset, dataset format, tiny model overrides)
TINY = {
    "cyclegan": ("day2night", "unaligned", {"ngf": 4, "ndf": 4}),
    "unit": ("day2night", "unaligned", {"dim": 4, "dis_dim": 4}),
    "pix2pix": ("edges2photo", "aligned", {"ngf": 4, "ndf": 4, "num_downs": 5}),
    "spade": ("labels2photo", "labelmap", {"ngf": 4, "ndf": 4, "spade_hidden": 8}),
}
UNPAIRED_KEYS = {"fid_AtoB", "fid_BtoA", "kid_AtoB", "kid_BtoA", "cycle_l1_A", "cycle_l1_B", "fid", "kid"}
PAIRED_KEYS = {"fid", "kid", "l1", "psnr", "ssim"}
EVALUATION = {"max_images": 4, "kid_subset_size": 4, "kid_subsets": 10, "report_rows": 2}


def params(variant: str) -> dict:
    """conf/base parameters of ``variant`` (interpolations resolved), 32 px."""
    raw = yaml.safe_load((PROJECT / f"conf/base/parameters_train_{variant}.yml").read_text())
    p = OmegaConf.to_container(OmegaConf.create(raw), resolve=True)[variant]
    p["data"].update(load_size=36, crop_size=32)
    p["model"].update(TINY[variant][2])
    if variant == "spade":
        p["model"]["crop_size"] = 32
    return p


def export_tiny(variant: str, folder: Path, seed: int = 0) -> Path:
    """An untrained tiny generator of ``variant`` exported as training exports it (safetensors + JSON)."""
    p = params(variant)
    p["model"]["seed"] = seed  # the variants initialise their weights from the config's seed
    model = VARIANTS[variant](model_config(variant, p["data"], p["model"]))
    return save_generators(
        folder,
        model.generators(),
        variant=variant,
        model_config=model.config.model_dump(),
        metadata={"mlflow_run_id": "run-x", "step": 7},
    )


def dataset(default_root: Path, variant: str) -> dict:
    subset, fmt, _ = TINY[variant]
    return {"root": str(default_root / subset), "format": fmt}


class Identity(torch.nn.Module):
    """A 'generator' that returns its input: the metrics of a perfect translator are known."""

    config = {"type": "identity", "input_nc": 3, "output_nc": 3}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def identity_translator(directions: tuple[str, ...] = ("AtoB", "BtoA")) -> Translator:
    gens = {d: Identity() for d in directions}
    return Translator(
        gens, {"variant": "identity", "generators": {d: Identity.config for d in directions}}, torch.device("cpu")
    )


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["cyclegan", "unit"])
def test_two_way_models_on_unpaired_data(tmp_path, default_root, variant):
    translator = Translator.from_folder(export_tiny(variant, tmp_path / "generator"))
    result = evaluate_translator(translator, dataset(default_root, variant), params(variant)["data"], EVALUATION)
    m = result.metrics
    assert set(m) == UNPAIRED_KEYS
    assert m["fid"] == pytest.approx((m["fid_AtoB"] + m["fid_BtoA"]) / 2)
    assert m["kid"] == pytest.approx((m["kid_AtoB"] + m["kid_BtoA"]) / 2)
    assert m["fid_AtoB"] > 10 and 0 < m["cycle_l1_A"] < 1  # an untrained generator is far from the target domain
    split = result.split
    assert split["split"] == "test" and split["n"] == 8 and split["size"] == 32 and split["kind"] == "unpaired"
    assert split["files"] == [f"testA/{i:04d}.png" for i in range(4)] + [f"testB/{i:04d}.png" for i in range(4)]
    assert len(split["fingerprint"]) == 64
    assert result.model == {"name": variant, "version": None, "run_id": "run-x", "source": None, "step": 7}
    report = Image.open(io.BytesIO(result.report_png))
    # 2 rows per direction (input | translated | reconstructed), 32 px tiles enlarged 4x, a header band
    assert report.size == (3 * (128 + 2) + 2, 4 * (128 + 2) + 2 + 14)


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["pix2pix", "spade"])
def test_one_way_models_on_paired_data(tmp_path, default_root, variant):
    translator = Translator.from_folder(export_tiny(variant, tmp_path / "generator"))
    result = evaluate_translator(translator, dataset(default_root, variant), params(variant)["data"], EVALUATION)
    m = result.metrics
    assert set(m) == PAIRED_KEYS
    assert m["fid"] > 10 and 0 < m["l1"] < 1 and 0 < m["psnr"] < 40 and -1 <= m["ssim"] < 0.9
    files = result.split["files"]
    if variant == "pix2pix":  # one A|B file per pair
        assert result.split["n"] == 4 and [f.split("/")[0] for f in files] == ["test"] * 4
    else:  # label map, photo, instance map per item
        assert result.split["n"] == 4 and [f.split("/")[0] for f in files[:3]] == [
            "test_label",
            "test_img",
            "test_inst",
        ]
        assert len(files) == 12
    report = Image.open(io.BytesIO(result.report_png))
    assert report.size == (3 * 130 + 2, 2 * 130 + 2 + 14)  # input | output | target, 2 rows


@pytest.mark.slow
def test_a_perfect_translator_scores_perfectly(tmp_path):
    """Identity on test pairs whose A equals B: L1 0, PSNR at its cap, SSIM 1, FID 0, cycle L1 0."""
    rng = np.random.default_rng(0)
    (tmp_path / "test").mkdir()
    for i in range(4):
        a = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        Image.fromarray(np.concatenate([a, a], axis=1)).save(tmp_path / "test" / f"{i}.png")
    result = evaluate_translator(
        identity_translator(), {"root": str(tmp_path), "format": "aligned"}, {"crop_size": 32}, {"kid_subset_size": 4}
    )
    m = result.metrics
    assert m["l1"] == 0.0 and m["psnr"] == PSNR_CAP and m["ssim"] == pytest.approx(1.0)
    assert m["fid"] == pytest.approx(0.0, abs=1e-6) and m["cycle_l1_A"] == 0.0 and m["cycle_l1_B"] == 0.0
    assert set(m) == UNPAIRED_KEYS | PAIRED_KEYS  # a two-way model on a paired test set gets both families


@pytest.mark.slow
def test_same_checkpoint_and_data_give_the_same_numbers(tmp_path, default_root):
    folder = export_tiny("cyclegan", tmp_path / "generator")
    data = params("cyclegan")["data"]
    first = evaluate_translator(Translator.from_folder(folder), dataset(default_root, "cyclegan"), data, EVALUATION)
    torch.manual_seed(123)  # global RNG state must not matter
    second = evaluate_translator(Translator.from_folder(folder), dataset(default_root, "cyclegan"), data, EVALUATION)
    assert first.metrics == second.metrics
    assert first.split == second.split and first.report_png == second.report_png
    # another checkpoint gives other numbers
    other = evaluate_translator(
        Translator.from_folder(export_tiny("cyclegan", tmp_path / "g2", seed=1)),
        dataset(default_root, "cyclegan"),
        data,
        EVALUATION,
    )
    assert other.metrics["fid"] != first.metrics["fid"]


def test_split_fingerprint_follows_the_content_of_the_files_used(tmp_path, default_root):
    root = tmp_path / "day2night"
    shutil.copytree(default_root / "day2night", root)
    ds, data = {"root": str(root), "format": "unaligned"}, {"crop_size": 32}
    before = load_held_out(ds, data, max_images=4).describe()
    unused = sorted((root / "testA").iterdir())[-1]  # beyond max_images
    unused.write_bytes(unused.read_bytes() + b"\0")
    assert load_held_out(ds, data, max_images=4).describe()["fingerprint"] == before["fingerprint"]
    used = root / before["files"][0]
    Image.open(used).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(used)
    after = load_held_out(ds, data, max_images=4).describe()
    assert after["files"] == before["files"] and after["fingerprint"] != before["fingerprint"]
    assert load_held_out(ds, data, max_images=5).describe()["fingerprint"] != after["fingerprint"]


def test_preprocessing_is_a_plain_resize(default_root):
    held = load_held_out(
        {"root": str(default_root / "day2night"), "format": "unaligned"}, {"crop_size": 64}, size=48, max_images=2
    )
    expected = (
        Image.open(default_root / "day2night" / held.files[0]).convert("RGB").resize((48, 48), Image.Resampling.BICUBIC)
    )
    assert held.a[0].size == (48, 48)
    assert np.array_equal(np.asarray(held.a[0]), np.asarray(expected))  # no crop, no flip


def test_direction_btoa_swaps_the_domains(default_root):
    ds = {"root": str(default_root / "day2night"), "format": "unaligned"}
    held = load_held_out(ds, {"crop_size": 32, "direction": "BtoA"}, max_images=2)
    assert [f.split("/")[0] for f in held.files] == ["testB", "testB", "testA", "testA"]


def test_missing_or_wrong_held_out_splits_are_named(tmp_path, default_root):
    root = tmp_path / "only_train"
    (root / "trainA").mkdir(parents=True)
    (root / "trainB").mkdir()
    # without holding out part of train (data.holdout_fraction: null) there is nothing to evaluate on
    with pytest.raises(FileNotFoundError, match=r"no held-out split.*'testA/' or 'valA/'.*trainA.*holdout_fraction"):
        load_held_out({"root": str(root), "format": "unaligned"}, {"crop_size": 32, "holdout_fraction": None})
    ds = dataset(default_root, "cyclegan")
    with pytest.raises(ValueError, match="'train' is the training split"):
        load_held_out(ds, {"crop_size": 32}, split="train")
    with pytest.raises(FileNotFoundError, match="'holdoutA/'"):
        load_held_out(ds, {"crop_size": 32}, split="holdout")


@pytest.mark.parametrize(("maker", "fmt"), [(make_unaligned, "unaligned"), (make_aligned, "aligned")])
def test_without_test_or_val_the_part_of_train_training_left_out_is_evaluated(tmp_path, maker, fmt):
    root = maker(tmp_path / "only_train", n_train=12, n_test=0)
    for test_dir in root.glob("test*"):
        test_dir.rmdir()
    data, dataset = {"crop_size": 32, "load_size": 32}, {"root": str(root), "format": fmt}

    held = load_held_out(dataset, data)
    trained = build_dataset(dataset, data)

    assert held.split == "train-holdout" and held.describe()["holdout"]["fraction"] == 0.1
    assert all(f.startswith("train") for f in held.files)
    train_files = {
        Path(p).relative_to(root).as_posix()
        for p in ([*trained.A_paths, *trained.B_paths] if fmt == "unaligned" else trained.paths)
    }
    assert not train_files & set(held.files)
    # 12 files: the minimum of 8 is capped at half of them (per domain for unpaired data)
    assert len(held.files) == (12 if fmt == "unaligned" else 6) and held.n == (12 if fmt == "unaligned" else 6)
    assert load_held_out(dataset, data).describe() == held.describe()  # the same files in a second load


def test_val_split_is_used_when_there_is_no_test_split(tmp_path, default_root):
    root = tmp_path / "labels"
    shutil.copytree(default_root / "labels2photo", root)
    for sub in ("label", "img", "inst"):
        (root / f"test_{sub}").rename(root / f"val_{sub}")
    held = load_held_out(
        {"root": str(root), "format": "labelmap"}, {"crop_size": 32, "label_nc": 8, "use_instance": True}, max_images=2
    )
    assert held.split == "val" and held.files[0].startswith("val_label/")
    assert held.a[0].mode == "I" and held.instances[0] is not None


def test_a_model_and_data_of_different_kinds_are_refused(tmp_path, default_root):
    spade = Translator.from_folder(export_tiny("spade", tmp_path / "spade"))
    with pytest.raises(ValueError, match=r"translates label maps.*'unaligned'"):
        evaluate_translator(spade, dataset(default_root, "cyclegan"), {"crop_size": 32}, EVALUATION)
    with pytest.raises(ValueError, match=r"translates images.*'labelmap'"):
        evaluate_translator(
            identity_translator(),
            dataset(default_root, "spade"),
            {"crop_size": 32, "label_nc": 8, "use_instance": True},
            EVALUATION,
        )


def test_bad_evaluation_parameters_are_named(default_root):
    with pytest.raises(ValueError, match=r"evaluation\.max_image: Extra inputs"):
        evaluate_translator(
            identity_translator(), dataset(default_root, "cyclegan"), {"crop_size": 32}, {"max_image": 4}
        )
    with pytest.raises(ValueError, match=r"evaluation\.max_images: Input should be greater than or equal to 2"):
        evaluate_translator(
            identity_translator(), dataset(default_root, "cyclegan"), {"crop_size": 32}, {"max_images": 1}
        )


def test_metrics_json_is_flat():
    result = EvaluationResult(
        metrics={"fid": 12.5, "kid": 0.01},
        model={"name": "pix2pix", "version": "3", "run_id": "r"},
        split={"split": "test", "fingerprint": "ab" * 32, "n": 6, "size": 64, "files": ["x"]},
    )
    assert result.to_metrics_json() == {
        "fid": 12.5,
        "kid": 0.01,
        "n_images": 6,
        "image_size": 64,
        "split": "test",
        "split_fingerprint": "ab" * 32,
        "model_name": "pix2pix",
        "model_version": 3,
        "run_id": "r",
        "split_files": ["x"],
    }
