"""The README's team setup, for real: ``mlflow server`` on PostgreSQL with its artifacts in an S3-compatible store
(moto), the provenance ledger in PostgreSQL, and train -> register -> promote -> translate -> verify through them
with nothing but ``MLFLOW_TRACKING_URI`` and ``TRANSFIGURE_LEDGER`` on the client side."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from _services import mlflow_server
from _support import project_copy
from transfigure.provenance import Ledger

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serving"))
from _serving import Server  # noqa: E402  (the serving tests' `bentoml serve` launcher, reused as is)

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
CLIENT_ONLY = ("MLFLOW_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")


@pytest.fixture
def team_services(tmp_path, postgres_server, s3_server):
    """An MLflow server (PostgreSQL backend store, artifacts in an S3 bucket) and a PostgreSQL ledger database."""
    bucket = s3_server.new_bucket("mlflow")
    backend = postgres_server.url(postgres_server.new_database("mlflow"))
    ledger = postgres_server.url(postgres_server.new_database("ledger"), driver="postgresql")
    with mlflow_server(backend, f"s3://{bucket}/artifacts", tmp_path / "server.log", env=s3_server.env()) as url:
        yield {"tracking_uri": url, "bucket": bucket, "ledger": ledger, "s3": s3_server}


def run(argv: list[str], cwd: Path, env: dict[str, str], timeout: int = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{argv[:3]} exited {proc.returncode}:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return proc


def test_train_promote_translate_verify_through_the_team_services(tmp_path, team_services):
    root = project_copy(tmp_path)
    # the client knows the server and the ledger, no storage credentials: artifacts go through the server
    env = {k: v for k, v in os.environ.items() if k not in CLIENT_ONLY}
    env |= {
        "MLFLOW_TRACKING_URI": team_services["tracking_uri"],
        "TRANSFIGURE_LEDGER": team_services["ledger"],
        "TRANSFIGURE_WATERMARK_KEY": "team setup test: not a real secret",
        "USER": "tester",
    }
    tiny = (
        "cyclegan.training.max_steps=2,cyclegan.model.ngf=4,cyclegan.model.ndf=4,cyclegan.training.progress=false,"
        "cyclegan.model.netG=resnet_6blocks,cyclegan.evaluation.max_images=4,cyclegan.evaluation.kid_subset_size=2"
    )
    run([str(BIN / "kedro"), "run", "--pipeline=train_cyclegan", f"--params={tiny}"], root, env)
    registered = json.loads((root / "data/08_reporting/cyclegan/registered_model.json").read_text())
    version = str(registered["version"])

    # nothing of MLflow's was stored in the project: runs in PostgreSQL, artifacts in the bucket
    assert not (root / "mlruns.db").exists() and not (root / "mlartifacts").exists() and not (root / "mlruns").exists()
    keys = team_services["s3"].keys(team_services["bucket"])
    assert any(k.endswith("AtoB.safetensors") for k in keys), keys[:20]

    promoted = run([str(BIN / "transfigure"), "promote", "cyclegan", "--version", version, "--json"], root, env)
    assert json.loads(promoted.stdout)["promoted"], promoted.stdout

    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 80, 3), dtype=np.uint8)).save(tmp_path / "in.png")
    out = tmp_path / "out"
    run(
        [str(BIN / "transfigure"), "translate", "cyclegan@champion", str(tmp_path / "in.png"), "-o", str(out)],
        root,
        env,
    )
    outputs = sorted(p for p in out.rglob("*.png"))
    assert len(outputs) == 1 and Image.open(outputs[0]).size == (80, 64)

    verified = run([str(BIN / "transfigure"), "verify", str(outputs[0])], root, env)
    report = json.loads(verified.stdout)
    assert report["verdict"] == "verified", report
    assert report["ledger"]["model_name"] == "cyclegan" and report["ledger"]["model_version"] == version
    assert report["ledger"]["run_id"] == registered["run_id"]

    # and `bentoml serve` (the serving tests' launcher) serves the team's champion, stamping into the shared ledger
    server = Server(root, env=env)
    try:
        reply = server.wait_ready(timeout=180).post_image("/translate", (tmp_path / "in.png").read_bytes())
        assert reply.status == 200, server.output()[-3000:]
        assert reply.headers["x-model-name"] == "cyclegan" and reply.headers["x-model-version"] == version
    finally:
        server.stop()
    served = Ledger(team_services["ledger"]).get(reply.headers["x-provenance-id"])
    assert served is not None and served.model_version == version
