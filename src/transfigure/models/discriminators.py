"""Discriminators: PatchGAN (``basic`` = 70x70, ``n_layers``) and the 1x1 ``pixel`` GAN."""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn

from transfigure.models.layers import NormType, get_norm_layer, uses_bias


class NLayerDiscriminator(nn.Module):
    """PatchGAN discriminator (Isola et al. 2017; CycleGAN appendix 7.2).

    ``C64-C128-C256-C512`` of 4x4 convs (stride 2, the last stride 1), leaky ReLU 0.2,
    no norm on the first layer, then a 1-channel 4x4 conv. With ``n_layers=3``
    each output value sees a 70x70 patch of the input (the reference ``basic``
    discriminator). Outputs raw logits, one per patch.
    """

    def __init__(self, input_nc: int = 3, ndf: int = 64, n_layers: int = 3, norm: NormType = "instance") -> None:
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers must be >= 1, got {n_layers}")
        self.config: dict[str, Any] = {"type": "n_layers", "input_nc": input_nc, "ndf": ndf, "n_layers": n_layers, "norm": norm}
        norm_layer = get_norm_layer(norm)
        bias = uses_bias(norm)
        kw, padw = 4, 1
        layers: list[nn.Module] = [nn.Conv2d(input_nc, ndf, kw, stride=2, padding=padw), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers):
            prev, mult = mult, min(2**n, 8)
            layers += [
                nn.Conv2d(ndf * prev, ndf * mult, kw, stride=2, padding=padw, bias=bias),
                norm_layer(ndf * mult),
                nn.LeakyReLU(0.2, True),
            ]
        prev, mult = mult, min(2**n_layers, 8)
        layers += [
            nn.Conv2d(ndf * prev, ndf * mult, kw, stride=1, padding=padw, bias=bias),
            norm_layer(ndf * mult),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * mult, 1, kw, stride=1, padding=padw),
        ]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class PixelDiscriminator(nn.Module):
    """1x1 PatchGAN ("PixelGAN"): classifies every pixel independently."""

    def __init__(self, input_nc: int = 3, ndf: int = 64, norm: NormType = "instance") -> None:
        super().__init__()
        self.config: dict[str, Any] = {"type": "pixel", "input_nc": input_nc, "ndf": ndf, "norm": norm}
        norm_layer = get_norm_layer(norm)
        bias = uses_bias(norm)
        self.net = nn.Sequential(
            nn.Conv2d(input_nc, ndf, 1),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf, ndf * 2, 1, bias=bias),
            norm_layer(ndf * 2),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * 2, 1, 1, bias=bias),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


DiscriminatorType = Literal["basic", "n_layers", "pixel"]


def build_discriminator(
    kind: DiscriminatorType = "basic",
    input_nc: int = 3,
    ndf: int = 64,
    n_layers: int = 3,
    norm: NormType = "instance",
) -> nn.Module:
    """The reference ``define_D``: ``basic`` is ``n_layers`` with 3 layers (70x70 PatchGAN)."""
    if kind == "basic":
        return NLayerDiscriminator(input_nc, ndf, 3, norm)
    if kind == "n_layers":
        return NLayerDiscriminator(input_nc, ndf, n_layers, norm)
    if kind == "pixel":
        return PixelDiscriminator(input_nc, ndf, norm)
    raise ValueError(f"unknown discriminator {kind!r}: use 'basic', 'n_layers' or 'pixel'")
