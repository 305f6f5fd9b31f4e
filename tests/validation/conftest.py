"""Tiny on-disk datasets for the validation tests (built in tmp_path, never ../shared)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

#: Images per split and domain in the generated datasets.
COUNTS = {"train": 3, "test": 2}


def write_image(
    path: Path,
    size: tuple[int, int] = (40, 32),
    mode: str = "RGB",
    seed: int = 0,
) -> Path:
    """Write a random image of ``size`` (width, height) and ``mode``; format from the suffix."""
    rng = np.random.default_rng(seed)
    width, height = size
    if mode == "RGB":
        array = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    elif mode == "L":
        array = rng.integers(0, 256, (height, width), dtype=np.uint8)
    elif mode == "F":
        array = rng.random((height, width), dtype=np.float32)
    else:
        raise ValueError(f"unsupported test mode {mode}")
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode=mode).save(path)
    return path


def build_dataset(root: Path, fmt: str, counts: dict[str, int] | None = None) -> Path:
    """A valid dataset of ``fmt`` under ``root`` with ``counts`` images per split/domain.

    Every image has different random pixels (seeded), 32-64 px per side.
    """
    counts = COUNTS if counts is None else counts
    seed = 0
    for split, count in counts.items():
        for index in range(count):
            seed += 1
            stem = f"{split}_{index:02d}"
            size = (32 + 8 * index, 40)
            if fmt == "aligned":
                write_image(root / split / f"{stem}.jpg", (2 * size[0], size[1]), seed=seed)
            elif fmt in ("paired", "unaligned"):
                other = f"{stem}b" if fmt == "unaligned" else stem
                write_image(root / f"{split}A" / f"{stem}.jpg", size, seed=seed)
                write_image(root / f"{split}B" / f"{other}.png", size, seed=seed + 1000)
            elif fmt == "labelmap":
                write_image(root / f"{split}_label" / f"{stem}.png", size, "L", seed=seed)
                write_image(root / f"{split}_img" / f"{stem}.jpg", size, seed=seed + 1000)
                write_image(root / f"{split}_inst" / f"{stem}.png", size, "L", seed=seed + 2000)
            else:
                raise ValueError(fmt)
    return root


@pytest.fixture
def make_dataset(tmp_path: Path) -> Callable[..., Path]:
    """Factory fixture: ``make_dataset(fmt, counts=None, name=fmt)`` -> dataset root."""

    def factory(fmt: str, counts: dict[str, int] | None = None, name: str | None = None) -> Path:
        return build_dataset(tmp_path / (name or fmt), fmt, counts)

    return factory


@pytest.fixture
def image_writer() -> Callable[..., Path]:
    """The :func:`write_image` helper, as a fixture."""
    return write_image
