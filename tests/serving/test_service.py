"""`bentoml serve` for real, on loopback: it loads the champion from MLflow, or refuses to start without one."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from mlflow import MlflowClient

from transfigure.data.datasets import make_dataset
from transfigure.data.transforms import TransformConfig
from transfigure.models import CycleGAN
from transfigure.tracking.training import register_trained_model, run_tracked_training
from transfigure.training import TrainingConfig

PROJECT = Path(__file__).resolve().parents[2]
BENTOML = str(Path(sys.executable).with_name("bentoml"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_and_register(tmp_path: Path, data: Path) -> dict:
    ds = make_dataset("unaligned", data, "train", transform=TransformConfig(load_size=32, crop_size=32, flip=False))
    summary = run_tracked_training(
        model=CycleGAN(ngf=4, ndf=4, netG="resnet_6blocks"), dataset=ds,
        training=TrainingConfig(max_steps=2, progress=False), output_dir=tmp_path / "models",
        tracking={"experiment": "serve-test"}, params={},
    )
    return register_trained_model(summary, {"registered_model_name": "cyclegan"})


def serve(cwd: Path, port: int) -> subprocess.Popen:
    shutil.copy(PROJECT / "bentofile.yaml", cwd / "bentofile.yaml")
    return subprocess.Popen([BENTOML, "serve", "--host", "127.0.0.1", "--port", str(port)], cwd=cwd,
                            env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_ready(port: int, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {proc.stdout.read()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError("server not ready in time")


def stop(proc: subprocess.Popen) -> str:
    proc.terminate()
    try:
        out, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out


def test_serves_the_champion(tmp_path, mlflow_uri, tiny_unaligned):
    reg = train_and_register(tmp_path, tiny_unaligned)
    MlflowClient(mlflow_uri).set_registered_model_alias("cyclegan", "champion", reg["version"])
    port = free_port()
    proc = serve(tmp_path, port)
    try:
        wait_ready(port, proc)
        req = urllib.request.Request(f"http://127.0.0.1:{port}/info", data=b"{}", headers={"content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            info = json.loads(r.read())
        assert info["variant"] == "cyclegan" and info["alias"] == "champion"
        assert info["run_id"] == reg["run_id"] and info["directions"] == ["AtoB", "BtoA"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
            assert r.status == 200
    finally:
        stop(proc)


def test_refuses_to_start_without_a_champion(tmp_path, mlflow_uri, tiny_unaligned):
    train_and_register(tmp_path, tiny_unaligned)  # registered, but no alias
    proc = serve(tmp_path, free_port())
    try:
        out, _ = proc.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        out = stop(proc)
        pytest.fail(f"server started without a champion: {out[-2000:]}")
    assert proc.returncode != 0
    assert "alias 'champion'" in out and "set_registered_model_alias" in out
