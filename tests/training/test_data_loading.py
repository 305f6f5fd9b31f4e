"""DataLoader workers: the same batches, the same weights and the same exact resume as loading in-process."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import Dataset

from _support import make_unaligned
from transfigure.data.datasets import UnalignedDataset
from transfigure.data.transforms import TransformConfig
from transfigure.models import CycleGAN
from transfigure.training import Trainer, TrainingConfig
from transfigure.training.checkpoint import load_checkpoint

#: 6 images / batch 2 = 3 steps per epoch, 3 epochs; max_steps=4 stops in the middle of the second epoch
BASE = dict(n_epochs=2, n_epochs_decay=1, batch_size=2, checkpoint_every=1000, progress=False)


def tiny_model() -> CycleGAN:
    return CycleGAN(ngf=4, ndf=4, netG="resnet_6blocks", pool_size=3)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Unaligned 40 px images, loaded at 36 and cropped to 32 with flips: every epoch sees other crops."""
    return make_unaligned(tmp_path_factory.mktemp("unaligned"), size=40, n_train=6)


def crops(root) -> UnalignedDataset:
    return UnalignedDataset(root, "train", transform=TransformConfig(load_size=36, crop_size=32, flip=True), seed=3)


def fit(images, folder, **cfg) -> Trainer:
    trainer = Trainer(tiny_model(), crops(images), TrainingConfig(**{**BASE, **cfg}), folder)
    trainer.fit()
    return trainer


def weights(trainer: Trainer) -> dict[str, torch.Tensor]:
    return load_checkpoint(trainer.last_checkpoint)["model"]


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class EpochProbe(Dataset):
    """Items that say which epoch the loading process's copy of the dataset was set to."""

    def __init__(self, n: int = 4) -> None:
        self.n, self.epoch = n, -1

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        return {"A": torch.full((3, 4, 4), float(self.epoch)), "index": i, "worker_rng": torch.rand(())}


@pytest.mark.slow
def test_persistent_workers_see_every_new_epoch(tmp_path):
    """A persistent worker's dataset copy is not the training process's: the epoch must travel with the index."""
    cfg = TrainingConfig(n_epochs=3, n_epochs_decay=0, batch_size=2, num_workers=2, persistent_workers=True)
    trainer = Trainer(tiny_model(), EpochProbe(), cfg, tmp_path)
    loader = trainer._loader()
    seen, worker_draws = [], []
    for epoch in range(3):
        trainer.sampler.set_epoch(epoch, start=1 if epoch == 2 else 0)
        for batch in loader:
            seen += [(epoch, float(a.flatten()[0]), int(i)) for a, i in zip(batch["A"], batch["index"])]
            worker_draws += batch["worker_rng"].tolist()
    assert all(e == float(got) for e, got, _ in seen), seen
    assert len(seen) == 4 + 4 + 3  # the third epoch started one sample in, as a resumed run does
    # the workers' global RNGs are seeded from the training seed alone: a second loader draws the same
    again = Trainer(tiny_model(), EpochProbe(), cfg, tmp_path)._loader()
    redo = []
    for epoch in range(3):
        again.sampler.sampler.set_epoch(epoch, start=1 if epoch == 2 else 0)
        for batch in again:
            redo += batch["worker_rng"].tolist()
    assert redo == worker_draws


@pytest.mark.slow
@pytest.mark.parametrize(
    "workers",
    [
        pytest.param(dict(num_workers=2), id="2-persistent"),
        pytest.param(dict(num_workers=1, persistent_workers=False, prefetch_factor=4), id="1-per-epoch"),
    ],
)
def test_workers_train_the_same_weights_as_loading_in_process(tmp_path, images, workers):
    in_process = fit(images, tmp_path / "w0", num_workers=0)
    with_workers = fit(images, tmp_path / "w", **workers)
    assert same(weights(in_process), weights(with_workers)), "workers changed what the model trained on"


@pytest.mark.slow
def test_resume_with_workers_gives_the_weights_of_an_uninterrupted_run(tmp_path, images):
    full = fit(images, tmp_path / "full", num_workers=2)
    part = fit(images, tmp_path / "part", num_workers=2, max_steps=4)
    assert part.step == 4 and part.epoch == 1 and part.batch_in_epoch == 2  # stopped mid-epoch
    resumed = fit(images, tmp_path / "part", num_workers=2, resume=True)
    assert resumed.step == full.step == 9
    assert same(weights(full), weights(resumed)), "resumed weights differ from an uninterrupted run"


def test_loader_options_are_checked():
    with pytest.raises(ValueError, match="prefetch_factor needs num_workers"):
        TrainingConfig(prefetch_factor=4)
    assert TrainingConfig(num_workers=4, prefetch_factor=4).persistent_workers is True
