"""Evaluation through Kedro: train_<variant> ends with it, evaluate_<variant> runs it alone.

Real pipelines on the project's catalog.yml (SequentialRunner, relative paths in the test's
working directory), a real MLflow sqlite store, the offline Inception, tiny models (32 px, width 4).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from kedro.runner import SequentialRunner
from mlflow import MlflowClient
from PIL import Image

from _support import env_with_default_store, make_aligned, project_catalog, project_copy, tiny_variant_params
from transfigure.data.default_dataset import build_default_dataset
from transfigure.pipeline_registry import register_pipelines
from transfigure.pipelines.training.nodes import build_dataset

KEDRO = str(Path(sys.executable).with_name("kedro"))
SUBSET = {"cyclegan": "day2night", "unit": "day2night", "pix2pix": "edges2photo", "spade": "labels2photo"}
UNPAIRED_KEYS = {"fid_AtoB", "fid_BtoA", "kid_AtoB", "kid_BtoA", "cycle_l1_A", "cycle_l1_B", "fid", "kid"}
PAIRED_KEYS = {"fid", "kid", "l1", "psnr", "ssim"}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def default_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("default_data") / "default"
    build_default_dataset(root)
    return root


def tiny_params(variant: str, data_path: Path, output_dir: Path, **training) -> dict:
    """The project's tiny parameters (tests/_support.py) on ``data_path``, with a 4-image evaluation."""
    p = tiny_variant_params(variant, output_dir)
    p["data"]["path"] = str(data_path)
    p["training"].update(training)
    p["evaluation"].update(max_images=4, kid_subset_size=4, kid_subsets=10, report_rows=2, curve_images=2)
    return p


def run(pipeline: str, variant: str, params: dict) -> dict:
    """Run ``pipeline`` with the project's catalog; returns the saved outputs of interest (loaded back)."""
    catalog = project_catalog()
    for key, value in params.items():
        catalog[f"params:{variant}.{key}"] = value
    SequentialRunner().run(register_pipelines()[pipeline], catalog)
    reporting = Path("data/08_reporting") / variant
    out = {
        "metrics": json.loads((reporting / "metrics.json").read_text()),
        "report": Image.open(reporting / "eval_report.png"),
    }
    if pipeline.startswith("train_"):
        out["registered"] = json.loads((reporting / "registered_model.json").read_text())
    return out


def test_train_cyclegan_evaluates_logs_tags_and_plots(tmp_path, mlflow_uri, tiny_unaligned):
    """Unpaired family end to end: train (with the FID curve) -> register -> evaluate; then evaluate_cyclegan."""
    params = tiny_params(
        "cyclegan", tiny_unaligned, tmp_path / "models", max_steps=None, n_epochs=1, n_epochs_decay=1, eval_every=1
    )
    out = run("train_cyclegan", "cyclegan", params)
    metrics, registered = out["metrics"], out["registered"]
    assert UNPAIRED_KEYS <= set(metrics)
    assert metrics["model_name"] == "cyclegan" and metrics["model_version"] == 1
    assert metrics["n_images"] == 4 and metrics["split"] == "test" and len(metrics["split_fingerprint"]) == 64
    assert out["report"].size[1] == 4 * 130 + 2 + 14  # 2 rows per direction

    client = MlflowClient(mlflow_uri)
    run_ = client.get_run(registered["run_id"])
    for key in UNPAIRED_KEYS:  # eval_<key> in the training's run, at its last step (8)
        assert run_.data.metrics[f"eval_{key}"] == pytest.approx(metrics[key])
    assert client.get_metric_history(run_.info.run_id, "eval_fid")[0].step == 8
    assert run_.data.tags["eval_split_fingerprint"] == metrics["split_fingerprint"]
    folder = f"evaluation/test-{metrics['split_fingerprint'][:12]}"
    assert {a.path for a in client.list_artifacts(run_.info.run_id, folder)} == {
        f"{folder}/split.json",
        f"{folder}/metrics.json",
        f"{folder}/eval_report.png",
    }
    split = json.loads(
        Path(client.download_artifacts(run_.info.run_id, f"{folder}/split.json", str(tmp_path))).read_text()
    )
    assert split["files"] == [
        "testA/testA_000.png",
        "testA/testA_001.png",
        "testB/testB_000.png",
        "testB/testB_001.png",
    ]
    assert metrics["split_files"] == split["files"] and split["fingerprint"] == metrics["split_fingerprint"]
    # the registered version carries what the promotion gate reads
    tags = client.get_model_version("cyclegan", "1").tags
    assert float(tags["metric.fid"]) == metrics["fid"] and float(tags["metric.cycle_l1_B"]) == metrics["cycle_l1_B"]
    assert tags["eval_split_fingerprint"] == metrics["split_fingerprint"] and tags["eval_n_images"] == "4"

    # curves for DVC plots: every step's losses; FID after each of the 2 epochs (4 steps each)
    loss = pd.read_csv("data/08_reporting/cyclegan/plots/loss.csv")
    assert list(loss["step"]) == list(range(1, 9)) and {"loss_G", "loss_cycle_A", "loss_D_B"} <= set(loss.columns)
    fid = pd.read_csv("data/08_reporting/cyclegan/plots/fid.csv")
    assert (
        list(fid.columns) == ["epoch", "step", "fid"] and list(fid["epoch"]) == [1, 2] and list(fid["step"]) == [4, 8]
    )
    assert [m.value for m in client.get_metric_history(run_.info.run_id, "fid")] == list(fid["fid"])
    # the curve's last point used the same 2 + 2 images as the final evaluation: the same FID
    assert fid["fid"].iloc[-1] == pytest.approx(metrics["fid"], rel=1e-9)

    # evaluate_cyclegan alone: the latest version, same data -> the same numbers, written again
    Path("data/08_reporting/cyclegan/metrics.json").unlink()
    again = run("evaluate_cyclegan", "cyclegan", params)["metrics"]
    assert again == metrics


def test_train_pix2pix_evaluates_the_paired_metrics_on_the_default_data(tmp_path, mlflow_uri, default_root):
    """Paired family end to end, on the embedded default data (sketch -> photo), FID offline."""
    params = tiny_params("pix2pix", default_root / "edges2photo", tmp_path / "models")
    metrics = run("train_pix2pix", "pix2pix", params)["metrics"]
    assert PAIRED_KEYS <= set(metrics) and not UNPAIRED_KEYS - PAIRED_KEYS & set(metrics)
    assert metrics["fid"] > 0 and 0 < metrics["l1"] < 1 and 0 < metrics["psnr"] < 100 and metrics["ssim"] < 1
    assert metrics["n_images"] == 4
    tags = MlflowClient(mlflow_uri).get_model_version("pix2pix", "1").tags
    assert {f"metric.{k}" for k in PAIRED_KEYS} <= set(tags) and float(tags["metric.psnr"]) == metrics["psnr"]
    # no eval_every: the FID curve is an empty table with its header
    assert pd.read_csv("data/08_reporting/pix2pix/plots/fid.csv").columns.tolist() == ["epoch", "step", "fid"]


def test_train_pix2pix_on_a_folder_with_only_train_holds_out_part_of_it_evaluates_and_gates(tmp_path, mlflow_uri):
    """No test/ or val/: training leaves a fixed tenth of train (at least 8, at most half) out, evaluation and the
    promotion gate use exactly that part, and the run records it."""
    data = make_aligned(tmp_path / "only_train", n_train=12, n_test=0)
    (data / "test").rmdir()
    params = tiny_params("pix2pix", data, tmp_path / "models")
    params["evaluation"]["max_images"] = None

    out = run("train_pix2pix", "pix2pix", params)

    metrics, registered = out["metrics"], out["registered"]
    assert metrics["split"] == "train-holdout" and metrics["n_images"] == 6  # min(8, 12 // 2)
    held = set(metrics["split_files"])
    assert len(held) == 6 and all(f.startswith("train/") for f in held)
    client = MlflowClient(mlflow_uri)
    tags = client.get_run(registered["run_id"]).data.tags
    assert tags["holdout_from_train"] == "true" and tags["holdout_fraction"] == "0.1"
    assert tags["holdout_size"] == "6" and tags["holdout_train_size"] == "6" and "sha256" in tags["holdout_rule"]
    assert tags["eval_split"] == "train-holdout"
    trained = build_dataset({"root": str(data), "format": "aligned"}, params["data"])
    assert not {p.relative_to(data).as_posix() for p in trained.paths} & held
    # the gate ran on that evaluation: the first version becomes champion
    promotion = json.loads(Path("data/08_reporting/pix2pix/promotion.json").read_text())
    assert promotion["promoted"] is True and promotion["candidate"] == "1"
    version = client.get_model_version("pix2pix", "1").tags
    assert (
        version["eval_split"] == "train-holdout" and version["eval_split_fingerprint"] == metrics["split_fingerprint"]
    )


@pytest.mark.parametrize("variant", ["unit", "spade"])
def test_evaluate_pipeline_reproduces_the_training_evaluation(tmp_path, mlflow_uri, default_root, variant):
    """UNIT (unpaired) and SPADE (label maps): evaluate_<variant> of version 1 after version 2 exists."""
    params = tiny_params(variant, default_root / SUBSET[variant], tmp_path / "models")
    first = run(f"train_{variant}", variant, params)["metrics"]
    params2 = tiny_params(variant, default_root / SUBSET[variant], tmp_path / "models2", max_steps=3)
    second = run(f"train_{variant}", variant, params2)["metrics"]
    assert second["model_version"] == 2 and second["fid"] != first["fid"]
    params["evaluation"]["model_version"] = 1
    again = run(f"evaluate_{variant}", variant, params)["metrics"]
    assert again == first
    assert (UNPAIRED_KEYS if variant == "unit" else PAIRED_KEYS) <= set(again)


def test_without_registration_the_runs_logged_model_is_evaluated(tmp_path, mlflow_uri, tiny_unaligned):
    params = tiny_params("cyclegan", tiny_unaligned, tmp_path / "models")
    params["tracking"]["register"] = False
    out = run("train_cyclegan", "cyclegan", params)
    assert out["registered"]["registered"] is False
    assert out["metrics"]["model_version"] is None and out["metrics"]["run_id"] == out["registered"]["run_id"]
    client = MlflowClient(mlflow_uri)
    assert client.get_run(out["registered"]["run_id"]).data.metrics["eval_fid"] == pytest.approx(out["metrics"]["fid"])
    assert client.search_registered_models() == []


def test_evaluate_with_nothing_registered_says_how_to_get_a_model(tmp_path, mlflow_uri, tiny_unaligned):
    params = tiny_params("cyclegan", tiny_unaligned, tmp_path / "models")
    with pytest.raises(LookupError, match=r"no model 'cyclegan' 'latest'.*kedro run --pipeline=train_cyclegan"):
        run("evaluate_cyclegan", "cyclegan", params)


def test_kedro_run_evaluate_on_the_default_data(tmp_path, monkeypatch):
    """`kedro run --pipeline=evaluate_pix2pix` in a project copy, against the project's own sqlite store."""
    root = project_copy(tmp_path)
    monkeypatch.chdir(root)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlruns.db'}")
    params = tiny_params("pix2pix", root / "data/01_raw/default/edges2photo", root / "data/06_models/pix2pix")
    build_default_dataset(root / "data/01_raw/default")
    trained = run("train_pix2pix", "pix2pix", params)["metrics"]
    cli = (
        "pix2pix.data.load_size=36,pix2pix.data.crop_size=32,pix2pix.evaluation.max_images=4,"
        "pix2pix.evaluation.kid_subset_size=4,pix2pix.evaluation.kid_subsets=10,pix2pix.evaluation.report_rows=2"
    )
    proc = subprocess.run(
        [KEDRO, "run", "--pipeline=evaluate_pix2pix", f"--params={cli}"],
        cwd=root,
        env=env_with_default_store(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((root / "data/08_reporting/pix2pix/metrics.json").read_text())
    assert metrics == trained  # same version, same default data, another process: the same numbers
    assert (root / "data/08_reporting/pix2pix/eval_report.png").is_file()
