"""train_unit end to end: Kedro runner with the real catalog, real MLflow (sqlite), real files, tiny unpaired data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from kedro.runner import SequentialRunner
from mlflow import MlflowClient
from PIL import Image

import transfigure
from _support import project_catalog
from transfigure.pipelines.training import training_pipeline

PROJECT = Path(__file__).resolve().parents[2]


def base_params() -> dict:
    return yaml.safe_load((PROJECT / "conf/base/parameters_train_unit.yml").read_text())["unit"]


def tiny_params(data_path: Path, output_dir: Path, **training) -> dict:
    p = base_params()
    p["output_dir"] = str(output_dir)
    p["data"].update(path=str(data_path), load_size=36, crop_size=32)
    # 32 px images: 3 discriminator layers so that the third scale (8 px) still fits
    p["model"].update(dim=4, dis_dim=4, dis_n_layer=3)
    p["training"].update({"progress": False, "max_steps": 4, "log_every": 1, "sample_every": 2, "checkpoint_every": 2,
                          **training})
    return p


def run_pipeline(params: dict) -> dict:
    """Run with the project's real catalog.yml (relative paths: the test's working directory)."""
    catalog = project_catalog()
    for key, value in params.items():
        catalog[f"params:unit.{key}"] = value
    SequentialRunner().run(training_pipeline("unit"), catalog)
    names = ("validation_report", "training_summary", "registered_model")
    return {n: catalog[f"unit.{n}"].load() for n in names}


def test_unit_pipeline_trains_logs_registers_and_translates_both_ways(tmp_path, mlflow_uri, tiny_unaligned):
    out = run_pipeline(tiny_params(tiny_unaligned, tmp_path / "models"))
    registered = out["registered_model"]
    assert registered["registered"] and registered["name"] == "unit" and registered["version"] == "1"
    assert out["validation_report"]["success"] is True

    client = MlflowClient(mlflow_uri)
    run = client.get_run(registered["run_id"])
    assert run.data.tags["variant"] == "unit"
    # the model's parameters, flattened, with the reference's loss weights
    assert run.data.params["model.dim"] == "4" and run.data.params["model.n_shared"] == "1"
    assert run.data.params["model.recon_kl_w"] == "0.01" and run.data.params["model.weight_decay"] == "0.0001"
    assert run.data.params["training.lr_policy"] == "step"
    # per-step losses of every term, and both learning rates at the reference's 1e-4
    for metric in ("loss_G", "loss_D_A", "loss_D_B", "loss_recon_x_A", "loss_kl_B", "loss_cyc_x_A", "loss_adv_B"):
        history = client.get_metric_history(run.info.run_id, metric)
        assert [m.step for m in history] == [1, 2, 3, 4] and all(np.isfinite(m.value) for m in history), metric
    assert client.get_metric_history(run.info.run_id, "lr_G")[0].value == pytest.approx(1e-4)
    assert client.get_metric_history(run.info.run_id, "lr_D")[0].value == pytest.approx(1e-4)
    samples = {a.path for a in client.list_artifacts(run.info.run_id, "samples")}
    assert {"samples/step_00000002.png", "samples/step_00000004.png", "samples/final.png"} <= samples

    # the export: two directions, each rebuilt from JSON (type "unit"), deterministic, any size
    translator = transfigure.load_translator("unit", 1)
    assert translator.directions == ["AtoB", "BtoA"] and translator.size_multiple == 4
    assert translator.config["generators"]["AtoB"]["type"] == "unit"
    assert translator.metadata["step"] == 4 and translator.metadata["mlflow_run_id"] == run.info.run_id
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (60, 100, 3), dtype=np.uint8))
    outputs = {}
    for direction in ("AtoB", "BtoA"):
        result = translator.translate(img, direction=direction)
        assert result.size == (100, 60) and result.mode == "RGB"
        assert np.array_equal(np.asarray(result), np.asarray(translator.translate(img, direction=direction)))
        outputs[direction] = np.asarray(result)
    assert not np.array_equal(outputs["AtoB"], outputs["BtoA"])  # two different decoders


def test_unit_pipeline_resumes_the_same_run(tmp_path, mlflow_uri, tiny_unaligned):
    first = run_pipeline(tiny_params(tiny_unaligned, tmp_path / "models", max_steps=2))
    second = run_pipeline(tiny_params(tiny_unaligned, tmp_path / "models", max_steps=3, resume=True))
    assert second["registered_model"]["run_id"] == first["registered_model"]["run_id"]
    assert second["training_summary"]["resumed_from_step"] == 2 and second["training_summary"]["step"] == 3
    steps = [m.step for m in MlflowClient(mlflow_uri).get_metric_history(first["registered_model"]["run_id"], "loss_G")]
    assert steps == [1, 2, 3]


def test_too_small_crop_for_the_discriminator_names_the_fix(tmp_path, mlflow_uri, tiny_unaligned):
    params = tiny_params(tiny_unaligned, tmp_path / "models")
    params["model"]["dis_n_layer"] = 4  # the reference's 4 layers x 3 scales need >= 61 px
    with pytest.raises(Exception, match="too small .* crop_size"):
        run_pipeline(params)
