"""Generators. Each constructor's keyword arguments are its config (saved as JSON).

``build_generator(config)`` rebuilds any generator from that JSON, so weights can
travel as safetensors + config and never as pickled code.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from transfigure.models.layers import (
    NormType,
    PaddingType,
    ResnetBlock,
    get_norm_layer,
    padding_layers,
    uses_bias,
)


class ResnetGenerator(nn.Module):
    """ResNet generator of CycleGAN (Zhu et al. 2017, appendix 7.2; after Johnson et al. 2016).

    ``c7s1-ngf, d(2ngf), d(4ngf), R(4ngf) x n_blocks, u(2ngf), u(ngf), c7s1-output_nc`` with
    reflection padding, instance norm and a final tanh. ``n_blocks=9`` is the
    paper's ``resnet_9blocks`` (256 px), ``6`` its ``resnet_6blocks`` (128 px).
    The network is fully convolutional: any input whose sides are multiples of 4
    maps to an output of the same size (``Translator`` pads other sizes).
    """

    #: the spatial size of the input must be divisible by this
    size_multiple = 4

    def __init__(
        self,
        input_nc: int = 3,
        output_nc: int = 3,
        ngf: int = 64,
        n_blocks: int = 9,
        norm: NormType = "instance",
        use_dropout: bool = False,
        padding_type: PaddingType = "reflect",
    ) -> None:
        super().__init__()
        if n_blocks < 0:
            raise ValueError(f"n_blocks must be >= 0, got {n_blocks}")
        self.config: dict[str, Any] = {
            "type": "resnet",
            "input_nc": input_nc,
            "output_nc": output_nc,
            "ngf": ngf,
            "n_blocks": n_blocks,
            "norm": norm,
            "use_dropout": use_dropout,
            "padding_type": padding_type,
        }
        norm_layer = get_norm_layer(norm)
        bias = uses_bias(norm)
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(input_nc, ngf, kernel_size=7, padding=0, bias=bias),
            norm_layer(ngf),
            nn.ReLU(True),
        ]
        n_down = 2
        for i in range(n_down):  # d(2ngf), d(4ngf)
            mult = 2**i
            layers += [
                nn.Conv2d(ngf * mult, ngf * mult * 2, kernel_size=3, stride=2, padding=1, bias=bias),
                norm_layer(ngf * mult * 2),
                nn.ReLU(True),
            ]
        mult = 2**n_down
        layers += [ResnetBlock(ngf * mult, padding_type, norm, use_dropout) for _ in range(n_blocks)]
        for i in range(n_down):  # u(2ngf), u(ngf)
            mult = 2 ** (n_down - i)
            layers += [
                nn.ConvTranspose2d(
                    ngf * mult, ngf * mult // 2, kernel_size=3, stride=2, padding=1, output_padding=1, bias=bias
                ),
                norm_layer(ngf * mult // 2),
                nn.ReLU(True),
            ]
        pad, p = padding_layers("reflect", 3)
        layers += [*pad, nn.Conv2d(ngf, output_nc, kernel_size=7, padding=p), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


GENERATORS: dict[str, type[nn.Module]] = {"resnet": ResnetGenerator}

#: reference names (``--netG``) -> constructor arguments
NAMED_GENERATORS: dict[str, dict[str, Any]] = {
    "resnet_9blocks": {"type": "resnet", "n_blocks": 9},
    "resnet_6blocks": {"type": "resnet", "n_blocks": 6},
}


def build_generator(config: dict[str, Any]) -> nn.Module:
    """Build a generator from its config dict (``{"type": ..., **kwargs}``)."""
    config = dict(config)
    kind = config.pop("type", None)
    if kind not in GENERATORS:
        raise ValueError(f"unknown generator type {kind!r}; known: {sorted(GENERATORS)}")
    return GENERATORS[kind](**config)
