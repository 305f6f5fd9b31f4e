"""Kedro project settings (https://docs.kedro.org/en/stable/kedro_project_setup/settings.html)."""

from kedro.config import OmegaConfigLoader

from transfigure._env import disable_telemetry
from transfigure.runtime.config import launch_env

disable_telemetry()


def rank_suffix() -> str:
    """``""`` on rank 0 (or without torchrun), ``".rank<N>"`` on the other ranks.

    Used in catalog.yml filepaths so that under torchrun only rank 0 writes the canonical
    files; the other ranks write their (identical) outputs beside them instead of racing
    rank 0 on the same file.
    """
    rank = launch_env().rank
    return "" if rank == 0 else f".rank{rank}"


CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # an environment (conf/local, conf/paper) overrides single keys, not whole parameter trees
    "merge_strategy": {"parameters": "soft"},
    "custom_resolvers": {"rank_suffix": rank_suffix},
}


def _configure_project_logging() -> None:
    """Use conf/base/logging.yml unless $KEDRO_LOGGING_CONFIG points elsewhere."""
    import os
    from pathlib import Path

    import yaml
    from kedro.framework.project import LOGGING

    if os.environ.get("KEDRO_LOGGING_CONFIG"):
        return
    path = Path.cwd() / "conf" / "base" / "logging.yml"
    if path.is_file():
        LOGGING.configure(yaml.safe_load(path.read_text()))


_configure_project_logging()
