"""Fixtures for the transfigure.data tests: tiny images written into tmp_path."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def _pattern(w: int, h: int, seed: int = 0) -> np.ndarray:
    """A non-symmetric uint8 HxW pattern (gradient + noise): any crop/flip changes it."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = (xx * 200 // max(w - 1, 1) + yy * 50 // max(h - 1, 1)).astype(np.int64)
    out: np.ndarray = np.clip(base + rng.integers(0, 6, (h, w)), 0, 255).astype(np.uint8)
    return out


@pytest.fixture
def pattern() -> Callable[..., np.ndarray]:
    return _pattern


@pytest.fixture
def write_rgb() -> Callable[..., Path]:
    """write_rgb(path, w, h, seed=0) -> path: an RGB PNG with a random pattern."""

    def write(path: Path, w: int = 20, h: int = 16, seed: int = 0) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(seed)
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
        return path

    return write


@pytest.fixture
def write_pair_halves() -> Callable[..., Path]:
    """An A|B side-by-side image: A = pattern in red, B = the same pattern in blue."""

    def write(path: Path, w: int = 40, h: int = 30, seed: int = 0) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        p = _pattern(w, h, seed)
        a = np.zeros((h, w, 3), np.uint8)
        a[..., 0] = p
        b = np.zeros((h, w, 3), np.uint8)
        b[..., 2] = p
        Image.fromarray(np.concatenate([a, b], axis=1)).save(path)
        return path

    return write
