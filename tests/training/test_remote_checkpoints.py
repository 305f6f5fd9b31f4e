"""Checkpoints mirrored to a remote folder (``training.remote_dir``) and resumed from there on another machine.

The fast tests use a ``file://`` remote (fsspec's local file system, the same code path as S3 but for the
protocol); ``test_s3_resume_on_a_new_machine_matches_an_uninterrupted_run`` runs the tracked training against the
moto S3 server of ``tests/_services.py``.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from pathlib import Path

import pytest
import torch

from transfigure.models import CycleGAN
from transfigure.runtime.distributed import DistContext
from transfigure.runtime.storage import TMP_PREFIX, RemoteFolder, RemoteStorageError
from transfigure.training import Trainer, TrainingConfig
from transfigure.training.checkpoint import PREVIOUS_DIR, load_checkpoint

# 6 images / batch 2 = 3 steps per epoch, 2 epochs
BASE = dict(n_epochs=1, n_epochs_decay=1, batch_size=2, checkpoint_every=2, log_every=1, sample_every=100)
BASE.update(progress=False, keep_checkpoints=2)


def tiny_model() -> CycleGAN:
    return CycleGAN(ngf=4, ndf=4, netG="resnet_6blocks", pool_size=3)


def _files(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` by relative path."""
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _top(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture
def remote(tmp_path) -> tuple[str, Path]:
    """A ``file://`` remote folder (URL, and the path it names)."""
    path = tmp_path / "bucket" / "team" / "cyclegan"
    return path.as_uri(), path


def test_checkpoints_are_uploaded_and_rotated_remotely(tmp_path, pairs, remote):
    url, path = remote
    r = Trainer(tiny_model(), pairs(), TrainingConfig(**BASE, max_steps=5, remote_dir=url), tmp_path / "m1").fit()
    assert r.step == 5
    local = tmp_path / "m1" / "checkpoints"
    # checkpoints at steps 2, 4 and the final 5; keep_checkpoints=2 numbered + last.pt, on both sides
    assert _top(local) == ["last.pt", "step_00000004.pt", "step_00000005.pt"]
    assert _files(path / "checkpoints") == _files(local)  # byte for byte; no temporary upload left behind
    assert not any(n.startswith(TMP_PREFIX) for n in _top(path))  # the write probe is gone too


def test_resume_on_a_new_machine_is_bit_exact(tmp_path, pairs, remote, caplog):
    url, path = remote
    full_trainer = Trainer(tiny_model(), pairs(), TrainingConfig(**BASE), tmp_path / "full")
    full = full_trainer.fit()
    assert full.step == 6

    first = Trainer(tiny_model(), pairs(), TrainingConfig(**BASE, max_steps=4, remote_dir=url), tmp_path / "m1")
    first.run_metadata["mlflow_run_id"] = "run-of-machine-1"
    assert first.fit().step == 4
    shutil.rmtree(tmp_path / "m1")  # the first machine is gone

    second = Trainer(tiny_model(), pairs(), TrainingConfig(**BASE, resume=True, remote_dir=url), tmp_path / "m2")
    with caplog.at_level(logging.INFO, logger="transfigure.training.engine"):
        assert second.resume_metadata() == {"mlflow_run_id": "run-of-machine-1"}  # downloaded before fit
        r = second.fit()
    assert r.resumed_from_step == 4 and r.step == 6 and r.archived is None
    assert f"downloaded {url}/checkpoints/last.pt (step 4)" in caplog.text
    a = load_checkpoint(full.checkpoint)["model"]
    b = second.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed weights differ from an uninterrupted run"
    assert second.current_lrs() == full_trainer.current_lrs()
    # the remote folder went on with the resumed run
    assert load_checkpoint(path / "checkpoints" / "last.pt")["step"] == 6
    remote_files, local_files = _files(path / "checkpoints"), _files(tmp_path / "m2" / "checkpoints")
    assert sorted(remote_files) == ["last.pt", "step_00000004.pt", "step_00000006.pt"]  # machine 1's step 4 stays
    assert sorted(local_files) == ["last.pt", "step_00000006.pt"]
    assert remote_files["last.pt"] == local_files["last.pt"]


def test_resume_takes_the_newer_of_local_and_remote(tmp_path, pairs, remote):
    url, path = remote
    cfg = dict(BASE, remote_dir=url)
    Trainer(tiny_model(), pairs(), TrainingConfig(**cfg, max_steps=2), tmp_path / "m1").fit()
    r = Trainer(tiny_model(), pairs(), TrainingConfig(**cfg, resume=True, max_steps=4), tmp_path / "m2").fit()
    assert r.resumed_from_step == 2 and r.step == 4

    # back on machine 1: its local last.pt (step 2) is older than the remote one (step 4)
    before = _files(tmp_path / "m1" / "checkpoints")
    r = Trainer(tiny_model(), pairs(), TrainingConfig(**cfg, resume=True, max_steps=5), tmp_path / "m1").fit()
    assert r.resumed_from_step == 4 and r.step == 5
    ckpts = tmp_path / "m1" / "checkpoints"
    (aside,) = (ckpts / PREVIOUS_DIR).iterdir()  # its older local files were moved aside, not mixed in
    assert _files(aside) == before
    assert _top(ckpts) == ["last.pt", PREVIOUS_DIR, "step_00000005.pt"]

    # machine 2 is now behind: same again in the other direction
    r = Trainer(tiny_model(), pairs(), TrainingConfig(**cfg, resume=True, max_steps=6), tmp_path / "m2").fit()
    assert r.resumed_from_step == 5 and r.step == 6


def test_a_local_checkpoint_newer_than_the_remote_one_is_uploaded_and_the_remote_one_moved_aside(
    tmp_path, pairs, remote
):
    url, path = remote
    Trainer(tiny_model(), pairs(), TrainingConfig(**BASE, max_steps=2, remote_dir=url), tmp_path / "m1").fit()
    old_remote = _files(path / "checkpoints")
    Trainer(tiny_model(), pairs(), TrainingConfig(**BASE, resume=True, max_steps=4), tmp_path / "m1").fit()  # offline
    trainer = Trainer(tiny_model(), pairs(), TrainingConfig(**BASE, resume=True, remote_dir=url), tmp_path / "m1")
    assert trainer.resume_metadata() == {}
    remote_ckpts = path / "checkpoints"
    (aside,) = (remote_ckpts / PREVIOUS_DIR).iterdir()
    assert aside.name.endswith("-step2") and _files(aside) == old_remote
    assert load_checkpoint(remote_ckpts / "last.pt")["step"] == 4 and (remote_ckpts / "step_00000004.pt").is_file()
    assert trainer.fit().resumed_from_step == 4


def test_a_new_run_moves_the_earlier_runs_remote_checkpoints_aside(tmp_path, pairs, remote, caplog):
    url, path = remote
    Trainer(tiny_model(), pairs(), TrainingConfig(**BASE, max_steps=2, remote_dir=url), tmp_path / "m1").fit()
    remote_ckpts = path / "checkpoints"
    before = _files(remote_ckpts)
    assert sorted(before) == ["last.pt", "step_00000002.pt"]

    with caplog.at_level(logging.WARNING, logger="transfigure.training.engine"):
        r = Trainer(tiny_model(), pairs(), TrainingConfig(**BASE, max_steps=1, remote_dir=url), tmp_path / "m2").fit()
    assert r.archived is None  # nothing local on machine 2
    aside = r.remote_archived
    assert aside.step == 2 and aside.files == ("last.pt", "step_00000002.pt")
    assert aside.folder.startswith(f"{url}/checkpoints/{PREVIOUS_DIR}/") and aside.folder.endswith("-step2")
    assert aside.folder in caplog.text
    (folder,) = (remote_ckpts / PREVIOUS_DIR).iterdir()
    assert folder.as_uri() == aside.folder and _files(folder) == before  # intact
    assert _top(remote_ckpts) == ["last.pt", PREVIOUS_DIR, "step_00000001.pt"]
    assert load_checkpoint(remote_ckpts / "last.pt")["step"] == 1  # only the new run's files beside it

    third = Trainer(tiny_model(), pairs(), TrainingConfig(**BASE, max_steps=1, remote_dir=url), tmp_path / "m3").fit()
    assert third.remote_archived.folder != aside.folder
    assert len(list((remote_ckpts / PREVIOUS_DIR).iterdir())) == 2 and _files(folder) == before


def test_a_failed_upload_during_training_is_retried_and_the_final_one_must_succeed(tmp_path, pairs, remote, caplog):
    url, path = remote
    trainer = Trainer(tiny_model(), pairs(), TrainingConfig(**BASE, max_steps=3, remote_dir=url), tmp_path / "m1")
    real_upload, calls = trainer.remote.folder.upload, []

    def flaky(local, name):
        calls.append(name)
        if len(calls) == 1:  # the step-2 checkpoint
            raise RemoteStorageError("cannot upload: connection reset")
        return real_upload(local, name)

    trainer.remote.folder.upload = flaky
    with caplog.at_level(logging.ERROR, logger="transfigure.training.engine"):
        assert trainer.fit().step == 3
    assert "checkpoint of step 2 NOT uploaded" in caplog.text
    assert sorted(_files(path / "checkpoints")) == ["last.pt", "step_00000003.pt"]
    assert load_checkpoint(path / "checkpoints" / "last.pt")["step"] == 3

    trainer = Trainer(tiny_model(), pairs(), TrainingConfig(**BASE, max_steps=1, remote_dir=url), tmp_path / "m2")

    def broken(local, name):
        raise RemoteStorageError("cannot upload: bucket gone")

    trainer.remote.folder.upload = broken
    with pytest.raises(RemoteStorageError, match="bucket gone"):
        trainer.fit()
    assert load_checkpoint(tmp_path / "m2" / "checkpoints" / "last.pt")["step"] == 1  # kept locally


def test_only_rank_zero_touches_the_remote(tmp_path, pairs, remote):
    url, path = remote
    trainer = Trainer(tiny_model(), pairs(), TrainingConfig(**BASE, max_steps=1, remote_dir=url), tmp_path / "m1")
    trainer.dist = DistContext(rank=1, world_size=2)
    trainer.save_checkpoint()
    assert trainer.upload_folder(tmp_path) is None
    assert not (path / "checkpoints").exists()


def test_the_generator_folder_is_uploaded_byte_identical(tmp_path, pairs, remote):
    url, path = remote
    trainer = Trainer(tiny_model(), pairs(), TrainingConfig(**BASE, max_steps=1, remote_dir=url), tmp_path / "m1")
    export = tmp_path / "m1" / "generator"
    export.mkdir(parents=True)
    (export / "config.json").write_text('{"variant": "cyclegan"}')
    (export / "AtoB.safetensors").write_bytes(bytes(range(256)) * 40)
    (path / "generator").mkdir(parents=True)
    (path / "generator" / "stale.safetensors").write_bytes(b"an earlier export")
    assert trainer.upload_folder(export) == f"{url}/generator"
    assert _files(path / "generator") == _files(export)  # the stale file is gone
    assert Trainer(tiny_model(), pairs(), TrainingConfig(**BASE), tmp_path / "m2").upload_folder(export) is None


def test_an_unwritable_remote_fails_before_training_naming_the_url(tmp_path, pairs):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    url = (blocker / "cyclegan").as_uri()
    with pytest.raises(RemoteStorageError, match=f"cannot write to remote folder '{url}'"):
        Trainer(tiny_model(), pairs(), TrainingConfig(**BASE, remote_dir=url), tmp_path / "m1")
    assert not (tmp_path / "m1").exists()


def test_an_unreachable_s3_endpoint_fails_at_once_naming_url_and_endpoint(tmp_path, pairs, monkeypatch):
    from _services import free_port

    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    for key, value in {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_MAX_ATTEMPTS": "1",
    }.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(RemoteStorageError) as err:
        Trainer(tiny_model(), pairs(), TrainingConfig(**BASE, remote_dir="s3://team-bucket/cyclegan"), tmp_path)
    assert "'s3://team-bucket/cyclegan'" in str(err.value) and f"endpoint {endpoint}" in str(err.value)


def test_remote_folder_upload_never_exposes_a_partial_file(tmp_path, monkeypatch):
    """An upload that fails half-way leaves the earlier file in place and no temporary file."""
    folder = RemoteFolder((tmp_path / "remote").as_uri())
    src = tmp_path / "last.pt"
    src.write_bytes(b"old")
    folder.upload(src, "checkpoints/last.pt")
    src.write_bytes(b"new" * 1000)

    def broken_put(lpath, rpath, **kw):
        Path(rpath).write_bytes(b"ne")  # a partial temporary object
        raise OSError("connection reset")

    monkeypatch.setattr(folder.fs, "put_file", broken_put)
    with pytest.raises(RemoteStorageError, match="cannot upload to .*checkpoints/last.pt.*connection reset"):
        folder.upload(src, "checkpoints/last.pt")
    assert _files(tmp_path / "remote") == {"checkpoints/last.pt": hashlib.sha256(b"old").hexdigest()}


@pytest.mark.slow
def test_s3_resume_on_a_new_machine_matches_an_uninterrupted_run(tmp_path, mlflow_uri, s3_server, monkeypatch):
    """The tracked training against a real S3 API (moto): 2 steps, the machine's folder deleted, resume to 4 steps
    from the bucket in the same MLflow run; the exported generator equals an uninterrupted 4-step run's, byte for
    byte, and so does its copy in the bucket."""
    from _support import make_unaligned, tiny_variant_params
    from transfigure.pipelines.data_validation.nodes import prepare_dataset
    from transfigure.pipelines.training.nodes import train

    for key, value in s3_server.env().items():
        monkeypatch.setenv(key, value)
    bucket = s3_server.new_bucket()
    url = f"s3://{bucket}/team/cyclegan"
    dataset = {**prepare_dataset({"path": str(make_unaligned(tmp_path / "data"))}), "fingerprint": "test"}

    def run(output_dir: Path, max_steps: int, **training) -> dict:
        p = tiny_variant_params("cyclegan", output_dir, max_steps=max_steps)
        p["training"].update(training)
        p["tracking"]["register"] = False
        args = (p["data"], p["model"], p["training"], p["tracking"], p["output_dir"])
        return train("cyclegan", dataset, {"success": True, "summary": {}}, *args)

    full = run(tmp_path / "full", 4)
    part = run(tmp_path / "m1", 2, remote_dir=url)
    assert part["remote_checkpoints"] == f"{url}/checkpoints" and part["remote_export"] == f"{url}/generator"
    keys = s3_server.keys(bucket)
    assert sorted(keys) == sorted(
        f"team/cyclegan/{k}"
        for k in (
            "checkpoints/last.pt",
            "checkpoints/step_00000002.pt",
            *(f"generator/{n}" for n in _top(Path(part["export_dir"]))),
        )
    )
    shutil.rmtree(tmp_path / "m1")

    resumed = run(tmp_path / "m2", 4, remote_dir=url, resume=True)
    assert resumed["resumed_from_step"] == 2 and resumed["step"] == 4
    assert resumed["run_id"] == part["run_id"]  # the MLflow run id came with the downloaded checkpoint
    assert _files(Path(resumed["export_dir"])) == _files(Path(full["export_dir"]))
    fs = RemoteFolder(url)
    remote_generator = {
        n: hashlib.sha256(fs.fs.cat_file(fs.path(f"generator/{n}"))).hexdigest() for n in _top(Path(full["export_dir"]))
    }
    assert remote_generator == _files(Path(full["export_dir"]))
    assert "team/cyclegan/checkpoints/step_00000004.pt" in s3_server.keys(bucket)
