"""Shared fixtures: a private MLflow store per test and tiny image datasets made on the fly."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# OpenMP threads that sleep instead of spinning: on a 2-core machine shared with other
# processes (torchrun ranks, kedro/bentoml subprocesses) spinning makes torch 5-10x slower.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# tests/_support.py: plain helpers test modules import (pytest runs with --import-mode=importlib)
sys.path.insert(0, str(Path(__file__).resolve().parent))
# No test may reach the network or the project's own MLflow store: the telemetry switches go into
# os.environ before any test runs, so every subprocess a test starts (kedro, dvc, bentoml, torchrun,
# an MLflow server) inherits them.
from transfigure._env import disable_telemetry  # noqa: E402

disable_telemetry()


@pytest.fixture
def mlflow_uri(tmp_path, monkeypatch) -> str:
    """A fresh sqlite MLflow store in tmp_path; the working directory moves there too (artifacts land beside it)."""
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    return uri


def _scene(rng: np.random.Generator, size: int, night: bool) -> Image.Image:
    """A smooth random colour field with a rectangle: cheap, decodable, distinct per seed."""
    y, x = np.mgrid[0:size, 0:size] / size
    base = rng.uniform(0.2, 0.9, 3)
    img = np.stack([base[c] * (0.6 + 0.4 * np.sin(3 * x + c + rng.uniform(0, 6))) for c in range(3)], -1)
    x0, y0 = rng.integers(0, size // 2, 2)
    img[y0 : y0 + size // 3, x0 : x0 + size // 4] = rng.uniform(0, 1, 3)
    if night:
        img = img * 0.3
    return Image.fromarray((img * 255).clip(0, 255).astype(np.uint8))


def make_unaligned(root: Path, size: int = 32, n_train: int = 4, n_test: int = 2, seed: int = 0) -> Path:
    """trainA/trainB/testA/testB of distinct tiny PNGs (A bright, B dark)."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("test", n_test)):
        for dom in "AB":
            folder = root / f"{split}{dom}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                _scene(rng, size, night=dom == "B").save(folder / f"{split}{dom}_{i:03d}.png")
    return root


@pytest.fixture
def tiny_unaligned(tmp_path) -> Path:
    return make_unaligned(tmp_path / "tiny_unaligned")

