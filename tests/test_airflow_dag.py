"""The Airflow DAG of `kedro airflow create`: committed as rendered, and every task runs in a process of its own.

Airflow itself is not installed (it does not resolve beside the project's pins, README "Running on a scheduler"):
the generated DAG file is imported with a stand-in ``airflow.sdk`` that records its tasks and edges, and each task's
own function (``_run_kedro_node``: a ``KedroSession.run`` of the task's nodes) runs in a fresh process in dependency
order, as an Airflow worker runs it. No task can read what another left in memory.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from graphlib import TopologicalSorter
from pathlib import Path

import kedro_airflow  # noqa: F401  - the dev extra installs it (via orchestrate): a missing plugin fails here, it does not skip
import pytest
import yaml

from _support import PROJECT, env_with_default_store, make_unaligned, project_catalog, project_copy, tiny_variant_params

KEDRO = str(Path(sys.executable).with_name("kedro"))
TEMPLATE = PROJECT / "airflow_dags" / "dag_template.j2"
COMMITTED = PROJECT / "airflow_dags" / "transfigure_train_cyclegan_dag.py"

#: a stand-in for airflow.sdk: @dag/@task record the DAG, its tasks and their edges instead of scheduling them
STUB_SDK = """
DAGS, TASKS, EDGES = [], {}, []


class _Task:
    def __init__(self, task_id, fn):
        self.task_id, self.fn = task_id, fn

    def __rshift__(self, other):
        EDGES.append((self.task_id, other.task_id))
        return other


def task(task_id):
    def decorate(fn):
        def instantiate():
            TASKS[task_id] = _Task(task_id, fn)
            return TASKS[task_id]

        return instantiate

    return decorate


def dag(**kwargs):
    def decorate(fn):
        def instantiate():
            DAGS.append(kwargs["dag_id"])
            fn()

        return instantiate

    return decorate
"""

#: import a DAG file; no task id: print its DAG ids, tasks and edges as JSON; else run that task's function
RUNNER = """
import importlib.util, json, sys
from airflow import sdk

spec = importlib.util.spec_from_file_location("generated_dag", sys.argv[1])
spec.loader.exec_module(importlib.util.module_from_spec(spec))
if len(sys.argv) == 2:
    print(json.dumps({"dags": sdk.DAGS, "tasks": list(sdk.TASKS), "edges": sdk.EDGES}))
else:
    sdk.TASKS[sys.argv[2]].fn()
"""


def render(root: Path, pipeline: str = "train_cyclegan") -> Path:
    """`kedro airflow create` as the README runs it, into ``root/dags``."""
    proc = subprocess.run(
        [KEDRO, "airflow", "create", f"--pipelines={pipeline}", "--group-by=memory", f"--jinja-file={TEMPLATE}"]
        + ["--target-dir=dags"],
        cwd=root,
        env=env_with_default_store(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root / "dags" / f"transfigure_{pipeline}_dag.py"


def stand_in_airflow(folder: Path) -> Path:
    (folder / "airflow").mkdir(parents=True)
    (folder / "airflow" / "__init__.py").write_text("")
    (folder / "airflow" / "sdk.py").write_text(textwrap.dedent(STUB_SDK))
    (folder / "run_task.py").write_text(textwrap.dedent(RUNNER))
    return folder


def test_each_train_pipeline_is_six_tasks_validation_grouped():
    """Grouping by memory fuses only the validation nodes (they pass `<v>.dataset` in memory); everything later
    crosses task boundaries through the catalog's files. A new in-memory output would fuse more steps here."""
    from kedro_airflow.grouping import group_memory_nodes

    from transfigure.models import VARIANTS
    from transfigure.pipeline_registry import register_pipelines

    catalog = project_catalog()
    for variant in VARIANTS:
        groups = group_memory_nodes(catalog, register_pipelines()[f"train_{variant}"])
        nodes = [sorted(n.removeprefix(f"{variant}.") for n in group.nodes) for group in groups]
        assert nodes == [
            ["describe_images", "prepare_dataset", "require_valid", "validate_images"],
            ["train"],
            ["register"],
            ["training_curves"],
            ["evaluate"],
            ["promote"],
        ], variant


@pytest.mark.slow
def test_the_committed_dag_is_what_kedro_airflow_create_renders(tmp_path):
    rendered = render(project_copy(tmp_path))
    assert rendered.read_text() == COMMITTED.read_text(), (
        "airflow_dags/ is stale: rerun the README's `kedro airflow create` command"
    )


@pytest.mark.slow
def test_every_task_runs_in_its_own_process_in_dependency_order(tmp_path):
    root = project_copy(tmp_path)
    params = tiny_variant_params("cyclegan", Path("data/06_models/cyclegan"), max_steps=2)
    params["data"]["path"] = str(make_unaligned(tmp_path / "images"))
    (root / "conf" / "local" / "parameters_tiny.yml").write_text(yaml.safe_dump({"cyclegan": params}))
    dag_file = render(root)
    stub = stand_in_airflow(tmp_path / "stub")
    env = {**env_with_default_store(), "PYTHONPATH": f"{stub}:{PROJECT / 'src'}", "TRANSFIGURE_PROJECT_PATH": str(root)}

    def run(*args: str) -> subprocess.CompletedProcess:
        # started outside the project, as an Airflow worker starts a task
        return subprocess.run(
            [sys.executable, str(stub / "run_task.py"), str(dag_file), *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )

    listed = run()
    assert listed.returncode == 0, listed.stderr[-3000:]
    dag = json.loads(listed.stdout.strip().splitlines()[-1])
    assert dag["dags"] == ["transfigure-train-cyclegan"] and len(dag["tasks"]) == 6
    graph: dict[str, set[str]] = {task: set() for task in dag["tasks"]}
    for upstream, downstream in dag["edges"]:
        graph[downstream].add(upstream)
    order = list(TopologicalSorter(graph).static_order())
    assert order[0].startswith("cyclegan-prepare-dataset") and order[-1] == "cyclegan-promote"
    for task in order:
        proc = run(task)
        assert proc.returncode == 0, f"task {task} failed:\n{proc.stderr[-4000:]}"

    reports = root / "data" / "08_reporting" / "cyclegan"
    registered = json.loads((reports / "registered_model.json").read_text())
    promotion = json.loads((reports / "promotion.json").read_text())
    metrics = json.loads((reports / "metrics.json").read_text())
    assert registered["version"] and "fid" in metrics
    assert (
        str(promotion["candidate"]) == str(registered["version"]) and promotion["promoted"]
    )  # first version: champion
    assert (root / "data/06_models/cyclegan/generator/AtoB.safetensors").is_file()
    assert (root / "mlruns.db").is_file()  # the tasks ran in the project folder, not where they were started
