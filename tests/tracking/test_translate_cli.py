"""``transfigure translate``: registry references and folders, exit codes, the MLflow run, and a killed run resumed."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from mlflow import MlflowClient
from PIL import Image

from _support import export_generator, register_generator_version
from transfigure.cli import main
from transfigure.inference.batch import STATE_FILE, TABLE_FILE
from transfigure.provenance import ProvenanceConfig, verify_image_bytes
from transfigure.tracking.translation import parse_model_ref


def photos(folder: Path, n: int, size: int = 64, start: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(start, start + n):
        rng = np.random.default_rng(i)
        y, x = np.mgrid[0:size, 0:size] / size
        img = np.stack([0.5 + 0.4 * np.sin(4 * x + 3 * y * c + rng.uniform(0, 6)) for c in range(3)], -1)
        Image.fromarray((img * 255 + rng.normal(0, 6, img.shape)).clip(0, 255).astype(np.uint8)).save(
            folder / f"{i:04d}.png"
        )
    return folder


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A sqlite store with a tiny registered CycleGAN (``cyclegan`` v1 = champion), a private ledger and key."""
    root = tmp_path_factory.mktemp("translate_cli")
    with pytest.MonkeyPatch.context() as mp:
        uri = f"sqlite:///{root / 'mlruns.db'}"
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.setenv("TRANSFIGURE_LEDGER", str(root / "ledger.sqlite"))
        mp.setenv("TRANSFIGURE_WATERMARK_KEY", "translate-cli-tests")
        mp.chdir(root)
        registered = register_generator_version("cyclegan", root / "models")
        yield {"root": root, "uri": uri, "registered": registered, "inputs": photos(root / "inputs", 3)}


@pytest.fixture
def in_store(store, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store["uri"])
    monkeypatch.setenv("TRANSFIGURE_LEDGER", str(store["root"] / "ledger.sqlite"))
    monkeypatch.setenv("TRANSFIGURE_WATERMARK_KEY", "translate-cli-tests")
    monkeypatch.chdir(store["root"])
    return store


def translate(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["translate", *map(str, args), "--no-progress"])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_model_references():
    assert parse_model_ref("cyclegan@champion") == ("cyclegan", "champion")
    assert parse_model_ref("cyclegan@3") == ("cyclegan", "3")
    assert parse_model_ref("pix2pix") == ("pix2pix", "champion")
    with pytest.raises(ValueError, match="neither a folder nor a registry reference"):
        parse_model_ref("no such/folder")


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """An exported untrained CycleGAN (no registry needed)."""
    return export_generator("cyclegan", tmp_path_factory.mktemp("export") / "generator")


@pytest.fixture
def provenance(tmp_path, monkeypatch) -> ProvenanceConfig:
    monkeypatch.setenv("TRANSFIGURE_LEDGER", str(tmp_path / "ledger.sqlite"))
    monkeypatch.setenv("TRANSFIGURE_WATERMARK_KEY", "translate-cli-tests")
    monkeypatch.chdir(tmp_path)
    return ProvenanceConfig.from_env()


def test_exit_codes_summary_and_resume_with_an_exported_folder(folder, provenance, capsys, tmp_path):
    inputs = photos(tmp_path / "inputs", 3)
    out = tmp_path / "out"
    code, stdout, _ = translate(capsys, folder, inputs, "-o", out)
    assert code == 0 and "3 translated, 0 skipped" in stdout and "model cyclegan local:" in stdout
    assert verify_image_bytes((out / "0000.png").read_bytes(), config=provenance)["verdict"] == "verified"
    code, stdout, _ = translate(capsys, folder.parent, inputs, "-o", out)  # the folder above works too
    assert code == 0 and "0 translated, 3 skipped" in stdout

    (inputs / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    code, stdout, _ = translate(capsys, folder, inputs, "-o", out, "--json")
    summary = json.loads(stdout)
    assert code == 1 and summary["skipped"] == 3 and summary["refused"] == 1 and summary["mlflow_run_id"] is None
    assert (
        summary["refusals"][0]["input"] == "broken.png" and "not a recognised image" in summary["refusals"][0]["reason"]
    )


def test_usage_errors_exit_2(folder, provenance, capsys, tmp_path):
    inputs = photos(tmp_path / "inputs", 1)
    cases = {
        "not found": (folder, tmp_path / "missing", "-o", tmp_path / "o"),
        "neither a folder nor a registry reference": ("no/such", inputs, "-o", tmp_path / "o"),
        "unknown direction 'CtoD'": (folder, inputs, "-o", tmp_path / "o", "--direction", "CtoD"),
        "--width": (folder, inputs, "-o", tmp_path / "o", "--width", "8"),
        "label-map models": (folder, inputs, "-o", tmp_path / "o", "--seed", "3"),
    }
    for expected, args in cases.items():
        code, _, err = translate(capsys, *args)
        assert code == 2 and expected in err and "Traceback" not in err, (expected, err)
    with pytest.raises(SystemExit) as exc:  # argparse: no -o
        main(["translate", str(folder), str(inputs)])
    assert exc.value.code == 2
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_registry_model_exit_codes_and_summary(in_store, capsys, tmp_path):
    out = tmp_path / "out"
    code, stdout, _ = translate(capsys, "cyclegan@champion", in_store["inputs"], "-o", out)
    assert code == 0 and "3 translated, 0 skipped" in stdout and "model cyclegan v1" in stdout
    report = verify_image_bytes((out / "0000.png").read_bytes(), config=ProvenanceConfig.from_env())
    assert report["verdict"] == "verified" and report["ledger"]["model_version"] == in_store["registered"]["version"]
    assert report["ledger"]["run_id"] == in_store["registered"]["run_id"]

    code, stdout, _ = translate(capsys, "cyclegan@1", in_store["inputs"], "-o", out)  # the same version: all done
    assert code == 0 and "0 translated, 3 skipped" in stdout

    code, _, err = translate(capsys, "nope@champion", in_store["inputs"], "-o", tmp_path / "o")
    assert code == 2 and "no model 'nope'" in err and "Traceback" not in err


@pytest.mark.slow
def test_a_local_folder_with_track_records_an_mlflow_run(in_store, capsys, tmp_path):
    folder = export_generator("cyclegan", tmp_path / "export" / "generator", seed=3)
    out = tmp_path / "tracked"
    code, stdout, _ = translate(
        capsys, folder.parent, in_store["inputs"], "-o", out, "--track", "--format", "jpeg", "--height", "96"
    )
    assert code == 0 and "MLflow run" in stdout
    run_id = stdout.rsplit("MLflow run ", 1)[1].strip()
    client = MlflowClient(in_store["uri"])
    run = client.get_run(run_id)
    assert client.get_experiment(run.info.experiment_id).name == "translate-cyclegan"
    assert run.info.run_name == "tracked" and run.info.status == "FINISHED"
    params = run.data.params
    assert params["model_source"] == "folder" and params["model_version"].startswith("local:")
    assert params["format"] == "jpeg" and params["height"] == "96" and params["n_inputs"] == "3"
    assert run.data.metrics["translated"] == 3 and run.data.metrics["refused"] == 0
    assert run.data.metrics["images_per_second"] > 0
    artifacts = {a.path for a in client.list_artifacts(run_id)} | {
        a.path for a in client.list_artifacts(run_id, "samples")
    }
    assert {TABLE_FILE, "translations.json", "summary.json", "samples/grid.png"} <= artifacts
    assert Image.open(out / "0000.jpg").size == (96, 96)
    with open(out / TABLE_FILE, newline="") as fh:
        assert [row["status"] for row in csv.DictReader(fh)] == ["ok", "ok", "ok"]


@pytest.mark.slow
def test_a_killed_run_leaves_no_partial_output_and_a_rerun_completes(store, tmp_path):
    exe = shutil.which("transfigure")
    assert exe, "the transfigure console script is installed with the package"
    inputs = photos(tmp_path / "many", 80, size=128)
    out = tmp_path / "out"
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": store["uri"],
        "TRANSFIGURE_LEDGER": str(store["root"] / "ledger.sqlite"),
        "TRANSFIGURE_WATERMARK_KEY": "translate-cli-tests",
    }
    cmd = [exe, "translate", "cyclegan@champion", str(inputs), "-o", str(out), "--batch-size", "2", "--no-progress"]
    proc = subprocess.Popen(cmd, cwd=store["root"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(out.glob("*.png"))) < 4 and proc.poll() is None:
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be killed:\n" + proc.stdout.read().decode()[-3000:]
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stdout.close()

    written = sorted(p.name for p in out.glob("*.png"))
    assert 4 <= len(written) < 80
    config = ProvenanceConfig.from_env(env, root=store["root"])
    for name in written:  # whatever is there under an output's name is a whole, stamped image
        assert verify_image_bytes((out / name).read_bytes(), config=config)["verdict"] == "verified", name

    rerun = subprocess.run(cmd, cwd=store["root"], env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    recorded = [json.loads(line)["input"] for line in (out / STATE_FILE).read_text().splitlines()]
    skipped = int(re.search(r"(\d+) skipped", rerun.stdout).group(1))
    assert skipped >= len(written) - 1 and len(set(recorded)) == 80  # at most the one being recorded is redone
    assert sorted(p.name for p in out.glob("*.png")) == [f"{i:04d}.png" for i in range(80)]
    assert not [p for p in out.rglob("*") if p.name.endswith(".part")]
    for name in ("0000.png", "0079.png"):
        assert verify_image_bytes((out / name).read_bytes(), config=config)["verdict"] == "verified"
