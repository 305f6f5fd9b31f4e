"""Metric-gated promotion in the MLflow model registry, with aliases (never the deprecated stages).

A registered version is a *candidate*; the alias ``champion`` marks the version in production
(``models:/<name>@champion``: what ``load_translator`` and the BentoML service load). The gate:

1. reads the candidate's evaluation (version tags ``metric.<key>``, ``eval_split_fingerprint``,
   written by :mod:`transfigure.evaluation`);
2. compares it with the current champion on the SAME evaluation split. When the champion was
   evaluated on another split and the caller passes a ``reevaluate`` callable (the promotion
   pipeline builds one from its validated data with
   :func:`transfigure.evaluation.champion_reevaluator`), the champion is re-evaluated on the
   candidate's split; otherwise the gate refuses and says so. Taking the re-evaluation as a
   callable keeps this package free of evaluation, which records through it;
3. moves ``champion`` only if the candidate wins on the primary metric, direction-aware
   (:data:`transfigure.tracking.metric_tags.METRIC_DIRECTIONS`), by more than ``margin``. A
   loser gets the alias ``challenger``.

Every decision is recorded: on the candidate version (``promotion.*`` tags, plus ``promoted_by``
and ``promoted_at`` when it becomes champion), on its MLflow run (tag ``promotion.decision`` and a
JSON artifact under ``promotion/``) and, for changes of champion, in the registered model's tag
``champion_history`` (a JSON list), from which :func:`rollback` restores the previous champion.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from transfigure.tracking.client import mlflow_client
from transfigure.tracking.config import default_actor
from transfigure.tracking.metric_tags import METRIC_DIRECTIONS, METRIC_TAG_PREFIX

logger = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
#: registered-model tag holding the champion history (JSON list, oldest first)
HISTORY_TAG = "champion_history"
#: registered-model tag values are VARCHAR(5000) in MLflow's SQL stores: the oldest entries go first
HISTORY_MAX_CHARS = 5000
SPLIT_TAG = "eval_split_fingerprint"
#: besides the split, evaluations are comparable only with the same image size and FID protocol
CONDITION_TAGS = {"eval_image_size": "image size", "eval_protocol": "evaluation protocol"}

#: decision kinds (``PromotionDecision.action``)
PROMOTE, FORCE, REFUSE, ROLLBACK, UNCHANGED = "promote", "force", "refuse", "rollback", "unchanged"

#: ``reevaluate(name, version, split_fingerprint)``: evaluates that version on the caller's data,
#: records the evaluation when it ran on ``split_fingerprint``, and returns the version tags the
#: evaluation describes itself with (``metric.<key>``, ``eval_split_fingerprint``,
#: ``eval_image_size``, ``eval_protocol``)
Reevaluate = Callable[[str, str, str], Mapping[str, str]]


class PromotionError(ValueError):
    """A request that cannot be decided at all (unknown model or version, bad arguments)."""


@dataclass
class PromotionDecision:
    """The outcome of :func:`promote` or :func:`rollback` (JSON-able with :meth:`to_dict`).

    ``promoted`` is true when ``candidate`` holds the ``champion`` alias afterwards (promoted,
    forced, restored by a rollback, or already champion); ``action`` says which.
    """

    promoted: bool
    reason: str
    candidate: str | None
    previous_champion: str | None
    metric: str
    candidate_value: float | None = None
    champion_value: float | None = None
    margin: float = 0.0
    direction: str | None = None
    action: str = REFUSE
    model: str = ""
    actor: str = ""
    at: str = ""
    split_fingerprint: str | None = None
    champion_reevaluated: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Comparison:
    """What the gate found, before anything is changed."""

    wins: bool
    reason: str
    candidate_value: float | None = None
    champion_value: float | None = None
    split_fingerprint: str | None = None
    champion_reevaluated: bool = False
    compared: bool = False  # both values known, on one split: a loss makes the candidate the challenger


# -- small helpers ---------------------------------------------------------------------------------
def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def fmt(value: float) -> str:
    """``41.2`` -> ``"41.2"``, ``38`` -> ``"38.0"``, ``0.000123456`` -> ``"0.0001235"``."""
    text = f"{value:.4g}"
    return text if any(c in text for c in ".en") else f"{text}.0"


def metric_direction(metric: str) -> str:
    """``"min"`` or ``"max"`` for a metric key of :mod:`transfigure.evaluation`."""
    if metric not in METRIC_DIRECTIONS:
        raise PromotionError(f"unknown metric {metric!r}: use one of {', '.join(sorted(METRIC_DIRECTIONS))}")
    direction = METRIC_DIRECTIONS[metric]
    if direction not in ("min", "max"):
        raise PromotionError(f"metric {metric!r} has direction {direction!r}, expected 'min' or 'max'")
    return direction


def metric_value(mv: ModelVersion, metric: str) -> float | None:
    """The version's evaluated ``metric`` (tag ``metric.<metric>``), None when absent or not a finite number."""
    return _tagged_value(mv.tags or {}, metric)


def _tagged_value(tags: Mapping[str, str], metric: str) -> float | None:
    raw = tags.get(METRIC_TAG_PREFIX + metric)
    try:
        value = float(raw) if raw is not None else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


def evaluated_metrics(mv: ModelVersion) -> list[str]:
    return sorted(k[len(METRIC_TAG_PREFIX) :] for k in (mv.tags or {}) if k.startswith(METRIC_TAG_PREFIX))


def get_version(client: MlflowClient, name: str, version: str | int) -> ModelVersion:
    """The registered version, or a :class:`PromotionError` naming what exists."""
    try:
        client.get_registered_model(name)
    except MlflowException as exc:
        known = sorted(m.name for m in client.search_registered_models())
        raise PromotionError(
            f"no registered model {name!r} in {client._registry_uri}; known: {', '.join(known) or 'none'} "
            f"(train one with `kedro run --pipeline=train_{name}`)"
        ) from exc
    try:
        return client.get_model_version(name, str(version))
    except MlflowException as exc:
        versions = sorted(int(v.version) for v in client.search_model_versions(f"name='{name}'"))
        raise PromotionError(
            f"model {name!r} has no version {version}; versions: {', '.join(map(str, versions)) or 'none'}"
        ) from exc


def alias_version(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def read_history(client: MlflowClient, name: str) -> list[dict[str, Any]]:
    """The champion history of ``name`` (oldest first); empty when none was recorded."""
    raw = client.get_registered_model(name).tags.get(HISTORY_TAG)
    if not raw:
        return []
    try:
        history = json.loads(raw)
    except json.JSONDecodeError:
        logger.warning("tag %s of model %s is not JSON; starting a new history", HISTORY_TAG, name)
        return []
    return history if isinstance(history, list) else []


def _write_history(client: MlflowClient, name: str, history: list[dict[str, Any]]) -> None:
    while len(history) > 1 and len(json.dumps(history, separators=(",", ":"))) > HISTORY_MAX_CHARS:
        history = history[1:]
    client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(history, separators=(",", ":")))


def champion_stack(history: list[dict[str, Any]]) -> list[str]:
    """The chain of champions the history implies (oldest first): promotions push, rollbacks pop back."""
    stack: list[str] = []
    for entry in history:
        version, action = str(entry.get("version")), entry.get("action")
        if action in (PROMOTE, FORCE):
            stack.append(version)
        elif action == ROLLBACK:
            while stack and stack[-1] != version:
                stack.pop()
            if not stack:
                stack.append(version)
    return stack


# -- the gate --------------------------------------------------------------------------------------
def _condition_mismatch(a: Mapping[str, str], b: Mapping[str, str]) -> str | None:
    """Which evaluation condition (image size, protocol) two versions' tags disagree on, if any."""
    for tag, what in CONDITION_TAGS.items():
        if a.get(tag) and b.get(tag) and a[tag] != b[tag]:
            return f"{what} ({b[tag]} vs {a[tag]})"
    return None


def _reevaluate_champion(
    name: str,
    champion: ModelVersion,
    metric: str,
    split: str,
    reevaluate: Reevaluate,
    candidate_tags: Mapping[str, str],
) -> tuple[float | None, str | None]:
    """Evaluate the champion on the candidate's split: (value, refusal reason or None).

    The new evaluation is recorded like any other (the champion's run and version tags), so the
    champion's ``metric.*`` tags then describe the candidate's split.
    """
    logger.info("re-evaluating champion %s v%s on the candidate's split %s", name, champion.version, split[:12])
    tags = reevaluate(name, str(champion.version), split)
    got = str(tags.get(SPLIT_TAG, ""))
    if got != split:
        return None, (
            f"the evaluation context's split ({got[:12] or 'unknown'}) is not the candidate's "
            f"({split[:12]}): cannot compare on the same split"
        )
    mismatch = _condition_mismatch(candidate_tags, tags)
    if mismatch:
        return None, f"re-evaluating champion v{champion.version} used another {mismatch} than the candidate's"
    value = _tagged_value(tags, metric)
    if value is None:
        return None, f"re-evaluating champion v{champion.version} gave no finite {metric}"
    return value, None


def _compare(
    name: str,
    candidate: ModelVersion,
    champion: ModelVersion | None,
    metric: str,
    direction: str,
    margin: float,
    reevaluate: Reevaluate | None,
) -> _Comparison:
    cand_value = metric_value(candidate, metric)
    split = (candidate.tags or {}).get(SPLIT_TAG) or None
    if cand_value is None:
        have = evaluated_metrics(candidate)
        return _Comparison(
            False,
            (
                f"version {candidate.version} has no evaluated {metric} (tag {METRIC_TAG_PREFIX}{metric}"
                f"{'; it has ' + ', '.join(have) if have else ''}): evaluate it first "
                f"(kedro run --pipeline=evaluate_{name})"
            ),
            split_fingerprint=split,
        )
    if champion is None:
        return _Comparison(
            True,
            f"no champion yet: version {candidate.version} becomes champion with {metric} {fmt(cand_value)}",
            cand_value,
            split_fingerprint=split,
        )
    if split is None:
        return _Comparison(
            False,
            f"version {candidate.version} records no evaluation split ({SPLIT_TAG}): cannot "
            f"compare it with champion v{champion.version} on the same split",
            cand_value,
        )
    champ_split = (champion.tags or {}).get(SPLIT_TAG)
    mismatch = _condition_mismatch(candidate.tags or {}, champion.tags or {})
    same = champ_split == split and mismatch is None
    champ_value = metric_value(champion, metric) if same else None
    reevaluated = False
    if champ_value is None:
        if same:
            why = f"champion v{champion.version} has no {metric} on this split"
        elif champ_split != split:
            why = (
                f"champion v{champion.version} was evaluated on another split "
                f"({(champ_split or 'none')[:12]} vs the candidate's {split[:12]})"
            )
        else:
            why = f"champion v{champion.version} was evaluated with another {mismatch}"
        if reevaluate is None:
            return _Comparison(
                False,
                f"{why}; re-evaluate it on the candidate's split (the promote pipeline "
                "does, given the data) before promoting",
                cand_value,
                split_fingerprint=split,
            )
        champ_value, refusal = _reevaluate_champion(name, champion, metric, split, reevaluate, candidate.tags or {})
        if refusal:
            return _Comparison(False, f"{why}; {refusal}", cand_value, split_fingerprint=split)
        reevaluated = True
    assert champ_value is not None
    gain = champ_value - cand_value if direction == "min" else cand_value - champ_value
    common = dict(
        candidate_value=cand_value,
        champion_value=champ_value,
        split_fingerprint=split,
        champion_reevaluated=reevaluated,
        compared=True,
    )
    against = f"champion v{champion.version}'s {fmt(champ_value)}"
    if gain > margin:
        return _Comparison(
            True,
            f"{metric} {fmt(cand_value)} beats {against} by {fmt(gain)} "
            f"(margin {fmt(margin)}, {'lower' if direction == 'min' else 'higher'} is better)",
            **common,
        )
    return _Comparison(
        False,
        f"{metric} {fmt(cand_value)} is not better than {against} by margin {fmt(margin)} "
        f"({'lower' if direction == 'min' else 'higher'} is better)",
        **common,
    )


def promote(
    name: str,
    version: str | int,
    *,
    primary_metric: str = "fid",
    margin: float = 0.0,
    force: bool = False,
    reason: str | None = None,
    actor: str | None = None,
    reevaluate: Reevaluate | None = None,
    client: MlflowClient | None = None,
) -> PromotionDecision:
    """Promote ``name`` version ``version`` to ``champion`` if it beats the current champion.

    ``force=True`` promotes regardless (``reason`` required) and is recorded as forced, with what
    the gate would have said. ``reevaluate`` lets the gate re-evaluate a champion that was
    evaluated on another split (see :data:`Reevaluate`). Raises :class:`PromotionError` for unknown models, versions or
    metrics and bad arguments; a refusal is a decision (``promoted=False``) with its reason.
    """
    client = client or mlflow_client()
    margin = float(margin)
    if not math.isfinite(margin) or margin < 0:
        raise PromotionError(f"margin must be a finite number >= 0, got {margin}")
    why = (reason or "").strip()
    if force and not why:
        raise PromotionError("a forced promotion needs a reason (promote(..., force=True, reason='why'))")
    direction = metric_direction(primary_metric)
    candidate = get_version(client, name, version)
    champion = alias_version(client, name, CHAMPION)
    decision = PromotionDecision(
        promoted=False,
        reason="",
        candidate=str(candidate.version),
        previous_champion=str(champion.version) if champion else None,
        metric=primary_metric,
        margin=margin,
        direction=direction,
        model=name,
        actor=actor or default_actor(),
        at=utc_now(),
    )
    if champion is not None and champion.version == candidate.version:
        decision.promoted, decision.action = True, UNCHANGED
        decision.candidate_value = metric_value(candidate, primary_metric)
        decision.reason = f"version {candidate.version} is already the champion"
        return decision
    cmp = _compare(name, candidate, champion, primary_metric, direction, margin, reevaluate)
    decision.candidate_value, decision.champion_value = cmp.candidate_value, cmp.champion_value
    decision.split_fingerprint, decision.champion_reevaluated = cmp.split_fingerprint, cmp.champion_reevaluated
    if force:
        decision.promoted, decision.action = True, FORCE
        decision.reason = f"forced by {decision.actor}: {why} (the gate said: {cmp.reason})"
    elif cmp.wins:
        decision.promoted, decision.action, decision.reason = True, PROMOTE, cmp.reason
    else:
        decision.action = REFUSE
        decision.reason = f"refused: {cmp.reason}"
        if why:
            decision.extra["note"] = why
    _apply(client, decision, challenger=cmp.compared and not decision.promoted)
    logger.info("%s v%s: %s", name, candidate.version, decision.reason)
    return decision


def _decision_tags(decision: PromotionDecision) -> dict[str, str]:
    tags = {
        "promotion.decision": decision.action,
        "promotion.reason": decision.reason,
        "promotion.actor": decision.actor,
        "promotion.at": decision.at,
        "promotion.metric": decision.metric,
        "promotion.margin": str(decision.margin),
        "promotion.previous_champion": decision.previous_champion or "",
    }
    if decision.champion_value is not None:
        tags["promotion.champion_value"] = str(decision.champion_value)
    return tags


def _apply(client: MlflowClient, decision: PromotionDecision, *, challenger: bool) -> None:
    """Move the aliases the decision calls for and record it (version tags, history, run)."""
    name, version = decision.model, str(decision.candidate)
    if decision.promoted:
        client.set_registered_model_alias(name, CHAMPION, version)
        held = alias_version(client, name, CHALLENGER)
        if held is not None and str(held.version) == version:
            client.delete_registered_model_alias(name, CHALLENGER)
        for key, value in (("promoted_by", decision.actor), ("promoted_at", decision.at)):
            client.set_model_version_tag(name, version, key, value)
        if decision.previous_champion:
            client.set_model_version_tag(name, decision.previous_champion, "superseded_by", version)
            client.set_model_version_tag(name, decision.previous_champion, "superseded_at", decision.at)
        history = read_history(client, name)
        history.append(
            {
                "version": version,
                "action": decision.action,
                "previous": decision.previous_champion,
                "by": decision.actor,
                "at": decision.at,
                "metric": decision.metric,
                "value": decision.candidate_value,
            }
        )
        _write_history(client, name, history)
    elif challenger:
        client.set_registered_model_alias(name, CHALLENGER, version)
    for key, value in _decision_tags(decision).items():
        client.set_model_version_tag(name, version, key, value)
    _log_to_run(client, client.get_model_version(name, version).run_id, decision)


def _log_to_run(client: MlflowClient, run_id: str | None, decision: PromotionDecision) -> None:
    """Tag the version's training run with the decision and keep it as ``promotion/<time>_<action>.json``."""
    if not run_id:
        return
    stamp = decision.at.replace(":", "").replace("-", "")
    try:
        client.set_tag(run_id, "promotion.decision", decision.action)
        client.log_dict(run_id, decision.to_dict(), f"promotion/{stamp}_{decision.action}_v{decision.candidate}.json")
    except MlflowException as exc:  # a deleted run must not undo a registry decision
        logger.warning("could not record the promotion decision on run %s: %s", run_id, exc)


# -- rollback and status ---------------------------------------------------------------------------
def rollback(
    name: str, actor: str | None = None, reason: str | None = None, *, client: MlflowClient | None = None
) -> PromotionDecision:
    """Give ``champion`` back to the version that held it before the current one (per the history)."""
    client = client or mlflow_client()
    why = (reason or "").strip()
    if not why:
        raise PromotionError("a rollback needs a reason (rollback(name, actor, reason='why'))")
    try:
        client.get_registered_model(name)
    except MlflowException as exc:
        raise PromotionError(f"no registered model {name!r} in {client._registry_uri}") from exc
    actor = actor or default_actor()
    current = alias_version(client, name, CHAMPION)
    decision = PromotionDecision(
        promoted=False,
        reason="",
        candidate=None,
        previous_champion=str(current.version) if current else None,
        metric="",
        action=REFUSE,
        model=name,
        actor=actor,
        at=utc_now(),
    )
    if current is None:
        decision.reason = f"refused: model {name!r} has no champion to roll back"
        return decision
    stack = champion_stack(read_history(client, name))
    while stack and stack[-1] == str(current.version):
        stack.pop()
    if not stack:
        decision.reason = f"refused: the champion history of {name!r} records no champion before v{current.version}"
        return decision
    target = stack[-1]
    try:
        client.get_model_version(name, target)
    except MlflowException:
        decision.reason = f"refused: the previous champion v{target} no longer exists in the registry"
        return decision
    decision.promoted, decision.action, decision.candidate = True, ROLLBACK, target
    decision.reason = f"rolled back by {actor} from v{current.version} to v{target}: {why}"
    client.set_model_version_tag(name, str(current.version), "rolled_back_by", actor)
    client.set_model_version_tag(name, str(current.version), "rolled_back_at", decision.at)
    client.set_model_version_tag(name, str(current.version), "rolled_back_reason", why)
    _apply(client, decision, challenger=False)
    _log_to_run(client, current.run_id, decision)
    logger.info("%s: %s", name, decision.reason)
    return decision


def _version_summary(mv: ModelVersion | None) -> dict[str, Any] | None:
    if mv is None:
        return None
    tags = mv.tags or {}
    return {
        "version": str(mv.version),
        "run_id": mv.run_id,
        "metrics": {k: tags[METRIC_TAG_PREFIX + k] for k in evaluated_metrics(mv)},
        "eval_split_fingerprint": tags.get(SPLIT_TAG),
        **{k: tags[k] for k in ("promoted_by", "promoted_at", "promotion.decision", "promotion.reason") if k in tags},
    }


def promotion_status(name: str, *, client: MlflowClient | None = None) -> dict[str, Any]:
    """Champion, challenger and the champion history of ``name`` (JSON-able)."""
    client = client or mlflow_client()
    try:
        model = client.get_registered_model(name)
    except MlflowException as exc:
        raise PromotionError(f"no registered model {name!r} in {client._registry_uri}") from exc
    versions = sorted(client.search_model_versions(f"name='{name}'"), key=lambda v: int(v.version))
    return {
        "model": name,
        "champion": _version_summary(alias_version(client, name, CHAMPION)),
        "challenger": _version_summary(alias_version(client, name, CHALLENGER)),
        "aliases": {k: str(v) for k, v in (model.aliases or {}).items()},
        "history": read_history(client, name),
        "versions": [_version_summary(v) for v in versions],
    }


__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "HISTORY_TAG",
    "PromotionDecision",
    "PromotionError",
    "Reevaluate",
    "champion_stack",
    "promote",
    "promotion_status",
    "read_history",
    "rollback",
]
