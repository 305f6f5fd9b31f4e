"""Project pipelines."""

from __future__ import annotations

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline


def register_pipelines() -> dict[str, Pipeline]:
    """Register the project's pipelines.

    Every package under ``transfigure.pipelines`` with a ``create_pipeline()``
    becomes a pipeline of the same name (``kedro run --pipeline=<name>``).
    ``__default__`` is ``train_cyclegan``.
    """
    pipelines = find_pipelines()  # the stage packages (training, evaluation, promotion) hold no create_pipeline
    if "train_cyclegan" in pipelines:
        pipelines["__default__"] = pipelines["train_cyclegan"]
    return pipelines
