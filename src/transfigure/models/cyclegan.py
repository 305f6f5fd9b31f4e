"""CycleGAN (Zhu, Park, Isola, Efros 2017, "Unpaired Image-to-Image Translation using
Cycle-Consistent Adversarial Networks").

Code names -> paper:

* ``G_A: A -> B`` is the paper's G, ``G_B: B -> A`` is F.
* ``D_A`` judges domain B images (real_B vs G_A(real_A)), the paper's D_Y;
  ``D_B`` judges domain A images, D_X. (The reference implementation's naming.)
* ``loss_G_A = L_GAN(G, D_Y)``, ``loss_G_B = L_GAN(F, D_X)`` (eq. 1, least squares form, sec. 4).
* ``loss_cycle_A = lambda_A * ||F(G(a)) - a||_1``, ``loss_cycle_B = lambda_B * ||G(F(b)) - b||_1`` (eq. 2).
* ``loss_idt_A = lambda_B * lambda_identity * ||G(b) - b||_1`` and symmetrically (sec. 5.2,
  "photo generation from paintings"; the reference scales it by the cycle weight).
* Discriminators are updated on a history of 50 generated images (sec. 4) and
  their loss is halved "to slow down the rate at which D learns relative to G".
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
from torch import nn

from transfigure.models.base import Precision, TranslationModel, VariantConfig, loss_values, set_requires_grad
from transfigure.models.discriminators import build_discriminator
from transfigure.models.generators import NAMED_GENERATORS, ResnetGenerator
from transfigure.models.layers import InitType, NormType, init_weights
from transfigure.models.losses import GANLoss, GANMode, ImagePool


class CycleGANConfig(VariantConfig):
    """CycleGAN hyper-parameters; defaults are the paper's / reference implementation's."""

    input_nc: int = 3
    output_nc: int = 3
    ngf: int = 64
    ndf: int = 64
    netG: Literal["resnet_9blocks", "resnet_6blocks"] = "resnet_9blocks"
    netD: Literal["basic", "n_layers", "pixel"] = "basic"
    n_layers_D: int = 3
    norm: NormType = "instance"
    use_dropout: bool = False
    init_type: InitType = "normal"
    init_gain: float = 0.02
    gan_mode: GANMode = "lsgan"
    lambda_A: float = 10.0
    lambda_B: float = 10.0
    lambda_identity: float = 0.5
    pool_size: int = 50
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    seed: int = 0


class CycleGAN(TranslationModel):
    """Two ResNet generators, two PatchGAN discriminators, adversarial + cycle + identity losses."""

    variant: ClassVar[str] = "cyclegan"
    config_class: ClassVar[type[VariantConfig]] = CycleGANConfig
    config: CycleGANConfig

    def __init__(self, config: CycleGANConfig | None = None, **overrides: Any) -> None:
        if overrides:  # keyword overrides are validated like the config itself (unknown keys are errors)
            config = CycleGANConfig(**{**(config or CycleGANConfig()).model_dump(), **overrides})
        config = config or CycleGANConfig()
        super().__init__(config)
        c = config
        if c.lambda_identity > 0 and c.input_nc != c.output_nc:
            raise ValueError("identity loss needs input_nc == output_nc; set lambda_identity: 0")
        torch.manual_seed(c.seed)  # the same config gives the same initial weights
        gen = NAMED_GENERATORS[c.netG]
        self.G_A = ResnetGenerator(c.input_nc, c.output_nc, c.ngf, gen["n_blocks"], c.norm, c.use_dropout)
        self.G_B = ResnetGenerator(c.output_nc, c.input_nc, c.ngf, gen["n_blocks"], c.norm, c.use_dropout)
        self.D_A = build_discriminator(c.netD, c.output_nc, c.ndf, c.n_layers_D, c.norm)
        self.D_B = build_discriminator(c.netD, c.input_nc, c.ndf, c.n_layers_D, c.norm)
        for net in (self.G_A, self.G_B, self.D_A, self.D_B):
            init_weights(net, c.init_type, c.init_gain)
        self.criterion_gan = GANLoss(c.gan_mode)
        self.criterion_cycle = nn.L1Loss()
        self.criterion_idt = nn.L1Loss()
        self.fake_A_pool = ImagePool(c.pool_size, seed=c.seed + 1)
        self.fake_B_pool = ImagePool(c.pool_size, seed=c.seed + 2)
        self._visuals: dict[str, torch.Tensor] = {}

    # -- engine interface ------------------------------------------------------------
    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        c = self.config
        betas = (c.beta1, c.beta2)
        return {
            "G": torch.optim.Adam([*self.G_A.parameters(), *self.G_B.parameters()], lr=c.lr, betas=betas),
            "D": torch.optim.Adam([*self.D_A.parameters(), *self.D_B.parameters()], lr=c.lr, betas=betas),
        }

    def training_step(
        self, batch: dict[str, Any], optimizers: dict[str, torch.optim.Optimizer], precision: Precision
    ) -> dict[str, float]:
        c = self.config
        real_A, real_B = batch["A"], batch["B"]
        opt_G, opt_D = optimizers["G"], optimizers["D"]

        # Generators G_A and G_B; the discriminators are fixed meanwhile.
        set_requires_grad([self.D_A, self.D_B], False)
        opt_G.zero_grad(set_to_none=True)
        with precision.autocast():
            fake_B = self.G_A(real_A)  # G(a)
            rec_A = self.G_B(fake_B)  # F(G(a))
            fake_A = self.G_B(real_B)  # F(b)
            rec_B = self.G_A(fake_A)  # G(F(b))
            losses: dict[str, torch.Tensor] = {}
            if c.lambda_identity > 0:
                losses["idt_A"] = self.criterion_idt(self.G_A(real_B).float(), real_B) * c.lambda_B * c.lambda_identity
                losses["idt_B"] = self.criterion_idt(self.G_B(real_A).float(), real_A) * c.lambda_A * c.lambda_identity
            losses["G_A"] = self.criterion_gan(self.D_A(fake_B), True)
            losses["G_B"] = self.criterion_gan(self.D_B(fake_A), True)
            losses["cycle_A"] = self.criterion_cycle(rec_A.float(), real_A) * c.lambda_A
            losses["cycle_B"] = self.criterion_cycle(rec_B.float(), real_B) * c.lambda_B
            loss_G = sum(losses.values())
        precision.backward(loss_G)
        precision.step(opt_G)

        # Discriminators, on the image history; loss halved (paper sec. 4).
        set_requires_grad([self.D_A, self.D_B], True)
        opt_D.zero_grad(set_to_none=True)
        pooled_fake_B = self.fake_B_pool.query(fake_B.detach().float())
        pooled_fake_A = self.fake_A_pool.query(fake_A.detach().float())
        with precision.autocast():
            loss_D_A = 0.5 * (
                self.criterion_gan(self.D_A(real_B), True) + self.criterion_gan(self.D_A(pooled_fake_B), False)
            )
            loss_D_B = 0.5 * (
                self.criterion_gan(self.D_B(real_A), True) + self.criterion_gan(self.D_B(pooled_fake_A), False)
            )
        precision.backward(loss_D_A + loss_D_B)
        precision.step(opt_D)

        self._visuals = {
            "real_A": real_A.detach(),
            "fake_B": fake_B.detach().float(),
            "rec_A": rec_A.detach().float(),
            "real_B": real_B.detach(),
            "fake_A": fake_A.detach().float(),
            "rec_B": rec_B.detach().float(),
        }
        return loss_values({**losses, "G": loss_G, "D_A": loss_D_A, "D_B": loss_D_B})

    def visuals(self) -> dict[str, torch.Tensor]:
        return self._visuals

    def generators(self) -> dict[str, nn.Module]:
        return {"AtoB": self.G_A, "BtoA": self.G_B}

    def extra_state(self) -> dict[str, Any]:
        return {"fake_A_pool": self.fake_A_pool.state_dict(), "fake_B_pool": self.fake_B_pool.state_dict()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        device = next(self.parameters()).device
        self.fake_A_pool.load_state_dict(state["fake_A_pool"], device)
        self.fake_B_pool.load_state_dict(state["fake_B_pool"], device)

    @torch.no_grad()
    def translate(self, x: torch.Tensor, direction: str = "AtoB") -> torch.Tensor:
        """Map a batch in [-1, 1] from one domain to the other (sides multiples of 4)."""
        gens = self.generators()
        if direction not in gens:
            raise ValueError(f"unknown direction {direction!r}: use one of {sorted(gens)}")
        return gens[direction](x)
