"""Nodes of the promotion pipeline every variant shares: gate the registered version into ``champion``.

``promote_<variant>`` is ``validation_pipeline(variant) + promotion_pipeline(variant)`` (pipeline.py)
(the validated data lets the gate re-evaluate the champion on the candidate's split). The
promotion part takes the datasets ``<variant>.registered_model`` and ``<variant>.evaluation_metrics``
by name, so appending it to ``train_<variant>`` (after evaluation) promotes each new training.
Parameters: ``<variant>.promotion`` (``primary_metric``, ``margin``, ``force``, ``reason``, ``actor``).
"""

from __future__ import annotations

import logging
import math
from typing import Any

from transfigure.evaluation import champion_reevaluator
from transfigure.runtime.distributed import on_rank_zero
from transfigure.tracking.client import mlflow_client
from transfigure.tracking.config import PromotionConfig
from transfigure.tracking.metric_tags import METRIC_DIRECTIONS, METRIC_TAG_PREFIX
from transfigure.tracking.promotion import SPLIT_TAG, promote

logger = logging.getLogger(__name__)


def _not_promoted(reason: str, registered_model: dict[str, Any], promotion: PromotionConfig) -> dict[str, Any]:
    return {
        "promoted": False,
        "action": "refuse",
        "reason": f"refused: {reason}",
        "model": registered_model.get("name"),
        "candidate": registered_model.get("version"),
        "metric": promotion.primary_metric,
    }


def _record_missing_metrics(client: Any, name: str, version: str, metrics: dict[str, Any]) -> None:
    """Put the evaluation's numbers on the version when evaluation did not (tags ``metric.<key>``)."""
    tags = client.get_model_version(name, version).tags or {}
    for key, value in metrics.items():
        if key not in METRIC_DIRECTIONS or isinstance(value, bool):
            continue
        tag = METRIC_TAG_PREFIX + key
        if isinstance(value, (int, float)) and math.isfinite(value) and tag not in tags:
            client.set_model_version_tag(name, version, tag, str(float(value)))
    if metrics.get("split_fingerprint") and SPLIT_TAG not in tags:
        client.set_model_version_tag(name, version, SPLIT_TAG, str(metrics["split_fingerprint"]))


@on_rank_zero
def promote_registered_model(
    registered_model: dict[str, Any],
    evaluation_metrics: dict[str, Any],
    promotion: dict[str, Any],
    validated_dataset: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
    evaluation: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Gate the version in ``registered_model`` into ``champion``; returns the decision (promotion.json).

    ``evaluation_metrics`` must describe that version (its ``model_version``); otherwise the
    decision is a refusal. With the validated dataset and the data/evaluation parameters the
    gate can re-evaluate a champion that was evaluated on another split.
    Under torchrun only rank 0 decides; the others return its decision.
    """
    config = PromotionConfig.from_params(promotion)
    if not registered_model.get("registered", True) or not registered_model.get("version"):
        return _not_promoted("nothing was registered (tracking.register is false)", registered_model, config)
    name, version = str(registered_model["name"]), str(registered_model["version"])
    evaluated = str(evaluation_metrics.get("model_version", ""))
    if evaluated != version or str(evaluation_metrics.get("model_name", name)) != name:
        return _not_promoted(
            f"the evaluation metrics describe {evaluation_metrics.get('model_name')} v{evaluated or '?'}, not the "
            f"registered {name} v{version}: evaluate it first (kedro run --pipeline=evaluate_{name})",
            registered_model,
            config,
        )
    client = mlflow_client()
    _record_missing_metrics(client, name, version, evaluation_metrics)
    reevaluate = None
    if validated_dataset is not None and data is not None and evaluation is not None:
        reevaluate = champion_reevaluator(validated_dataset, data, evaluation)
    decision = promote(
        name,
        version,
        primary_metric=config.primary_metric,
        margin=config.margin,
        force=config.force,
        reason=config.reason,
        actor=config.actor,
        reevaluate=reevaluate,
        client=client,
    )
    logger.info("%s %s v%s: %s", "promoted" if decision.promoted else "not promoted", name, version, decision.reason)
    return decision.to_dict()


__all__ = ["promote_registered_model"]
