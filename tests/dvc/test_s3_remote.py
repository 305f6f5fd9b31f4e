"""The README's team DVC remote, for real: an S3 bucket (moto's S3-compatible server) as the default remote,
``dvc push`` from one clone, ``dvc pull`` into a fresh ``git clone``, and ``dvc repro`` there has nothing to do."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from _dvc_support import dvc, git, make_dvc_project
from _services import S3_KEY, S3_REGION, S3_SECRET

pytestmark = pytest.mark.slow

#: the data stages (cheap: no training); checkpoints travel the same way (tests/dvc/test_repro.py, local remote)
STAGES = ["prepare_data", "validate_cyclegan"]
CACHED = ["data/01_raw/default", "data/05_model_input/cyclegan/validated_dataset.json"]


def hashes(root: Path) -> dict[str, str]:
    files = [f for rel in CACHED for f in ([root / rel] if (root / rel).is_file() else sorted((root / rel).rglob("*")))]
    return {f.relative_to(root).as_posix(): hashlib.sha256(f.read_bytes()).hexdigest() for f in files if f.is_file()}


def test_s3_remote_push_then_a_fresh_clone_pulls_and_repro_is_a_no_op(tmp_path, s3_server, monkeypatch):
    # credentials from the environment, the endpoint from the remote's config (nothing secret in .dvc/config)
    for var in ("AWS_ENDPOINT_URL", "MLFLOW_S3_ENDPOINT_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", S3_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", S3_SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", S3_REGION)
    bucket = s3_server.new_bucket("dvc")
    root = make_dvc_project(tmp_path)
    dvc(root, "remote", "add", "-d", "team", f"s3://{bucket}/transfigure")
    dvc(root, "remote", "modify", "team", "endpointurl", s3_server.endpoint)
    config = (root / ".dvc" / "config").read_text()
    assert "remote = team" in config and s3_server.endpoint in config and S3_SECRET not in config

    dvc(root, "repro", *STAGES)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "data and validation, remote team")
    dvc(root, "push", "--with-deps", STAGES[-1])
    keys = s3_server.keys(bucket)
    assert keys and all(k.startswith("transfigure/") for k in keys)
    assert not (tmp_path / "transfigure-dvc-remote").exists()  # nothing went to the local default remote
    before = hashes(root)
    assert any(k.startswith("data/01_raw/default/") for k in before)

    # a teammate: a fresh clone has code, parameters, dvc.lock; the data comes from the bucket
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(root), str(clone))
    shutil.rmtree(root)  # the first clone's cache cannot help
    assert not (clone / "data/01_raw/default").exists()
    dvc(clone, "pull", "--with-deps", STAGES[-1])
    assert hashes(clone) == before
    out = dvc(clone, "repro", *STAGES)
    assert "Running stage" not in out, out[-3000:]
    assert "didn't change, skipping" in out or "Data and pipelines are up to date" in out, out[-3000:]
