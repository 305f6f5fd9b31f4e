"""Serving tests: ``from _serving import Server`` (helpers in tests/serving/_serving.py); ``served``: a real server."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pytest  # noqa: E402

from _serving import serve_champions  # noqa: E402


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """One real ``bentoml serve`` per test module (:func:`_serving.serve_champions`)."""
    with serve_champions(tmp_path_factory.mktemp("serving")) as served:
        yield served
