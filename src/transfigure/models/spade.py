"""SPADE (Park, Liu, Wang, Zhu 2019, "Semantic Image Synthesis with Spatially-Adaptive
Normalization"), faithful to NVlabs/SPADE (``models/pix2pix_model.py``, ``models/networks``).

A semantic label map (one class id per pixel, optionally an instance map) is turned into a
photo. Code names -> paper:

* ``netG`` (:class:`~transfigure.models.generators.SPADEGenerator`) is the SPADE generator
  (fig. 4, appendix A): SPADE residual blocks whose normalisation is modulated per pixel by the
  segmentation map (eq. 1, :class:`~transfigure.models.layers.SPADE`); spectral norm on its
  convs; with ``use_vae`` its ``encoder`` is the image encoder of sec. 4 / fig. 14 (the
  reference's ``netE``), trained with ``loss_KLD = lambda_kld * KL(q(z|x) || N(0, I))``.
* ``netD`` (:class:`~transfigure.models.discriminators.MultiscaleDiscriminator`) is pix2pixHD's
  multi-scale PatchGAN (``num_D`` = 2 scales, ``n_layers_D`` = 4, spectral instance norm) on
  ``cat(one-hot label [+ instance edges], image)``; it returns its intermediate features.
* ``loss_GAN`` / ``loss_D_Fake`` / ``loss_D_real``: the hinge loss (sec. 4, "we use the hinge
  loss term"), ``loss_GAN_Feat = lambda_feat * sum_i,j ||D_i^j(fake) - D_i^j(real)||_1 / num_D``
  (pix2pixHD's feature matching, eq. 4 there), ``loss_VGG = lambda_vgg * perceptual loss``
  (VGG19, needs ImageNet weights: off unless ``vgg_weights`` is given, see below).
* TTUR (Heusel et al. 2017, sec. 4 "we use TTUR"): G learns at ``lr / 2``, D at ``lr * 2``,
  Adam betas (0, 0.9); with ``no_TTUR``, both ``lr`` and betas (0.5, 0.999) (the reference's
  defaults; the paper quotes beta2 = 0.999 for TTUR too, the code uses 0.9).
* One step = one G update (``D_steps_per_G``: every how many steps) then one D update on a
  freshly generated (no-grad) fake, as the reference trainer does.

What the reference does that is different here: the perceptual loss is OFF by default (its
VGG19 weights cannot be downloaded at run time; point ``vgg_weights`` at torchvision's
``vgg19-dcbb9e9d.pth`` or a safetensors copy to switch it on, as in the paper); the VGG network
is kept out of the model's ``state_dict`` and optimizer (it is frozen, like the reference's).
The generator's latent grid follows the input size (see :class:`SPADEGenerator`).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
from pydantic import model_validator
from torch import nn

from transfigure.models.base import Precision, TranslationModel, VariantConfig, loss_values, set_requires_grad
from transfigure.models.discriminators import MultiscaleDiscriminator
from transfigure.models.generators import SPADEGenerator
from transfigure.models.layers import init_weights_spectral
from transfigure.models.losses import (
    MultiscaleGANLoss,
    SPADEGANMode,
    VGGLoss,
    feature_matching_loss,
    kld_loss,
    load_vgg19,
)


class SPADEConfig(VariantConfig):
    """SPADE hyper-parameters. Defaults are the reference's for ``--dataset_mode coco``
    (COCO-Stuff: 182 classes + "don't care", instance maps), i.e. the paper's setup."""

    # data semantics (must match the dataset's)
    label_nc: int = 182
    contain_dontcare_label: bool = True
    use_instance: bool = True
    output_nc: int = 3
    crop_size: int = 256
    aspect_ratio: float = 1.0
    # generator
    ngf: int = 64
    num_upsampling_layers: Literal["normal", "more", "most"] = "normal"
    norm_G: str = "spectralspadesyncbatch3x3"
    spade_hidden: int = 128
    use_vae: bool = False
    z_dim: int = 256
    norm_E: str = "spectralinstance"
    # discriminator
    ndf: int = 64
    num_D: int = 2
    n_layers_D: int = 4
    norm_D: str = "spectralinstance"
    # losses
    gan_mode: SPADEGANMode = "hinge"
    use_feat_loss: bool = True
    lambda_feat: float = 10.0
    use_vgg_loss: bool = False
    vgg_weights: str | None = None
    lambda_vgg: float = 10.0
    lambda_kld: float = 0.05
    # optimisation
    lr: float = 2e-4
    no_TTUR: bool = False
    beta1: float | None = None
    beta2: float | None = None
    D_steps_per_G: int = 1
    init_type: Literal["normal", "xavier", "xavier_uniform", "kaiming", "orthogonal", "none"] = "xavier"
    init_gain: float = 0.02
    seed: int = 0

    @model_validator(mode="after")
    def _check(self) -> SPADEConfig:
        if self.label_nc < 1:
            raise ValueError(f"label_nc must be >= 1, got {self.label_nc}")
        if self.D_steps_per_G < 1:
            raise ValueError(f"D_steps_per_G must be >= 1, got {self.D_steps_per_G}")
        if self.use_vgg_loss and not self.vgg_weights:
            raise ValueError(
                "use_vgg_loss needs vgg_weights: the path of VGG19 ImageNet weights (torchvision's "
                "vgg19-dcbb9e9d.pth or a safetensors copy); nothing is downloaded. Or set use_vgg_loss: false"
            )
        return self

    @property
    def semantic_nc(self) -> int:
        """Channels of the semantic input: classes (+ don't care) (+ instance edges)."""
        return self.label_nc + int(self.contain_dontcare_label) + int(self.use_instance)

    @property
    def betas(self) -> tuple[float, float]:
        default = (0.5, 0.999) if self.no_TTUR else (0.0, 0.9)
        return (default[0] if self.beta1 is None else self.beta1, default[1] if self.beta2 is None else self.beta2)

    @property
    def lrs(self) -> tuple[float, float]:
        """(G, D) learning rates: TTUR halves G's and doubles D's."""
        return (self.lr, self.lr) if self.no_TTUR else (self.lr / 2, self.lr * 2)


def label_colormap(n: int) -> torch.Tensor:
    """``n x 3`` uint8 colours per class id (the PASCAL VOC bit-interleaving map pix2pixHD uses)."""
    cmap = torch.zeros(n, 3, dtype=torch.uint8)
    for i in range(n):
        r = g = b = 0
        cid = i
        for j in range(8):
            r |= ((cid >> 0) & 1) << (7 - j)
            g |= ((cid >> 1) & 1) << (7 - j)
            b |= ((cid >> 2) & 1) << (7 - j)
            cid >>= 3
        cmap[i] = torch.tensor([r, g, b], dtype=torch.uint8)
    return cmap


class SPADE(TranslationModel):
    """SPADE generator (+ style encoder), multi-scale discriminator, hinge + feature-matching
    (+ VGG, + KL) losses, TTUR."""

    variant: ClassVar[str] = "spade"
    config_class: ClassVar[type[VariantConfig]] = SPADEConfig
    config: SPADEConfig

    def __init__(self, config: SPADEConfig | None = None, **overrides: Any) -> None:
        if overrides:  # keyword overrides are validated like the config itself (unknown keys are errors)
            config = SPADEConfig(**{**(config or SPADEConfig()).model_dump(), **overrides})
        config = config or SPADEConfig()
        super().__init__(config)
        c = config
        # Frozen VGG19 kept outside the module tree: not in state_dict(), parameters() or the
        # optimizers (the reference does not checkpoint it either); _apply moves it along.
        # Loaded first, so that a missing weights file fails before anything is built.
        self._vgg: list[VGGLoss] = [VGGLoss(load_vgg19(c.vgg_weights))] if c.use_vgg_loss and c.vgg_weights else []
        torch.manual_seed(c.seed)  # the same config gives the same initial weights
        self.netG = SPADEGenerator(
            label_nc=c.label_nc,
            contain_dontcare_label=c.contain_dontcare_label,
            use_instance=c.use_instance,
            output_nc=c.output_nc,
            ngf=c.ngf,
            num_upsampling_layers=c.num_upsampling_layers,
            norm_G=c.norm_G,
            spade_hidden=c.spade_hidden,
            crop_size=c.crop_size,
            aspect_ratio=c.aspect_ratio,
            use_vae=c.use_vae,
            z_dim=c.z_dim,
            norm_E=c.norm_E,
            init_type=c.init_type,
            init_gain=c.init_gain,
        )
        self.netD = MultiscaleDiscriminator(
            c.semantic_nc + c.output_nc,
            c.ndf,
            c.n_layers_D,
            c.num_D,
            c.norm_D,
            get_intermediate_features=c.use_feat_loss,
        )
        init_weights_spectral(self.netD, c.init_type, c.init_gain)
        self.criterion_gan = MultiscaleGANLoss(c.gan_mode)
        self._colormap = label_colormap(c.label_nc + 1)
        self._visuals: dict[str, torch.Tensor] = {}
        self._step = 0

    def _apply(self, fn: Any, recurse: bool = True) -> SPADE:  # .to(), .cuda(), .half() ... reach the VGG too
        super()._apply(fn, recurse)
        for vgg in self._vgg:
            vgg._apply(fn, recurse)
        return self

    # -- the reference's Pix2PixModel helpers -----------------------------------------------
    def _generate(
        self, seg: torch.Tensor, real: torch.Tensor, compute_kld: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        z, kld = None, None
        if self.config.use_vae:
            mu, logvar = self.netG.encode(real)
            z = torch.randn_like(mu) * torch.exp(0.5 * logvar) + mu  # reparameterisation
            if compute_kld:
                kld = kld_loss(mu, logvar) * self.config.lambda_kld
        return self.netG.synthesize(seg, z), kld

    def _discriminate(self, seg: torch.Tensor, fake: torch.Tensor, real: torch.Tensor) -> tuple[Any, Any]:
        """Fake and real in ONE batch through D (the reference: same batch-norm statistics)."""
        fake_and_real = torch.cat([torch.cat([seg, fake.to(seg.dtype)], 1), torch.cat([seg, real.to(seg.dtype)], 1)], 0)
        out = self.netD(fake_and_real)
        n = fake.shape[0]
        return [[t[:n] for t in p] for p in out], [[t[n:] for t in p] for p in out]

    # -- engine interface ------------------------------------------------------------------
    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        lr_g, lr_d = self.config.lrs
        betas = self.config.betas
        return {
            "G": torch.optim.Adam(self.netG.parameters(), lr=lr_g, betas=betas),
            "D": torch.optim.Adam(self.netD.parameters(), lr=lr_d, betas=betas),
        }

    def training_step(
        self, batch: dict[str, Any], optimizers: dict[str, torch.optim.Optimizer], precision: Precision
    ) -> dict[str, float]:
        c = self.config
        label, real = batch["label"], batch["image"]
        instance = batch.get("instance")
        if c.use_instance and (instance is None or instance.numel() == 0):
            raise ValueError(
                "the model uses instance maps (use_instance: true) but the batch has none: set "
                "data.use_instance: true (and provide {split}_inst/ maps) or model.use_instance: false"
            )
        m = self.netG.size_multiple
        if "batch" in c.norm_G and label.shape[0] * (label.shape[-2] // m) * (label.shape[-1] // m) < 2:
            raise ValueError(
                f"norm_G={c.norm_G!r} normalises over the batch, but a batch of {label.shape[0]} at "
                f"{label.shape[-2]}x{label.shape[-1]} px gives a 1x1 latent grid (one value per channel): "
                f"use batch_size >= 2, a crop_size of at least {2 * m}, or norm_G: spectralspadeinstance3x3"
            )
        with torch.no_grad():
            seg = self.netG.semantics(label, instance if c.use_instance else None)
        opt_G, opt_D = optimizers["G"], optimizers["D"]
        out: dict[str, float] = {}
        fake: torch.Tensor | None = None

        if self._step % c.D_steps_per_G == 0:  # generator (and encoder) update; D fixed
            set_requires_grad(self.netD, False)
            opt_G.zero_grad(set_to_none=True)
            with precision.autocast():
                fake, kld = self._generate(seg, real, compute_kld=c.use_vae)
                pred_fake, pred_real = self._discriminate(seg, fake, real)
                losses: dict[str, torch.Tensor] = {}
                if kld is not None:
                    losses["KLD"] = kld
                losses["GAN"] = self.criterion_gan(pred_fake, True, for_discriminator=False)
                if c.use_feat_loss:
                    losses["GAN_Feat"] = feature_matching_loss(pred_fake, pred_real, c.lambda_feat)
                if self._vgg:
                    losses["VGG"] = self._vgg[0](fake.float(), real) * c.lambda_vgg
                loss_G = sum(losses.values())
            precision.backward(loss_G)
            precision.step(opt_G)
            set_requires_grad(self.netD, True)
            out.update(loss_values({**losses, "G": loss_G}))

        # discriminator update, on a fake generated afresh without gradients (as the reference)
        opt_D.zero_grad(set_to_none=True)
        with torch.no_grad(), precision.autocast():
            fake_d, _ = self._generate(seg, real)
        with precision.autocast():
            pred_fake, pred_real = self._discriminate(seg, fake_d.detach(), real)
            loss_D_fake = self.criterion_gan(pred_fake, False, for_discriminator=True)
            loss_D_real = self.criterion_gan(pred_real, True, for_discriminator=True)
            loss_D = loss_D_fake + loss_D_real
        precision.backward(loss_D)
        precision.step(opt_D)
        self._step += 1

        self._visuals = {
            "input_label": self.colorize(label),
            "synthesized_image": (fake if fake is not None else fake_d).detach().float(),
            "real_image": real.detach(),
        }
        out.update(loss_values({"D_Fake": loss_D_fake, "D_real": loss_D_real, "D": loss_D}))
        return out

    def colorize(self, label: torch.Tensor) -> torch.Tensor:
        """Label ids ``Nx1xHxW`` -> colour image in [-1, 1] for sample grids (255 = black)."""
        ids = label.detach().long().cpu()
        if ids.dim() == 4:
            ids = ids[:, 0]
        ids = torch.where(ids == 255, torch.full_like(ids, self.config.label_nc), ids)
        cmap = self._colormap.clone()
        cmap[self.config.label_nc] = 0  # "don't care"
        rgb = cmap[ids.clamp(0, self.config.label_nc)].permute(0, 3, 1, 2).float()
        return (rgb / 127.5 - 1).to(label.device)

    def visuals(self) -> dict[str, torch.Tensor]:
        return self._visuals

    def generators(self) -> dict[str, nn.Module]:
        return {"AtoB": self.netG}

    def extra_state(self) -> dict[str, Any]:
        return {"step": self._step}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self._step = int(state.get("step", 0))

    @torch.no_grad()
    def translate(
        self,
        label: torch.Tensor,
        instance: torch.Tensor | None = None,
        z: torch.Tensor | None = None,
        style: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Label ids ``Nx1xHxW`` (+ instance ids, style image or z) -> images in [-1, 1]."""
        return self.netG(label, instance, z=z, style=style)
