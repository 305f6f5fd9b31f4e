"""The Kedro pipelines the DVC stages run besides train_/evaluate_<variant>: prepare_data and validate_<variant>."""

from __future__ import annotations

import hashlib
import json

import pytest
import yaml
from kedro.framework.project import configure_project, pipelines
from kedro.io import DataCatalog
from kedro.runner import SequentialRunner

from _support import PROJECT
from transfigure.data.default_dataset import DEFAULT_SUBSETS
from transfigure.models import VARIANTS
from transfigure.pipelines.prepare_data import create_pipeline as prepare_data_pipeline
from transfigure.pipelines.prepare_data.nodes import build_default_data


@pytest.fixture(scope="module", autouse=True)
def project():
    configure_project("transfigure")


@pytest.mark.slow
def test_prepare_data_builds_the_default_dataset_once_and_names_its_content(tmp_path):
    catalog = DataCatalog()
    catalog["params:prepare_data"] = {"root": str(tmp_path / "default")}
    SequentialRunner().run(prepare_data_pipeline(), catalog)
    summary = catalog["default_dataset"].load()
    manifest = (tmp_path / "default" / "MANIFEST.json").read_bytes()
    assert summary["manifest_sha256"] == hashlib.sha256(manifest).hexdigest()
    assert summary["n_files"] == len(json.loads(manifest)["files"]) > 0
    assert set(summary["subsets"]) == set(DEFAULT_SUBSETS)
    # built already: a second run changes nothing (DVC would otherwise see its output modified)
    mtimes = {p: p.stat().st_mtime_ns for p in (tmp_path / "default").rglob("*")}
    assert build_default_data({"root": str(tmp_path / "default")}) == summary
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "default").rglob("*")} == mtimes


@pytest.mark.parametrize("options", [None, {}, {"root": ""}])
def test_prepare_data_without_a_root_says_which_parameter_is_missing(options):
    with pytest.raises(ValueError, match=r"prepare_data\.root.*parameters_prepare_data\.yml"):
        build_default_data(options)


def test_prepare_data_root_is_where_every_variant_looks_for_the_default_dataset():
    root = yaml.safe_load((PROJECT / "conf/base/parameters_prepare_data.yml").read_text())["prepare_data"]["root"]
    for variant in VARIANTS:
        data = yaml.safe_load((PROJECT / f"conf/base/parameters_train_{variant}.yml").read_text())[variant]["data"]
        assert data["default_root"] == root, variant


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_validate_pipeline_is_the_validation_that_starts_training_and_persists_its_result(variant):
    validate = pipelines[f"validate_{variant}"]
    train = pipelines[f"train_{variant}"]
    assert {n.name for n in validate.nodes} <= {n.name for n in train.nodes}
    assert f"{variant}.validated_dataset" in validate.outputs()
    # the train stage starts where validation stopped, from the persisted validated dataset
    rest = train.from_nodes(f"{variant}.train")
    assert not {n.name for n in validate.nodes} & {n.name for n in rest.nodes}
    assert f"{variant}.validated_dataset" in rest.inputs()
