"""Fixtures for the DVC tests; helpers live in _dvc_support.py (this folder is put on sys.path)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _dvc_support import make_dvc_project  # noqa: E402


@pytest.fixture(scope="module")
def dvc_project(tmp_path_factory) -> Path:
    """One fresh DVC project per test module."""
    return make_dvc_project(tmp_path_factory.mktemp("dvc"))
