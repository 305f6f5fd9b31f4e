"""Shared fixtures: a private MLflow store per test and tiny image datasets made on the fly (makers in _support)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# OpenMP threads that sleep instead of spinning: on a 2-core machine shared with other
# processes (torchrun ranks, kedro/bentoml subprocesses) spinning makes torch 5-10x slower.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# Under pytest-xdist each worker gets its share of the cores (set before torch is imported, and inherited by
# the subprocesses a test starts), so N workers never run N x cores threads.
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    _threads = max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(_var, str(_threads))
# tests/_support.py: plain helpers test modules import (pytest runs with --import-mode=importlib)
sys.path.insert(0, str(Path(__file__).resolve().parent))
# No test may reach the network or the project's own MLflow store: the telemetry switches go into
# os.environ before any test runs, so every subprocess a test starts (kedro, dvc, bentoml, torchrun,
# an MLflow server) inherits them.
from transfigure._env import disable_telemetry  # noqa: E402

disable_telemetry()

# the team services (PostgreSQL, S3-compatible moto), session-scoped; only the tests that name them start them
from _services import postgres_server, s3_server  # noqa: E402, F401


@pytest.fixture
def mlflow_uri(tmp_path, monkeypatch) -> str:
    """A fresh sqlite MLflow store in tmp_path; the working directory moves there too (artifacts land beside it)."""
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    return uri


@pytest.fixture
def tiny_unaligned(tmp_path) -> Path:
    from _support import make_unaligned

    return make_unaligned(tmp_path / "tiny_unaligned")


#: programs a test must be marked ``slow`` to start: interpreters, the stack's CLIs and servers (a library's own
#: quick helpers such as ``git`` or ``uname`` stay allowed)
_SLOW_PROGRAMS = (
    "python",
    "kedro",
    "dvc",
    "bentoml",
    "torchrun",
    "transfigure",
    "mlflow",
    "jupyter",
    "gunicorn",
    "uvicorn",
    "postgres",
    "pg_ctl",
    "initdb",
    "moto_server",
    "chromium",
    "chromedriver",
)


@pytest.fixture(autouse=True)
def _slow_marker_is_honest(request, monkeypatch):
    """A test that starts a process (kedro, dvc, bentoml, torchrun, a Python script ...) must be marked ``slow``,
    so ``pytest -m "not slow"`` stays a fast loop: anything else fails here, naming the program."""
    if request.node.get_closest_marker("slow"):
        return
    real_init = subprocess.Popen.__init__

    def guarded(self, args, *a, **kw):
        argv = [args] if isinstance(args, (str, bytes, os.PathLike)) else list(args)
        program = Path(os.fsdecode(argv[0]).split()[0]).name if argv else ""
        if program.startswith(_SLOW_PROGRAMS):
            raise AssertionError(f"{request.node.nodeid} starts {argv[:3]}: mark it @pytest.mark.slow")
        real_init(self, args, *a, **kw)

    monkeypatch.setattr(subprocess.Popen, "__init__", guarded)


def pytest_collection_modifyitems(config, items):
    """Modules with slow tests first (stable otherwise): xdist hands out whole modules in this order, so the long
    ones start at once and the many quick ones fill the gaps at the end instead of a long one running alone."""
    slow_modules = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_modules)
