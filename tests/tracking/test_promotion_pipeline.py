"""The issue's workflow on the default data: two trainings with different settings, both evaluated
(real offline FID), the better promoted by the Kedro pipeline and the worse refused with a reason,
rollback, all recorded in MLflow; plus re-evaluation of a champion on the candidate's split."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kedro.framework.project import configure_project, pipelines
from kedro.runner import SequentialRunner
from mlflow import MlflowClient

from _support import project_catalog, tiny_variant_params
from transfigure.cli import main
from transfigure.models import VARIANTS
from transfigure.pipelines.data_validation.nodes import prepare_dataset
from transfigure.pipelines.promotion import promotion_pipeline
from transfigure.pipelines.training import training_pipeline
from transfigure.tracking.promotion import promote, read_history


def run(pipeline, params: dict, **datasets) -> dict:
    """Run ``pipeline`` on the project's catalog with ``params`` as ``params:cyclegan.*`` (and given inputs)."""
    catalog = project_catalog()
    for key, value in params.items():
        catalog[f"params:cyclegan.{key}"] = value
    for key, value in datasets.items():
        catalog[f"cyclegan.{key}"] = value
    SequentialRunner().run(pipeline, catalog)
    return catalog


def test_promote_pipelines_are_registered_for_every_variant():
    configure_project("transfigure")
    for variant in VARIANTS:
        nodes = pipelines[f"promote_{variant}"].nodes
        promote_node = next(n for n in nodes if n.name == f"{variant}.promote")
        assert {
            f"{variant}.registered_model",
            f"{variant}.evaluation_metrics",
            f"params:{variant}.promotion",
            f"{variant}.validated_dataset",
        } <= set(promote_node.inputs)
        assert promote_node.outputs == [f"{variant}.promotion"]
        assert nodes.index(promote_node) > [n.name for n in nodes].index(f"{variant}.require_valid")
    # it composes with the training pipeline by dataset names (as train_<variant> + promotion)
    composed = pipelines["train_cyclegan"] + promotion_pipeline("cyclegan")
    assert "cyclegan.promotion" in composed.outputs() and "cyclegan.evaluation_metrics" not in composed.inputs()


@pytest.mark.slow
def test_two_trainings_better_promoted_worse_refused_rollback(mlflow_uri, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("USER", "tester")
    runs = []
    for i, (ngf, steps) in enumerate(((4, 2), (8, 4))):  # two settings: width and training length
        params = tiny_variant_params("cyclegan", tmp_path / f"models{i}", max_steps=steps, ngf=ngf, ndf=ngf)
        params["data"]["path"] = None  # the embedded default dataset (day2night), built under data/01_raw
        # train_cyclegan ends with the gate itself (tests/pipelines/test_train_cyclegan.py); here the gate runs
        # separately so that the worse version can be gated first, whichever of the two it turns out to be
        catalog = run(training_pipeline("cyclegan") - promotion_pipeline("cyclegan"), params)
        runs.append(
            {
                "params": params,
                "registered": catalog["cyclegan.registered_model"].load(),
                "metrics": catalog["cyclegan.evaluation_metrics"].load(),
            }
        )
    (a, b) = runs
    assert [r["registered"]["version"] for r in runs] == ["1", "2"]
    assert a["metrics"]["split_fingerprint"] == b["metrics"]["split_fingerprint"]  # the same held-out split
    assert a["metrics"]["fid"] != b["metrics"]["fid"]
    worse, better = sorted(runs, key=lambda r: r["metrics"]["fid"], reverse=True)

    validated = prepare_dataset(a["params"]["data"])  # what the validation pipeline hands on: root + format

    def gate(r: dict) -> dict:
        catalog = run(
            promotion_pipeline("cyclegan"),
            r["params"],
            registered_model=r["registered"],
            evaluation_metrics=r["metrics"],
            validated_dataset=validated,
        )
        decision = catalog["cyclegan.promotion"].load()  # data/08_reporting/cyclegan/promotion.json
        assert decision == json.loads(Path("data/08_reporting/cyclegan/promotion.json").read_text())
        return decision

    first = gate(worse)
    assert first["promoted"] and first["reason"].startswith("no champion yet")
    second = gate(better)
    assert second["promoted"] and second["action"] == "promote"
    assert f"beats champion v{worse['registered']['version']}" in second["reason"]
    third = gate(worse)  # the worse one again: refused, with the numbers
    fid_w, fid_b = worse["metrics"]["fid"], better["metrics"]["fid"]
    assert not third["promoted"] and third["action"] == "refuse"
    assert third["candidate_value"] == pytest.approx(fid_w) and third["champion_value"] == pytest.approx(fid_b)
    assert "is not better than champion v" in third["reason"]

    client = MlflowClient(mlflow_uri)
    aliases = {k: str(v) for k, v in client.get_registered_model("cyclegan").aliases.items()}
    assert aliases == {"champion": better["registered"]["version"], "challenger": worse["registered"]["version"]}
    worse_run = client.get_run(worse["registered"]["run_id"])
    assert worse_run.data.tags["promotion.decision"] == "refuse"
    assert len(client.list_artifacts(worse_run.info.run_id, "promotion")) == 2  # promote, then refuse

    # rollback by CLI restores the previous champion and records who/why
    assert main(["promote", "cyclegan", "--rollback", "--reason", "night scenes regressed"]) == 0
    assert f"to v{worse['registered']['version']}" in capsys.readouterr().out
    assert str(client.get_registered_model("cyclegan").aliases["champion"]) == worse["registered"]["version"]
    assert [h["action"] for h in read_history(client, "cyclegan")] == ["promote", "promote", "rollback"]

    # stale metrics (they describe another version) are refused, not promoted
    stale = run(
        promotion_pipeline("cyclegan"),
        better["params"],
        registered_model=better["registered"],
        evaluation_metrics=worse["metrics"],
        validated_dataset=validated,
    )["cyclegan.promotion"].load()
    assert not stale["promoted"] and "evaluate it first" in stale["reason"]

    # a champion evaluated on another split is re-evaluated on the candidate's split (real evaluation)
    champ = worse["registered"]["version"]
    client.set_model_version_tag("cyclegan", champ, "eval_split_fingerprint", "an-older-split")
    without = promote("cyclegan", better["registered"]["version"])
    assert not without.promoted and "evaluated on another split" in without.reason
    decision = gate(better)
    assert decision["champion_reevaluated"] and decision["promoted"]
    assert decision["champion_value"] == pytest.approx(fid_w)  # same model, same split: same number
    assert (
        client.get_model_version("cyclegan", champ).tags["eval_split_fingerprint"] == a["metrics"]["split_fingerprint"]
    )
