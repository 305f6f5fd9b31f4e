"""What a user sees in the MLflow UI after a training: a run named after what ran, the data as a dataset input
with the project's fingerprint as digest, and a registered version whose description sums up data, steps and
metrics (held-out metrics added when the version is evaluated)."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

from _support import make_unaligned, tiny_variant_params
from transfigure.pipelines.data_validation.nodes import prepare_dataset
from transfigure.pipelines.training.nodes import train
from transfigure.tracking.runs import register_trained_model

pytestmark = pytest.mark.slow  # each test trains (a few steps) and logs a model

FINGERPRINT = "0123456789abcdef" * 4


@pytest.fixture
def trained(mlflow_uri, tmp_path):
    data = make_unaligned(tmp_path / "zebras", n_train=3)
    params = tiny_variant_params("cyclegan", tmp_path / "models", max_steps=None)
    params["training"].update(n_epochs=1, n_epochs_decay=1)
    dataset = {**prepare_dataset({"path": str(data)}), "fingerprint": FINGERPRINT}
    summary = train(
        "cyclegan",
        dataset,
        {"success": True, "summary": {"images": 10}},
        params["data"],
        params["model"],
        params["training"],
        params["tracking"],
        params["output_dir"],
    )
    return summary, register_trained_model(summary, params["tracking"]), params, dataset


def test_run_is_named_variant_data_steps_and_logs_its_data_as_a_dataset_input(trained, mlflow_uri):
    summary, registered, _, _ = trained
    run = MlflowClient(mlflow_uri).get_run(summary["run_id"])
    assert summary["step"] == 6  # 3 images, batch 1, 2 epochs
    assert run.info.run_name == "cyclegan-zebras-6"
    (inp,) = run.inputs.dataset_inputs
    assert inp.dataset.name == "zebras" and inp.dataset.digest == FINGERPRINT[:36]
    assert "zebras" in inp.dataset.source and inp.dataset.source_type == "local"
    assert {t.key: t.value for t in inp.tags}["mlflow.data.context"] == "training"


def test_run_name_parameter_still_wins(mlflow_uri, tmp_path):
    from _support import default_dataset, train_and_register

    params = tiny_variant_params("cyclegan", tmp_path / "m")
    params["tracking"]["run_name"] = "my-run"
    registered = train_and_register(params, default_dataset(tmp_path / "data"))
    assert MlflowClient(mlflow_uri).get_run(registered["run_id"]).info.run_name == "my-run"


def test_default_data_runs_are_named_after_the_subset(mlflow_uri, tmp_path):
    from _support import default_dataset, train_and_register

    registered = train_and_register(tiny_variant_params("cyclegan", tmp_path / "m"), default_dataset(tmp_path / "d"))
    assert MlflowClient(mlflow_uri).get_run(registered["run_id"]).info.run_name == "cyclegan-day2night-2"


def test_version_description_sums_up_data_steps_and_metrics(trained, mlflow_uri):
    from transfigure.evaluation import evaluate_registered, record_evaluation

    _, registered, params, dataset = trained
    client = MlflowClient(mlflow_uri)
    text = client.get_model_version("cyclegan", registered["version"]).description
    assert "**cyclegan** trained on **zebras**" in text and "**6 steps**" in text
    assert "10 images" in text and FINGERPRINT[:12] in text and "Final losses: " in text and "G " in text
    assert "Held-out evaluation" not in text
    record_evaluation(
        evaluate_registered("cyclegan", registered["version"], dataset, params["data"], params["evaluation"])
    )
    text = client.get_model_version("cyclegan", registered["version"]).description
    assert "Held-out evaluation (test split, " in text and "fid " in text and "**6 steps**" in text
