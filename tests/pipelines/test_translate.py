"""translate_<variant>: the project's parameters and catalog, every variant through Kedro's runner, and
`kedro run --pipeline=translate_cyclegan` for real on the embedded dataset with a registered champion."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from kedro.framework.project import configure_project, pipelines
from kedro.runner import SequentialRunner
from mlflow import MlflowClient
from PIL import Image

from _support import (
    PROJECT,
    env_with_default_store,
    export_generator,
    make_aligned,
    make_labelmap,
    make_unaligned,
    project_catalog,
    project_copy,
    register_generator_version,
)
from transfigure.data.default_dataset import DEFAULT_SUBSETS
from transfigure.inference.batch import TABLE_FILE
from transfigure.models import VARIANTS
from transfigure.pipelines.translation.nodes import TranslationParams
from transfigure.provenance import ProvenanceConfig, verify_image_bytes

KEDRO = str(Path(sys.executable).with_name("kedro"))


def translate_params() -> dict:
    return yaml.safe_load((PROJECT / "conf/base/parameters_translate.yml").read_text())["translate"]


def test_every_variant_has_valid_defaults_on_the_embedded_dataset():
    params = translate_params()
    assert set(params) == set(VARIANTS)
    for variant, section in params.items():
        p = TranslationParams(**section)
        assert p.model is None and p.format == "png" and p.max_pixels <= 8192 * 8192
        subset = p.inputs[0].split("/")[3]
        assert p.inputs[0].startswith("data/01_raw/default/") and subset in DEFAULT_SUBSETS, variant
    assert TranslationParams(**params["pix2pix"]).pair_half == "left"  # sketch | photo pairs: the sketch
    assert TranslationParams(**params["spade"]).instances.endswith("test_inst")
    with pytest.raises(ValueError, match="unknown_key"):
        TranslationParams(**{**params["cyclegan"], "unknown_key": 1})


@pytest.fixture(scope="module", autouse=True)
def _project():
    configure_project("transfigure")


#: tiny data of each variant's format, its input folder, and the options its default differs in
INPUTS = {
    "cyclegan": (make_unaligned, "testA", {}),
    "unit": (make_unaligned, "testB", {"direction": "BtoA"}),
    "pix2pix": (make_aligned, "test", {"pair_half": "left"}),
    "spade": (make_labelmap, "test_label", {"instances": "test_inst"}),
}


@pytest.mark.slow
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_translate_pipeline_of_every_variant(variant, mlflow_uri, tmp_path, monkeypatch):
    """The real catalog and parameters, an exported generator as the model, tiny data of the variant's format."""
    monkeypatch.setenv("TRANSFIGURE_LEDGER", str(tmp_path / "ledger.sqlite"))
    make, folder, options = INPUTS[variant]
    data = make(tmp_path / "data", size=64, n_train=1, n_test=2)
    model = {"label_nc": 4, "contain_dontcare_label": False} if variant == "spade" else {}
    generator = export_generator(variant, tmp_path / "export" / "generator", **model)
    params = {
        **translate_params()[variant],
        "model": str(generator),
        "input": str(data / folder),
        "progress": False,
        **options,
    }
    if variant == "spade":
        params["instances"] = str(data / "test_inst")
    catalog = project_catalog()
    catalog[f"params:translate.{variant}"] = params
    catalog[f"params:{variant}.tracking"] = {"registered_model_name": variant}
    SequentialRunner().run(pipelines[f"translate_{variant}"], catalog)

    summary = json.loads((tmp_path / f"data/08_reporting/{variant}/translation_summary.json").read_text())
    assert summary["translated"] == 2 and summary["refused"] == 0 and summary["variant"] == variant
    out = tmp_path / "data/07_model_output" / variant / folder
    assert summary["output_dir"] == str(Path("data/07_model_output") / variant / folder)
    outputs = sorted(out.glob("*.png"))
    assert len(outputs) == 2 and Image.open(outputs[0]).size == (64, 64)
    report = verify_image_bytes(outputs[0].read_bytes())  # (an untrained SPADE's flat output may hold no watermark)
    assert report["manifest"]["status"] == "valid" and report["ledger"]["model_variant"] == variant
    run = MlflowClient(mlflow_uri).get_run(summary["mlflow_run_id"])
    assert run.info.run_name == folder and run.data.metrics["translated"] == 2


@pytest.mark.slow
def test_kedro_run_translate_cyclegan_after_training_on_the_embedded_dataset(tmp_path, monkeypatch):
    """What a user runs after `kedro run --pipeline=train_cyclegan` made a champion: the defaults just work."""
    from transfigure.data.default_dataset import build_default_dataset

    root = project_copy(tmp_path)
    build_default_dataset(root / "data/01_raw/default")
    with monkeypatch.context() as mp:  # a champion in the project's own store (what training leaves behind)
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlruns.db'}")
        mp.chdir(root)
        registered = register_generator_version("cyclegan", tmp_path / "models")
    proc = subprocess.run(
        [KEDRO, "run", "--pipeline=translate_cyclegan", "--params=translate.cyclegan.progress=false"],
        cwd=root,
        env=env_with_default_store(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = root / "data/07_model_output/cyclegan/testA"
    outputs = sorted(out.glob("*.png"))
    assert len(outputs) == 12  # the day2night test split
    config = ProvenanceConfig.from_env({}, root=root)  # the project's ledger and development certificate
    report = verify_image_bytes(outputs[0].read_bytes(), config=config)
    assert report["verdict"] == "verified" and report["ledger"]["model_version"] == registered["version"]
    with open(out / TABLE_FILE, newline="") as fh:
        assert [row["status"] for row in csv.DictReader(fh)] == ["ok"] * 12
    summary = json.loads((root / "data/08_reporting/cyclegan/translation_summary.json").read_text())
    assert summary["translated"] == 12 and summary["model_ref"] == "cyclegan@champion"
    client = MlflowClient(f"sqlite:///{root / 'mlruns.db'}")
    run = client.get_run(summary["mlflow_run_id"])
    assert client.get_experiment(run.info.experiment_id).name == "translate-cyclegan"
    assert run.data.params["model_version"] == registered["version"] and run.data.metrics["translated"] == 12
    assert "samples/grid.png" in {a.path for a in client.list_artifacts(run.info.run_id, "samples")}
