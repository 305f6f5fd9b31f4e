"""Data-parallel training for real: `torchrun` with 2 CPU processes on the gloo backend."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from mlflow import MlflowClient

from _support import env_with_default_store, project_copy

TORCHRUN = str(Path(sys.executable).with_name("torchrun"))
KEDRO = str(Path(sys.executable).with_name("kedro"))
PROJECT = Path(__file__).resolve().parents[2]

ENGINE_SCRIPT = textwrap.dedent(
    """
    import json, os, sys, hashlib
    import torch
    sys.path.insert(0, {tests!r})
    from training.conftest import TensorPairs
    from transfigure.models import CycleGAN
    from transfigure.training import Trainer, TrainingConfig

    class Recording(TensorPairs):
        seen = []
        def __getitem__(self, i):
            self.seen.append(i)
            return super().__getitem__(i)

    ds = Recording(n=8)
    cfg = TrainingConfig(n_epochs=1, n_epochs_decay=1, batch_size=2, checkpoint_every=2, progress=False, seed=0)
    t = Trainer(CycleGAN(ngf=4, ndf=4, netG="resnet_6blocks", pool_size=0), ds, cfg, {out!r})
    r = t.fit()
    g = {{n: p.grad.clone() for n, p in t.model.G_A.named_parameters()}}
    out = {{
        "rank": t.dist.rank, "world": t.dist.world_size, "steps": r.step, "seen": sorted(ds.seen),
        "weights": hashlib.sha256(b"".join(v.numpy().tobytes() for v in t.model.state_dict().values())).hexdigest(),
        "grad_norm": float(sum(v.double().norm() ** 2 for v in g.values()) ** 0.5),
        "grad_hash": hashlib.sha256(b"".join(v.numpy().tobytes() for v in g.values())).hexdigest(),
    }}
    json.dump(out, open(os.path.join({out!r}, f"rank{{t.dist.rank}}.json"), "w"))
    """
)


@pytest.mark.slow
def test_two_gloo_ranks_shard_data_and_agree_on_gradients(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(ENGINE_SCRIPT.format(tests=str(PROJECT / "tests"), out=str(tmp_path / "run")))
    (tmp_path / "run").mkdir()
    proc = subprocess.run(
        [TORCHRUN, "--standalone", "--nproc_per_node=2", str(script)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    r0, r1 = (json.loads((tmp_path / "run" / f"rank{i}.json").read_text()) for i in (0, 1))
    assert r0["world"] == r1["world"] == 2
    # 8 items / 2 ranks / batch 2 = 2 steps per epoch, 2 epochs: both ranks stepped 4 times
    assert r0["steps"] == r1["steps"] == 4
    # each rank saw its own half of every epoch, together all of it
    per_epoch0, per_epoch1 = r0["seen"], r1["seen"]
    assert len(per_epoch0) == len(per_epoch1) == 8 and sorted(per_epoch0 + per_epoch1) == sorted(list(range(8)) * 2)
    # gradients were all-reduced: identical on both ranks, and so are the weights after 4 updates
    assert r0["grad_norm"] > 0
    assert r0["grad_hash"] == r1["grad_hash"]
    assert r0["weights"] == r1["weights"]
    # only rank 0 wrote checkpoints, and they load into a plain (non-DDP) model
    ckpts = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert ckpts == ["last.pt", "step_00000002.pt", "step_00000004.pt"]
    state = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)
    assert state["world_size"] == 2 and not any(".module." in k for k in state["model"])


@pytest.mark.slow
def test_torchrun_kedro_pipeline_logs_and_registers_once(tmp_path):
    root = project_copy(tmp_path)
    env = env_with_default_store()
    params = (
        "cyclegan.training.max_steps=3,cyclegan.model.ngf=4,cyclegan.model.ndf=4,"
        "cyclegan.training.progress=false,cyclegan.training.log_every=1,cyclegan.evaluation.max_images=4"
    )
    proc = subprocess.run(
        [
            TORCHRUN,
            "--standalone",
            "--nproc_per_node=2",
            KEDRO,
            "run",
            "--pipeline=train_cyclegan",
            f"--params={params}",
        ],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    client = MlflowClient(f"sqlite:///{root / 'mlruns.db'}")
    runs = client.search_runs(experiment_ids=[client.get_experiment_by_name("transfigure-cyclegan").experiment_id])
    assert len(runs) == 1  # rank 1 logged nothing
    assert [m.step for m in client.get_metric_history(runs[0].info.run_id, "loss_G")] == [1, 2, 3]
    versions = client.search_model_versions("name='cyclegan'")
    assert len(versions) == 1 and versions[0].run_id == runs[0].info.run_id
    summary = json.loads((root / "data/08_reporting/cyclegan/training_summary.json").read_text())
    # rank 1 wrote its identical copies beside rank 0's, never the same file
    assert json.loads((root / "data/08_reporting/cyclegan.rank1/training_summary.json").read_text()) == summary
    registered = json.loads((root / "data/08_reporting/cyclegan/registered_model.json").read_text())
    assert summary["world_size"] == 2 and summary["step"] == 3 and registered["version"] == "1"


def test_only_rank_zero_writes_the_canonical_catalog_files(monkeypatch):
    from _support import project_catalog

    monkeypatch.setenv("RANK", "0")
    assert (
        project_catalog()
        .get("cyclegan.training_summary")
        ._filepath.as_posix()
        .endswith("data/08_reporting/cyclegan/training_summary.json")
    )
    monkeypatch.setenv("RANK", "1")
    assert (
        project_catalog()
        .get("cyclegan.training_summary")
        ._filepath.as_posix()
        .endswith("data/08_reporting/cyclegan.rank1/training_summary.json")
    )
