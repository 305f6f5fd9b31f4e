from __future__ import annotations

import os

import pytest

from transfigure.tracking.config import resolve_registry_uri, resolve_tracking_uri
from transfigure.tracking.mlflow_utils import configure_mlflow, flatten_params


def test_tracking_uri_precedence(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert resolve_tracking_uri(None, tmp_path) == f"sqlite:///{tmp_path.resolve() / 'mlruns.db'}"
    assert resolve_tracking_uri("http://127.0.0.1:5000", tmp_path) == "http://127.0.0.1:5000"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////elsewhere.db")
    assert resolve_tracking_uri("http://127.0.0.1:5000", tmp_path) == "sqlite:////elsewhere.db"


@pytest.mark.slow
def test_configuring_a_store_leaves_no_registry_uri_behind(mlflow_uri, monkeypatch):
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    client, exp_id = configure_mlflow("leak-check")
    # MLflow's set_registry_uri would put the store into os.environ, where child processes
    # with another store (torchrun, kedro subprocesses) would register models in this one
    assert "MLFLOW_REGISTRY_URI" not in os.environ
    assert client._registry_uri == mlflow_uri and resolve_registry_uri(mlflow_uri) == mlflow_uri
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", "sqlite:////registry.db")
    assert resolve_registry_uri(mlflow_uri) == "sqlite:////registry.db"


def test_local_experiment_artifacts_live_beside_the_store(mlflow_uri, tmp_path):
    client, exp_id = configure_mlflow("artifacts-here", project_root=tmp_path)
    assert client.get_experiment(exp_id).artifact_location == (tmp_path / "mlartifacts" / "artifacts-here").as_uri()
    assert configure_mlflow("artifacts-here", project_root=tmp_path)[1] == exp_id  # idempotent


def test_flatten_params():
    assert flatten_params({"model": {"ngf": 64, "norm": "instance"}, "lr": 1e-4, "x": None}) == {
        "model.ngf": "64",
        "model.norm": "instance",
        "lr": "0.0001",
        "x": "None",
    }


def test_experiments_are_marked_as_training_experiments(mlflow_uri, tmp_path):
    """MLflow 3's UI opens an experiment without ``mlflow.experimentKind`` on its GenAI page."""
    from transfigure.tracking.mlflow_utils import EXPERIMENT_KIND_TAG, TRAINING_EXPERIMENT_KIND

    client, exp_id = configure_mlflow("kind-new", project_root=tmp_path)
    assert (
        client.get_experiment(exp_id).tags[EXPERIMENT_KIND_TAG]
        == TRAINING_EXPERIMENT_KIND
        == "custom_model_development"
    )
    old = client.create_experiment("kind-old")  # made before the tag existed: it gets it on next use
    configure_mlflow("kind-old", project_root=tmp_path)
    assert client.get_experiment(old).tags[EXPERIMENT_KIND_TAG] == TRAINING_EXPERIMENT_KIND
    client.set_experiment_tag(old, EXPERIMENT_KIND_TAG, "finetuning")  # a kind someone chose stays
    configure_mlflow("kind-old", project_root=tmp_path)
    assert client.get_experiment(old).tags[EXPERIMENT_KIND_TAG] == "finetuning"
