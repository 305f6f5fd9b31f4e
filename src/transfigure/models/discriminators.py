"""Discriminators: PatchGAN (``basic`` = 70x70, ``n_layers``), the 1x1 ``pixel`` GAN, and the
multi-scale discriminators of pix2pixHD/SPADE and of UNIT."""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from transfigure.models.layers import (  # UNIT
    ActivationType,
    Conv2dBlock,
    ConvNormType,
    NormType,
    PaddingType,
    add_nonspade_norm,  # SPADE
    get_norm_layer,
    uses_bias,
)


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
        self.config: dict[str, Any] = {
            "type": "n_layers",
            "input_nc": input_nc,
            "ndf": ndf,
            "n_layers": n_layers,
            "norm": norm,
        }
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


# --------------------------------------------------------------------------- pix2pixHD / SPADE


def half_scale(x: torch.Tensor) -> torch.Tensor:
    """The image for the next coarser scale of a multi-scale discriminator (pix2pixHD's and
    UNIT's): 3x3 average pooling, stride 2, padding 1, padded pixels not counted."""
    return F.avg_pool2d(x, kernel_size=3, stride=2, padding=[1, 1], count_include_pad=False)


class NLayerFeatureDiscriminator(nn.Module):
    """PatchGAN of pix2pixHD/SPADE that also returns its intermediate features.

    NVlabs/SPADE ``NLayerDiscriminator``: ``model0 = Conv(input_nc, ndf, 4, s2) + LeakyReLU(0.2)``
    (no norm), then ``n_layers - 1`` blocks ``norm(Conv 4x4)`` doubling the channels up to 512
    (stride 2, the last one stride 1), then ``Conv(nf, 1, 4, s1)``; padding 2 throughout.
    ``norm`` is the reference's ``norm_D`` string (default ``spectralinstance``: spectral norm on
    the conv, then parameter-free instance norm, conv bias removed). ``forward`` returns the
    outputs of every block ``[f_1, ..., f_n, logits]`` (for the feature-matching loss of
    pix2pixHD, eq. 4) or, with ``get_intermediate_features=False``, the logits only.
    """

    def __init__(
        self,
        input_nc: int,
        ndf: int = 64,
        n_layers: int = 4,
        norm: str = "spectralinstance",
        get_intermediate_features: bool = True,
    ) -> None:
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers must be >= 1, got {n_layers}")
        self.get_intermediate_features = get_intermediate_features
        kw, padw = 4, 2  # int(np.ceil((kw - 1.0) / 2)) in the reference
        nf = ndf
        sequence: list[list[nn.Module]] = [
            [nn.Conv2d(input_nc, nf, kernel_size=kw, stride=2, padding=padw), nn.LeakyReLU(0.2, False)]
        ]
        for n in range(1, n_layers):
            nf_prev, nf = nf, min(nf * 2, 512)
            stride = 1 if n == n_layers - 1 else 2
            conv = nn.Conv2d(nf_prev, nf, kernel_size=kw, stride=stride, padding=padw)
            sequence.append([add_nonspade_norm(conv, norm), nn.LeakyReLU(0.2, False)])
        sequence.append([nn.Conv2d(nf, 1, kernel_size=kw, stride=1, padding=padw)])
        for n, layers in enumerate(sequence):  # groups, so that their outputs can be returned
            self.add_module(f"model{n}", nn.Sequential(*layers))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor] | torch.Tensor:
        results = [x]
        for submodel in self.children():
            results.append(submodel(results[-1]))
        return results[1:] if self.get_intermediate_features else results[-1]


class MultiscaleDiscriminator(nn.Module):
    """pix2pixHD's multi-scale discriminator (Wang et al. 2018, sec. 3.2), as used by SPADE.

    ``num_D`` identical :class:`NLayerFeatureDiscriminator` (``discriminator_0`` ...) see the
    input at full, 1/2, 1/4 ... resolution (:func:`half_scale` between scales).
    Returns one list per scale: ``[[f_1, ..., logits], ...]`` (``[[logits], ...]`` without
    intermediate features), what ``MultiscaleGANLoss`` and ``feature_matching_loss`` take.
    """

    def __init__(
        self,
        input_nc: int,
        ndf: int = 64,
        n_layers: int = 4,
        num_D: int = 2,
        norm: str = "spectralinstance",
        get_intermediate_features: bool = True,
    ) -> None:
        super().__init__()
        if num_D < 1:
            raise ValueError(f"num_D must be >= 1, got {num_D}")
        self.get_intermediate_features = get_intermediate_features
        for i in range(num_D):
            self.add_module(
                f"discriminator_{i}",
                NLayerFeatureDiscriminator(input_nc, ndf, n_layers, norm, get_intermediate_features),
            )

    downsample = staticmethod(half_scale)

    def forward(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        result = []
        for d in self.children():
            out = d(x)
            result.append(out if self.get_intermediate_features else [out])
            x = self.downsample(x)
        return result


# --------------------------------------------------------------------------- UNIT (Liu et al. 2017)


class MsImageDiscriminator(nn.Module):
    """UNIT's multi-scale discriminator (the reference ``MsImageDis``).

    ``num_scales`` identical, independent networks; scale ``k`` sees the image average-pooled
    ``k`` times (:func:`half_scale`, as pix2pixHD's). Each network:
    ``4x4 stride-2 conv (dim, no norm) + activ``, ``n_layer - 1`` x ``4x4 stride-2 conv`` doubling the
    channels (``norm``), then a ``1x1 conv`` to one logit per patch. :meth:`forward` returns the
    list of per-scale outputs. Each scale's input needs sides >= ``2**n_layer`` px.
    """

    def __init__(
        self,
        input_nc: int = 3,
        dim: int = 64,
        n_layer: int = 4,
        num_scales: int = 3,
        norm: ConvNormType = "none",
        activ: ActivationType = "lrelu",
        pad_type: PaddingType = "reflect",
    ) -> None:
        super().__init__()
        if n_layer < 1 or num_scales < 1:
            raise ValueError(f"n_layer and num_scales must be >= 1, got {n_layer}, {num_scales}")
        self.config: dict[str, Any] = {
            "type": "unit_ms",
            "input_nc": input_nc,
            "dim": dim,
            "n_layer": n_layer,
            "num_scales": num_scales,
            "norm": norm,
            "activ": activ,
            "pad_type": pad_type,
        }
        self.n_layer, self.num_scales = n_layer, num_scales
        self.cnns = nn.ModuleList(
            [self._make_net(input_nc, dim, n_layer, norm, activ, pad_type) for _ in range(num_scales)]
        )

    @staticmethod
    def _make_net(
        input_nc: int, dim: int, n_layer: int, norm: ConvNormType, activ: ActivationType, pad_type: PaddingType
    ) -> nn.Sequential:
        layers: list[nn.Module] = [Conv2dBlock(input_nc, dim, 4, 2, 1, "none", activ, pad_type)]
        for _ in range(n_layer - 1):
            layers.append(Conv2dBlock(dim, dim * 2, 4, 2, 1, norm, activ, pad_type))
            dim *= 2
        layers.append(nn.Conv2d(dim, 1, 1, 1, 0))
        return nn.Sequential(*layers)

    def min_input_size(self) -> int:
        """The smallest image side all scales can process."""
        need = 2**self.n_layer
        for _ in range(self.num_scales - 1):
            need = 2 * need - 1  # ceil(h / 2) >= need  <=>  h >= 2 * need - 1
        return need

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if min(x.shape[-2:]) < self.min_input_size():
            raise ValueError(
                f"images of {x.shape[-2]}x{x.shape[-1]} px are too small for a {self.num_scales}-scale discriminator "
                f"with n_layer={self.n_layer}: sides must be >= {self.min_input_size()} px (use a larger crop_size, "
                "or fewer dis_num_scales / dis_n_layer)"
            )
        outputs = []
        for net in self.cnns:
            outputs.append(net(x))
            x = half_scale(x)
        return outputs
