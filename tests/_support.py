"""Helpers shared by test modules (not fixtures): ``from _support import project_catalog``."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from kedro.config import OmegaConfigLoader
from kedro.io import DataCatalog

from transfigure import settings

PROJECT = Path(__file__).resolve().parents[1]


def project_catalog() -> DataCatalog:
    """The project's real conf/base/catalog.yml, resolved as `kedro run` resolves it (OmegaConfigLoader
    with the project's resolvers); relative paths point into the test's working directory."""
    loader = OmegaConfigLoader(str(PROJECT / "conf"), base_env="base", default_run_env="base",
                               custom_resolvers=settings.CONFIG_LOADER_ARGS["custom_resolvers"])
    return DataCatalog.from_config(loader["catalog"])


def project_copy(tmp_path: Path) -> Path:
    """A runnable copy of the Kedro project (pyproject, conf without local/, empty src/) for
    `kedro run` subprocesses; the package itself is installed (pip install -e)."""
    root = tmp_path / "project"
    root.mkdir()
    for name in ("pyproject.toml", ".telemetry"):
        shutil.copy(PROJECT / name, root / name)
    shutil.copytree(PROJECT / "conf", root / "conf", ignore=shutil.ignore_patterns("local"))
    (root / "conf" / "local").mkdir()
    (root / "src").mkdir()  # kedro insists on the source folder existing
    return root


def env_with_default_store() -> dict[str, str]:
    """This process's environment without MLFLOW_TRACKING_URI: a subprocess uses the project's own store."""
    return {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
