from __future__ import annotations

import pytest
from kedro.framework.project import configure_project, pipelines


@pytest.fixture(scope="module", autouse=True)
def project():
    configure_project("transfigure")


def test_pipelines_are_registered_and_default_trains_cyclegan():
    assert {"data_validation", "train_cyclegan", "__default__"} <= set(pipelines)
    assert set(pipelines["__default__"].outputs()) == set(pipelines["train_cyclegan"].outputs())


def test_train_pipeline_validates_before_training():
    nodes = [n.name for n in pipelines["train_cyclegan"].nodes]  # topologically sorted
    assert nodes.index("cyclegan.require_valid") < nodes.index("cyclegan.train") < nodes.index("cyclegan.register")
    train = next(n for n in pipelines["train_cyclegan"].nodes if n.name == "cyclegan.train")
    assert "cyclegan.validated_dataset" in train.inputs
