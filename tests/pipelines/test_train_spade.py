"""train_spade end to end: Kedro runner, the real catalog, real MLflow (sqlite), tiny label-map data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from kedro.runner import SequentialRunner
from mlflow import MlflowClient
from omegaconf import OmegaConf
from PIL import Image

import transfigure
from _support import project_catalog
from transfigure.data.datasets import LabelIdError
from transfigure.pipelines.training import training_pipeline
from transfigure.validation import DataValidationError

PROJECT = Path(__file__).resolve().parents[2]
#: the embedded-data-free tiny setup: 4 classes, instance maps, 32 px
LABEL_NC = 4
COLOURS = np.array([[200, 220, 255], [60, 160, 60], [120, 120, 120], [180, 80, 40]], dtype=np.uint8)


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: on a busy 2-core machine OpenMP's spin-waiting makes 2 threads ~10x slower."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def make_labelmap(root: Path, size: int = 32, n_train: int = 4, n_test: int = 2, seed: int = 0) -> Path:
    """{split}_label (ids 0..3, mode L), {split}_inst (mode L), {split}_img (photo coloured by class)."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("test", n_test)):
        for sub in ("label", "inst", "img"):
            (root / f"{split}_{sub}").mkdir(parents=True, exist_ok=True)
        for i in range(n):
            label = np.zeros((size, size), np.uint8)
            inst = np.zeros((size, size), np.uint8)
            label[size // 2 :] = 1
            for k in range(1, 4):  # a few objects of classes 2 and 3
                x0, y0 = rng.integers(0, size - 8, 2)
                label[y0 : y0 + 8, x0 : x0 + 6] = 2 + k % 2
                inst[y0 : y0 + 8, x0 : x0 + 6] = k
            photo = COLOURS[label].astype(np.int16) + rng.integers(-20, 20, (size, size, 3))
            name = f"{split}_{i:03d}.png"
            Image.fromarray(label, mode="L").save(root / f"{split}_label" / name)
            Image.fromarray(inst, mode="L").save(root / f"{split}_inst" / name)
            Image.fromarray(photo.clip(0, 255).astype(np.uint8)).save(root / f"{split}_img" / name)
    return root


def base_params() -> dict:
    """conf/base parameters with ${...} interpolations resolved, as Kedro's OmegaConfigLoader does."""
    raw = yaml.safe_load((PROJECT / "conf/base/parameters_train_spade.yml").read_text())
    return OmegaConf.to_container(OmegaConf.create(raw), resolve=True)["spade"]


def tiny_params(data_path: Path, output_dir: Path, **training) -> dict:
    p = base_params()
    p["output_dir"] = str(output_dir)
    p["data"].update(path=str(data_path), label_nc=LABEL_NC, load_size=36, crop_size=32)
    p["validation"].update(label_nc=LABEL_NC)
    p["model"].update(ngf=4, ndf=4, spade_hidden=8, crop_size=32)
    # batch 2: batch norm at the 1x1 latent grid of a 32 px crop needs more than one value per channel
    p["training"].update({"progress": False, "max_steps": 3, "log_every": 1, "sample_every": 3, "checkpoint_every": 3,
                          "batch_size": 2, **training})
    return p


def run_pipeline(params: dict) -> dict:
    catalog = project_catalog()
    for key, value in params.items():
        catalog[f"params:spade.{key}"] = value
    SequentialRunner().run(training_pipeline("spade"), catalog)
    names = ("validation_report", "training_summary", "registered_model")
    return {n: catalog[f"spade.{n}"].load() for n in names}


def test_base_parameters_follow_the_data_section():
    p = base_params()
    assert p["validation"]["label_nc"] == p["data"]["label_nc"] == 8
    assert p["model"]["use_instance"] is p["data"]["use_instance"] is True
    assert p["model"]["crop_size"] == p["data"]["crop_size"] == 64
    assert p["model"]["use_vgg_loss"] is False


def test_pipeline_trains_registers_and_translates_label_maps(tmp_path, mlflow_uri):
    data = make_labelmap(tmp_path / "tiny_labelmap")
    out = run_pipeline(tiny_params(data, tmp_path / "models"))
    registered = out["registered_model"]
    assert registered["registered"] and registered["name"] == "spade" and registered["version"] == "1"
    report = out["validation_report"]
    assert report["success"] is True and report["summary"]["label_max"] == 3
    assert "label_ids" in {r["expectation_config"]["meta"]["check"] for r in report["gx_result"]["results"]}

    client = MlflowClient(mlflow_uri)
    run = client.get_run(registered["run_id"])
    assert run.data.params["model.label_nc"] == "4" and run.data.params["model.gan_mode"] == "hinge"
    assert run.data.params["model.use_instance"] == "True"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "loss_GAN_Feat")] == [1, 2, 3]
    assert client.get_metric_history(run.info.run_id, "lr_G")[0].value == pytest.approx(1e-4)  # TTUR: lr / 2
    assert client.get_metric_history(run.info.run_id, "lr_D")[0].value == pytest.approx(4e-4)  # lr * 2
    assert "samples/final.png" in {a.path for a in client.list_artifacts(run.info.run_id, "samples")}

    translator = transfigure.load_translator("spade", 1)
    assert translator.takes_label_maps("AtoB") and translator.size_multiple == 32
    assert translator.metadata["step"] == 3
    ids = np.zeros((60, 100), np.uint8)
    ids[30:] = 1
    ids[10:25, 20:40] = 3
    label = Image.fromarray(ids, mode="L")
    result = translator.translate(label)
    assert result.size == (100, 60) and result.mode == "RGB"
    inst = Image.fromarray((ids == 3).astype(np.uint8), mode="L")
    assert translator.translate(label, instance=inst).size == (100, 60)
    # ids the model cannot represent, at inference: a clear error naming them
    bad = ids.copy()
    bad[0, :3] = [9, 4, 200]
    with pytest.raises(LabelIdError, match=r"\[4, 9, 200\].*label_nc=4"):
        translator.translate(Image.fromarray(bad, mode="L"))
    with pytest.raises(ValueError, match="mode 'RGB'"):
        translator.translate(label.convert("RGB"))


def test_bad_label_ids_stop_before_training_naming_files_and_ids(tmp_path, mlflow_uri):
    data = make_labelmap(tmp_path / "tiny_labelmap")
    path = data / "train_label" / "train_001.png"
    ids = np.asarray(Image.open(path)).copy()
    ids[0, 0], ids[0, 1] = 7, 12
    Image.fromarray(ids, mode="L").save(path)
    with pytest.raises(DataValidationError, match=r"(?s)train_label/train_001\.png: class ids \[7, 12\]"):
        run_pipeline(tiny_params(data, tmp_path / "models"))
    assert not (tmp_path / "models").exists()  # no training happened
    assert MlflowClient(mlflow_uri).search_runs(experiment_ids=["0"]) == []
