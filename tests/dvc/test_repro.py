"""The README's "Reproduce (DVC)" for real: `dvc repro`, `dvc exp run -S`, metrics, plots, push and pull in a
fresh git + DVC repository holding a copy of the project (tiny CycleGAN parameters, real `kedro run` stages)."""

from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient

from _dvc_support import dvc, dvc_json, git

pytestmark = pytest.mark.slow

CHAIN = ["prepare_data", "validate_cyclegan", "train_cyclegan"]
PARAMS = "conf/base/parameters_train_cyclegan.yml"


def ran(output: str) -> list[str]:
    """The stages a `dvc repro` / `dvc exp run` ran, in order."""
    return re.findall(r"Running stage '([^']+)'", output)


def locked(root: Path) -> dict:
    return yaml.safe_load((root / "dvc.lock").read_text())["stages"]


def read_json(root: Path, rel: str) -> dict:
    return json.loads((root / rel).read_text())


def commit_all(root: Path, message: str) -> None:
    git(root, "add", "-A")
    git(root, "commit", "-q", "--allow-empty", "-m", message)


def test_repro_train_cyclegan_builds_validates_trains_evaluates_and_records_the_data_version(dvc_project):
    out = dvc(dvc_project, "repro", "train_cyclegan")
    assert ran(out) == CHAIN  # data, validation, training (which ends with the evaluation); nothing else

    assert (dvc_project / "data/01_raw/default/MANIFEST.json").is_file()
    assert (dvc_project / "data/06_models/cyclegan/generator/AtoB.safetensors").is_file()
    assert (dvc_project / "data/06_models/cyclegan/checkpoints/last.pt").is_file()
    metrics = read_json(dvc_project, "data/08_reporting/cyclegan/metrics.json")
    assert math.isfinite(metrics["fid"]) and metrics["model_name"] == "cyclegan" and metrics["n_images"] > 0
    assert (dvc_project / "data/08_reporting/cyclegan/eval_report.png").stat().st_size > 0
    header = (dvc_project / "data/08_reporting/cyclegan/plots/loss.csv").read_text().splitlines()[0].split(",")
    assert header[0] == "step" and {"loss_G", "loss_D_A", "loss_D_B"} <= set(header)

    # the training run and the registered version name the exact data: the hash dvc.lock records for it
    day2night = next(
        d for d in locked(dvc_project)["validate_cyclegan"]["deps"] if d["path"] == "data/01_raw/default/day2night"
    )
    registered = read_json(dvc_project, "data/08_reporting/cyclegan/registered_model.json")
    client = MlflowClient(f"sqlite:///{dvc_project / 'mlruns.db'}")
    version_tags = client.get_model_version("cyclegan", registered["version"]).tags
    run_tags = client.get_run(registered["run_id"]).data.tags
    for tags in (version_tags, run_tags):
        assert tags["dvc_data_md5"] == day2night["md5"] and tags["dvc_data_md5"].endswith(".dir")
        assert tags["dvc_data_path"] == "data/01_raw/default/day2night"
        assert tags["dvc_data_status"] == "clean"
        assert tags["dvc_stage"] == "train_cyclegan"
        assert re.fullmatch(r"[0-9a-f]{32}", tags["dvc_lock_md5"])


TARGETS = ["evaluate_cyclegan", "validate_pix2pix"]  # the CycleGAN chain and a stage of another variant


def test_evaluate_stage_reproduces_the_training_metrics_and_a_second_repro_is_a_no_op(dvc_project):
    out = dvc(dvc_project, "repro", *TARGETS)
    assert {"evaluate_cyclegan", "validate_pix2pix"} <= set(ran(out)) <= {*CHAIN, *TARGETS}
    # evaluate_cyclegan re-evaluates the trained version into its own folder: same model, data, parameters
    trained = read_json(dvc_project, "data/08_reporting/cyclegan/metrics.json")
    again = read_json(dvc_project, "data/08_reporting/evaluate/cyclegan/metrics.json")
    assert again["model_version"] == trained["model_version"]
    assert again["fid"] == pytest.approx(trained["fid"], rel=1e-6)

    # nothing changed: the second repro runs nothing and DVC reports everything up to date
    out = dvc(dvc_project, "repro", *TARGETS)
    assert ran(out) == [] and "didn't change, skipping" in out
    assert dvc_json(dvc_project, "status", "--with-deps", *TARGETS) == {}


def test_an_experiment_changing_one_cyclegan_parameter_reruns_only_the_cyclegan_training_and_evaluation(
    dvc_project, tmp_path
):
    dvc(dvc_project, "repro", *TARGETS)  # a no-op after the tests above
    commit_all(dvc_project, "reproduced")

    out = dvc(dvc_project, "exp", "run", *TARGETS, "-S", f"{PARAMS}:cyclegan.training.max_steps=3")
    assert ran(out) == ["train_cyclegan", "evaluate_cyclegan"]  # not prepare_data, validate_*, nor pix2pix
    assert read_json(dvc_project, "data/08_reporting/cyclegan/training_summary.json")["step"] == 3
    changed = dvc_json(dvc_project, "params", "diff")[PARAMS]["cyclegan.training.max_steps"]
    assert (changed["old"], changed["new"]) == (2, 3)
    diff = dvc_json(dvc_project, "metrics", "diff")["data/08_reporting/cyclegan/metrics.json"]
    assert diff["model_version"]["new"] == diff["model_version"]["old"] + 1  # the experiment registered a version
    (workspace,) = dvc_json(dvc_project, "metrics", "show").values()
    assert (
        workspace["data"]["data/08_reporting/cyclegan/metrics.json"]["data"]["model_version"]
        == diff["model_version"]["new"]
    )

    # plots: the loss curve, the (empty without eval_every) FID curve and the report image, as HTML
    html_dir = tmp_path / "plots"
    dvc(
        dvc_project,
        "plots",
        "show",
        "-o",
        str(html_dir),
        "cyclegan_losses",
        "cyclegan_fid",
        "data/08_reporting/cyclegan/eval_report.png",
    )
    html = (html_dir / "index.html").read_text()
    assert "loss_D_A" in html and list((html_dir / "static").glob("*eval_report.png"))


def cached_outputs(root: Path, stages: list[str]) -> list[Path]:
    """The outs of ``stages`` that DVC caches (not the ``cache: false`` ones, which git versions)."""
    spec = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    paths = []
    for stage in stages:
        for out in spec[stage].get("outs", []):
            path, options = (out, {}) if isinstance(out, str) else next(iter(out.items()))
            if options.get("cache", True):
                paths.append(root / path)
    return paths


def content_hashes(root: Path, outputs: list[Path]) -> dict[str, str]:
    """sha256 of every file of ``outputs``, by path relative to ``root``."""
    files = [f for out in outputs for f in ([out] if out.is_file() else sorted(out.rglob("*"))) if f.is_file()]
    assert files, "no outputs to compare"
    return {f.relative_to(root).as_posix(): hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


def test_push_then_pull_restores_data_and_checkpoints_here_and_on_another_clone(dvc_project):
    dvc(dvc_project, "repro", "train_cyclegan")  # a no-op after the tests above
    commit_all(dvc_project, "pipeline state")
    dvc(dvc_project, "push", "--with-deps", "train_cyclegan")
    remote = dvc_project.parent / "transfigure-dvc-remote"  # the project's default remote, next to the clone
    assert any(p.is_file() for p in remote.rglob("*"))

    outputs = cached_outputs(dvc_project, CHAIN)
    assert {"data/01_raw/default", "data/06_models/cyclegan/checkpoints", "data/06_models/cyclegan/generator"} <= {
        p.relative_to(dvc_project).as_posix() for p in outputs
    }
    before = content_hashes(dvc_project, outputs)

    # lose the cache and every cached output, then pull them back
    shutil.rmtree(dvc_project / ".dvc" / "cache")
    for path in outputs:
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    assert "deleted" in dvc(dvc_project, "status", "--with-deps", "train_cyclegan")
    dvc(dvc_project, "pull", "--with-deps", "train_cyclegan")
    assert content_hashes(dvc_project, outputs) == before
    assert dvc_json(dvc_project, "status", "--with-deps", "train_cyclegan") == {}

    # another clone: git brings code, parameters, dvc.lock and metrics; `dvc pull` brings data and models
    clone = dvc_project.parent / "clone"
    git(dvc_project.parent, "clone", "-q", str(dvc_project), str(clone))
    dvc(clone, "pull", "--with-deps", "train_cyclegan")
    assert content_hashes(clone, cached_outputs(clone, CHAIN)) == before
    assert dvc_json(clone, "status", "--with-deps", "train_cyclegan") == {}
