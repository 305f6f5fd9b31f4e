"""The training -> evaluation -> promotion -> rollback workflow against a real ``mlflow server`` on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient
from PIL import Image

import transfigure
from _services import mlflow_server as start_mlflow_server
from _support import add_evaluated_version, default_dataset, tiny_variant_params, train_and_register
from transfigure.tracking.promotion import promote, promotion_status, read_history, rollback

pytestmark = pytest.mark.slow


@pytest.fixture
def mlflow_server(tmp_path, monkeypatch):
    """``mlflow server`` (sqlite backend, proxied artifacts) as a subprocess; yields its URL, stops it after."""
    backend, artifacts = f"sqlite:///{tmp_path / 'server.db'}", str(tmp_path / "server_artifacts")
    with start_mlflow_server(backend, artifacts, tmp_path / "server.log") as url:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
        monkeypatch.setenv("USER", "tester")
        monkeypatch.chdir(tmp_path)
        yield url


def test_train_evaluate_promote_rollback_through_a_tracking_server(mlflow_server, tmp_path):
    from transfigure.evaluation import evaluate_registered, record_evaluation

    dataset = default_dataset(tmp_path / "data")
    params = tiny_variant_params("cyclegan", tmp_path / "models")
    registered = train_and_register(params, dataset)
    client = MlflowClient(mlflow_server)
    v1 = registered["version"]
    assert registered["tracking_uri"] == mlflow_server
    # the artifacts went through the server's proxy, not to a local folder
    run = client.get_run(registered["run_id"])
    assert run.info.artifact_uri.startswith("mlflow-artifacts:")
    assert any((tmp_path / "server_artifacts").rglob("AtoB.safetensors"))

    # real evaluation on the held-out split, recorded on the run and the version
    result = evaluate_registered("cyclegan", v1, dataset, params["data"], params["evaluation"])
    record_evaluation(result)
    tags = client.get_model_version("cyclegan", v1).tags
    fid, split = float(tags["metric.fid"]), tags["eval_split_fingerprint"]
    assert fid == pytest.approx(result.metrics["fid"]) and split == result.split["fingerprint"]
    assert tags["run_id"] == registered["run_id"] and tags["param.model.ngf"] == "4" and "params_digest" in tags

    # two more versions on the same split: one worse, one better than v1
    worse = add_evaluated_version(client, "cyclegan", registered, split, fid=fid + 10)
    better = add_evaluated_version(client, "cyclegan", registered, split, fid=fid - 10)
    first = promote("cyclegan", v1)
    assert first.promoted and first.reason.startswith("no champion yet")
    refused = promote("cyclegan", worse)
    assert not refused.promoted and "is not better than champion v1's" in refused.reason
    won = promote("cyclegan", better)
    assert won.promoted and won.previous_champion == v1
    aliases = {k: str(v) for k, v in client.get_registered_model("cyclegan").aliases.items()}
    assert aliases == {"champion": better, "challenger": worse}
    assert client.get_model_version("cyclegan", better).tags["promoted_by"] == "tester"

    back = rollback("cyclegan", "tester", "regression seen in production")
    assert back.promoted and back.candidate == v1
    assert str(client.get_registered_model("cyclegan").aliases["champion"]) == v1
    assert [h["action"] for h in read_history(client, "cyclegan")] == ["promote", "promote", "rollback"]
    assert promotion_status("cyclegan")["champion"]["version"] == v1
    # decisions are artifacts of the training run, stored by the server
    logged = [a.path for a in client.list_artifacts(registered["run_id"], "promotion")]
    assert len(logged) == 4
    doc = json.loads(
        Path(
            mlflow.artifacts.download_artifacts(run_id=registered["run_id"], artifact_path=sorted(logged)[0])
        ).read_text()
    )
    assert doc["model"] == "cyclegan"

    # the champion loads by alias from the server and translates any size
    translator = transfigure.load_translator("cyclegan", "champion")
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (44, 68, 3), dtype=np.uint8))
    assert translator.translate(img).size == (68, 44)

    # and the CLI talks to the same server
    exe = Path(sys.executable).with_name("transfigure")
    status = subprocess.run(
        [str(exe), "promote", "cyclegan", "--status", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "MLFLOW_TRACKING_URI": mlflow_server},
    )
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["aliases"] == {"champion": v1, "challenger": worse}
