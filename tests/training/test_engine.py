"""The shared training loop: schedules, checkpoints, exact resume, stops that keep work."""

from __future__ import annotations

import calendar
import hashlib
import logging
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from transfigure.models import CycleGAN
from transfigure.runtime.distributed import DistContext
from transfigure.training import Trainer, TrainingConfig
from transfigure.training.checkpoint import PREVIOUS_DIR, archive_checkpoints, atomic_torch_save, load_checkpoint
from transfigure.training.schedulers import linear_decay_factor

BASE = dict(n_epochs=2, n_epochs_decay=2, batch_size=2, checkpoint_every=4, log_every=1, sample_every=3, progress=False)


def tiny_model() -> CycleGAN:
    return CycleGAN(ngf=8, ndf=8, netG="resnet_6blocks", pool_size=3)


class ListLogger:
    def __init__(self) -> None:
        self.metrics: list[tuple[int, dict]] = []
        self.images: list[tuple[int, str, tuple[int, int]]] = []

    def log_metrics(self, metrics, step):
        self.metrics.append((step, dict(metrics)))

    def log_image(self, image, name, step):
        self.images.append((step, name, image.size))


def test_linear_decay_matches_reference_rule():
    # n_epochs=2, n_epochs_decay=2: 1, 1, 2/3, 1/3 (reference: epoch_count=1)
    assert [round(linear_decay_factor(e, 2, 2), 4) for e in range(4)] == [1.0, 1.0, 0.6667, 0.3333]


@pytest.mark.slow
def test_fit_runs_all_epochs_logs_and_decays_lr(tmp_path, pairs):
    log = ListLogger()
    ds = pairs()
    trainer = Trainer(tiny_model(), ds, TrainingConfig(**BASE), tmp_path, logger_=log)
    result = trainer.fit()
    assert result.step == 12 and result.epoch == 4  # 6 images / batch 2 = 3 steps x 4 epochs
    assert ds.epochs == [0, 1, 2, 3]
    steps = [s for s, _ in log.metrics]
    assert steps == list(range(1, 13))
    m = dict(log.metrics)
    assert m[1]["lr_G"] == pytest.approx(2e-4) and m[12]["lr_G"] == pytest.approx(2e-4 / 3)
    assert m[12]["images_per_second"] > 0 and "loss_cycle_A" in m[12]
    assert [s for s, _, _ in log.images] == [3, 6, 9, 12]
    from transfigure.data.grid import MIN_TILE, visuals_grid

    # the captioned grid of the model's visuals (6 images x a batch of 2), 32 px tiles enlarged to MIN_TILE
    assert log.images[0][2] == visuals_grid(trainer.model.visuals()).size
    assert log.images[0][2][0] >= 6 * MIN_TILE and log.images[0][2][1] >= 2 * MIN_TILE
    assert (tmp_path / "checkpoints" / "last.pt").is_file()
    ckpt = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert ckpt["step"] == 12 and ckpt["variant"] == "cyclegan"
    # rotation: keep_checkpoints=2 numbered + last
    assert sorted(p.name for p in (tmp_path / "checkpoints").glob("step_*.pt")) == [
        "step_00000008.pt",
        "step_00000012.pt",
    ]


@pytest.mark.slow
@pytest.mark.parametrize(("num_workers", "precision"), [(0, "fp32"), (2, "fp32"), (0, "bf16"), (2, "auto")])
def test_resume_continues_exactly_where_it_stopped(tmp_path, pairs, num_workers, precision):
    # bf16 autocast (what 'auto' gives on CPUs with AVX512-BF16/AMX) must resume bit-exactly too
    kw = dict(BASE, num_workers=num_workers, precision=precision)
    full_trainer = Trainer(tiny_model(), pairs(), TrainingConfig(**kw), tmp_path / "full")
    full = full_trainer.fit()

    part = Trainer(tiny_model(), pairs(), TrainingConfig(**kw, max_steps=5), tmp_path / "part")
    r1 = part.fit()
    assert r1.step == 5 and r1.epoch == 1  # stopped in the middle of the second epoch

    resumed = Trainer(tiny_model(), pairs(), TrainingConfig(**kw, resume=True), tmp_path / "part")
    r2 = resumed.fit()
    assert r2.resumed_from_step == 5 and r2.step == 12
    # the schedule went on from epoch 1, not from 0: after 4 epochs the linear decay reached 0
    assert resumed.current_lrs() == full_trainer.current_lrs() == {"lr_G": 0.0, "lr_D": 0.0}
    assert resumed.schedulers["G"].last_epoch == full_trainer.schedulers["G"].last_epoch == 4
    a = load_checkpoint(full.checkpoint)["model"]
    b = resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed weights differ from an uninterrupted run"


def test_auto_precision_trains_in_bf16_on_a_cpu_with_native_bf16(tmp_path, pairs, monkeypatch, caplog):
    from transfigure.runtime import device as device_mod

    monkeypatch.setattr(device_mod, "cpu_flags", lambda: frozenset({"avx2", "avx512_bf16"}))
    model = tiny_model()
    monkeypatch.setattr(type(model), "channels_last_cpu", ("bf16",))
    with caplog.at_level(logging.INFO, logger="transfigure.training.engine"):
        trainer = Trainer(model, pairs(), TrainingConfig(**BASE, max_steps=3, device="cpu"), tmp_path)
    assert trainer.precision.mode == "bf16" and trainer.channels_last
    assert trainer.resolved_setup() == {
        "resolved_device": "cpu",
        "resolved_precision": "bf16",
        "precision_reason": "cpu avx512_bf16",
        "resolved_channels_last": "true",
        "channels_last_reason": "cpu bf16: measured faster for this variant",
    }
    assert "precision bf16 (auto: cpu avx512_bf16)" in caplog.text
    result = trainer.fit()
    assert result.step == 3 and result.losses
    assert all(math.isfinite(v) for v in result.losses.values())
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())  # autocast, fp32 master weights


def test_auto_precision_is_fp32_on_a_cpu_without_native_bf16(tmp_path, pairs, monkeypatch):
    from transfigure.runtime import device as device_mod

    monkeypatch.setattr(device_mod, "cpu_flags", lambda: frozenset({"avx2", "avx512f"}))
    trainer = Trainer(tiny_model(), pairs(), TrainingConfig(**BASE, max_steps=1, device="cpu"), tmp_path)
    assert trainer.precision.mode == "fp32" and not trainer.channels_last
    assert trainer.resolved_setup()["precision_reason"] == "cpu without amx_bf16/avx512_bf16"
    explicit = Trainer(tiny_model(), pairs(), TrainingConfig(**BASE, precision="fp32", device="cpu"), tmp_path / "e")
    assert explicit.precision.mode == "fp32" and explicit.resolved_setup()["precision_reason"] == "requested"


def test_resume_without_checkpoint_starts_fresh(tmp_path, pairs):
    r = Trainer(tiny_model(), pairs(), TrainingConfig(**BASE, resume=True, max_steps=2), tmp_path).fit()
    assert r.resumed_from_step is None and r.step == 2


def test_resume_refuses_a_different_model_config(tmp_path, pairs):
    Trainer(tiny_model(), pairs(), TrainingConfig(**BASE, max_steps=2), tmp_path).fit()
    other = CycleGAN(ngf=4, ndf=8, netG="resnet_6blocks", pool_size=3)
    with pytest.raises(ValueError, match="ngf"):
        Trainer(other, pairs(), TrainingConfig(**BASE, resume=True), tmp_path).fit()


def _files(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` by relative path."""
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_a_new_run_moves_the_earlier_runs_checkpoints_aside(tmp_path, pairs, caplog):
    ckpts = tmp_path / "checkpoints"
    first = Trainer(
        tiny_model(),
        pairs(),
        TrainingConfig(**BASE, max_steps=2),
        tmp_path,
        run_metadata={"mlflow_run_id": "0123456789abcdef"},
    ).fit()
    assert first.archived is None
    before = _files(ckpts)
    assert sorted(before) == ["last.pt", "step_00000002.pt"]

    with caplog.at_level(logging.WARNING, logger="transfigure.training.engine"):
        second = Trainer(tiny_model(), pairs(), TrainingConfig(**BASE, max_steps=1), tmp_path).fit()

    aside = second.archived.folder
    assert aside.parent == ckpts / PREVIOUS_DIR and aside.name.endswith("-step2-0123456789ab")
    assert second.archived.step == 2 and second.archived.run_id == "0123456789abcdef"
    assert _files(aside) == before  # the first run's files, intact
    assert sorted(p.name for p in ckpts.iterdir()) == ["last.pt", PREVIOUS_DIR, "step_00000001.pt"]
    assert load_checkpoint(ckpts / "last.pt")["step"] == 1  # only the new run's files beside it
    assert str(aside) in caplog.text and "resume: true would have continued from step 2" in caplog.text

    third = Trainer(tiny_model(), pairs(), TrainingConfig(**BASE, max_steps=1), tmp_path).fit()
    assert third.archived.folder != aside and third.archived.folder.parent == aside.parent
    assert _files(aside) == before and sorted(_files(third.archived.folder)) == ["last.pt", "step_00000001.pt"]


def test_resume_continues_in_place_and_moves_nothing(tmp_path, pairs):
    Trainer(tiny_model(), pairs(), TrainingConfig(**BASE, max_steps=2), tmp_path).fit()
    r = Trainer(tiny_model(), pairs(), TrainingConfig(**BASE, resume=True, max_steps=3), tmp_path).fit()
    assert r.resumed_from_step == 2 and r.step == 3 and r.archived is None
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "last.pt",
        "step_00000002.pt",
        "step_00000003.pt",
    ]


def test_archive_names_collisions_and_unreadable_checkpoints(tmp_path):
    folder = tmp_path / "checkpoints"
    assert archive_checkpoints(folder) is None  # no folder
    folder.mkdir()
    assert archive_checkpoints(folder) is None  # nothing in it
    (folder / "last.pt").write_bytes(b"torn")
    (folder / ".last.pt.x.tmp").write_bytes(b"half")
    stamp = calendar.timegm((2026, 12, 1, 10, 15, 0))  # UTC
    for p in folder.iterdir():
        os.utime(p, (stamp, stamp))
    first = archive_checkpoints(folder)
    assert first.folder.name == "20261201T101500Z" and first.step is None and first.run_id is None
    assert sorted(first.files) == [".last.pt.x.tmp", "last.pt"] and (first.folder / "last.pt").read_bytes() == b"torn"
    (folder / "step_00000001.pt").write_bytes(b"x")
    os.utime(folder / "step_00000001.pt", (stamp, stamp))
    second = archive_checkpoints(folder)
    assert second.folder.name == "20261201T101500Z-2" and list(folder.iterdir()) == [folder / PREVIOUS_DIR]


def test_only_rank_zero_moves_checkpoints(tmp_path, pairs):
    Trainer(tiny_model(), pairs(), TrainingConfig(**BASE, max_steps=1), tmp_path).fit()
    trainer = Trainer(tiny_model(), pairs(), TrainingConfig(**BASE, max_steps=1), tmp_path)
    trainer.dist = DistContext(rank=1, world_size=2)
    trainer._archive_earlier_run()
    assert not (tmp_path / "checkpoints" / PREVIOUS_DIR).exists()
    trainer.dist = DistContext()
    trainer._archive_earlier_run()
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [PREVIOUS_DIR]


def test_atomic_save_keeps_previous_checkpoint_on_failure(tmp_path):
    target = tmp_path / "last.pt"
    atomic_torch_save({"format": 1, "step": 1}, target)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("disk full (simulated)")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_torch_save({"format": 1, "step": 2, "bad": Unpicklable()}, target)
    assert torch.load(target, weights_only=True)["step"] == 1
    assert list(tmp_path.iterdir()) == [target]  # no temporary file left behind


def test_corrupt_checkpoint_gives_clear_error(tmp_path):
    bad = tmp_path / "last.pt"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError, match="cannot read checkpoint"):
        load_checkpoint(bad)


def test_non_finite_loss_stops_with_message(tmp_path, pairs):
    ds = pairs()
    ds.a[:] = float("nan")
    with pytest.raises(FloatingPointError, match="non-finite loss"):
        Trainer(tiny_model(), ds, TrainingConfig(**BASE), tmp_path).fit()


SCRIPT = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {tests!r})
    from training.conftest import TensorPairs
    from transfigure.models import CycleGAN
    from transfigure.training import Trainer, TrainingConfig, TrainingInterrupted

    class Slow(TensorPairs):
        def __getitem__(self, i):
            time.sleep(0.05)
            return super().__getitem__(i)

    cfg = TrainingConfig(n_epochs=50, n_epochs_decay=0, batch_size=2, checkpoint_every=3, progress=False, resume=True)
    t = Trainer(CycleGAN(ngf=8, ndf=8, netG="resnet_6blocks", pool_size=3), Slow(), cfg, {out!r})
    print("started", flush=True)
    try:
        t.fit()
    except TrainingInterrupted as e:
        print("interrupted", t.step, flush=True)
        sys.exit(3)
    """
)


def _start(tmp_path: Path) -> subprocess.Popen:
    script = SCRIPT.format(tests=str(Path(__file__).parents[1]), out=str(tmp_path / "run"))
    return subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_checkpoint(tmp_path: Path, proc: subprocess.Popen, min_step: int) -> None:
    deadline = time.time() + 60
    last = tmp_path / "run" / "checkpoints" / "last.pt"
    while time.time() < deadline:
        if last.exists() and load_checkpoint(last)["step"] >= min_step:
            return
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.2)
    raise AssertionError("no checkpoint appeared")


@pytest.mark.slow
def test_sigterm_stops_after_the_step_and_keeps_a_checkpoint(tmp_path):
    proc = _start(tmp_path)
    _wait_for_checkpoint(tmp_path, proc, 3)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, err
    stopped_at = int(out.split("interrupted")[1].split()[0])
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert ckpt["step"] == stopped_at >= 3


@pytest.mark.slow
@pytest.mark.skipif(os.name != "posix", reason="SIGKILL")
def test_killed_run_resumes_from_last_checkpoint_not_from_zero(tmp_path, pairs):
    proc = _start(tmp_path)
    _wait_for_checkpoint(tmp_path, proc, 6)
    proc.kill()  # SIGKILL: no chance to save anything
    proc.wait(timeout=30)
    saved = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert saved["step"] >= 6 and saved["step"] % 3 == 0

    trainer = Trainer(
        tiny_model(),
        pairs(),
        TrainingConfig(
            n_epochs=50,
            n_epochs_decay=0,
            batch_size=2,
            checkpoint_every=3,
            progress=False,
            resume=True,
            max_steps=saved["step"] + 2,
        ),
        tmp_path / "run",
    )
    result = trainer.fit()
    assert result.resumed_from_step == saved["step"]
    assert result.step == saved["step"] + 2


@pytest.mark.parametrize(
    "policy,extra,expected",
    [
        ("step", {"lr_decay_iters": 2, "lr_gamma": 0.5}, [2e-4, 2e-4, 1e-4, 1e-4]),
        ("cosine", {}, [2e-4, 2e-4 * 0.8535534, 1e-4, 2e-4 * 0.1464466]),
        ("constant", {}, [2e-4] * 4),
    ],
)
@pytest.mark.slow
def test_lr_policies_per_epoch(tmp_path, pairs, policy, extra, expected):
    log = ListLogger()
    cfg = TrainingConfig(**{**BASE, "lr_policy": policy, **extra})
    Trainer(tiny_model(), pairs(), cfg, tmp_path, logger_=log).fit()
    lr_by_epoch = {int(m["epoch"]): m["lr_G"] for _, m in log.metrics}
    assert [lr_by_epoch[e] for e in range(4)] == pytest.approx(expected, rel=1e-5)


@pytest.mark.slow
def test_plateau_decays_when_the_watched_loss_stops_improving(tmp_path, pairs):
    cfg = TrainingConfig(
        **{**BASE, "lr_policy": "plateau", "plateau_metric": "D_A", "plateau_patience": 1, "lr_gamma": 0.5}
    )
    trainer = Trainer(tiny_model(), pairs(), cfg, tmp_path)
    lrs = []
    for mean in [1.0, 0.5, 0.5, 0.5, 0.5, 0.2]:  # improves, then flat for 3 epochs, then improves
        trainer._step_schedulers({"D_A": mean * 3, "G": 1.0}, 3)
        lrs.append(trainer.current_lrs()["lr_D"])
    # patience 1: the second flat epoch decays; the third flat one starts a new wait; then it improves
    assert lrs == pytest.approx([2e-4, 2e-4, 2e-4, 1e-4, 1e-4, 1e-4])
    # a real run with the plateau schedule steps it from the epoch means without error
    result = Trainer(tiny_model(), pairs(), cfg, tmp_path / "run").fit()
    assert result.epoch == 4
    with pytest.raises(KeyError, match="not a loss"):
        Trainer(
            tiny_model(),
            pairs(),
            TrainingConfig(**{**BASE, "lr_policy": "plateau", "plateau_metric": "nope"}),
            tmp_path / "x",
        ).fit()
