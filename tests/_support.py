"""Helpers shared by test modules (not fixtures): ``from _support import project_catalog``."""

from __future__ import annotations

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
