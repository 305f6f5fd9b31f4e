"""The promotion gate against a real MLflow sqlite store: aliases, tags, history, rollback.

One tiny CycleGAN is trained per module (real engine, real MLflow run and pyfunc model); each
test registers versions of it under its own model name and gives them evaluation tags by hand
(``metric.<key>``, ``eval_split_fingerprint``), except where the real evaluation runs.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from PIL import Image

import transfigure
from _support import add_evaluated_version, default_dataset, git_checkout, tiny_variant_params, train_and_register
from transfigure.provenance import detect_watermark
from transfigure.tracking.promotion import (
    CHALLENGER,
    CHAMPION,
    PromotionError,
    champion_stack,
    promote,
    promotion_status,
    read_history,
    rollback,
)

SPLIT = "split-fingerprint-1"
pytestmark = pytest.mark.slow  # the module trains a tiny model once


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A sqlite store in a git checkout with one tiny trained + registered CycleGAN (``cyclegan`` v1)."""
    root = tmp_path_factory.mktemp("promotion")
    commit = git_checkout(root)
    with pytest.MonkeyPatch.context() as mp:
        uri = f"sqlite:///{root / 'mlruns.db'}"
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.setenv("USER", "tester")
        mp.chdir(root)
        dataset = default_dataset(root / "data")
        params = tiny_variant_params("cyclegan", root / "models")
        registered = train_and_register(params, dataset)
        yield {
            "uri": uri,
            "client": MlflowClient(uri),
            "registered": registered,
            "dataset": dataset,
            "params": params,
            "commit": commit,
            "root": root,
        }


def add_version(store: dict, name: str, split: str | None = SPLIT, **metrics: float) -> str:
    return add_evaluated_version(store["client"], name, store["registered"], split, **metrics)


def alias(client: MlflowClient, name: str, which: str) -> str | None:
    value = client.get_registered_model(name).aliases.get(which)
    return None if value is None else str(value)


def test_registered_version_carries_run_git_and_parameters(store):
    mv = store["client"].get_model_version("cyclegan", store["registered"]["version"])
    run = store["client"].get_run(store["registered"]["run_id"])
    assert mv.tags["run_id"] == run.info.run_id and mv.tags["git_commit"] == store["commit"]
    assert mv.tags["param.model.ngf"] == "4" and mv.tags["param.training.max_steps"] == "2"
    assert mv.tags["param.data.crop_size"] == "32" and mv.tags["variant"] == "cyclegan"
    from transfigure.tracking.registry import params_digest

    assert mv.tags["params_digest"] == params_digest(run.data.params) and len(mv.tags["params_digest"]) == 64


def test_first_candidate_becomes_champion_and_the_decision_is_recorded(store):
    client, name = store["client"], "first"
    v1 = add_version(store, name, fid=40.0)
    decision = promote(name, v1)
    assert decision.promoted and decision.action == "promote" and decision.previous_champion is None
    assert decision.reason.startswith("no champion yet") and decision.candidate_value == 40.0
    assert alias(client, name, CHAMPION) == v1
    tags = client.get_model_version(name, v1).tags
    assert tags["promoted_by"] == "tester" and tags["promotion.decision"] == "promote"
    assert dt.datetime.fromisoformat(tags["promoted_at"]).tzinfo is not None  # UTC ISO 8601
    history = read_history(client, name)
    assert [(h["version"], h["action"], h["previous"], h["by"]) for h in history] == [(v1, "promote", None, "tester")]
    # the candidate's training run has the decision as a tag and a JSON artifact
    run_id = store["registered"]["run_id"]
    assert client.get_run(run_id).data.tags["promotion.decision"] == "promote"
    logged = [a.path for a in client.list_artifacts(run_id, "promotion")]
    doc = json.loads(Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=logged[-1])).read_text())
    assert doc["model"] == name and doc["promoted"] is True
    json.dumps(decision.to_dict())  # JSON-able


def test_better_candidate_promoted_worse_refused_with_reason(store):
    client, name = store["client"], "gate"
    v1, v2, v3 = (
        add_version(store, name, fid=40.0),
        add_version(store, name, fid=38.0),
        add_version(store, name, fid=41.2),
    )
    promote(name, v1)
    better = promote(name, v2)
    assert better.promoted and better.previous_champion == v1 and better.champion_value == 40.0
    assert better.reason == f"fid 38.0 beats champion v{v1}'s 40.0 by 2.0 (margin 0.0, lower is better)"
    assert alias(client, name, CHAMPION) == v2
    assert client.get_model_version(name, v1).tags["superseded_by"] == v2
    worse = promote(name, v3, actor="alice")
    assert not worse.promoted and worse.action == "refuse"
    assert worse.reason == f"refused: fid 41.2 is not better than champion v{v2}'s 38.0 by margin 0.0 (lower is better)"
    assert alias(client, name, CHAMPION) == v2 and alias(client, name, CHALLENGER) == v3
    tags = client.get_model_version(name, v3).tags
    assert tags["promotion.decision"] == "refuse" and tags["promotion.actor"] == "alice" and "promoted_by" not in tags
    assert tags["promotion.previous_champion"] == v2 and "41.2 is not better" in tags["promotion.reason"]
    # the challenger that later wins loses the challenger alias
    v4 = add_version(store, name, fid=30.0)
    promote(name, v4)
    assert alias(client, name, CHAMPION) == v4 and alias(client, name, CHALLENGER) == v3
    assert [h["version"] for h in read_history(client, name)] == [v1, v2, v4]


def test_margin_must_be_exceeded(store):
    client, name = store["client"], "margin"
    v1, v2, v3 = (
        add_version(store, name, fid=38.0),
        add_version(store, name, fid=37.8),
        add_version(store, name, fid=37.4),
    )
    promote(name, v1)
    small = promote(name, v2, margin=0.5)
    assert (
        not small.promoted and "fid 37.8 is not better than champion" in small.reason and "margin 0.5" in small.reason
    )
    big = promote(name, v3, margin=0.5)
    assert big.promoted and big.margin == 0.5 and alias(client, name, CHAMPION) == v3
    equal = add_version(store, name, fid=37.4)
    assert not promote(name, equal).promoted  # a tie does not move the champion
    with pytest.raises(PromotionError, match="margin must be"):
        promote(name, equal, margin=-1)


def test_direction_aware_psnr_higher_wins(store):
    client, name = store["client"], "psnr"
    v1 = add_version(store, name, psnr=20.0, fid=50.0)
    v2 = add_version(store, name, psnr=22.5, fid=60.0)  # better PSNR, worse FID
    v3 = add_version(store, name, psnr=21.0, fid=10.0)
    promote(name, v1, primary_metric="psnr")
    win = promote(name, v2, primary_metric="psnr")
    assert win.promoted and win.direction == "max" and "higher is better" in win.reason
    lose = promote(name, v3, primary_metric="psnr")
    assert not lose.promoted and "psnr 21.0 is not better than champion" in lose.reason
    assert promote(name, v3, primary_metric="fid").promoted  # by FID it wins
    assert alias(client, name, CHAMPION) == v3


def test_missing_metric_or_split_is_refused_and_unknown_metric_is_an_error(store):
    client, name = store["client"], "missing"
    v1 = add_version(store, name, fid=40.0)
    promote(name, v1)
    no_fid = add_version(store, name, kid=0.1)
    decision = promote(name, no_fid)
    assert not decision.promoted and "has no evaluated fid" in decision.reason and "it has kid" in decision.reason
    assert alias(client, name, CHALLENGER) is None  # not compared, so not a challenger
    no_split = add_version(store, name, split=None, fid=1.0)
    assert "records no evaluation split" in promote(name, no_split).reason
    other_split = add_version(store, name, split="another-split", fid=1.0)
    refused = promote(name, other_split)
    assert not refused.promoted and "evaluated on another split" in refused.reason
    assert alias(client, name, CHAMPION) == v1
    # same files, but evaluated at another image size: not comparable either
    client.set_model_version_tag(name, v1, "eval_image_size", "64")
    at_32 = add_version(store, name, fid=1.0)
    client.set_model_version_tag(name, at_32, "eval_image_size", "32")
    other_size = promote(name, at_32)
    assert not other_size.promoted and "evaluated with another image size (64 vs 32)" in other_size.reason
    with pytest.raises(PromotionError, match="unknown metric 'fidd'"):
        promote(name, v1, primary_metric="fidd")


def test_unknown_model_or_version_is_an_error(store):
    add_version(store, "known", fid=1.0)
    with pytest.raises(PromotionError, match="no registered model 'nope'"):
        promote("nope", 1)
    with pytest.raises(PromotionError, match="has no version 99; versions: 1"):
        promote("known", 99)


def test_force_needs_a_reason_and_is_recorded(store):
    client, name = store["client"], "force"
    v1, v2 = add_version(store, name, fid=30.0), add_version(store, name, fid=45.0)
    promote(name, v1)
    with pytest.raises(PromotionError, match="needs a reason"):
        promote(name, v2, force=True)
    with pytest.raises(PromotionError, match="needs a reason"):
        promote(name, v2, force=True, reason="  ")
    forced = promote(name, v2, force=True, reason="hotfix for issue 12", actor="alice")
    assert forced.promoted and forced.action == "force" and alias(client, name, CHAMPION) == v2
    assert forced.reason.startswith("forced by alice: hotfix for issue 12 (the gate said: fid 45.0 is not better")
    tags = client.get_model_version(name, v2).tags
    assert tags["promotion.decision"] == "force" and tags["promoted_by"] == "alice"
    assert read_history(client, name)[-1]["action"] == "force"


def test_rollback_restores_the_previous_champion_and_records_it(store):
    client, name = store["client"], "rollback"
    v1, v2, v3 = (add_version(store, name, fid=f) for f in (40.0, 35.0, 30.0))
    for v in (v1, v2, v3):
        assert promote(name, v).promoted
    with pytest.raises(PromotionError, match="needs a reason"):
        rollback(name, "bob", None)
    back = rollback(name, "bob", "artefacts on night scenes")
    assert back.promoted and back.action == "rollback" and back.candidate == v2 and back.previous_champion == v3
    assert alias(client, name, CHAMPION) == v2
    bad = client.get_model_version(name, v3).tags
    assert bad["rolled_back_by"] == "bob" and bad["rolled_back_reason"] == "artefacts on night scenes"
    assert client.get_model_version(name, v2).tags["promotion.decision"] == "rollback"
    assert read_history(client, name)[-1] == {
        **read_history(client, name)[-1],
        "version": v2,
        "action": "rollback",
        "previous": v3,
        "by": "bob",
    }
    assert rollback(name, "bob", "again").candidate == v1  # one more step back
    refused = rollback(name, "bob", "and again")
    assert not refused.promoted and "records no champion before" in refused.reason
    assert alias(client, name, CHAMPION) == v1
    # a new promotion after rollbacks goes on from the restored champion
    assert promote(name, v2).promoted and rollback(name, "bob", "undo").candidate == v1


def test_champion_stack_follows_promotions_and_rollbacks():
    h = [
        {"version": "1", "action": "promote"},
        {"version": "2", "action": "promote"},
        {"version": "3", "action": "force"},
        {"version": "2", "action": "rollback"},
        {"version": "4", "action": "promote"},
    ]
    assert champion_stack(h) == ["1", "2", "4"]
    assert champion_stack([]) == []


def test_already_champion_is_unchanged(store):
    name = "again"
    v1 = add_version(store, name, fid=3.0)
    promote(name, v1)
    again = promote(name, v1)
    assert again.promoted and again.action == "unchanged" and "already the champion" in again.reason
    assert len(read_history(store["client"], name)) == 1


def test_status_lists_champion_challenger_and_history(store):
    name = "status"
    v1, v2 = add_version(store, name, fid=3.0), add_version(store, name, fid=4.0)
    promote(name, v1)
    promote(name, v2)
    status = promotion_status(name)
    assert status["champion"]["version"] == v1 and status["challenger"]["version"] == v2
    assert status["champion"]["metrics"]["fid"] == "3.0" and status["aliases"] == {CHAMPION: v1, CHALLENGER: v2}
    assert [h["version"] for h in status["history"]] == [v1] and len(status["versions"]) == 2


@pytest.mark.slow
def test_champion_loads_by_alias_for_any_size_without_pickles(store):
    name = "cyclegan"
    reg = store["registered"]
    store["client"].set_model_version_tag(name, reg["version"], "metric.fid", "50.0")
    store["client"].set_model_version_tag(name, reg["version"], "eval_split_fingerprint", SPLIT)
    assert promote(name, reg["version"]).promoted
    translator = transfigure.load_translator(name, "champion")
    pyfunc = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    for h, w in ((64, 88), (75, 130)):  # outputs need 64 px a side for a reliable watermark
        img = Image.fromarray(np.random.default_rng(h).integers(0, 255, (h, w, 3), dtype=np.uint8))
        assert translator.translate(img).size == (w, h)
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        out = pyfunc.predict(pd.DataFrame({"image": [buf.getvalue()], "direction": ["BtoA"]}))
        result = Image.open(io.BytesIO(out["image"][0]))
        assert result.size == (w, h)
        # the registered model's outputs are the translator's pixels, watermarked (and signed, in the ledger)
        expected = np.asarray(translator.translate(img, direction="BtoA"), np.float64)
        assert np.mean((np.asarray(result, np.float64) - expected) ** 2) < 255.0**2 / 10**3  # PSNR > 30 dB
        assert detect_watermark(result).payload.hex() == out["provenance_id"][0]
    # the logged model is code + safetensors + JSON: nothing to unpickle
    local = Path(mlflow.artifacts.download_artifacts(f"models:/{name}@champion"))
    files = {p.name for p in local.rglob("*") if p.is_file()}
    assert {"AtoB.safetensors", "BtoA.safetensors", "config.json", "pyfunc_model.py"} <= files
    assert not any(f.endswith((".pkl", ".pickle", ".pt", ".pth")) for f in files)
