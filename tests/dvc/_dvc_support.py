"""Helpers of the DVC tests (``from _dvc_support import ...``): real `git` + `dvc` repositories in temporary
folders, real `dvc` subprocesses from this venv."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from _support import PROJECT, env_with_default_store

DVC = str(Path(sys.executable).with_name("dvc"))
#: what a clone of the project holds that the DVC stages read (the package is imported from src/ by kedro)
PROJECT_FILES = ("dvc.yaml", ".dvcignore", ".gitignore", "pyproject.toml", ".telemetry")
GIT_USER = ["-c", "user.name=transfigure-tests", "-c", "user.email=tests@transfigure.invalid"]

#: tiny CycleGAN settings, written into the copy's conf/base (DVC does not read conf/local)
TINY_CYCLEGAN = {
    "model": {"ngf": 4, "ndf": 4},
    "training": {"max_steps": 2, "progress": False, "log_every": 1},
    "evaluation": {"max_images": 4, "kid_subset_size": 4, "kid_subsets": 5, "report_rows": 2},
}


def run(cmd: list[str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run ``cmd`` in ``cwd`` with this environment minus MLFLOW_TRACKING_URI (the project's own sqlite store)."""
    return subprocess.run(cmd, cwd=cwd, env=env_with_default_store(), capture_output=True, text=True, timeout=timeout)


def ok(proc: subprocess.CompletedProcess) -> str:
    """stdout + stderr of a process that must have succeeded."""
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{' '.join(map(str, proc.args))} failed ({proc.returncode}):\n{out[-4000:]}"
    return out


def git(root: Path, *args: str) -> str:
    return ok(run(["git", *GIT_USER, *args], root))


def dvc(root: Path, *args: str, timeout: int = 600) -> str:
    """A real ``dvc`` subprocess (the venv's) that must succeed; returns its output (stdout + stderr)."""
    return ok(run([DVC, *args], root, timeout=timeout))


def dvc_json(root: Path, *args: str) -> Any:
    """The JSON a ``dvc ... --json`` command prints on stdout (warnings go to stderr)."""
    proc = run([DVC, *args, "--json"], root)
    ok(proc)
    return json.loads(proc.stdout)


def set_params(path: Path, variant: str, changes: dict[str, dict]) -> None:
    """Update ``<variant>.<group>.<key>`` values of a Kedro parameter file (comments are not kept)."""
    doc = yaml.safe_load(path.read_text())
    for group, values in changes.items():
        doc[variant][group].update(values)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def make_dvc_project(dest: Path) -> Path:
    """A copy of the project as a fresh clone has it (dvc.yaml, conf/ without local/, src/) in a new
    repository: ``git init`` + ``dvc init`` + the project's .dvc/config and plots page, tiny CycleGAN parameters,
    one commit.

    The project's default remote (``../../transfigure-dvc-remote`` from .dvc/) is ``dest/transfigure-dvc-remote``.
    """
    root = dest / "project"
    root.mkdir(parents=True)
    for name in PROJECT_FILES:
        shutil.copy(PROJECT / name, root / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "local")
    shutil.copytree(PROJECT / "conf", root / "conf", ignore=ignore)
    (root / "conf" / "local").mkdir()
    shutil.copytree(PROJECT / "src", root / "src", ignore=ignore)
    git(root, "init", "-q")
    for key, value in (("user.name", "transfigure-tests"), ("user.email", "tests@transfigure.invalid")):
        git(root, "config", key, value)  # `dvc exp run` commits experiments
    dvc(root, "init", "-q")
    shutil.copy(PROJECT / ".dvc" / "config", root / ".dvc" / "config")  # analytics off, the local default remote
    shutil.copy(PROJECT / ".dvc" / "plots.html", root / ".dvc" / "plots.html")  # the offline plots page
    set_params(root / "conf/base/parameters_train_cyclegan.yml", "cyclegan", TINY_CYCLEGAN)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "project")
    return root
