"""train_cyclegan end to end: Kedro runner on an in-memory catalog, real MLflow (sqlite), real files."""

from __future__ import annotations

import subprocess
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
from transfigure.validation import DataValidationError

PROJECT = Path(__file__).resolve().parents[2]


def base_params() -> dict:
    return yaml.safe_load((PROJECT / "conf/base/parameters_train_cyclegan.yml").read_text())["cyclegan"]


def tiny_params(data_path: Path, output_dir: Path, **training) -> dict:
    p = base_params()
    p["output_dir"] = str(output_dir)
    p["data"].update(path=str(data_path), load_size=36, crop_size=32)
    p["model"].update(ngf=4, ndf=4)
    p["training"].update({"progress": False, "max_steps": 4, "log_every": 1, "sample_every": 2, "checkpoint_every": 2,
                          **training})
    return p


def run_pipeline(params: dict) -> dict:
    """Run with the project's real catalog.yml (relative paths: the test's working directory)."""
    catalog = project_catalog()
    for key, value in params.items():
        catalog[f"params:cyclegan.{key}"] = value
    SequentialRunner().run(training_pipeline("cyclegan"), catalog)
    names = ("validation_report", "training_summary", "registered_model", "promotion")
    return {f"cyclegan.{n}": catalog[f"cyclegan.{n}"].load() for n in names}


def test_pipeline_trains_logs_and_registers(tmp_path, mlflow_uri, tiny_unaligned):
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q", str(tmp_path)], check=True)
    subprocess.run([*git, "-C", str(tmp_path), "commit", "-q", "--allow-empty", "-m", "x"], check=True)
    commit = subprocess.run(["git", "-C", str(tmp_path), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    out = run_pipeline(tiny_params(tiny_unaligned, tmp_path / "models"))
    registered = out["cyclegan.registered_model"]
    assert registered["registered"] and registered["name"] == "cyclegan" and registered["version"] == "1"
    report = out["cyclegan.validation_report"]
    assert report["success"] is True and len(report["fingerprints"]["train"]) == 64

    client = MlflowClient(mlflow_uri)
    run = client.get_run(registered["run_id"])
    # every parameter, flattened
    assert run.data.params["model.ngf"] == "4" and run.data.params["model.lambda_A"] == "10.0"
    assert run.data.params["training.max_steps"] == "4" and run.data.params["data.crop_size"] == "32"
    # per-step losses, LR and throughput
    history = client.get_metric_history(run.info.run_id, "loss_G")
    assert [m.step for m in history] == [1, 2, 3, 4] and all(np.isfinite(m.value) for m in history)
    assert client.get_metric_history(run.info.run_id, "lr_G")[0].value == pytest.approx(2e-4)
    assert run.data.metrics["images_per_second"] > 0
    # the dataset's validation summary: 4 + 2 images per domain
    assert run.data.metrics["data_images"] == 12 and run.data.metrics["data_bad_files"] == 0
    # git commit, data fingerprint, sample grids, validation summary
    assert run.data.tags["variant"] == "cyclegan" and run.data.tags["git_commit"] == commit
    assert run.data.tags["dataset_fingerprint"] == report["fingerprints"]["all"]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"samples", "validation"} <= artifacts
    samples = {a.path for a in client.list_artifacts(run.info.run_id, "samples")}
    assert {"samples/step_00000002.png", "samples/step_00000004.png", "samples/final.png"} <= samples
    assert client.list_artifacts(run.info.run_id, "validation")[0].path == "validation/validation_report.json"

    # the registered version reloads (no pickles) and translates any size
    mv = client.get_model_version("cyclegan", "1")
    assert mv.run_id == run.info.run_id and mv.tags["dataset_fingerprint"] == report["fingerprints"]["all"]
    translator = transfigure.load_translator("cyclegan", 1)
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (60, 100, 3), dtype=np.uint8))
    for direction in ("AtoB", "BtoA"):
        result = translator.translate(img, direction=direction)
        assert result.size == (100, 60) and result.mode == "RGB"
    # and it is the same network that was trained: the export matches the last checkpoint
    assert translator.metadata["step"] == 4 and translator.metadata["mlflow_run_id"] == run.info.run_id

    # a second training registers version 2; "latest" follows it
    out2 = run_pipeline(tiny_params(tiny_unaligned, tmp_path / "models2"))
    assert out2["cyclegan.registered_model"]["version"] == "2"
    assert transfigure.load_translator("cyclegan", "latest").metadata["mlflow_run_id"] == out2["cyclegan.registered_model"]["run_id"]

    # the train pipeline ends with the metric gate: the first version became champion (no champion yet);
    # the second is either promoted or refused, and either way the decision and its reason are on record
    assert out["cyclegan.promotion"]["promoted"] is True and "no champion" in out["cyclegan.promotion"]["reason"]
    decision = out2["cyclegan.promotion"]
    champion = str(client.get_model_version_by_alias("cyclegan", "champion").version)
    assert champion == ("2" if decision["promoted"] else "1")
    assert decision["reason"] and client.get_model_version("cyclegan", "2").tags["promotion.reason"] == decision["reason"]


def test_resumed_pipeline_continues_the_same_mlflow_run(tmp_path, mlflow_uri, tiny_unaligned):
    first = run_pipeline(tiny_params(tiny_unaligned, tmp_path / "models", max_steps=2))
    second = run_pipeline(tiny_params(tiny_unaligned, tmp_path / "models", max_steps=5, resume=True))
    s1, s2 = first["cyclegan.registered_model"], second["cyclegan.registered_model"]
    assert s2["run_id"] == s1["run_id"]
    summary = second["cyclegan.training_summary"]
    assert summary["resumed_from_step"] == 2 and summary["step"] == 5
    steps = [m.step for m in MlflowClient(mlflow_uri).get_metric_history(s1["run_id"], "loss_G")]
    assert steps == [1, 2, 3, 4, 5]


def test_bad_data_stops_before_training_and_names_the_file(tmp_path, mlflow_uri, tiny_unaligned):
    good = tiny_unaligned / "trainA" / "trainA_001.png"
    good.write_bytes(good.read_bytes()[:100])  # truncated PNG
    with pytest.raises(DataValidationError, match="trainA_001.png"):
        run_pipeline(tiny_params(tiny_unaligned, tmp_path / "models"))
    assert not (tmp_path / "models").exists()  # no training happened
    assert MlflowClient(mlflow_uri).search_runs(experiment_ids=["0"]) == []
