"""The FID curve during training: an epoch callback for the engine (``training.eval_every``).

Every ``eval_every`` epochs the engine calls :class:`FidCurve` on rank 0; it translates a small
fixed subset of the held-out split (``evaluation.curve_images`` images per domain, the first in
sorted order) with the current generators and returns ``{"fid": ..., "fid_epoch": ...}``, which
the engine logs at the current step. The real images' Inception features are computed once.
The generators are put in eval mode and back, gradients are off and the RNG state is restored,
so training continues exactly as without the callback (a resumed run stays bit-identical).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from transfigure.evaluation.data import HeldOutSet, load_held_out
from transfigure.evaluation.evaluate import EvaluationConfig, evaluate_held_out
from transfigure.inference import Translator

logger = logging.getLogger(__name__)


def _plain(module: nn.Module) -> nn.Module:
    return module.module if isinstance(module, DistributedDataParallel) else module


class FidCurve:
    """Epoch callback computing FID of the training model on a fixed held-out subset."""

    def __init__(self, dataset: dict[str, Any], data: dict[str, Any], evaluation: dict[str, Any] | None = None) -> None:
        self.dataset = dataset
        self.data = data
        self.config = EvaluationConfig.from_params(evaluation)
        self._held: HeldOutSet | None = None  # loaded on the first call (rank 0 only)
        self._real_features: dict[str, np.ndarray] = {}
        self.rows: list[dict[str, float]] = []

    @property
    def held_out(self) -> HeldOutSet:
        if self._held is None:
            cfg = self.config
            self._held = load_held_out(
                self.dataset, self.data, split=cfg.split, size=cfg.size, max_images=cfg.curve_images
            )
            logger.info(
                "FID curve on %d held-out samples of %s (%s split)", self._held.n, self._held.root, self._held.split
            )
        return self._held

    def translator(self, model: nn.Module, device: torch.device) -> Translator:
        """A :class:`Translator` over the model's current generators (no copy)."""
        generators = {d: _plain(g) for d, g in model.generators().items()}  # type: ignore[operator]
        config = {
            "variant": getattr(model, "variant", ""),
            "generators": {d: dict(g.config) for d, g in generators.items()},
        }
        return Translator(generators, config, device)

    def __call__(self, trainer: Any) -> dict[str, float]:
        translator = self.translator(trainer.model, trainer.device)
        modules = [m for g in translator.generators.values() for m in g.modules()]
        modes = [m.training for m in modules]
        devices = [trainer.device] if trainer.device.type == "cuda" else []
        try:
            with torch.random.fork_rng(devices=devices), torch.no_grad():
                for g in translator.generators.values():
                    g.eval()
                metrics, _ = evaluate_held_out(
                    translator,
                    self.held_out,
                    self.config,
                    fid_only=True,
                    real_features=self._real_features,
                    device=trainer.device,
                )
        finally:
            for m, mode in zip(modules, modes):
                m.train(mode)
        fid = float(metrics["fid"])
        self.rows.append({"epoch": float(trainer.epoch), "step": float(trainer.step), "fid": fid})
        return {"fid": fid, "fid_epoch": float(trainer.epoch)}
