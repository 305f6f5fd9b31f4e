"""Shared building blocks: normalisation factories, padding, residual blocks, weight init.

Names follow each method's reference implementation (junyanz/pytorch-CycleGAN-and-pix2pix
``models/networks.py`` first, then the UNIT and SPADE sections) so a reader can map one onto
the other and the state-dict keys match the references' checkpoints.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

NormType = Literal["batch", "instance", "none"]
PaddingType = Literal["reflect", "replicate", "zero"]
InitType = Literal["normal", "xavier", "kaiming", "orthogonal"]
#: :class:`Conv2dBlock`'s vocabulary (the UNIT reference's config values)
ActivationType = Literal["relu", "lrelu", "prelu", "selu", "tanh", "none"]
ConvNormType = Literal["in", "ln", "bn", "none"]


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


def pad_layer(padding_type: PaddingType, amount: int) -> nn.Module:
    """An explicit padding module (zero padding as ``nn.ZeroPad2d``)."""
    if padding_type == "reflect":
        return nn.ReflectionPad2d(amount)
    if padding_type == "replicate":
        return nn.ReplicationPad2d(amount)
    if padding_type == "zero":
        return nn.ZeroPad2d(amount)
    raise ValueError(f"unknown padding type {padding_type!r}: use 'reflect', 'replicate' or 'zero'")


def padding_layers(padding_type: PaddingType, amount: int) -> tuple[list[nn.Module], int]:
    """Explicit padding layers plus the ``padding=`` to give the following conv.

    Zero padding is left to the conv itself (the CycleGAN/pix2pix reference's layer layout).
    """
    if padding_type == "zero":
        return [], amount
    return [pad_layer(padding_type, amount)], 0


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


# --------------------------------------------------------------------------- UNIT (Liu et al. 2017)
# Names follow mingyuliutw/UNIT (networks.py: Conv2dBlock, ResBlock, LayerNorm) so that the
# state-dict keys match the reference's checkpoints.


def activation_layer(name: ActivationType) -> nn.Module | None:
    """The named activation module (leaky ReLU with slope 0.2), ``None`` for ``none``."""
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "lrelu":
        return nn.LeakyReLU(0.2, inplace=True)
    if name == "prelu":
        return nn.PReLU()
    if name == "selu":
        return nn.SELU(inplace=True)
    if name == "tanh":
        return nn.Tanh()
    if name == "none":
        return None
    raise ValueError(f"unknown activation {name!r}: use one of relu, lrelu, prelu, selu, tanh, none")


class LayerNorm2d(nn.Module):
    """The reference's ``LayerNorm``: per-sample normalisation over (C, H, W), per-channel affine.

    ``(x - mean) / (std + eps)`` with the unbiased std of each sample, then ``gamma * x + beta``;
    ``gamma`` starts uniform in [0, 1), ``beta`` at 0 (as in the reference). Statistics are taken
    in float32 so bf16 autocast does not degrade them.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, affine: bool = True) -> None:
        super().__init__()
        self.num_features, self.eps, self.affine = num_features, eps, affine
        if affine:
            self.gamma = nn.Parameter(torch.empty(num_features).uniform_())
            self.beta = nn.Parameter(torch.zeros(num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        flat = xf.reshape(xf.shape[0], -1)
        shape = (-1,) + (1,) * (x.dim() - 1)
        xf = (xf - flat.mean(1).view(shape)) / (flat.std(1).view(shape) + self.eps)
        if self.affine:
            shape = (1, -1) + (1,) * (x.dim() - 2)
            xf = xf * self.gamma.float().view(shape) + self.beta.float().view(shape)
        return xf.to(x.dtype)


def conv_norm_layer(name: ConvNormType, dim: int) -> nn.Module | None:
    """:class:`Conv2dBlock`'s norm: ``in``/``bn`` are :func:`get_norm_layer`'s instance/batch norm
    (the UNIT reference's after PyTorch 0.4: the same layers), ``ln`` is :class:`LayerNorm2d`."""
    if name == "in":
        return get_norm_layer("instance")(dim)
    if name == "ln":
        return LayerNorm2d(dim)
    if name == "bn":
        return get_norm_layer("batch")(dim)
    if name == "none":
        return None
    raise ValueError(f"unknown norm {name!r}: use one of in, ln, bn, none")


class Conv2dBlock(nn.Module):
    """``pad -> conv (bias) -> [norm] -> [activation]``, the reference's ``Conv2dBlock``."""

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        kernel_size: int,
        stride: int,
        padding: int = 0,
        norm: ConvNormType = "none",
        activation: ActivationType = "relu",
        pad_type: PaddingType = "zero",
    ) -> None:
        super().__init__()
        self.pad = pad_layer(pad_type, padding)
        self.conv = nn.Conv2d(in_dim, out_dim, kernel_size, stride, bias=True)
        self.norm = conv_norm_layer(norm, out_dim)
        self.activation = activation_layer(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(self.pad(x))
        if self.norm is not None:
            x = self.norm(x)
        if self.activation is not None:
            x = self.activation(x)
        return x


class ResBlock(nn.Module):
    """``x + conv3x3-norm-activ-conv3x3-norm(x)``, the reference's ``ResBlock``.

    The same residual form as :class:`ResnetBlock`, but not the same layers: any activation, a
    conv bias under every norm, and the reference's ``model.N.conv`` key layout, which UNIT
    checkpoints depend on.
    """

    def __init__(
        self, dim: int, norm: ConvNormType = "in", activation: ActivationType = "relu", pad_type: PaddingType = "zero"
    ) -> None:
        super().__init__()
        self.model = nn.Sequential(
            Conv2dBlock(dim, dim, 3, 1, 1, norm=norm, activation=activation, pad_type=pad_type),
            Conv2dBlock(dim, dim, 3, 1, 1, norm=norm, activation="none", pad_type=pad_type),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.model(x)


def res_blocks(n: int, dim: int, activ: ActivationType, pad_type: PaddingType) -> nn.Sequential:
    """``n`` instance-normalised residual blocks (the reference's ``ResBlocks``); ``n=0`` is the identity."""
    return nn.Sequential(*[ResBlock(dim, "in", activ, pad_type) for _ in range(n)])


# --------------------------------------------------------------------------- SPADE (Park et al. 2019)
# Names follow NVlabs/SPADE (models/networks/normalization.py, architecture.py) so that the
# state-dict keys match the reference's checkpoints.


def add_nonspade_norm(layer: nn.Module, norm_type: str = "spectralinstance") -> nn.Module:
    """The reference ``get_nonspade_norm_layer(opt, norm_type)(layer)``.

    ``norm_type`` is ``[spectral](instance|batch|syncbatch|sync_batch|none|)``: the optional
    ``spectral`` prefix wraps ``layer`` in spectral normalisation (Miyato et al. 2018, kept as
    ``weight_orig``/``weight_u``/``weight_v`` like the reference); a normalisation after it makes
    the layer's bias meaningless, so the bias is removed and ``nn.Sequential(layer, norm)`` is
    returned. Instance norm is parameter-free; batch norm is affine (as in the reference).
    """
    sub = norm_type
    if sub.startswith("spectral"):
        layer = nn.utils.spectral_norm(layer)
        sub = sub[len("spectral") :]
    if sub in ("", "none"):
        return layer
    channels = getattr(layer, "out_channels", None) or layer.weight.size(0)
    if getattr(layer, "bias", None) is not None:
        delattr(layer, "bias")
        layer.register_parameter("bias", None)
    if sub == "instance":
        norm: nn.Module = nn.InstanceNorm2d(channels, affine=False)
    elif sub == "batch":
        norm = nn.BatchNorm2d(channels, affine=True)
    elif sub in ("syncbatch", "sync_batch"):
        norm = nn.SyncBatchNorm(channels, affine=True)
    else:
        raise ValueError(f"unknown norm {norm_type!r}: use [spectral](instance|batch|syncbatch|none)")
    return nn.Sequential(layer, norm)


def _param_free_norm(kind: str, channels: int) -> nn.Module:
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False)
    if kind == "batch":
        return nn.BatchNorm2d(channels, affine=False)
    if kind == "syncbatch":  # = batch norm on one device; statistics over all ranks under DDP
        return nn.SyncBatchNorm(channels, affine=False)
    raise ValueError(f"{kind!r} is not a parameter-free norm SPADE knows: use instance, batch or syncbatch")


class SPADE(nn.Module):
    """Spatially-adaptive denormalisation (paper eq. 1).

    ``out = norm(x) * (1 + gamma(m)) + beta(m)``: the activations are normalised without
    learned parameters (``param_free_norm``: batch, sync-batch or instance norm), then scaled
    and shifted per pixel by ``gamma``/``beta`` predicted from the segmentation map ``m``
    (nearest-resized to the activations) by a two-layer conv net with ``nhidden`` channels
    (``mlp_shared`` -> ``mlp_gamma``/``mlp_beta``; 128 in the reference, "Yes, hardcoded").

    ``config_text`` is the reference's ``spade<norm><k>x<k>``, e.g. ``spadesyncbatch3x3``.
    """

    def __init__(self, config_text: str, norm_nc: int, label_nc: int, nhidden: int = 128) -> None:
        super().__init__()
        parsed = re.fullmatch(r"spade(\D+)(\d)x\d", config_text)
        if parsed is None:
            raise ValueError(f"SPADE config {config_text!r} is not of the form spade<norm><k>x<k>, e.g. spadebatch3x3")
        self.param_free_norm = _param_free_norm(parsed.group(1), norm_nc)
        ks = int(parsed.group(2))
        pw = ks // 2
        self.mlp_shared = nn.Sequential(nn.Conv2d(label_nc, nhidden, kernel_size=ks, padding=pw), nn.ReLU())
        self.mlp_gamma = nn.Conv2d(nhidden, norm_nc, kernel_size=ks, padding=pw)
        self.mlp_beta = nn.Conv2d(nhidden, norm_nc, kernel_size=ks, padding=pw)

    def forward(self, x: torch.Tensor, segmap: torch.Tensor) -> torch.Tensor:
        segmap = F.interpolate(segmap, size=x.shape[2:], mode="nearest")
        actv = self.mlp_shared(segmap)
        gamma, beta = self.mlp_gamma(actv), self.mlp_beta(actv)
        # Under bf16 autocast the normalisation and the modulation run in float32 (a no-op in fp32):
        # in bf16, 1 + gamma is rounded to steps of 2^-7 and the normalised activations to 8 bits.
        # All-bf16 SPADE trained worse on seeds 0-2 of 7; this narrowed the FID gap (README: bf16 quality parity)
        with torch.autocast(x.device.type, enabled=False):
            return self.param_free_norm(x.float()) * (1 + gamma.float()) + beta.float()


class SPADEResnetBlock(nn.Module):
    """SPADE residual block (paper fig. 4 right, after Mescheder et al.'s GAN_stability blocks).

    ``out = shortcut(x) + conv_1(lrelu(norm_1(conv_0(lrelu(norm_0(x, m))), m)))`` with
    ``fmiddle = min(fin, fout)``; a learned 1x1 shortcut ``conv_s(norm_s(x, m))`` (no bias) when
    ``fin != fout``. ``norm_G`` is the reference's string, e.g. ``spectralspadesyncbatch3x3``:
    ``spectral`` puts spectral norm on the three convs, the rest configures :class:`SPADE`.
    """

    def __init__(self, fin: int, fout: int, norm_G: str, semantic_nc: int, nhidden: int = 128) -> None:
        super().__init__()
        self.learned_shortcut = fin != fout
        fmiddle = min(fin, fout)
        self.conv_0 = nn.Conv2d(fin, fmiddle, kernel_size=3, padding=1)
        self.conv_1 = nn.Conv2d(fmiddle, fout, kernel_size=3, padding=1)
        if self.learned_shortcut:
            self.conv_s = nn.Conv2d(fin, fout, kernel_size=1, bias=False)
        if "spectral" in norm_G:
            self.conv_0 = nn.utils.spectral_norm(self.conv_0)
            self.conv_1 = nn.utils.spectral_norm(self.conv_1)
            if self.learned_shortcut:
                self.conv_s = nn.utils.spectral_norm(self.conv_s)
        spade_config = norm_G.replace("spectral", "")
        self.norm_0 = SPADE(spade_config, fin, semantic_nc, nhidden)
        self.norm_1 = SPADE(spade_config, fmiddle, semantic_nc, nhidden)
        if self.learned_shortcut:
            self.norm_s = SPADE(spade_config, fin, semantic_nc, nhidden)

    def forward(self, x: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        x_s = self.conv_s(self.norm_s(x, seg)) if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, seg), 2e-1))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, seg), 2e-1))
        return x_s + dx


def init_weights_spectral(net: nn.Module, init_type: str = "xavier", init_gain: float = 0.02) -> nn.Module:
    """SPADE's ``BaseNetwork.init_weights``, aware of spectral norm.

    Conv/Linear weights from ``init_type`` (``xavier`` = ``xavier_normal_(gain)``, the SPADE
    default with gain 0.02; ``normal``, ``xavier_uniform``, ``kaiming``, ``orthogonal``, ``none``
    = PyTorch's default), biases 0; batch-norm weights N(1, gain). Under spectral norm the
    initialised tensor is ``weight_orig`` (what the reference's in-place init reaches too).
    """

    def init_fn(m: nn.Module) -> None:
        name = m.__class__.__name__
        if "BatchNorm2d" in name:
            if getattr(m, "weight", None) is not None:
                nn.init.normal_(m.weight, 1.0, init_gain)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
            return
        if not ("Conv" in name or "Linear" in name):
            return
        weight = getattr(m, "weight_orig", None)
        if weight is None:
            weight = getattr(m, "weight", None)
        if not isinstance(weight, nn.Parameter):
            return
        with torch.no_grad():
            if init_type == "normal":
                nn.init.normal_(weight, 0.0, init_gain)
            elif init_type == "xavier":
                nn.init.xavier_normal_(weight, gain=init_gain)
            elif init_type == "xavier_uniform":
                nn.init.xavier_uniform_(weight, gain=1.0)
            elif init_type == "kaiming":
                nn.init.kaiming_normal_(weight, a=0, mode="fan_in")
            elif init_type == "orthogonal":
                nn.init.orthogonal_(weight, gain=init_gain)
            elif init_type == "none":
                m.reset_parameters()
            else:
                raise ValueError(f"unknown init type {init_type!r}")
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)

    net.apply(init_fn)
    return net


def label_to_onehot(label: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Class ids ``Nx1xHxW`` (or ``NxHxW``) -> float one-hot ``N x num_classes x H x W``.

    Raises ``ValueError`` naming the ids outside ``0..num_classes-1`` (``scatter_`` would fail
    with an opaque index error on CPU and a device-side assert on CUDA).
    """
    if label.dim() == 3:
        label = label.unsqueeze(1)
    if label.dim() != 4 or label.shape[1] != 1:
        raise ValueError(f"label map must be Nx1xHxW class ids, got shape {tuple(label.shape)}")
    label = label.long()
    if label.numel() and (int(label.min()) < 0 or int(label.max()) >= num_classes):
        ids = torch.unique(label)
        bad = [int(i) for i in ids if not 0 <= int(i) < num_classes]
        raise ValueError(f"label ids {bad} are outside 0..{num_classes - 1} ({num_classes} input channels)")
    n, _, h, w = label.shape
    onehot = torch.zeros(n, num_classes, h, w, device=label.device, dtype=torch.float32)
    return onehot.scatter_(1, label, 1.0)


def instance_edges(instance: torch.Tensor) -> torch.Tensor:
    """pix2pixHD/SPADE ``get_edges``: 1 where a pixel's instance id differs from a 4-neighbour's.

    ``Nx1xHxW`` instance ids -> ``Nx1xHxW`` float edge map (both sides of a boundary are marked).
    """
    t = instance
    edge = torch.zeros(t.shape, dtype=torch.bool, device=t.device)
    dx = t[:, :, :, 1:] != t[:, :, :, :-1]
    dy = t[:, :, 1:, :] != t[:, :, :-1, :]
    edge[:, :, :, 1:] |= dx
    edge[:, :, :, :-1] |= dx
    edge[:, :, 1:, :] |= dy
    edge[:, :, :-1, :] |= dy
    return edge.float()
