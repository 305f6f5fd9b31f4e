"""The README's main command, for real: `kedro run --pipeline=train_cyclegan` in a copy of the project."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from _support import env_with_default_store, project_copy

KEDRO = str(Path(sys.executable).with_name("kedro"))


def kedro_run(root: Path, params: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [KEDRO, "run", "--pipeline=train_cyclegan", f"--params={params}"],
        cwd=root,
        env=env_with_default_store(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.slow
def test_kedro_run_on_the_embedded_default_dataset(tmp_path):
    root = project_copy(tmp_path)
    tiny = (
        "cyclegan.training.max_steps=3,cyclegan.model.ngf=4,cyclegan.model.ndf=4,cyclegan.training.progress=false,"
        "cyclegan.evaluation.max_images=4"
    )
    proc = kedro_run(root, tiny)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # the embedded dataset was built offline, validated, and the report saved
    assert (root / "data/01_raw/default/MANIFEST.json").is_file()
    report = json.loads((root / "data/08_reporting/cyclegan/validation_report.json").read_text())
    assert report["success"] and report["summary"]["per_split_domain"]["train"] == {"A": 48, "B": 48}
    assert "results" in report["gx_result"]
    # the default store is sqlite in the project folder; the model is registered there
    registered = json.loads((root / "data/08_reporting/cyclegan/registered_model.json").read_text())
    client = MlflowClient(f"sqlite:///{root / 'mlruns.db'}")
    mv = client.get_model_version("cyclegan", registered["version"])
    assert mv.run_id == registered["run_id"]
    assert (root / "mlartifacts").is_dir()
    assert (root / "data/06_models/cyclegan/generator/AtoB.safetensors").is_file()


@pytest.mark.slow
def test_kedro_run_stops_on_a_broken_dataset_and_names_the_files(tmp_path, tiny_unaligned):
    (tiny_unaligned / "trainB" / "trainB_002.png").write_bytes(b"")  # zero-byte file
    (tiny_unaligned / "trainA" / "notes.png").write_text("this is not an image")
    root = project_copy(tmp_path)
    proc = kedro_run(root, f"cyclegan.data.path={tiny_unaligned}")
    assert proc.returncode != 0
    assert "trainB/trainB_002.png" in proc.stderr and "trainA/notes.png" in proc.stderr
    assert "failed validation" in proc.stderr
    # the report is kept, nothing was trained or logged
    report = json.loads((root / "data/08_reporting/cyclegan/validation_report.json").read_text())
    bad = {f for failure in report["failures"] for f in failure["files"]}
    assert {"trainB/trainB_002.png", "trainA/notes.png"} <= bad
    assert not (root / "data/06_models/cyclegan").exists()
    assert not (root / "data/08_reporting/cyclegan/training_summary.json").exists()
