"""The pipeline registry: every stage x variant under the names users know, each wired as recorded.

``registered_pipelines.json`` records each pipeline's nodes as ``inputs -> outputs`` (the names the
catalog, the parameters files and dvc.yaml refer to). When a pipeline changes on purpose, rewrite it
with ``python tests/pipelines/test_registry.py`` and review the diff.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from kedro.framework.project import configure_project, pipelines
from kedro.pipeline import Pipeline

from transfigure.models import VARIANTS
from transfigure.pipeline_registry import PER_VARIANT, SINGLE, register_pipelines

RECORDED = Path(__file__).with_name("registered_pipelines.json")


def wiring(pipeline: Pipeline) -> dict[str, str]:
    return {
        n.name: f"{', '.join(n.inputs)} -> {', '.join(n.outputs)}" for n in sorted(pipeline.nodes, key=lambda n: n.name)
    }


@pytest.fixture(scope="module", autouse=True)
def project():
    configure_project("transfigure")


def test_every_stage_of_every_variant_is_registered_under_its_known_name():
    recorded = json.loads(RECORDED.read_text())
    stages = ("validate", "train", "evaluate", "promote", "translate")
    expected = {f"{stage}_{variant}" for stage in stages for variant in VARIANTS}
    assert set(PER_VARIANT) == set(stages)
    assert set(pipelines) == expected | set(SINGLE) | {"__default__"} == set(recorded) | {"__default__"}


@pytest.mark.parametrize("name", sorted(json.loads(RECORDED.read_text())))
def test_each_pipeline_has_the_recorded_nodes_inputs_and_outputs(name):
    assert wiring(pipelines[name]) == json.loads(RECORDED.read_text())[name]


def test_default_trains_cyclegan():
    assert wiring(pipelines["__default__"]) == wiring(pipelines["train_cyclegan"])


def test_train_pipeline_validates_before_training():
    nodes = [n.name for n in pipelines["train_cyclegan"].nodes]  # topologically sorted
    assert nodes.index("cyclegan.require_valid") < nodes.index("cyclegan.train") < nodes.index("cyclegan.register")
    train = next(n for n in pipelines["train_cyclegan"].nodes if n.name == "cyclegan.train")
    assert "cyclegan.validated_dataset" in train.inputs


def test_an_unknown_name_is_a_key_error_so_kedro_can_suggest_close_names():
    with pytest.raises(KeyError):
        register_pipelines()["train_cyclegna"]


@pytest.mark.slow
def test_asking_for_one_pipeline_imports_only_its_stage():
    """`kedro run --pipeline=validate_pix2pix` must not import training, MLflow and evaluation code."""
    code = (
        "import sys; from transfigure.pipeline_registry import register_pipelines; "
        "register_pipelines()['validate_pix2pix']; "
        "print(sorted(m for m in sys.modules if m.startswith('transfigure.pipelines.')))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "transfigure.pipelines.data_validation.pipeline" in loaded
    assert "transfigure.pipelines.training" not in loaded and "transfigure.pipelines.evaluation" not in loaded


if __name__ == "__main__":
    configure_project("transfigure")
    names = sorted(name for name in pipelines if name != "__default__")
    RECORDED.write_text(json.dumps({name: wiring(pipelines[name]) for name in names}, indent=1, sort_keys=True) + "\n")
