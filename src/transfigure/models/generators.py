"""Generators. Each constructor's keyword arguments are its config (saved as JSON).

``build_generator(config)`` rebuilds any generator from that JSON, so weights can
travel as safetensors + config and never as pickled code.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from transfigure.models.layers import (  # UNIT  # SPADE
    ActivationType,
    Conv2dBlock,
    NormType,
    PaddingType,
    ResnetBlock,
    SPADEResnetBlock,
    add_nonspade_norm,
    get_norm_layer,
    init_weights_spectral,
    instance_edges,
    label_to_onehot,
    padding_layers,
    res_blocks,
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


class UnetSkipConnectionBlock(nn.Module):
    """One level of the U-Net: ``down -> submodule -> up``, then ``cat([x, up], channels)``.

    The reference ``UnetSkipConnectionBlock`` (pix2pix paper, appendix 6.1.1), same
    layer order, so its state-dict keys match the reference's ``netG`` checkpoints:

    * outermost: ``Conv(input_nc->inner) | sub | ReLU, ConvT(2*inner->outer), Tanh`` (no skip:
      the image comes out);
    * innermost: ``LeakyReLU(0.2), Conv(outer->inner) | ReLU, ConvT(inner->outer), Norm``
      (no norm on the 1x1 bottleneck; as in the reference, that conv has no bias under batch norm);
    * otherwise: ``LeakyReLU(0.2), Conv, Norm | sub | ReLU, ConvT(2*inner->outer), Norm[, Dropout(0.5)]``.

    All convolutions are 4x4, stride 2, padding 1 (each level halves / doubles the size).
    """

    def __init__(
        self,
        outer_nc: int,
        inner_nc: int,
        input_nc: int | None = None,
        submodule: nn.Module | None = None,
        outermost: bool = False,
        innermost: bool = False,
        norm: NormType = "batch",
        use_dropout: bool = False,
    ) -> None:
        super().__init__()
        self.outermost = outermost
        norm_layer = get_norm_layer(norm)
        bias = uses_bias(norm)
        if input_nc is None:
            input_nc = outer_nc
        downconv = nn.Conv2d(input_nc, inner_nc, kernel_size=4, stride=2, padding=1, bias=bias)
        downrelu = nn.LeakyReLU(0.2, True)
        uprelu = nn.ReLU(True)
        if outermost:
            assert submodule is not None
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, kernel_size=4, stride=2, padding=1)
            model: list[nn.Module] = [downconv, submodule, uprelu, upconv, nn.Tanh()]
        elif innermost:
            upconv = nn.ConvTranspose2d(inner_nc, outer_nc, kernel_size=4, stride=2, padding=1, bias=bias)
            model = [downrelu, downconv, uprelu, upconv, norm_layer(outer_nc)]
        else:
            assert submodule is not None
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, kernel_size=4, stride=2, padding=1, bias=bias)
            model = [downrelu, downconv, norm_layer(inner_nc), submodule, uprelu, upconv, norm_layer(outer_nc)]
            if use_dropout:
                model.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.outermost:
            return self.model(x)
        return torch.cat([x, self.model(x)], 1)  # the skip connection


class UnetGenerator(nn.Module):
    """U-Net generator of pix2pix (Isola et al. 2017, sec. 3.2.1 and appendix 6.1.1).

    Encoder ``C64-C128-C256-C512-C512-C512-C512-C512`` (for ``num_downs=8``), decoder
    ``CD512-CD512-CD512-C512-C256-C128-C64`` with skip connections between mirrored
    layers (``CD`` = dropout 0.5, on the ``num_downs - 5`` decoder blocks next to the
    bottleneck when ``use_dropout``). LeakyReLU 0.2 on the way down, ReLU on the way up,
    tanh out, batch norm by default (none on the first encoder layer). ``num_downs=8``
    is the reference ``unet_256`` (a 256x256 input reaches 1x1 at the bottleneck),
    ``7`` its ``unet_128``.

    Fully convolutional: any input whose sides are multiples of ``2**num_downs``
    (:attr:`size_multiple`) maps to an output of the same size; ``Translator`` pads
    other sizes.
    """

    #: overwritten per instance: ``2 ** num_downs``
    size_multiple = 256

    def __init__(
        self,
        input_nc: int = 3,
        output_nc: int = 3,
        num_downs: int = 8,
        ngf: int = 64,
        norm: NormType = "batch",
        use_dropout: bool = False,
    ) -> None:
        super().__init__()
        if num_downs < 5:
            raise ValueError(f"num_downs must be >= 5 (the U-Net has 5 fixed levels), got {num_downs}")
        self.config: dict[str, Any] = {
            "type": "unet",
            "input_nc": input_nc,
            "output_nc": output_nc,
            "num_downs": num_downs,
            "ngf": ngf,
            "norm": norm,
            "use_dropout": use_dropout,
        }
        self.size_multiple = 2**num_downs
        # built from the inside out, as the reference does
        block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, innermost=True, norm=norm)
        for _ in range(num_downs - 5):  # intermediate ngf*8 levels, the ones with dropout
            block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, submodule=block, norm=norm, use_dropout=use_dropout)
        block = UnetSkipConnectionBlock(ngf * 4, ngf * 8, submodule=block, norm=norm)
        block = UnetSkipConnectionBlock(ngf * 2, ngf * 4, submodule=block, norm=norm)
        block = UnetSkipConnectionBlock(ngf, ngf * 2, submodule=block, norm=norm)
        self.model = UnetSkipConnectionBlock(
            output_nc, ngf, input_nc=input_nc, submodule=block, outermost=True, norm=norm
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        m = self.size_multiple
        if h % m or w % m:
            raise ValueError(
                f"UnetGenerator(num_downs={self.config['num_downs']}) needs height and width that are multiples "
                f"of {m}, got {h}x{w}: use crop_size a multiple of {m} (Translator pads other sizes)"
            )
        return self.model(x)


class ConvEncoder(nn.Module):
    """SPADE's style encoder ``netE`` (paper appendix, fig. 14): image -> ``(mu, logvar)`` of z.

    Six (five below 256 px crops) 3x3 stride-2 convs ``ngf, 2ngf, 4ngf, 8ngf, 8ngf[, 8ngf]``,
    spectral instance norm (``norm_E``), leaky ReLU 0.2, then two linear heads to ``z_dim``.
    The image is first resized (bilinear) to the size at which the last conv gives 4x4.

    Differences from the reference: the reference always resizes to 256x256, so with
    ``crop_size < 256`` (five convs) it reaches 8x8 and its 4x4 linear heads fail; here the
    resize follows the depth (128x128 for five convs). Its heads are hard-coded to 256
    outputs, here ``z_dim`` (default 256).
    """

    def __init__(self, ngf: int = 64, crop_size: int = 256, z_dim: int = 256, norm_E: str = "spectralinstance") -> None:
        super().__init__()
        ndf = ngf
        channels = [3, ndf, ndf * 2, ndf * 4, ndf * 8, ndf * 8] + ([ndf * 8] if crop_size >= 256 else [])
        self.n_layers = len(channels) - 1
        for i in range(self.n_layers):
            conv = nn.Conv2d(channels[i], channels[i + 1], kernel_size=3, stride=2, padding=1)
            self.add_module(f"layer{i + 1}", add_nonspade_norm(conv, norm_E))
        self.so = s0 = 4
        self.input_size = s0 * 2**self.n_layers
        self.fc_mu = nn.Linear(ndf * 8 * s0 * s0, z_dim)
        self.fc_var = nn.Linear(ndf * 8 * s0 * s0, z_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.shape[2] != self.input_size or x.shape[3] != self.input_size:
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False)
        for i in range(self.n_layers):
            x = getattr(self, f"layer{i + 1}")(x if i == 0 else F.leaky_relu(x, 0.2))
        x = F.leaky_relu(x, 0.2).flatten(1)
        return self.fc_mu(x), self.fc_var(x)


#: SPADE's ``--num_upsampling_layers`` -> number of 2x upsamplings from the latent grid
SPADE_UPSAMPLINGS: dict[str, int] = {"normal": 5, "more": 6, "most": 7}


class SPADEGenerator(nn.Module):
    """SPADE generator (Park et al. 2019, fig. 4 and appendix A), NVlabs/SPADE ``SPADEGenerator``.

    Takes the RAW label map: class ids ``Nx1xHxW`` (255 = "don't care" when
    ``contain_dontcare_label``), plus the instance map when ``use_instance``; it builds the
    semantic input itself (:meth:`semantics`: one-hot of ``label_nc (+1)`` channels, plus the
    instance-boundary channel), so an exported generator needs nothing else.

    ``fc`` maps the semantic map, nearest-downsampled to the latent grid (``H/2^n x W/2^n``,
    ``n`` = 5/6/7 for ``num_upsampling_layers`` normal/more/most), to ``16 ngf`` channels (or,
    with ``use_vae``, maps ``z`` to that grid); then ``head_0``, ``G_middle_0``, ``G_middle_1``
    (16ngf) and ``up_0..up_3`` (8, 4, 2, 1 ngf; ``up_4`` to ngf/2 for ``most``) SPADE residual
    blocks with 2x nearest upsampling between them, leaky ReLU, a 3x3 conv and tanh.

    With ``use_vae`` the style encoder (:class:`ConvEncoder`, the reference's ``netE``) is
    part of this module (``encoder``): ``forward(..., style=image)`` generates in the style of
    ``image``; without ``style`` or ``z``, z is drawn from N(0, I) (multi-modal outputs).

    Differences from the reference: the latent grid follows the input size instead of being
    fixed by ``crop_size``/``aspect_ratio`` (identical at the training size), so any label map
    whose sides are multiples of :attr:`size_multiple` works; with ``use_vae`` the
    ``crop_size``-sized grid from ``z`` is resized (bilinear) when the input has another size.
    """

    #: overwritten per instance: ``2 ** upsamplings``
    size_multiple = 32
    #: what the generator takes (``Translator`` feeds label maps, not images)
    input_kind = "label"

    def __init__(
        self,
        label_nc: int = 182,
        contain_dontcare_label: bool = True,
        use_instance: bool = True,
        output_nc: int = 3,
        ngf: int = 64,
        num_upsampling_layers: str = "normal",
        norm_G: str = "spectralspadesyncbatch3x3",
        spade_hidden: int = 128,
        crop_size: int = 256,
        aspect_ratio: float = 1.0,
        use_vae: bool = False,
        z_dim: int = 256,
        norm_E: str = "spectralinstance",
        init_type: str = "xavier",
        init_gain: float = 0.02,
    ) -> None:
        super().__init__()
        if num_upsampling_layers not in SPADE_UPSAMPLINGS:
            raise ValueError(
                f"num_upsampling_layers must be one of {sorted(SPADE_UPSAMPLINGS)}, got {num_upsampling_layers!r}"
            )
        if label_nc < 1:
            raise ValueError(f"label_nc must be >= 1, got {label_nc}")
        n_up = SPADE_UPSAMPLINGS[num_upsampling_layers]
        self.size_multiple = 2**n_up
        if crop_size < self.size_multiple:
            raise ValueError(
                f"crop_size {crop_size} is smaller than {self.size_multiple}, the size the {num_upsampling_layers!r} "
                "generator upsamples its latent grid by: use a larger crop_size or fewer upsampling layers"
            )
        self.config: dict[str, Any] = {
            "type": "spade",
            "label_nc": label_nc,
            "contain_dontcare_label": contain_dontcare_label,
            "use_instance": use_instance,
            "output_nc": output_nc,
            "ngf": ngf,
            "num_upsampling_layers": num_upsampling_layers,
            "norm_G": norm_G,
            "spade_hidden": spade_hidden,
            "crop_size": crop_size,
            "aspect_ratio": aspect_ratio,
            "use_vae": use_vae,
            "z_dim": z_dim,
            "norm_E": norm_E,
            "init_type": init_type,
            "init_gain": init_gain,
        }
        self.label_nc, self.contain_dontcare_label, self.use_instance = label_nc, contain_dontcare_label, use_instance
        self.use_vae, self.z_dim, self.ngf, self.n_up = use_vae, z_dim, ngf, n_up
        self.semantic_nc = label_nc + int(contain_dontcare_label) + int(use_instance)
        nf = ngf
        self.sw = crop_size // 2**n_up
        self.sh = max(1, round(self.sw / aspect_ratio))
        if use_vae:
            self.fc: nn.Module = nn.Linear(z_dim, 16 * nf * self.sw * self.sh)
        else:
            self.fc = nn.Conv2d(self.semantic_nc, 16 * nf, 3, padding=1)
        block = functools.partial(SPADEResnetBlock, norm_G=norm_G, semantic_nc=self.semantic_nc, nhidden=spade_hidden)
        self.head_0 = block(16 * nf, 16 * nf)
        self.G_middle_0 = block(16 * nf, 16 * nf)
        self.G_middle_1 = block(16 * nf, 16 * nf)
        self.up_0 = block(16 * nf, 8 * nf)
        self.up_1 = block(8 * nf, 4 * nf)
        self.up_2 = block(4 * nf, 2 * nf)
        self.up_3 = block(2 * nf, 1 * nf)
        final_nc = nf
        if num_upsampling_layers == "most":
            self.up_4 = block(1 * nf, nf // 2)
            final_nc = nf // 2
        self.conv_img = nn.Conv2d(final_nc, output_nc, 3, padding=1)
        self.up = nn.Upsample(scale_factor=2)
        init_weights_spectral(self, init_type, init_gain)
        if use_vae:
            self.encoder = ConvEncoder(ngf, crop_size, z_dim, norm_E)
            init_weights_spectral(self.encoder, init_type, init_gain)

    def semantics(self, label: torch.Tensor, instance: torch.Tensor | None = None) -> torch.Tensor:
        """Raw ids (+ instance map) -> the reference's ``input_semantics`` (one-hot + edge channel)."""
        label = label.long()
        if self.contain_dontcare_label:  # the raw "don't care" id; datasets may already have mapped it
            label = torch.where(label == 255, torch.full_like(label, self.label_nc), label)
        seg = label_to_onehot(label, self.label_nc + int(self.contain_dontcare_label))
        if self.use_instance:
            if instance is None or instance.numel() == 0:
                raise ValueError(
                    "this SPADE generator uses instance maps (use_instance=True): pass the instance map "
                    "(or the label map itself, whose class boundaries then serve as instance edges)"
                )
            if instance.dim() == 3:
                instance = instance.unsqueeze(1)
            seg = torch.cat([seg, instance_edges(instance.to(seg.device))], dim=1)
        return seg

    def encode(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Style image in [-1, 1] -> ``(mu, logvar)`` (``use_vae`` only)."""
        if not self.use_vae:
            raise ValueError("this SPADE generator has no style encoder (trained with use_vae=False)")
        return self.encoder(image)

    def synthesize(self, seg: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        """The reference ``SPADEGenerator.forward(input_semantics, z)``."""
        n, _, h, w = seg.shape
        m = self.size_multiple
        if h % m or w % m:
            raise ValueError(
                f"SPADEGenerator({self.config['num_upsampling_layers']!r}) needs label maps whose sides are "
                f"multiples of {m}, got {h}x{w}: use a crop_size that is (Translator pads other sizes)"
            )
        grid = (h // m, w // m)
        if self.use_vae:
            if z is None:
                z = torch.randn(n, self.z_dim, dtype=torch.float32, device=seg.device)
            x = self.fc(z).view(-1, 16 * self.ngf, self.sh, self.sw)
            if (self.sh, self.sw) != grid:
                x = F.interpolate(x, size=grid, mode="bilinear", align_corners=False)
        else:
            x = self.fc(F.interpolate(seg, size=grid))
        x = self.head_0(x, seg)
        x = self.up(x)
        x = self.G_middle_0(x, seg)
        if self.n_up >= 6:
            x = self.up(x)
        x = self.G_middle_1(x, seg)
        for name in ("up_0", "up_1", "up_2", "up_3"):
            x = self.up(x)
            x = getattr(self, name)(x, seg)
        if self.n_up == 7:
            x = self.up(x)
            x = self.up_4(x, seg)
        return torch.tanh(self.conv_img(F.leaky_relu(x, 2e-1)))

    def forward(
        self,
        label: torch.Tensor,
        instance: torch.Tensor | None = None,
        z: torch.Tensor | None = None,
        style: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Label ids ``Nx1xHxW`` (+ instance ids) -> image ``N x output_nc x H x W`` in [-1, 1].

        ``style`` (an image in [-1, 1], any size) sets z to its encoding's mean; ``z`` is used as
        given; with neither, a VAE generator draws z ~ N(0, I).
        """
        seg = self.semantics(label, instance)
        if style is not None:
            mu, _ = self.encode(style.to(seg.device))
            z = mu
        return self.synthesize(seg, z)


# --------------------------------------------------------------------------- UNIT (Liu et al. 2017)
# Names follow mingyuliutw/UNIT (networks.py: ContentEncoder, Decoder, VAEGen).


def check_unit_blocks(n_downsample: int, n_res: int, n_shared: int) -> None:
    """Reject block counts no UNIT generator can have (``UNITConfig`` checks the same)."""
    if n_downsample < 0 or n_res < 0 or n_shared < 0:
        raise ValueError(f"n_downsample, n_res and n_shared must be >= 0, got {n_downsample}, {n_res}, {n_shared}")
    if n_shared > n_res:
        raise ValueError(
            f"n_shared ({n_shared}) cannot exceed n_res ({n_res}): the shared blocks are among "
            "each encoder's/decoder's residual blocks"
        )


class UNITEncoder(nn.Module):
    """The private (per-domain) front of an encoder: the reference ``ContentEncoder`` minus its
    last ``n_shared`` residual blocks.

    ``c7s1-dim`` (instance norm, activ), ``n_downsample`` x ``4x4 stride-2 conv`` doubling the
    channels, then ``n_res`` residual blocks at ``dim * 2**n_downsample`` channels.
    """

    def __init__(
        self, input_nc: int, dim: int, n_downsample: int, n_res: int, activ: ActivationType, pad_type: PaddingType
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [Conv2dBlock(input_nc, dim, 7, 1, 3, "in", activ, pad_type)]
        for _ in range(n_downsample):
            layers.append(Conv2dBlock(dim, 2 * dim, 4, 2, 1, "in", activ, pad_type))
            dim *= 2
        layers.append(res_blocks(n_res, dim, activ, pad_type))
        self.model = nn.Sequential(*layers)
        self.output_dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class UNITDecoder(nn.Module):
    """The private (per-domain) back of a decoder: the reference ``Decoder`` (``res_norm='in'``)
    minus its first ``n_shared`` residual blocks.

    ``n_res`` residual blocks, ``n_upsample`` x (nearest 2x upsampling + ``5x5 conv`` halving the
    channels + layer norm + activ), then ``c7s1-output_nc`` with tanh.
    """

    def __init__(
        self, dim: int, output_nc: int, n_upsample: int, n_res: int, activ: ActivationType, pad_type: PaddingType
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [res_blocks(n_res, dim, activ, pad_type)]
        for _ in range(n_upsample):
            layers += [nn.Upsample(scale_factor=2), Conv2dBlock(dim, dim // 2, 5, 1, 2, "ln", activ, pad_type)]
            dim //= 2
        layers.append(Conv2dBlock(dim, output_nc, 7, 1, 3, "none", "tanh", pad_type))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class UNITGenerator(nn.Module):
    """One translation direction of a trained UNIT, as exported for inference.

    ``x -> enc (source domain) -> enc_shared -> mu -> dec_shared -> dec (target domain) -> y``.
    Inference decodes the mean ``mu`` (no noise), so the output is deterministic. The constructor's
    keyword arguments are its JSON config (``build_generator({"type": "unit", ...})`` rebuilds
    it); a trained :class:`UNIT` builds its two directions with :meth:`from_parts`, which holds
    the model's own sub-modules (shared ones included), not copies.

    With ``n_shared`` shared blocks the path is ``n_res`` residual blocks per side, exactly the
    reference ``VAEGen`` of the source domain's encoder and the target domain's decoder.
    Sides must be multiples of ``2**n_downsample`` (``size_multiple``; ``Translator`` pads).
    """

    def __init__(
        self,
        input_nc: int = 3,
        output_nc: int = 3,
        dim: int = 64,
        n_downsample: int = 2,
        n_res: int = 4,
        n_shared: int = 1,
        activ: ActivationType = "relu",
        pad_type: PaddingType = "reflect",
    ) -> None:
        super().__init__()
        check_unit_blocks(n_downsample, n_res, n_shared)
        self._set_config(input_nc, output_nc, dim, n_downsample, n_res, n_shared, activ, pad_type)
        latent = dim * 2**n_downsample
        self.enc = UNITEncoder(input_nc, dim, n_downsample, n_res - n_shared, activ, pad_type)
        self.enc_shared = res_blocks(n_shared, latent, activ, pad_type)
        self.dec_shared = res_blocks(n_shared, latent, activ, pad_type)
        self.dec = UNITDecoder(latent, output_nc, n_downsample, n_res - n_shared, activ, pad_type)

    def _set_config(
        self,
        input_nc: int,
        output_nc: int,
        dim: int,
        n_downsample: int,
        n_res: int,
        n_shared: int,
        activ: str,
        pad_type: str,
    ) -> None:
        self.config: dict[str, Any] = {
            "type": "unit",
            "input_nc": input_nc,
            "output_nc": output_nc,
            "dim": dim,
            "n_downsample": n_downsample,
            "n_res": n_res,
            "n_shared": n_shared,
            "activ": activ,
            "pad_type": pad_type,
        }
        #: the spatial size of the input must be divisible by this
        self.size_multiple = 2**n_downsample

    @classmethod
    def from_parts(
        cls, config: dict[str, Any], enc: UNITEncoder, enc_shared: nn.Module, dec_shared: nn.Module, dec: UNITDecoder
    ) -> UNITGenerator:
        """A view on existing modules (no copy): ``config`` as the constructor's keyword arguments."""
        gen = cls.__new__(cls)
        nn.Module.__init__(gen)
        kwargs = {k: v for k, v in config.items() if k != "type"}
        gen._set_config(**kwargs)
        gen.enc, gen.enc_shared, gen.dec_shared, gen.dec = enc, enc_shared, dec_shared, dec
        return gen

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The latent mean ``mu`` (the reference's ``hiddens``)."""
        return self.enc_shared(self.enc(x))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.dec(self.dec_shared(z))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


GENERATORS: dict[str, type[nn.Module]] = {
    "resnet": ResnetGenerator,
    "unet": UnetGenerator,
    "spade": SPADEGenerator,
    "unit": UNITGenerator,
}

#: reference names (``--netG``) -> constructor arguments
NAMED_GENERATORS: dict[str, dict[str, Any]] = {
    "resnet_9blocks": {"type": "resnet", "n_blocks": 9},
    "resnet_6blocks": {"type": "resnet", "n_blocks": 6},
    "unet_128": {"type": "unet", "num_downs": 7},
    "unet_256": {"type": "unet", "num_downs": 8},
}


def build_generator(config: dict[str, Any]) -> nn.Module:
    """Build a generator from its config dict (``{"type": ..., **kwargs}``)."""
    config = dict(config)
    kind = config.pop("type", None)
    if kind not in GENERATORS:
        raise ValueError(f"unknown generator type {kind!r}; known: {sorted(GENERATORS)}")
    return GENERATORS[kind](**config)
