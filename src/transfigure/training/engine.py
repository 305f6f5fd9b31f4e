"""The one training loop every variant goes through.

Variants (:class:`transfigure.models.base.TranslationModel`) define networks, losses and
one training step; the :class:`Trainer` owns everything else: device and precision,
``channels_last`` and ``torch.compile``, data order, LR schedules, atomic checkpoints and
exact resume (optionally mirrored to a remote folder, ``training.remote_dir``), a progress bar, metric/image logging through a :class:`TrainingLogger`
(MLflow lives in :mod:`transfigure.tracking`, not here), and clean stops on Ctrl-C or
SIGTERM that keep a checkpoint.
"""

from __future__ import annotations

import functools
import logging
import math
import random
import signal
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm.auto import tqdm

from transfigure.data.grid import visuals_grid
from transfigure.models.base import Precision, TranslationModel
from transfigure.runtime.device import choose_channels_last, choose_precision, resolve_device
from transfigure.runtime.distributed import (
    broadcast_object,
    device_for,
    init_distributed,
    plain_state_dict,
    unwrap_children,
    wrap_trainable_children,
)
from transfigure.runtime.storage import RemoteStorageError
from transfigure.training.checkpoint import (
    CHECKPOINT_FORMAT,
    ArchivedRun,
    RemoteCheckpoints,
    archive_checkpoints,
    atomic_torch_save,
    capture_rng_state,
    checkpoint_step,
    load_checkpoint,
    numbered_name,
    restore_rng_state,
    rotate_checkpoints,
)
from transfigure.training.config import TrainingConfig
from transfigure.training.schedulers import build_scheduler

logger = logging.getLogger(__name__)


class TrainingLogger(Protocol):
    """Where metrics and images go (MLflow in production, a list in tests)."""

    def log_metrics(self, metrics: dict[str, float], step: int) -> None: ...

    def log_image(self, image: Image.Image, name: str, step: int) -> None: ...


class EpochCallback(Protocol):
    """Run every ``eval_every`` epochs (rank 0 only), e.g. to compute FID on held-out images.

    Gets the trainer (model, device, step, epoch); returns metrics to log at the current step, or
    None. It must leave the model as it found it (train mode, weights, RNG state).
    """

    def __call__(self, trainer: Trainer) -> dict[str, float] | None: ...


class NullLogger:
    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        pass

    def log_image(self, image: Image.Image, name: str, step: int) -> None:
        pass


class TrainingInterrupted(RuntimeError):
    """Raised when a run is stopped by SIGTERM/Ctrl-C; a checkpoint was written first."""


class EpochSampler(Sampler[int]):
    """Deterministic per-epoch order that can start part-way (exact resume) and shard over ranks.

    The permutation for an epoch depends only on ``(seed, epoch)``; rank ``r`` of ``world_size``
    takes every ``world_size``-th index (padded like ``DistributedSampler``).
    """

    def __init__(self, length: int, *, shuffle: bool = True, seed: int = 0, rank: int = 0, world_size: int = 1) -> None:
        self.length, self.shuffle, self.seed = length, shuffle, seed
        self.rank, self.world_size = rank, world_size
        self.epoch, self.start = 0, 0
        self.per_rank = math.ceil(length / world_size)

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Use epoch ``epoch``'s order, skipping its first ``start`` samples (already trained on)."""
        self.epoch, self.start = epoch, start

    def _indices(self) -> list[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.length, generator=g).tolist()
        else:
            order = list(range(self.length))
        order += order[: self.per_rank * self.world_size - len(order)]  # pad to a multiple of world_size
        return order[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[int]:
        return iter(self._indices()[self.start :])

    def __len__(self) -> int:
        return max(self.per_rank - self.start, 0)


class _EpochKeys(Sampler[tuple[int, int]]):
    """``(epoch, index)`` for every index ``sampler`` yields: the epoch travels with each index to the workers."""

    def __init__(self, sampler: EpochSampler) -> None:
        self.sampler = sampler

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = self.sampler.epoch
        return ((epoch, i) for i in self.sampler)

    def __len__(self) -> int:
        return len(self.sampler)


class _EpochItems(Dataset):
    """``(epoch, index)`` -> ``dataset[index]`` as of that epoch, in whichever process loads it.

    A worker holds its own copy of the dataset, made when it started: with persistent workers
    the training process's ``set_epoch`` never reaches it, so the epoch comes with the key and
    the worker's copy is set to it before the item is built. Items of the project's datasets are
    pure functions of (files, seed, epoch, index), so what a batch holds does not depend on the
    number of workers, on which worker loads it, or on where a resumed run started.
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset
        self._epoch: int | None = None

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]) -> Any:
        epoch, index = key
        if epoch != self._epoch:
            set_epoch = getattr(self.dataset, "set_epoch", None)
            if set_epoch is not None:
                set_epoch(epoch)
            self._epoch = epoch
        return self.dataset[index]


def _seed_worker(seed: int, rank: int, worker_id: int) -> None:
    """Seed a DataLoader worker's global RNGs (Python, NumPy, torch) from (training seed, rank, worker id) alone.

    Nothing in the project's datasets draws from them (their randomness is per item), but a dataset
    of yours that does gets the same streams in every run of the same configuration.
    """
    worker_seed = (seed * 1_000_003 + rank * 1_009 + worker_id) % 2**32
    random.seed(worker_seed)
    np.random.seed(worker_seed)
    torch.manual_seed(worker_seed)


@dataclass
class TrainingResult:
    step: int
    epoch: int
    losses: dict[str, float]
    checkpoint: Path
    seconds: float
    images_per_second: float
    resumed_from_step: int | None = None
    history: list[dict[str, float]] = field(default_factory=list)
    #: what the epoch callbacks returned: {"epoch", "step", **metrics} per call
    evaluations: list[dict[str, float]] = field(default_factory=list)
    #: where an earlier run's checkpoints were moved when this run started (None: there were none)
    archived: ArchivedRun | None = None
    #: the same for the remote copy (``training.remote_dir``), its folder a URL
    remote_archived: ArchivedRun | None = None


def _to_device(batch: dict[str, Any], device: torch.device, channels_last: bool) -> dict[str, Any]:
    out = {}
    for k, v in batch.items():
        if isinstance(v, torch.Tensor):
            v = v.to(device, non_blocking=True)
            if channels_last and v.dim() == 4:
                v = v.contiguous(memory_format=torch.channels_last)
        out[k] = v
    return out


def _batch_size(batch: dict[str, Any]) -> int:
    for v in batch.values():
        if isinstance(v, torch.Tensor):
            return int(v.shape[0])
    return 1


def _stop_workers(loader: DataLoader) -> None:
    """End a loader's persistent workers now rather than whenever the loader is garbage-collected."""
    iterator = getattr(loader, "_iterator", None)
    if iterator is not None and hasattr(iterator, "_shutdown_workers"):
        iterator._shutdown_workers()
    loader._iterator = None


class Trainer:
    """Train ``model`` on ``dataset`` according to ``config``; checkpoints go to ``output_dir/checkpoints``.

    ``run_metadata`` is stored in every checkpoint (e.g. the MLflow run id, so a resumed run
    keeps logging to the same run) and returned by :meth:`resume_metadata`.

    Under ``torchrun`` (``WORLD_SIZE`` > 1) the same code trains data-parallel: the variant's
    networks are wrapped in ``DistributedDataParallel``, every epoch is sharded over the ranks
    (effective batch = ``batch_size`` x world size), and only rank 0 logs, shows progress and
    writes checkpoints.

    ``callbacks`` run on rank 0 every
    ``config.eval_every`` epochs; the metrics they return are logged at the current step.

    A run that does not resume and finds an earlier run's files in ``checkpoints/`` moves them
    to ``checkpoints/previous/<time>-step<N>-<run id>/`` before training (rank 0), so the folder
    only ever holds this run's checkpoints (see :func:`~transfigure.training.checkpoint.archive_checkpoints`).

    With ``config.remote_dir`` set, rank 0 checks at once that it can write there (a wrong URL,
    bucket or credential fails here, not at the first checkpoint), uploads every checkpoint to
    ``<remote_dir>/checkpoints/`` after writing it locally, moves an earlier run's remote files aside
    like the local ones, and, resuming without a local ``last.pt`` (or with an older one), downloads
    the remote ``last.pt`` first (:class:`~transfigure.training.checkpoint.RemoteCheckpoints`).
    """

    def __init__(
        self,
        model: TranslationModel,
        dataset: Dataset,
        config: TrainingConfig,
        output_dir: str | Path,
        *,
        logger_: TrainingLogger | None = None,
        run_metadata: dict[str, Any] | None = None,
        callbacks: Sequence[EpochCallback] = (),
    ) -> None:
        self.config = config
        self.callbacks: list[EpochCallback] = list(callbacks)
        self.evaluations: list[dict[str, float]] = []
        self.model = model
        self.dataset = dataset
        self.output_dir = Path(output_dir)
        self.checkpoint_dir = self.output_dir / "checkpoints"
        self._logger: TrainingLogger = logger_ or NullLogger()
        self.run_metadata = dict(run_metadata or {})
        self.dist = init_distributed()
        self.device = device_for(self.dist, resolve_device(config.device))
        crop = getattr(getattr(dataset, "transform", None), "crop_size", None)
        self.precision_choice = choose_precision(config.precision, self.device, crop)
        self.precision = Precision(self.precision_choice.mode, self.device)  # type: ignore[arg-type]
        self.channels_last, self.channels_last_reason = choose_channels_last(
            config.channels_last, self.device, self.precision.mode, type(model).channels_last_cpu
        )
        logger.info(
            "precision %s (%s: %s), channels_last %s (%s)",
            self.precision.mode,
            config.precision,
            self.precision_choice.reason,
            self.channels_last,
            self.channels_last_reason,
        )
        if len(dataset) == 0:  # type: ignore[arg-type]
            raise ValueError("the training dataset is empty")
        self.model.to(self.device)
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.optimizers = model.configure_optimizers()
        self.schedulers = {name: build_scheduler(opt, config) for name, opt in self.optimizers.items()}
        self.step = 0
        self.epoch = 0
        self.batch_in_epoch = 0  # samples of the current epoch already consumed (per rank)
        self.sampler = EpochSampler(
            len(dataset),
            shuffle=config.shuffle,
            seed=config.seed,  # type: ignore[arg-type]
            rank=self.dist.rank,
            world_size=self.dist.world_size,
        )
        self._resumed_from: int | None = None
        self._archived: ArchivedRun | None = None
        self._remote_archived: ArchivedRun | None = None
        self.remote = RemoteCheckpoints(config.remote_dir) if config.remote_dir else None
        self._remote_synced = False
        if self.remote is not None and self.dist.is_main:
            self.remote.check()
            logger.info("checkpoints are mirrored to %s", self.remote.url)
        self._stop_signal: int | None = None
        if config.compile:
            for name, gen in model.generators().items():
                gen.compile()
                logger.info("torch.compile enabled for generator %s", name)

    def resolved_setup(self) -> dict[str, str]:
        """What ``auto`` settings resolved to on this machine, and why (logged as MLflow tags)."""
        return {
            "resolved_device": str(self.device),
            "resolved_precision": self.precision.mode,
            "precision_reason": self.precision_choice.reason,
            "resolved_channels_last": str(self.channels_last).lower(),
            "channels_last_reason": self.channels_last_reason,
        }

    @property
    def logger(self) -> TrainingLogger:
        """Rank 0's logger; other ranks log nothing."""
        return self._logger if self.dist.is_main else NullLogger()

    @logger.setter
    def logger(self, value: TrainingLogger) -> None:
        self._logger = value

    # -- checkpoints ---------------------------------------------------------------------
    @property
    def last_checkpoint(self) -> Path:
        return self.checkpoint_dir / "last.pt"

    def state_dict(self) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "variant": self.model.variant,
            "model_config": self.model.config.model_dump(),
            "training_config": self.config.model_dump(),
            "model": plain_state_dict(self.model),
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
            "precision": self.precision.state_dict(),
            "extra": self.model.extra_state(),
            "step": self.step,
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "rng": capture_rng_state(),
            "run_metadata": self.run_metadata,
            "world_size": self.dist.world_size,
        }

    def save_checkpoint(self, *, remote_required: bool = False) -> Path:
        """Write ``step_N.pt`` and ``last.pt`` (rank 0 only; the ranks hold identical weights), then upload them.

        A failed upload of a checkpoint during training is logged and the run goes on (the next checkpoint
        uploads again); with ``remote_required`` (the end of training) it raises.
        """
        if not self.dist.is_main:
            return self.last_checkpoint
        state = self.state_dict()
        numbered = self.checkpoint_dir / numbered_name(self.step)
        atomic_torch_save(state, numbered)
        atomic_torch_save(state, self.last_checkpoint)
        rotate_checkpoints(self.checkpoint_dir, self.config.keep_checkpoints)
        logger.info("checkpoint saved at step %d (epoch %d): %s", self.step, self.epoch, self.last_checkpoint)
        if self.remote is not None:
            try:
                self.remote.upload(self.step, numbered, self.last_checkpoint, self.config.keep_checkpoints)
                logger.info("checkpoint of step %d uploaded to %s", self.step, self.remote.url)
            except RemoteStorageError as exc:
                if remote_required:
                    raise
                logger.error("checkpoint of step %d NOT uploaded (kept locally, retried next time): %s", self.step, exc)
        return self.last_checkpoint

    def upload_folder(self, folder: Path) -> str | None:
        """Upload a folder (the exported generator) to ``<remote_dir>/<its name>/``; rank 0, with ``remote_dir`` only.

        The remote folder then holds exactly its files, byte for byte. Returns its URL (None: no remote).
        """
        if self.remote is None or not self.dist.is_main:
            return None
        folder = Path(folder)
        self.remote.root.upload_folder(folder, folder.name)
        url = self.remote.root.url_of(folder.name)
        logger.info("uploaded %s to %s", folder, url)
        return url

    def _sync_from_remote(self) -> None:
        """Resuming with ``remote_dir``: make the local ``last.pt`` the newer of the local and the remote one.

        Rank 0, once. The remote one is downloaded when there is no local ``last.pt`` (a new machine) or it
        holds an earlier step; local files it replaces are moved aside first (``previous/``). When the local
        one is newer, remote files of another step are moved aside there and the local checkpoint is uploaded,
        so neither folder ever mixes two states.
        """
        if self._remote_synced or self.remote is None or not self.config.resume or not self.dist.is_main:
            return
        self._remote_synced = True
        remote_step = self.remote.latest_step()
        remote_last = remote_step is not None or self.remote.has_last()
        local_step = checkpoint_step(self.last_checkpoint)
        if remote_last and (local_step is None or (remote_step is not None and remote_step > local_step)):
            moved = archive_checkpoints(self.checkpoint_dir)
            if moved is not None:
                logger.warning(
                    "the remote checkpoint (step %s) is newer than the local one (step %s): moved the local files to %s",
                    remote_step,
                    local_step,
                    moved.folder,
                )
            self.remote.download_last(self.last_checkpoint)
            logger.info("downloaded %s/last.pt (step %s) to %s", self.remote.url, remote_step, self.last_checkpoint)
        elif local_step is not None and remote_step != local_step:
            moved_remote = self.remote.archive()
            if moved_remote is not None:
                logger.warning(
                    "the local checkpoint (step %d) is newer than the remote one (step %s): moved the remote files to %s",
                    local_step,
                    remote_step,
                    moved_remote.folder,
                )
            numbered = self.checkpoint_dir / numbered_name(local_step)
            source = numbered if numbered.is_file() else self.last_checkpoint
            self.remote.upload(local_step, source, self.last_checkpoint, 1)

    def load_checkpoint(self, path: Path) -> None:
        ckpt = load_checkpoint(path, map_location=self.device)
        if ckpt["variant"] != self.model.variant:
            raise ValueError(f"checkpoint '{path}' is a {ckpt['variant']} run, not {self.model.variant}")
        if ckpt["model_config"] != self.model.config.model_dump():
            changed = sorted(
                k for k in ckpt["model_config"] if ckpt["model_config"].get(k) != self.model.config.model_dump().get(k)
            )
            raise ValueError(
                f"cannot resume from '{path}': the model config differs in {changed}; "
                "restore those parameters or start a new run (resume: false, or another output_dir)"
            )
        self.model.load_state_dict(ckpt["model"])
        for k, opt in self.optimizers.items():
            opt.load_state_dict(ckpt["optimizers"][k])
        for k, sch in self.schedulers.items():
            sch.load_state_dict(ckpt["schedulers"][k])
        self.precision.load_state_dict(ckpt["precision"])
        self.model.load_extra_state(ckpt["extra"])
        self.step, self.epoch, self.batch_in_epoch = ckpt["step"], ckpt["epoch"], ckpt["batch_in_epoch"]
        if ckpt.get("world_size", 1) != self.dist.world_size and self.batch_in_epoch:
            logger.warning(
                "checkpoint was written with %d processes, now %d: restarting epoch %d from its start",
                ckpt.get("world_size", 1),
                self.dist.world_size,
                self.epoch,
            )
            self.batch_in_epoch = 0
        restore_rng_state(ckpt["rng"])
        self.run_metadata = {**ckpt.get("run_metadata", {}), **self.run_metadata}
        self._resumed_from = self.step
        logger.info("resumed from %s at step %d, epoch %d", path, self.step, self.epoch)

    def resume_metadata(self) -> dict[str, Any]:
        """``run_metadata`` of the checkpoint a resumed run would continue from ({} if none)."""
        if not self.config.resume:
            return {}
        self._sync_from_remote()
        if not self.last_checkpoint.exists():
            return {}
        return dict(load_checkpoint(self.last_checkpoint).get("run_metadata", {}))

    # -- the loop ------------------------------------------------------------------------
    def current_lrs(self) -> dict[str, float]:
        return {f"lr_{k}": o.param_groups[0]["lr"] for k, o in self.optimizers.items()}

    def _loader(self) -> DataLoader:
        """The batches of every epoch (iterate it once per epoch, after ``sampler.set_epoch``).

        With ``num_workers`` > 0 the dataset is indexed by ``(epoch, index)`` (:class:`_EpochItems`), so
        persistent workers see each new epoch. The loader draws its worker seeds from a generator of its
        own, never from the global torch RNG the model's training step uses: the model's random stream is
        the same with any number of workers, persistent or not, and across a resume.
        """
        cfg = self.config
        pin = cfg.pin_memory if cfg.pin_memory is not None else self.device.type == "cuda"
        if cfg.num_workers == 0:
            return DataLoader(
                self.dataset,
                batch_size=cfg.batch_size,
                sampler=self.sampler,
                num_workers=0,
                pin_memory=pin,
                generator=torch.Generator().manual_seed(cfg.seed),
            )
        return DataLoader(
            _EpochItems(self.dataset),
            batch_size=cfg.batch_size,
            sampler=_EpochKeys(self.sampler),
            num_workers=cfg.num_workers,
            pin_memory=pin,
            persistent_workers=cfg.persistent_workers,
            prefetch_factor=cfg.prefetch_factor,
            worker_init_fn=functools.partial(_seed_worker, cfg.seed, self.dist.rank),
            generator=torch.Generator().manual_seed(cfg.seed),
        )

    def _archive_earlier_run(self) -> None:
        """Move an earlier run's checkpoints aside (rank 0; the other ranks never read them)."""
        if not self.dist.is_main:
            return
        if self.remote is not None:
            self._remote_archived = self.remote.archive()
            if self._remote_archived is not None:
                logger.warning(
                    "new training run: moved the %d remote file(s) an earlier run left in %s (step %s) to %s",
                    len(self._remote_archived.files),
                    self.remote.url,
                    self._remote_archived.step if self._remote_archived.step is not None else "?",
                    self._remote_archived.folder,
                )
        archived = archive_checkpoints(self.checkpoint_dir)
        if archived is None:
            return
        self._archived = archived
        hint = (
            f"; training.resume: true would have continued from step {archived.step}"
            if archived.step is not None and not self.config.resume
            else ""
        )
        logger.warning(
            "new training run: moved the %d file(s) an earlier run left in %s (step %s, MLflow run %s) to %s%s",
            len(archived.files),
            self.checkpoint_dir,
            archived.step if archived.step is not None else "?",
            archived.run_id or "?",
            archived.folder,
            hint,
        )

    def fit(self) -> TrainingResult:
        cfg = self.config
        if cfg.resume and self.remote is not None:
            self._sync_from_remote()
            broadcast_object(None, self.dist)  # the other ranks wait for rank 0's download
        if cfg.resume and self.last_checkpoint.exists():
            self.load_checkpoint(self.last_checkpoint)
        else:
            self._archive_earlier_run()
            if not cfg.resume:
                torch.manual_seed(cfg.seed)
        self.model.train()
        if self.dist.enabled:
            wrapped = wrap_trainable_children(self.model, self.dist)
            logger.info("rank %d/%d: DistributedDataParallel over %s", self.dist.rank, self.dist.world_size, wrapped)
        total_epochs = cfg.total_epochs
        steps_per_epoch = math.ceil(self.sampler.per_rank / cfg.batch_size)
        total_steps = steps_per_epoch * total_epochs
        if cfg.max_steps is not None:
            total_steps = min(total_steps, cfg.max_steps)
        logger.info(
            "training %s on %s (%s), %d images/epoch, %d epochs, up to %d steps",
            self.model.variant,
            self.device,
            self.precision.mode,
            len(self.dataset),
            total_epochs,
            total_steps,  # type: ignore[arg-type]
        )
        bar = tqdm(
            total=total_steps,
            initial=min(self.step, total_steps),
            disable=not (cfg.progress and self.dist.is_main),
            unit="it",
            dynamic_ncols=True,
            mininterval=1.0,
        )
        history: list[dict[str, float]] = []
        losses: dict[str, float] = {}
        images_seen, t_start = 0, time.perf_counter()
        epoch_sums: dict[str, float] = {}
        epoch_steps = 0
        t_window, images_window = t_start, 0
        previous_handlers = self._install_signal_handlers()
        loader = self._loader()
        try:
            while self.epoch < total_epochs and (cfg.max_steps is None or self.step < cfg.max_steps):
                set_epoch = getattr(self.dataset, "set_epoch", None)
                if set_epoch is not None:
                    set_epoch(self.epoch)
                self.sampler.set_epoch(self.epoch, start=self.batch_in_epoch)
                for batch in loader:
                    n = _batch_size(batch)
                    batch = _to_device(batch, self.device, self.channels_last)
                    losses = self.model.training_step(batch, self.optimizers, self.precision)
                    self.step += 1
                    self.batch_in_epoch += n
                    images_seen += n
                    images_window += n
                    for k, v in losses.items():
                        epoch_sums[k] = epoch_sums.get(k, 0.0) + v
                    epoch_steps += 1
                    bad = [k for k, v in losses.items() if not math.isfinite(v)]
                    stop_signal, any_bad = self._agree_on_stop(self._stop_signal is not None, bool(bad))
                    if any_bad:
                        raise FloatingPointError(
                            f"non-finite loss {bad or '(on another rank)'} at step {self.step}; last checkpoint kept"
                        )
                    bar.update(1)
                    if self.step % cfg.log_every == 0 or self.step == total_steps:
                        now = time.perf_counter()
                        ips = images_window / max(now - t_window, 1e-9)
                        t_window, images_window = now, 0
                        metrics = {f"loss_{k}": v for k, v in losses.items()}
                        metrics.update(self.current_lrs())
                        metrics["images_per_second"] = ips
                        metrics["epoch"] = float(self.epoch)
                        self.logger.log_metrics(metrics, self.step)
                        history.append({"step": float(self.step), **metrics})
                        bar.set_postfix(
                            {
                                **{k: f"{v:.3f}" for k, v in losses.items() if k in ("G", "D_A", "D_B")},
                                "img/s": f"{ips:.1f}",
                            }
                        )
                        logger.debug("step %d %s", self.step, metrics)
                    if self.step % cfg.sample_every == 0 or self.step == total_steps:
                        self._log_samples()
                    if self.step % cfg.checkpoint_every == 0 and self.step < total_steps:
                        self.save_checkpoint()
                    if stop_signal:
                        raise TrainingInterrupted(f"received signal {self._stop_signal or '(on another rank)'}")
                    if cfg.max_steps is not None and self.step >= cfg.max_steps:
                        break
                else:  # epoch finished: advance schedules
                    self.epoch += 1
                    self.batch_in_epoch = 0
                    self._step_schedulers(epoch_sums, epoch_steps)
                    epoch_sums, epoch_steps = {}, 0
                    logger.info(
                        "epoch %d/%d done at step %d, %s",
                        self.epoch,
                        total_epochs,
                        self.step,
                        {k: round(v, 6) for k, v in self.current_lrs().items()},
                    )
                    if cfg.eval_every and self.epoch % cfg.eval_every == 0:
                        self._run_epoch_callbacks()
        except (KeyboardInterrupt, TrainingInterrupted) as exc:
            path = self.save_checkpoint()
            logger.warning(
                "training stopped at step %d; checkpoint kept at %s (resume: true continues)", self.step, path
            )
            raise TrainingInterrupted(f"training stopped at step {self.step}; resume from {path}") from exc
        finally:
            bar.close()
            _stop_workers(loader)
            self._restore_signal_handlers(previous_handlers)
            unwrap_children(self.model)
        path = self.save_checkpoint(remote_required=True)
        seconds = time.perf_counter() - t_start
        return TrainingResult(
            step=self.step,
            epoch=self.epoch,
            losses=losses,
            checkpoint=path,
            seconds=seconds,
            images_per_second=images_seen / max(seconds, 1e-9),
            resumed_from_step=self._resumed_from,
            history=history,
            evaluations=list(self.evaluations),
            archived=self._archived,
            remote_archived=self._remote_archived,
        )

    def _step_schedulers(self, epoch_sums: dict[str, float], epoch_steps: int) -> None:
        """Advance every LR schedule by one epoch; ``plateau`` gets the epoch mean of its metric."""
        for sch in self.schedulers.values():
            if isinstance(sch, torch.optim.lr_scheduler.ReduceLROnPlateau):
                name = self.config.plateau_metric
                if name not in epoch_sums:
                    if epoch_steps == 0:  # resumed exactly at an epoch boundary: nothing measured
                        continue
                    raise KeyError(
                        f"plateau_metric {name!r} is not a loss of {self.model.variant}: {sorted(epoch_sums)}"
                    )
                mean = torch.tensor(epoch_sums[name] / epoch_steps, device=self.device)
                if self.dist.enabled:  # every rank must decide the same
                    import torch.distributed as dist

                    dist.all_reduce(mean)
                    mean /= self.dist.world_size
                sch.step(float(mean))
            else:
                sch.step()

    def _run_epoch_callbacks(self) -> None:
        """Rank 0 runs the epoch callbacks and logs what they return at the current step."""
        if not self.callbacks or not self.dist.is_main:
            return
        metrics: dict[str, float] = {}
        for callback in self.callbacks:
            metrics.update(callback(self) or {})
        if metrics:
            self.logger.log_metrics(metrics, self.step)
            self.evaluations.append({"epoch": float(self.epoch), "step": float(self.step), **metrics})
            logger.info(
                "epoch %d evaluation at step %d: %s",
                self.epoch,
                self.step,
                {k: round(v, 4) for k, v in metrics.items()},
            )

    def _agree_on_stop(self, stop: bool, bad: bool) -> tuple[bool, bool]:
        """All ranks stop together (a signal or a non-finite loss on any rank), or none does."""
        if not self.dist.enabled:
            return stop, bad
        import torch.distributed as dist

        flags = torch.tensor([float(stop), float(bad)], device=self.device)
        dist.all_reduce(flags, op=dist.ReduceOp.MAX)
        return bool(flags[0]), bool(flags[1])

    def _log_samples(self) -> None:
        visuals = self.model.visuals()
        if visuals:
            self.logger.log_image(visuals_grid(visuals), f"samples/step_{self.step:08d}.png", self.step)

    def _install_signal_handlers(self) -> dict[int, Any]:
        """SIGTERM/SIGINT ask the loop to stop after the current step (a second SIGINT stops at once)."""
        self._stop_signal = None

        def handler(signum: int, frame: Any) -> None:
            if self._stop_signal is not None and signum == signal.SIGINT:
                raise KeyboardInterrupt
            self._stop_signal = signum
            logger.warning("signal %d received: stopping after this step and keeping a checkpoint", signum)

        previous: dict[int, Any] = {}
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                previous[sig] = signal.signal(sig, handler)
            except ValueError:  # not in the main thread (e.g. a threaded runner): keep the defaults
                pass
        return previous

    @staticmethod
    def _restore_signal_handlers(previous: dict[int, Any]) -> None:
        for sig, h in previous.items():
            signal.signal(sig, h)
