"""The evaluation every variant shares: evaluate a model on the held-out split and record it.

``evaluation_pipeline(variant)`` evaluates the model described by ``<variant>.registered_model``
(the train pipeline's register output) on ``<variant>.validated_dataset`` and writes
``<variant>.evaluation_metrics`` (``data/08_reporting/<variant>/metrics.json``) and
``<variant>.evaluation_report`` (``eval_report.png``); it logs both into the model's MLflow run
and tags the registered version. ``train_<variant>`` ends with it; ``evaluate_<variant>`` is
:func:`standalone_evaluation_pipeline`: validation, then the latest registered version (or
``<variant>.evaluation.model_version``).
"""

from __future__ import annotations

import functools

from kedro.pipeline import Pipeline, node

from transfigure.models import VARIANTS
from transfigure.pipelines.data_validation.pipeline import validation_pipeline
from transfigure.pipelines.evaluation.nodes import evaluate_model, select_model


def _check(variant: str) -> None:
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; known: {sorted(VARIANTS)}")


def evaluation_pipeline(variant: str, model: str = "registered_model") -> Pipeline:
    """Evaluate the model in dataset ``<variant>.<model>`` (a ``registered_model`` document)."""
    _check(variant)
    steps = Pipeline(
        [
            node(
                evaluate_model,
                [model, "validated_dataset", "params:data", "params:evaluation", "params:tracking"],
                ["evaluation_metrics", "evaluation_report"],
                name="evaluate",
            )
        ]
    )
    return Pipeline(steps, namespace=variant)


def standalone_evaluation_pipeline(variant: str) -> Pipeline:
    """``evaluate_<variant>``: validate the data, pick the registered version, evaluate it."""
    _check(variant)
    select = functools.update_wrapper(functools.partial(select_model, variant), select_model)
    pick = Pipeline([node(select, ["params:evaluation", "params:tracking"], "model_to_evaluate", name="select_model")])
    return (
        validation_pipeline(variant)
        + Pipeline(pick, namespace=variant)
        + evaluation_pipeline(variant, "model_to_evaluate")
    )
