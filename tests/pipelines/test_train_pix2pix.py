"""train_pix2pix end to end: Kedro runner on the real catalog, real MLflow (sqlite), tiny aligned data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from kedro.config import OmegaConfigLoader
from kedro.runner import SequentialRunner
from mlflow import MlflowClient
from PIL import Image

import transfigure
from _support import project_catalog
from transfigure.pipelines.training import training_pipeline
from transfigure.pipelines.training.nodes import build_dataset, model_config
from transfigure.training import TrainingConfig
from transfigure.validation import DataValidationError

PROJECT = Path(__file__).resolve().parents[2]


def _photo(rng: np.random.Generator, size: int) -> np.ndarray:
    y, x = np.mgrid[0:size, 0:size] / size
    base = rng.uniform(0.2, 0.9, 3)
    img = np.stack([base[c] * (0.6 + 0.4 * np.sin(3 * x + 2 * y + c + rng.uniform(0, 6))) for c in range(3)], -1)
    x0, y0 = rng.integers(0, size // 2, 2)
    img[y0 : y0 + size // 3, x0 : x0 + size // 4] = rng.uniform(0, 1, 3)
    return (img * 255).clip(0, 255).astype(np.uint8)


def make_aligned(root: Path, size: int = 32, n_train: int = 4, n_test: int = 2, seed: int = 0) -> Path:
    """pix2pix layout: {train,test}/NNN.png, each A|B side by side (B = A's colour negative)."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("test", n_test)):
        (root / split).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            a = _photo(rng, size)
            Image.fromarray(np.concatenate([a, 255 - a], axis=1)).save(root / split / f"{i:03d}.png")
    return root


@pytest.fixture
def tiny_aligned(tmp_path) -> Path:
    return make_aligned(tmp_path / "tiny_aligned")


def base_params() -> dict:
    return yaml.safe_load((PROJECT / "conf/base/parameters_train_pix2pix.yml").read_text())["pix2pix"]


def tiny_params(data_path: Path, output_dir: Path, **training) -> dict:
    p = base_params()
    p["output_dir"] = str(output_dir)
    p["data"].update(path=str(data_path), load_size=36, crop_size=32)
    p["model"].update(num_downs=5, ngf=4, ndf=4)
    p["training"].update({"progress": False, "max_steps": 4, "log_every": 1, "sample_every": 2, "checkpoint_every": 2,
                          **training})
    return p


def run_pipeline(params: dict) -> dict:
    catalog = project_catalog()
    for key, value in params.items():
        catalog[f"params:pix2pix.{key}"] = value
    SequentialRunner().run(training_pipeline("pix2pix"), catalog)
    names = ("validation_report", "training_summary", "registered_model")
    return {n: catalog[f"pix2pix.{n}"].load() for n in names}


def test_base_parameters_are_valid_and_tiny():
    p = base_params()
    assert p["data"]["default_subset"] == "edges2photo" and p["data"]["path"] is None
    assert p["data"]["format"] == "aligned"  # never auto: trainA/ + trainB/ would be taken as unpaired
    assert p["data"]["crop_size"] % 2 ** p["model"]["num_downs"] == 0  # the U-Net needs multiples of 2**num_downs
    config = model_config("pix2pix", p["data"], p["model"])
    assert config.generator_config()["num_downs"] == 6 and TrainingConfig(**p["training"]).total_epochs == 20


def test_paper_environment_merges_into_the_paper_setup():
    loader = OmegaConfigLoader(conf_source=str(PROJECT / "conf"), base_env="base", default_run_env="paper",
                               merge_strategy={"parameters": "soft"})  # as settings.py configures Kedro
    paper = loader["parameters"]["pix2pix"]
    config = model_config("pix2pix", paper["data"], paper["model"])
    assert config.generator_config() == {"type": "unet", "num_downs": 8, "input_nc": 3, "output_nc": 3, "ngf": 64,
                                         "norm": "batch", "use_dropout": True}
    assert (config.ndf, config.netD, config.gan_mode, config.lambda_L1) == (64, "basic", "vanilla", 100.0)
    assert (paper["data"]["load_size"], paper["data"]["crop_size"]) == (286, 256)
    training = TrainingConfig(**paper["training"])
    assert (training.batch_size, training.n_epochs, training.n_epochs_decay, training.lr_policy) == (1, 100, 100, "linear")


def test_pipeline_trains_logs_registers_and_reloads(tmp_path, mlflow_uri, tiny_aligned):
    out = run_pipeline(tiny_params(tiny_aligned, tmp_path / "models"))
    registered = out["registered_model"]
    assert registered["registered"] and registered["name"] == "pix2pix" and registered["version"] == "1"
    report = out["validation_report"]
    assert report["success"] is True and report["dataset"]["format"] == "aligned"
    summary = out["training_summary"]
    assert summary["variant"] == "pix2pix" and summary["step"] == 4
    assert set(summary["losses"]) == {"G_GAN", "G_L1", "G", "D_real", "D_fake", "D"}

    client = MlflowClient(mlflow_uri)
    run = client.get_run(registered["run_id"])
    assert run.data.params["model.netG"] == "unet" and run.data.params["model.num_downs"] == "5"
    assert run.data.params["model.lambda_L1"] == "100.0" and run.data.params["model.gan_mode"] == "vanilla"
    assert run.data.params["data.direction"] == "AtoB" and run.data.params["data.crop_size"] == "32"
    history = client.get_metric_history(run.info.run_id, "loss_G_L1")
    assert [m.step for m in history] == [1, 2, 3, 4] and all(np.isfinite(m.value) and m.value > 0 for m in history)
    assert client.get_metric_history(run.info.run_id, "lr_D")[0].value == pytest.approx(2e-4)
    assert run.data.tags["variant"] == "pix2pix"
    samples = {a.path for a in client.list_artifacts(run.info.run_id, "samples")}
    assert {"samples/step_00000002.png", "samples/step_00000004.png", "samples/final.png"} <= samples
    # real_A | fake_B | real_B: one row of three 32x32 tiles with 2 px gutters
    grid = Image.open(client.download_artifacts(run.info.run_id, "samples/final.png", str(tmp_path)))
    assert grid.size == (3 * 34 + 2, 34 + 2)

    translator = transfigure.load_translator("pix2pix", 1)
    assert translator.directions == ["AtoB"] and translator.variant == "pix2pix"
    assert translator.size_multiple == 32 and translator.metadata["step"] == 4
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (60, 100, 3), dtype=np.uint8))
    result = translator.translate(img)
    assert result.size == (100, 60) and result.mode == "RGB"
    with pytest.raises(ValueError, match="unknown direction .BtoA.*AtoB"):  # one mapping only (the dataset did the swap)
        translator.translate(img, "BtoA")


def test_direction_btoa_swaps_input_and_target(tiny_aligned):
    data = {**base_params()["data"], "load_size": 32, "crop_size": 32, "flip": False, "preprocess": "none"}
    dataset = {"root": str(tiny_aligned), "format": "aligned"}
    a2b = build_dataset(dataset, {**data, "direction": "AtoB"})[0]
    b2a = build_dataset(dataset, {**data, "direction": "BtoA"})[0]
    assert a2b["A"].shape == (3, 32, 32)
    assert np.allclose(b2a["A"], a2b["B"]) and np.allclose(b2a["B"], a2b["A"])
    assert np.allclose(a2b["B"], -a2b["A"], atol=1e-2)  # the right half is the left's negative


def test_odd_width_aligned_file_stops_before_training_and_names_it(tmp_path, mlflow_uri, tiny_aligned):
    bad = tiny_aligned / "train" / "001.png"
    Image.open(bad).crop((0, 0, 63, 32)).save(bad)  # 63 px: no equal A|B halves
    with pytest.raises(DataValidationError, match=r"(?s)train/001\.png.*odd width 63"):
        run_pipeline(tiny_params(tiny_aligned, tmp_path / "models"))
    assert not (tmp_path / "models").exists()  # nothing was trained
    assert MlflowClient(mlflow_uri).search_experiments(filter_string="name = 'transfigure-pix2pix'") == []


def test_paired_folders_with_a_missing_partner_fail_validation(tmp_path, mlflow_uri):
    rng = np.random.default_rng(1)
    for split in ("train", "test"):
        for dom in "AB":
            (tmp_path / "paired" / f"{split}{dom}").mkdir(parents=True)
        for i in range(3):
            a = _photo(rng, 32)
            Image.fromarray(a).save(tmp_path / "paired" / f"{split}A" / f"{i}.png")
            if not (split == "train" and i == 2):
                Image.fromarray(255 - a).save(tmp_path / "paired" / f"{split}B" / f"{i}.png")
    params = tiny_params(tmp_path / "paired", tmp_path / "models")
    params["data"]["format"] = "paired"  # trainA/ + trainB/ matched by name (auto would read them as unaligned)
    with pytest.raises(DataValidationError, match=r"(?s)trainA/2\.png.*no B file"):
        run_pipeline(params)
    assert not (tmp_path / "models").exists()


def test_paired_images_of_different_sizes_fail_clearly_without_resizing(tmp_path):
    root = tmp_path / "paired"
    (root / "trainA").mkdir(parents=True)
    (root / "trainB").mkdir(parents=True)
    Image.new("RGB", (32, 32)).save(root / "trainA" / "x.png")
    Image.new("RGB", (40, 32)).save(root / "trainB" / "x.png")
    data = {**base_params()["data"], "preprocess": "crop", "crop_size": 32}
    dataset = build_dataset({"root": str(root), "format": "paired"}, data)
    with pytest.raises(ValueError, match=r"paired images differ in size: '.*trainA/x\.png' is 32x32, '.*trainB/x\.png' is 40x32"):
        dataset[0]
