"""The embedded default dataset, built once per test session (offline, about a second)."""

from __future__ import annotations

from pathlib import Path

import pytest

from transfigure.data.default_dataset import build_default_dataset


@pytest.fixture(scope="session")
def default_root(tmp_path_factory) -> Path:
    """``day2night`` (unaligned), ``edges2photo`` (aligned), ``labels2photo`` (labelmap); 48 train + 12 test, 64 px."""
    root = tmp_path_factory.mktemp("default_data") / "default"
    build_default_dataset(root)
    return root
