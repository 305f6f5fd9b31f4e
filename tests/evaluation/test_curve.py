"""training.eval_every: the engine's epoch-callback hook and the FID curve that uses it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from transfigure.data.datasets import make_dataset
from transfigure.data.transforms import TransformConfig
from transfigure.evaluation import evaluate_translator
from transfigure.evaluation.curve import FidCurve
from transfigure.inference import Translator
from transfigure.models import CycleGAN
from transfigure.models.io import save_generators
from transfigure.training import Trainer, TrainingConfig

#: 4 training images at batch 1: 4 steps per epoch
CONFIG = dict(
    n_epochs=2, n_epochs_decay=2, batch_size=1, checkpoint_every=1000, log_every=1, sample_every=1000, progress=False
)
EVALUATION = {"curve_images": 2, "max_images": 2, "kid_subset_size": 2, "kid_subsets": 2}


class ListLogger:
    def __init__(self) -> None:
        self.metrics: list[tuple[int, dict]] = []

    def log_metrics(self, metrics, step):
        self.metrics.append((step, dict(metrics)))

    def log_image(self, image, name, step):
        pass


class Probe:
    """An epoch callback that records when it ran and in which state it found the model."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int, bool]] = []

    def __call__(self, trainer: Trainer) -> dict[str, float]:
        self.calls.append((trainer.epoch, trainer.step, trainer.model.training))
        return {"probe": float(trainer.epoch)}


@pytest.fixture
def data_root(tiny_unaligned) -> Path:
    """4 train and 2 test images per domain, 32 px."""
    return tiny_unaligned


def train_dataset(root: Path):
    return make_dataset("unaligned", root, "train", transform=TransformConfig(load_size=36, crop_size=32), seed=0)


def tiny() -> CycleGAN:
    return CycleGAN(ngf=4, ndf=4, netG="resnet_6blocks", pool_size=2)


@pytest.mark.slow
def test_callbacks_run_every_eval_every_epochs_and_their_metrics_are_logged(tmp_path, data_root):
    probe, second, log = Probe(), Probe(), ListLogger()
    trainer = Trainer(
        tiny(),
        train_dataset(data_root),
        TrainingConfig(**CONFIG, eval_every=2),
        tmp_path,
        logger_=log,
        callbacks=[probe, second],
    )
    result = trainer.fit()
    assert probe.calls == [(2, 8, True), (4, 16, True)] and second.calls == probe.calls
    assert [(s, m) for s, m in log.metrics if "probe" in m] == [(8, {"probe": 2.0}), (16, {"probe": 4.0})]
    assert result.evaluations == [{"epoch": 2.0, "step": 8.0, "probe": 2.0}, {"epoch": 4.0, "step": 16.0, "probe": 4.0}]
    # eval_every null = off
    off = Trainer(
        tiny(), train_dataset(data_root), TrainingConfig(**CONFIG, max_steps=8), tmp_path / "b", callbacks=[probe]
    )
    assert off.callbacks == [probe]
    off.fit()
    assert len(probe.calls) == 2


@pytest.mark.slow
def test_the_fid_curve_does_not_change_training_and_ends_at_the_final_fid(tmp_path, data_root):
    dataset = {"root": str(data_root), "format": "unaligned"}
    data = {"crop_size": 32}
    curve = FidCurve(dataset, data, EVALUATION)
    plain = Trainer(tiny(), train_dataset(data_root), TrainingConfig(**CONFIG), tmp_path / "plain")
    tracked = Trainer(
        tiny(),
        train_dataset(data_root),
        TrainingConfig(**CONFIG, eval_every=1),
        tmp_path / "tracked",
        callbacks=[curve],
    )
    r_plain, r_tracked = plain.fit(), tracked.fit()
    # the callback switched the generators to eval mode and back, used no RNG: bit-identical training
    for (k, a), (_, b) in zip(plain.model.state_dict().items(), tracked.model.state_dict().items()):
        assert torch.equal(a, b), k
    assert r_plain.losses == r_tracked.losses
    assert [row["step"] for row in curve.rows] == [4.0, 8.0, 12.0, 16.0]
    assert [e["epoch"] for e in r_tracked.evaluations] == [1.0, 2.0, 3.0, 4.0]
    assert all(e["fid_epoch"] == e["epoch"] and e["fid"] > 0 for e in r_tracked.evaluations)
    # its last point is the FID the evaluation gives the exported model on the same images
    folder = save_generators(tmp_path / "generator", tracked.model.generators(), variant="cyclegan")
    final = evaluate_translator(Translator.from_folder(folder), dataset, data, EVALUATION)
    assert final.metrics["fid"] == pytest.approx(curve.rows[-1]["fid"], rel=1e-9)
