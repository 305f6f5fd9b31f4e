"""dvc.yaml is honest: one stage per Kedro pipeline, deps/params/outs matching what each stage's Kedro
run reads and writes (checked against the real pipelines and the real catalog), a graph DVC accepts."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path
from typing import Any

import networkx as nx
import pytest
import yaml
from kedro.config import OmegaConfigLoader
from kedro.framework.project import configure_project, pipelines
from kedro.io import DataCatalog, MemoryDataset
from kedro.pipeline import Pipeline

from _dvc_support import DVC
from _support import PROJECT
from transfigure import settings
from transfigure.models import VARIANTS

SPEC = yaml.safe_load((PROJECT / "dvc.yaml").read_text())
STAGES: dict[str, dict[str, Any]] = SPEC["stages"]


@pytest.fixture(scope="module", autouse=True)
def project():
    configure_project("transfigure")


def kedro_args(stage: str) -> dict[str, str]:
    """``--pipeline``, ``--from-nodes``, ``--params`` ... of the stage's ``kedro run`` command."""
    words = shlex.split(STAGES[stage]["cmd"])
    assert words[:2] == ["kedro", "run"], f"{stage}: {STAGES[stage]['cmd']!r} is not a `kedro run`"
    return dict(w.removeprefix("--").split("=", 1) for w in words[2:])


def stage_pipeline(stage: str) -> Pipeline:
    """The Kedro (sub)pipeline a stage runs."""
    args = kedro_args(stage)
    pipeline = pipelines[args["pipeline"]]
    if "from-nodes" in args:
        pipeline = pipeline.from_nodes(*args["from-nodes"].split(","))
    if "to-nodes" in args:
        pipeline = pipeline.to_nodes(*args["to-nodes"].split(","))
    return pipeline


def stage_catalog(stage: str) -> DataCatalog:
    """The project's catalog as the stage's `kedro run` resolves it (its --params are runtime params)."""
    runtime = {k: v for k, v in (p.split("=", 1) for p in kedro_args(stage).get("params", "").split(",") if p)}
    loader = OmegaConfigLoader(
        str(PROJECT / "conf"),
        base_env="base",
        default_run_env="base",
        custom_resolvers=settings.CONFIG_LOADER_ARGS["custom_resolvers"],
        runtime_params=runtime,
    )
    return DataCatalog.from_config(loader["catalog"])


def persisted_paths(catalog: DataCatalog, names: set[str]) -> set[str]:
    """Filepaths of the datasets in ``names`` that the catalog persists (params and memory ones left out)."""
    paths = set()
    for name in names:
        dataset = None if name.startswith("params:") else catalog.get(name)
        if dataset is not None and not isinstance(dataset, MemoryDataset):
            paths.add(str(dataset._describe()["filepath"]))
    return paths


def paths(entries: list[Any]) -> set[str]:
    return {e if isinstance(e, str) else next(iter(e)) for e in entries or []}


def declared_outs(stage: str) -> set[str]:
    return paths(STAGES[stage].get("outs")) | paths(STAGES[stage].get("metrics")) | paths(STAGES[stage].get("plots"))


def param_keys(stage: str) -> dict[str, list[str]]:
    return {file: keys for entry in STAGES[stage].get("params", []) for file, keys in entry.items()}


def test_one_stage_per_pipeline_and_every_stage_runs_its_registered_pipeline():
    expected = {"prepare_data"} | {f"{kind}_{v}" for v in VARIANTS for kind in ("validate", "train", "evaluate")}
    assert set(STAGES) == expected
    for stage in STAGES:
        args = kedro_args(stage)
        assert args["pipeline"] == stage and stage in pipelines
        for option in ("from-nodes", "to-nodes"):
            assert set(args.get(option, "").split(",")) - {""} <= {n.name for n in pipelines[stage].nodes}


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_every_file_the_stage_writes_is_declared_and_every_file_it_reads_is_a_dependency(stage):
    pipeline, catalog = stage_pipeline(stage), stage_catalog(stage)
    written = persisted_paths(catalog, pipeline.all_outputs())
    assert written <= declared_outs(stage), f"{stage} writes undeclared outputs {written - declared_outs(stage)}"
    read = persisted_paths(catalog, pipeline.inputs())
    assert read <= paths(STAGES[stage]["deps"]), (
        f"{stage} reads undeclared inputs {read - paths(STAGES[stage]['deps'])}"
    )


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_every_parameter_group_the_stage_reads_is_tracked(stage):
    listed = [key for keys in param_keys(stage).values() for key in keys]
    for name in stage_pipeline(stage).inputs():
        if not name.startswith("params:"):
            continue
        key = name.removeprefix("params:")
        # the group itself, a parent of it, or (for a group read only in part) some of its keys
        assert any(k == key or key.startswith(f"{k}.") or k.startswith(f"{key}.") for k in listed), (
            f"{stage} reads {name} but dvc.yaml tracks none of it"
        )


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_code_and_config_deps_exist_and_params_name_existing_keys_of_the_stage_variant(stage):
    for dep in paths(STAGES[stage]["deps"]):
        if dep.startswith(("src/", "conf/")):
            assert (PROJECT / dep).exists(), f"{stage}: dependency {dep} does not exist"
    variant = stage.split("_", 1)[1] if stage != "prepare_data" else "prepare_data"
    for file, keys in param_keys(stage).items():
        assert file == (
            "conf/base/parameters_prepare_data.yml"
            if variant == "prepare_data"
            else f"conf/base/parameters_train_{variant}.yml"
        )
        doc = yaml.safe_load((PROJECT / file).read_text())
        for key in keys:
            assert key.split(".")[0] == variant, f"{stage} lists another pipeline's parameter {key}"
            node = doc
            for part in key.split("."):
                assert isinstance(node, dict) and part in node, f"{stage}: no parameter {key} in {file}"
                node = node[part]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_train_stage_tracks_every_evaluation_key_it_uses_and_evaluate_stage_the_whole_block(variant):
    file = f"conf/base/parameters_train_{variant}.yml"
    evaluation = yaml.safe_load((PROJECT / file).read_text())[variant]["evaluation"]
    train_keys = set(param_keys(f"train_{variant}")[file])
    # model_version only chooses what evaluate_<variant> evaluates; the train stage evaluates its own version
    assert {f"{variant}.evaluation.{k}" for k in evaluation if k != "model_version"} <= train_keys
    assert f"{variant}.evaluation.model_version" not in train_keys and f"{variant}.evaluation" not in train_keys
    assert f"{variant}.evaluation" in param_keys(f"evaluate_{variant}")[file]
    for group in ("data", "model", "training"):
        assert f"{variant}.{group}" in train_keys


@pytest.mark.slow
def test_dvc_accepts_the_pipeline_and_chains_data_validation_training_evaluation(tmp_path):
    from dvc.repo import Repo

    subprocess.run([DVC, "init", "--no-scm", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "dvc.yaml").write_text((PROJECT / "dvc.yaml").read_text())
    repo = Repo(str(tmp_path))
    repo.index.check_graph()  # no overlapping outputs, no cycles
    stages = {s.name: s for s in repo.index.stages}
    for variant in VARIANTS:
        upstream = {s.name for s in nx.descendants(repo.index.graph, stages[f"evaluate_{variant}"])}
        assert upstream == {"prepare_data", f"validate_{variant}", f"train_{variant}"}
        metrics = [o for o in stages[f"train_{variant}"].outs if o.metric]
        assert [o.def_path for o in metrics] == [f"data/08_reporting/{variant}/metrics.json"]
        assert not metrics[0].use_cache  # small, versioned in git (.gitignore makes an exception for it)
    repo.close()


def test_project_dvc_config_turns_analytics_off_and_sets_a_local_default_remote_outside_the_repo():
    from configobj import ConfigObj  # the format DVC reads .dvc/config with

    config = ConfigObj(str(PROJECT / ".dvc" / "config"))
    assert config["core"]["analytics"] == "false"
    remote = config["core"]["remote"]
    url = Path(config[f'remote "{remote}"']["url"])
    assert not url.is_absolute()  # relative to .dvc/: a sibling folder of the clone
    assert not (PROJECT / ".dvc" / url).resolve().is_relative_to(PROJECT)


def test_git_keeps_metrics_and_curves_and_ignores_the_rest_of_data(tmp_path):
    """Cached outs are git-ignored (DVC versions them); ``cache: false`` ones are versioned by git."""
    (tmp_path / ".gitignore").write_text((PROJECT / ".gitignore").read_text())
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)

    def ignored(path: str) -> bool:
        return subprocess.run(["git", "check-ignore", "-q", path], cwd=tmp_path).returncode == 0

    for stage in STAGES:
        for entry in [*STAGES[stage].get("outs", []), *STAGES[stage].get("metrics", [])]:
            path, options = (entry, {}) if isinstance(entry, str) else next(iter(entry.items()))
            assert ignored(path) == options.get("cache", True), path


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_train_stage_runs_training_through_evaluation_but_not_the_promotion_gate(variant):
    names = {n.name.removeprefix(f"{variant}.") for n in stage_pipeline(f"train_{variant}").nodes}
    assert names == {"train", "register", "training_curves", "evaluate"}
    # `kedro run --pipeline=train_<variant>` itself goes on to promote; DVC leaves that to promote_<variant>
    assert any(n.name == f"{variant}.promote" for n in pipelines[f"train_{variant}"].nodes)
