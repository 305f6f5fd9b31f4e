"""Learning-rate schedules, stepped once per epoch (as in the reference ``get_scheduler``).

``plateau`` is ``ReduceLROnPlateau`` on the epoch mean of one training loss
(``plateau_metric``); the engine passes it when it steps the schedule.
"""

from __future__ import annotations

import math

import torch
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, ReduceLROnPlateau, StepLR

from transfigure.training.config import TrainingConfig


def linear_decay_factor(epoch: int, n_epochs: int, n_epochs_decay: int) -> float:
    """Constant for ``n_epochs`` epochs, then linear decay over ``n_epochs_decay`` epochs.

    ``epoch`` counts from 0. Same rule as the reference (``epoch_count=1``):
    ``1 - max(0, epoch + 1 - n_epochs) / (n_epochs_decay + 1)``.
    """
    return 1.0 - max(0, epoch + 1 - n_epochs) / float(n_epochs_decay + 1)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainingConfig) -> LRScheduler | ReduceLROnPlateau:
    if cfg.lr_policy == "linear":
        return LambdaLR(optimizer, lambda e: linear_decay_factor(e, cfg.n_epochs, cfg.n_epochs_decay))
    if cfg.lr_policy == "step":
        return StepLR(optimizer, step_size=cfg.lr_decay_iters, gamma=cfg.lr_gamma)
    if cfg.lr_policy == "cosine":
        total = max(cfg.total_epochs, 1)
        return LambdaLR(optimizer, lambda e: 0.5 * (1.0 + math.cos(math.pi * min(e, total) / total)))
    if cfg.lr_policy == "plateau":
        return ReduceLROnPlateau(
            optimizer, mode="min", factor=cfg.lr_gamma, threshold=0.01, patience=cfg.plateau_patience
        )
    if cfg.lr_policy == "constant":
        return LambdaLR(optimizer, lambda e: 1.0)
    raise ValueError(f"unknown lr_policy {cfg.lr_policy!r}")
