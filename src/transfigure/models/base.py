"""What every GAN variant provides to the shared training engine.

A variant is an ``nn.Module`` holding its networks. It defines its optimizers, one
training step (GANs alternate generator and discriminator updates, so the
variant runs its own backward passes, through :class:`Precision`), the images
worth showing, and the generators to export. Device placement, the loop,
schedules, checkpoints and logging belong to :mod:`transfigure.training`.
Nothing here knows about Kedro, MLflow or BentoML.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any, ClassVar, Literal

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

PrecisionMode = Literal["fp32", "bf16", "fp16"]


class VariantConfig(BaseModel):
    """Base of the variants' typed configs: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Precision:
    """Autocast + (for fp16) gradient scaling, in one object the training step can use.

    ``bf16`` autocast needs no loss scaling; ``fp16`` uses ``torch.amp.GradScaler``;
    ``fp32`` is a no-op. On CPU only ``fp32`` and ``bf16`` are allowed.
    """

    def __init__(self, mode: PrecisionMode = "fp32", device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        if mode not in ("fp32", "bf16", "fp16"):
            raise ValueError(f"unknown precision {mode!r}: use 'fp32', 'bf16' or 'fp16'")
        if mode == "fp16" and self.device.type != "cuda":
            raise ValueError("precision 'fp16' needs a CUDA device; use 'bf16' or 'fp32' on CPU")
        self.mode = mode
        self.dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(mode)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=(mode == "fp16"))

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        if self.dtype is None:
            yield
        else:
            with torch.autocast(device_type=self.device.type, dtype=self.dtype):
                yield

    def backward(self, loss: torch.Tensor) -> None:
        self.scaler.scale(loss).backward()

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        self.scaler.step(optimizer)
        self.scaler.update()

    def state_dict(self) -> dict[str, Any]:
        return self.scaler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            self.scaler.load_state_dict(state)


def loss_values(losses: dict[str, torch.Tensor]) -> dict[str, float]:
    """Detached Python floats of a step's losses, for the engine's logging."""
    return {name: float(value.detach()) for name, value in losses.items()}


def set_requires_grad(nets: nn.Module | list[nn.Module], requires_grad: bool) -> None:
    """Freeze/unfreeze networks (the discriminators while the generators update)."""
    for net in nets if isinstance(nets, list) else [nets]:
        for p in net.parameters():
            p.requires_grad_(requires_grad)


class TranslationModel(nn.Module, ABC):
    """Interface of a GAN variant, shared by the training engine and the exporters."""

    #: registry name of the variant ("cyclegan", "pix2pix", ...)
    variant: ClassVar[str]
    config_class: ClassVar[type[VariantConfig]]
    #: precisions in which a channels_last (NHWC) step measured faster on CPU
    #: (benchmarks/train_throughput.py); ``training.channels_last: auto`` turns NHWC on for those
    channels_last_cpu: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: VariantConfig) -> None:
        super().__init__()
        self.config = config

    @abstractmethod
    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Name -> optimizer (the engine attaches one LR schedule to each)."""

    @abstractmethod
    def training_step(
        self, batch: dict[str, Any], optimizers: dict[str, torch.optim.Optimizer], precision: Precision
    ) -> dict[str, float]:
        """One optimisation step on ``batch`` (already on the model's device); returns the losses."""

    @abstractmethod
    def visuals(self) -> dict[str, torch.Tensor]:
        """Images of the last step worth showing (name -> NxCxHxW in [-1, 1]), in display order."""

    @abstractmethod
    def generators(self) -> dict[str, nn.Module]:
        """Direction name ("AtoB", "BtoA", ...) -> generator to export for inference."""

    def extra_state(self) -> dict[str, Any]:
        """State beyond parameters that a checkpoint must keep (e.g. image pools)."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`extra_state`."""
