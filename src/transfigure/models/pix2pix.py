"""Pix2Pix (Isola, Zhu, Zhou, Efros 2017, "Image-to-Image Translation with Conditional
Adversarial Networks").

Code names -> paper:

* ``G: A -> B`` is the paper's generator G (a U-Net, sec. 3.2.1; ``x`` = ``real_A``,
  ``y`` = ``real_B``). The paper's noise ``z`` is only the dropout in G's decoder, kept
  on during training (sec. 3.2).
* ``D`` is the conditional PatchGAN discriminator (sec. 3.2.2): it sees the input and an
  output *together*, ``cat([x, y])`` (``input_nc + output_nc`` channels), and classifies
  each 70x70 patch as real or fake.
* ``loss_G_GAN = L_cGAN(G, D)`` of eq. 1 in the non-saturating form (G maximises
  ``log D(x, G(x))``; ``gan_mode: vanilla`` = cross-entropy on logits, the paper's).
* ``loss_G_L1 = lambda_L1 * ||y - G(x)||_1`` (eq. 3, ``lambda = 100``, sec. 4).
* ``loss_G = loss_G_GAN + loss_G_L1``, the objective ``G*`` of eq. 4.
* ``loss_D = 0.5 * (loss_D_real + loss_D_fake)``: the paper divides D's objective by 2
  "which slows down the rate at which D learns relative to G" (sec. 3.3).
* Optimisation as in sec. 3.3 and the reference ``Pix2PixModel.optimize_parameters``:
  one D step, then one G step (D fixed) per batch; Adam ``lr=2e-4, betas=(0.5, 0.999)``,
  batch size 1, 100 epochs at the initial LR then 100 of linear decay.

Direction: the dataset swaps the halves for ``direction: BtoA``, so the model always maps
its batch's ``A`` to ``B``; the exported generator is named ``"AtoB"``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
from pydantic import model_validator
from torch import nn

from transfigure.models.base import Precision, TranslationModel, VariantConfig, loss_values, set_requires_grad
from transfigure.models.discriminators import build_discriminator
from transfigure.models.generators import NAMED_GENERATORS, build_generator
from transfigure.models.layers import InitType, NormType, init_weights
from transfigure.models.losses import GANLoss, GANMode

Pix2PixGenerator = Literal["unet_256", "unet_128", "unet", "resnet_9blocks", "resnet_6blocks"]


class Pix2PixConfig(VariantConfig):
    """Pix2Pix hyper-parameters; defaults are the paper's / reference implementation's.

    ``netG``: ``unet_256`` (paper, 256 px: 8 downsamplings to 1x1), ``unet_128`` (7), or
    ``unet`` with an explicit ``num_downs`` (e.g. 6 for 64 px crops); the reference's
    ``resnet_9blocks``/``resnet_6blocks`` are accepted too. Inputs must have sides that are
    multiples of ``2**num_downs`` during training (inference pads).
    """

    input_nc: int = 3
    output_nc: int = 3
    ngf: int = 64
    ndf: int = 64
    netG: Pix2PixGenerator = "unet_256"
    num_downs: int | None = None
    netD: Literal["basic", "n_layers", "pixel"] = "basic"
    n_layers_D: int = 3
    norm: NormType = "batch"
    use_dropout: bool = True
    init_type: InitType = "normal"
    init_gain: float = 0.02
    gan_mode: GANMode = "vanilla"
    lambda_L1: float = 100.0
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    seed: int = 0

    @model_validator(mode="after")
    def _generator_depth(self) -> Pix2PixConfig:
        if self.netG == "unet":
            if self.num_downs is None:
                raise ValueError("netG 'unet' needs num_downs (e.g. 6 for 64 px, 8 = unet_256, 7 = unet_128)")
            if self.num_downs < 5:
                raise ValueError(f"num_downs must be >= 5, got {self.num_downs}")
        elif self.num_downs is not None:
            fixed = NAMED_GENERATORS[self.netG].get("num_downs")
            if fixed != self.num_downs:
                what = f"has num_downs {fixed}" if fixed is not None else "has no num_downs"
                raise ValueError(
                    f"netG {self.netG!r} {what} but num_downs is {self.num_downs}: set num_downs to null, "
                    "or use netG 'unet' to choose the depth"
                )
        return self

    def generator_config(self) -> dict[str, Any]:
        """The generator's constructor config (``build_generator`` input)."""
        if self.netG == "unet":
            spec: dict[str, Any] = {"type": "unet", "num_downs": self.num_downs}
        else:
            spec = dict(NAMED_GENERATORS[self.netG])
        spec.update(
            input_nc=self.input_nc, output_nc=self.output_nc, ngf=self.ngf, norm=self.norm, use_dropout=self.use_dropout
        )
        return spec


class Pix2Pix(TranslationModel):
    """A U-Net generator and a conditional PatchGAN discriminator; adversarial + L1 losses."""

    variant: ClassVar[str] = "pix2pix"
    # bf16 step @128 px on a 2-core AVX512-BF16/AMX CPU: 1.21 s contiguous vs 0.86 s NHWC (1.42x,
    # alternating, shared machine). CycleGAN 0.92x, SPADE 1.01x, UNIT 1.12x (within noise): off there.
    channels_last_cpu: ClassVar[tuple[str, ...]] = ("bf16",)
    config_class: ClassVar[type[VariantConfig]] = Pix2PixConfig
    config: Pix2PixConfig

    def __init__(self, config: Pix2PixConfig | None = None, **overrides: Any) -> None:
        if overrides:  # keyword overrides are validated like the config itself (unknown keys are errors)
            config = Pix2PixConfig(**{**(config or Pix2PixConfig()).model_dump(), **overrides})
        config = config or Pix2PixConfig()
        super().__init__(config)
        c = config
        torch.manual_seed(c.seed)  # the same config gives the same initial weights
        self.G = build_generator(c.generator_config())
        # conditional D: judges (input, output) pairs
        self.D = build_discriminator(c.netD, c.input_nc + c.output_nc, c.ndf, c.n_layers_D, c.norm)
        for net in (self.G, self.D):
            init_weights(net, c.init_type, c.init_gain)
        self.criterion_gan = GANLoss(c.gan_mode)
        self.criterion_L1 = nn.L1Loss()
        self._visuals: dict[str, torch.Tensor] = {}

    # -- engine interface ------------------------------------------------------------
    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        c = self.config
        betas = (c.beta1, c.beta2)
        return {
            "G": torch.optim.Adam(self.G.parameters(), lr=c.lr, betas=betas),
            "D": torch.optim.Adam(self.D.parameters(), lr=c.lr, betas=betas),
        }

    def training_step(
        self, batch: dict[str, Any], optimizers: dict[str, torch.optim.Optimizer], precision: Precision
    ) -> dict[str, float]:
        c = self.config
        real_A, real_B = batch["A"], batch["B"]
        if real_A.shape[1] != c.input_nc or real_B.shape[1] != c.output_nc:
            raise ValueError(
                f"batch has A with {real_A.shape[1]} and B with {real_B.shape[1]} channels; the model expects "
                f"input_nc={c.input_nc}, output_nc={c.output_nc}"
            )
        opt_G, opt_D = optimizers["G"], optimizers["D"]
        with precision.autocast():
            fake_B = self.G(real_A)  # G(x)

        # Discriminator: real pairs (x, y) -> 1, fake pairs (x, G(x)) -> 0; loss halved (sec. 3.3).
        set_requires_grad(self.D, True)
        opt_D.zero_grad(set_to_none=True)
        with precision.autocast():
            loss_D_fake = self.criterion_gan(self.D(torch.cat([real_A, fake_B.detach()], 1)), False)
            loss_D_real = self.criterion_gan(self.D(torch.cat([real_A, real_B], 1)), True)
            loss_D = 0.5 * (loss_D_fake + loss_D_real)
        precision.backward(loss_D)
        precision.step(opt_D)

        # Generator: fool the (updated, now fixed) D, and stay close to y in L1 (eq. 4).
        set_requires_grad(self.D, False)
        opt_G.zero_grad(set_to_none=True)
        with precision.autocast():
            loss_G_GAN = self.criterion_gan(self.D(torch.cat([real_A, fake_B], 1)), True)
            loss_G_L1 = self.criterion_L1(fake_B.float(), real_B.float()) * c.lambda_L1
            loss_G = loss_G_GAN + loss_G_L1
        precision.backward(loss_G)
        precision.step(opt_G)
        set_requires_grad(self.D, True)

        self._visuals = {
            "real_A": real_A.detach(),
            "fake_B": fake_B.detach().float(),
            "real_B": real_B.detach(),
        }
        return loss_values(
            {
                "G_GAN": loss_G_GAN,
                "G_L1": loss_G_L1,
                "G": loss_G,
                "D_real": loss_D_real,
                "D_fake": loss_D_fake,
                "D": loss_D,
            }
        )

    def visuals(self) -> dict[str, torch.Tensor]:
        return self._visuals

    def generators(self) -> dict[str, nn.Module]:
        # the dataset already applied direction (AtoB/BtoA): G always maps the batch's A to its B
        return {"AtoB": self.G}

    @torch.no_grad()
    def translate(self, x: torch.Tensor, direction: str = "AtoB") -> torch.Tensor:
        """Map a batch in [-1, 1] from A to B (sides multiples of ``G.size_multiple``)."""
        gens = self.generators()
        if direction not in gens:
            raise ValueError(f"unknown direction {direction!r}: pix2pix learns one mapping, use one of {sorted(gens)}")
        return gens[direction](x)
