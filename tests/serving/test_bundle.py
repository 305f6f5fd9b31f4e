"""`bentoml build`, offline, of a Bento that bundles the champion; served without any registry."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from _serving import PROJECT, Server, encode, noise_image, promote, train_cyclegan
from _support import make_unaligned

pytestmark = pytest.mark.slow


def project_copy(dst: Path) -> Path:
    """What `bentoml build` reads from the project: bentofile.yaml, the package sources, conf/base."""
    dst.mkdir()
    shutil.copy(PROJECT / "bentofile.yaml", dst / "bentofile.yaml")
    shutil.copytree(
        PROJECT / "src" / "transfigure",
        dst / "src" / "transfigure",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    shutil.copytree(PROJECT / "conf" / "base", dst / "conf" / "base")
    return dst


def test_bento_bundles_the_champion_and_serves_it_without_a_registry(tmp_path, mlflow_uri, monkeypatch):
    monkeypatch.setenv("BENTOML_HOME", str(tmp_path / "bentoml"))
    monkeypatch.setenv("TRANSFIGURE_MODEL_CACHE", str(tmp_path / "cache"))
    registered = train_cyclegan(tmp_path / "models", make_unaligned(tmp_path / "data"))
    promote(mlflow_uri, "cyclegan", registered["version"])
    project = project_copy(tmp_path / "project")

    built = subprocess.run(
        [sys.executable, "-m", "transfigure.serving.bundle", "--project-dir", str(project), "--build"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    tag = built.stdout.split("built Bento ")[1].split(";")[0]
    assert not (project / "data" / "06_models" / "serving").exists()  # the staged copy is gone again

    bento = next((tmp_path / "bentoml" / "bentos" / "transfigure").glob(tag.split(":")[1]))
    bundled = bento / "src" / "data" / "06_models" / "serving"
    meta = json.loads((bundled / "cyclegan" / "transfigure_model.json").read_text())
    assert meta["version"] == registered["version"] and meta["run_id"] == registered["run_id"]
    assert {p.name for p in (bundled / "cyclegan").iterdir()} >= {"config.json", "AtoB.safetensors", "BtoA.safetensors"}
    assert (bento / "src" / "transfigure" / "serving" / "service.py").is_file()  # importable: src layout flattened
    info = yaml.safe_load((bento / "bento.yaml").read_text())
    assert {s["name"] for s in info["services"]} == {"transfigure", "transfigure-model", "transfigure-model-large"}
    requirements = (bento / "env" / "python" / "requirements.txt").read_text()
    assert "torch==2.13.0" in requirements and "mlflow==3.17.2" in requirements

    # a fresh, empty registry: the Bento must serve what it bundled
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    server = Server(
        empty,
        args=[tag],
        env={
            "MLFLOW_TRACKING_URI": f"sqlite:///{empty / 'mlruns.db'}",
            "TRANSFIGURE_LEDGER": str(empty / "ledger.sqlite"),
        },
    )
    try:
        server.wait_ready()
        reply = server.post_image("/translate", encode(noise_image(80, 64)))
        assert reply.status == 200, reply.body[:300]
        assert reply.headers["x-model-version"] == registered["version"] and reply.image().size == (80, 64)
        info = server.request("POST", "/info", b"{}", {"Content-Type": "application/json"}).json()
        assert info["source"] == "bundle" and info["run_id"] == registered["run_id"]
        # the web studio's files travel in the Bento too (bentofile.yaml's include)
        for asset in ("/studio/", "/studio/studio.js", "/studio/studio.css"):
            assert server.request("GET", asset).status == 200, asset
        (model,) = server.request("GET", "/studio/api/models").json()["models"]
        assert (model["source"], model["version"]) == ("bundle", registered["version"])
    finally:
        server.stop()
