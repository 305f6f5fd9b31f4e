"""Shared building blocks: normalisation factories, residual blocks, weight init.

Names follow the reference implementation (junyanz/pytorch-CycleGAN-and-pix2pix,
``models/networks.py``) so a reader can map one onto the other.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Literal

import torch
from torch import nn

NormType = Literal["batch", "instance", "none"]
PaddingType = Literal["reflect", "replicate", "zero"]
InitType = Literal["normal", "xavier", "kaiming", "orthogonal"]


class Identity(nn.Module):
    """A norm layer that does nothing (``norm: none``)."""

    def __init__(self, *_args, **_kwargs) -> None:
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def get_norm_layer(norm: NormType = "instance") -> Callable[[int], nn.Module]:
    """Return a factory ``f(num_features) -> nn.Module`` for the named normalisation.

    As in the reference: batch norm learns affine parameters and tracks running
    statistics; instance norm does neither (``affine=False,
    track_running_stats=False``), so it has no parameters at all.
    """
    if norm == "batch":
        return functools.partial(nn.BatchNorm2d, affine=True, track_running_stats=True)
    if norm == "instance":
        return functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False)
    if norm == "none":
        return Identity
    raise ValueError(f"unknown norm {norm!r}: use 'batch', 'instance' or 'none'")


def uses_bias(norm: NormType) -> bool:
    """Convolutions before batch norm need no bias (BN re-centres); before instance norm they do."""
    return norm != "batch"


def padding_layers(padding_type: PaddingType, amount: int) -> tuple[list[nn.Module], int]:
    """Explicit padding layers plus the ``padding=`` to give the following conv."""
    if padding_type == "reflect":
        return [nn.ReflectionPad2d(amount)], 0
    if padding_type == "replicate":
        return [nn.ReplicationPad2d(amount)], 0
    if padding_type == "zero":
        return [], amount
    raise ValueError(f"unknown padding type {padding_type!r}: use 'reflect', 'replicate' or 'zero'")


class ResnetBlock(nn.Module):
    """Residual block ``x + conv-norm-relu-[dropout]-conv-norm(x)`` (He et al. 2016).

    The CycleGAN generator stacks 6 or 9 of these at the bottleneck.
    """

    def __init__(
        self,
        dim: int,
        padding_type: PaddingType = "reflect",
        norm: NormType = "instance",
        use_dropout: bool = False,
    ) -> None:
        super().__init__()
        norm_layer = get_norm_layer(norm)
        bias = uses_bias(norm)
        layers: list[nn.Module] = []
        pad, p = padding_layers(padding_type, 1)
        layers += [*pad, nn.Conv2d(dim, dim, 3, padding=p, bias=bias), norm_layer(dim), nn.ReLU(True)]
        if use_dropout:
            layers.append(nn.Dropout(0.5))
        pad, p = padding_layers(padding_type, 1)
        layers += [*pad, nn.Conv2d(dim, dim, 3, padding=p, bias=bias), norm_layer(dim)]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


def init_weights(net: nn.Module, init_type: InitType = "normal", init_gain: float = 0.02) -> nn.Module:
    """Initialise conv/linear weights as the reference does (default N(0, 0.02), biases 0).

    Batch-norm weights are drawn from N(1, gain) and biases set to 0.
    """

    def init_fn(m: nn.Module) -> None:
        name = m.__class__.__name__
        weight = getattr(m, "weight", None)
        if weight is not None and ("Conv" in name or "Linear" in name):
            if init_type == "normal":
                nn.init.normal_(weight, 0.0, init_gain)
            elif init_type == "xavier":
                nn.init.xavier_normal_(weight, gain=init_gain)
            elif init_type == "kaiming":
                nn.init.kaiming_normal_(weight, a=0, mode="fan_in")
            elif init_type == "orthogonal":
                nn.init.orthogonal_(weight, gain=init_gain)
            else:
                raise ValueError(f"unknown init type {init_type!r}")
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
        elif "BatchNorm2d" in name and weight is not None:
            nn.init.normal_(weight, 1.0, init_gain)
            nn.init.zeros_(m.bias)

    net.apply(init_fn)
    return net


def count_parameters(net: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad)
