"""GAN objectives and the image history buffer."""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

GANMode = Literal["lsgan", "vanilla"]


class GANLoss(nn.Module):
    """Adversarial loss against a constant real/fake target, as in the reference ``GANLoss``.

    * ``lsgan``: least squares, ``E[(D(x) - 1)^2]`` / ``E[D(G(z))^2]`` (Mao et al. 2017), the
      CycleGAN paper's choice (section 4, "Training details").
    * ``vanilla``: the original cross-entropy GAN on logits (``BCEWithLogitsLoss``).

    The loss is computed in float32 even under autocast, so bf16 logits do not lose
    precision in the squared error.
    """

    def __init__(self, gan_mode: GANMode = "lsgan", target_real: float = 1.0, target_fake: float = 0.0) -> None:
        super().__init__()
        if gan_mode == "lsgan":
            self.loss: nn.Module = nn.MSELoss()
        elif gan_mode == "vanilla":
            self.loss = nn.BCEWithLogitsLoss()
        else:
            raise ValueError(f"unknown gan_mode {gan_mode!r}: use 'lsgan' or 'vanilla'")
        self.gan_mode = gan_mode
        self.register_buffer("real_label", torch.tensor(target_real), persistent=False)
        self.register_buffer("fake_label", torch.tensor(target_fake), persistent=False)

    def forward(self, prediction: torch.Tensor, target_is_real: bool) -> torch.Tensor:
        prediction = prediction.float()
        target = (self.real_label if target_is_real else self.fake_label).to(prediction.device)
        return self.loss(prediction, target.expand_as(prediction))


class ImagePool:
    """History of generated images (Shrivastava et al. 2017), CycleGAN's size-50 buffer.

    Until the pool is full every image is stored and returned; afterwards each
    query returns, with probability 1/2, a stored image (replacing it with the new
    one) and otherwise the new image. The discriminator therefore sees a history
    of fakes, not only the latest generator's. Its random draws come from its own
    ``random.Random`` so that a resumed run continues the same sequence.
    """

    def __init__(self, pool_size: int = 50, seed: int = 0) -> None:
        self.pool_size = pool_size
        self.images: list[torch.Tensor] = []
        self.rng = random.Random(seed)

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.pool_size == 0:
            return images
        out = []
        for image in images.detach():
            image = image.unsqueeze(0)
            if len(self.images) < self.pool_size:
                self.images.append(image.clone())
                out.append(image)
            elif self.rng.uniform(0, 1) > 0.5:
                idx = self.rng.randint(0, self.pool_size - 1)
                out.append(self.images[idx].clone())
                self.images[idx] = image.clone()
            else:
                out.append(image)
        return torch.cat(out, 0)

    def state_dict(self) -> dict[str, Any]:
        return {"pool_size": self.pool_size, "images": [t.cpu() for t in self.images], "rng": self.rng.getstate()}

    def load_state_dict(self, state: dict[str, Any], device: torch.device | str = "cpu") -> None:
        self.pool_size = state["pool_size"]
        self.images = [t.to(device) for t in state["images"]]
        rng_state = state["rng"]
        # torch.load(weights_only=True) turns tuples into lists; random wants tuples.
        self.rng.setstate((rng_state[0], tuple(rng_state[1]), rng_state[2]))


# --------------------------------------------------------------------------- SPADE (Park et al. 2019)

SPADEGANMode = Literal["hinge", "ls", "original", "w"]


class MultiscaleGANLoss(nn.Module):
    """NVlabs/SPADE ``GANLoss`` over (multi-scale) discriminator outputs.

    * ``hinge`` (SPADE's default, after Lim & Ye 2017 / Miyato et al. 2018):
      D: ``E[max(0, 1 - D(x))] + E[max(0, 1 + D(G(s)))]``; G: ``-E[D(G(s))]``.
    * ``ls``: least squares; ``original``: cross-entropy on logits; ``w``: Wasserstein.

    ``prediction`` is a tensor or, for a multi-scale discriminator, a list with one entry per
    scale, each a tensor or a list of features whose LAST element is the logits; the loss is
    averaged over the scales. Computed in float32 (bf16 logits under autocast).
    """

    def __init__(self, gan_mode: SPADEGANMode = "hinge", target_real: float = 1.0, target_fake: float = 0.0) -> None:
        super().__init__()
        if gan_mode not in ("hinge", "ls", "original", "w"):
            raise ValueError(f"unknown gan_mode {gan_mode!r}: use 'hinge', 'ls', 'original' or 'w'")
        self.gan_mode = gan_mode
        self.target_real, self.target_fake = target_real, target_fake

    def _loss(self, x: torch.Tensor, target_is_real: bool, for_discriminator: bool) -> torch.Tensor:
        x = x.float()
        if self.gan_mode == "hinge":
            if not for_discriminator:
                if not target_is_real:
                    raise ValueError("the generator's hinge loss must aim for real")
                return -x.mean()
            return F.relu(1 - x).mean() if target_is_real else F.relu(1 + x).mean()
        if self.gan_mode in ("ls", "original"):
            target = torch.full_like(x, self.target_real if target_is_real else self.target_fake)
            if self.gan_mode == "ls":
                return F.mse_loss(x, target)
            return F.binary_cross_entropy_with_logits(x, target)
        return -x.mean() if target_is_real else x.mean()  # wgan

    def forward(self, prediction: Any, target_is_real: bool, for_discriminator: bool = True) -> torch.Tensor:
        if isinstance(prediction, (list, tuple)):
            losses = [
                self._loss(p[-1] if isinstance(p, (list, tuple)) else p, target_is_real, for_discriminator)
                for p in prediction
            ]
            return torch.stack(losses).mean()
        return self._loss(prediction, target_is_real, for_discriminator)


def feature_matching_loss(
    pred_fake: Sequence[Sequence[torch.Tensor]], pred_real: Sequence[Sequence[torch.Tensor]], lambda_feat: float = 10.0
) -> torch.Tensor:
    """pix2pixHD's discriminator feature matching (Wang et al. 2018, eq. 4), SPADE's ``GAN_Feat``.

    ``sum over scales i and layers j (all but the logits) of L1(D_i^j(fake), D_i^j(real).detach())
    * lambda_feat / num_D``.
    """
    num_D = len(pred_fake)
    loss = pred_fake[0][0].new_zeros((), dtype=torch.float32)
    for fake_i, real_i in zip(pred_fake, pred_real, strict=True):
        for fake_ij, real_ij in zip(fake_i[:-1], real_i[:-1], strict=True):
            loss = loss + F.l1_loss(fake_ij.float(), real_ij.detach().float()) * (lambda_feat / num_D)
    return loss


def kld_loss(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``KL(N(mu, exp(logvar)) || N(0, I))`` summed over the batch and z (SPADE ``KLDLoss``)."""
    mu, logvar = mu.float(), logvar.float()
    return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())


# --------------------------------------------------------------------------- UNIT (Liu et al. 2017)


def unit_kl_loss(mu: torch.Tensor) -> torch.Tensor:
    """UNIT's KL term, the reference's ``__compute_kl``: ``mean(mu^2)``.

    ``KL(N(mu, I) || N(0, I)) = sum(mu^2) / 2 + const``: the encoder's Gaussian has unit variance
    (the reference's "reduced VAE"), so only the mean is penalised; the reference averages.
    """
    return mu.float().pow(2).mean()


# --------------------------------------------------------------------------- VGG perceptual loss (pix2pixHD / SPADE)

#: torchvision ``vgg19().features`` layout (config "E"): channel counts, "M" = 2x2 max-pool
VGG19_CONFIG: tuple[int | str, ...] = (
    64,
    64,
    "M",
    128,
    128,
    "M",
    256,
    256,
    256,
    256,
    "M",
    512,
    512,
    512,
    512,
    "M",
    512,
    512,
    512,
    512,
    "M",
)
#: ``features`` indices after which SPADE's VGG loss takes relu1_1, relu2_1, relu3_1, relu4_1, relu5_1
VGG19_SLICES: tuple[int, ...] = (2, 7, 12, 21, 30)


class VGGWeightsError(ValueError):
    """A VGG19 weights file that is missing, unreadable or not VGG19 (names the file and the problem)."""


class VGG19(nn.Module):
    """VGG19's convolutional part (Simonyan & Zisserman 2015) in pure PyTorch, no torchvision.

    ``features`` has exactly torchvision's ``vgg19().features`` layers and state-dict keys
    (``features.0.weight`` ... ``features.34.bias``), so torchvision's ImageNet weights
    (``vgg19-dcbb9e9d.pth``) load into it. ``forward`` returns the five activations SPADE's
    (and pix2pixHD's) perceptual loss compares: relu1_1, relu2_1, relu3_1, relu4_1, relu5_1.
    """

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_c = 3
        for v in VGG19_CONFIG:
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(in_c, int(v), kernel_size=3, padding=1), nn.ReLU(inplace=True)]
                in_c = int(v)
        self.features = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out, start = [], 0
        for end in VGG19_SLICES:
            for layer in self.features[start:end]:
                x = layer(x)
            out.append(x)
            start = end
        return out


def load_vgg19(path: str | Path) -> VGG19:
    """A frozen :class:`VGG19` with the weights in ``path`` (nothing is downloaded).

    Accepts a torchvision-format state dict (``torch.save``-d ``vgg19().state_dict()``, e.g.
    torchvision's ``vgg19-dcbb9e9d.pth``; read with ``weights_only=True``, never unpickling
    code) or a ``.safetensors`` file with the same keys. Keys ``features.N.*`` (or ``N.*``) are
    used, ``classifier.*`` ignored.

    Raises:
        VGGWeightsError: the file is missing, unreadable, or lacks / mis-shapes VGG19 keys.
    """
    path = Path(path).expanduser()
    hint = (
        "VGG19 ImageNet weights are needed for the VGG perceptual loss; put torchvision's "
        "vgg19-dcbb9e9d.pth (or a safetensors copy) there, or switch the loss off (use_vgg_loss: false)"
    )
    if not path.is_file():
        raise VGGWeightsError(f"VGG19 weights file '{path}' not found. {hint}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt file, a pickle with code, not a state dict ...
        raise VGGWeightsError(f"cannot read VGG19 weights '{path}': {type(exc).__name__}: {exc}. {hint}") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise VGGWeightsError(f"'{path}' holds a {type(state).__name__}, not a state dict of tensors. {hint}")
    vgg = VGG19()
    expected = vgg.state_dict()
    found = {}
    for key, value in state.items():
        name = str(key)
        if name.startswith("module."):
            name = name[len("module.") :]
        if not name.startswith("features."):
            if name.split(".", 1)[0].isdigit():
                name = f"features.{name}"
            else:
                continue
        found[name] = value
    missing = sorted(k for k in expected if k not in found)
    wrong = sorted(
        f"{k}: {tuple(found[k].shape)} instead of {tuple(expected[k].shape)}"
        for k in expected
        if k in found and tuple(found[k].shape) != tuple(expected[k].shape)
    )
    if missing or wrong:
        problems = (
            (f"missing {missing[:6]}{' ...' if len(missing) > 6 else ''}" if missing else "")
            + ("; " if missing and wrong else "")
            + (f"wrong shapes {wrong[:4]}" if wrong else "")
        )
        raise VGGWeightsError(f"'{path}' is not a VGG19 state dict: {problems}. {hint}")
    vgg.load_state_dict({k: found[k].float() for k in expected}, strict=True)
    vgg.eval()
    for p in vgg.parameters():
        p.requires_grad_(False)
    return vgg


class VGGLoss(nn.Module):
    """Perceptual loss of pix2pixHD/SPADE: ``sum_i w_i * L1(VGG_i(x), VGG_i(y).detach())``.

    Weights ``1/32, 1/16, 1/8, 1/4, 1`` on relu1_1 ... relu5_1. As in the reference, the images
    go into VGG in [-1, 1] as they are (no ImageNet mean/std normalisation).
    """

    weights = (1.0 / 32, 1.0 / 16, 1.0 / 8, 1.0 / 4, 1.0)

    def __init__(self, vgg: VGG19 | str | Path) -> None:
        super().__init__()
        self.vgg = vgg if isinstance(vgg, VGG19) else load_vgg19(vgg)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x_vgg, y_vgg = self.vgg(x), self.vgg(y)
        loss = x_vgg[0].new_zeros((), dtype=torch.float32)
        for w, a, b in zip(self.weights, x_vgg, y_vgg, strict=True):
            loss = loss + w * F.l1_loss(a.float(), b.detach().float())
        return loss
