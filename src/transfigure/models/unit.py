"""UNIT (Liu, Breuel, Kautz 2017, "Unsupervised Image-to-Image Translation Networks").

Follows the reference implementation mingyuliutw/UNIT, PyTorch version (``networks.py``:
``VAEGen``, ``ContentEncoder``, ``Decoder``, ``MsImageDis``, ``Conv2dBlock``, ``ResBlock``,
``LayerNorm``; ``trainer.py``: ``UNIT_Trainer``; ``configs/unit_*.yaml``), with the paper's
explicit weight sharing between the two domains restored (below). The networks are in the role
modules (``generators``: ``UNITEncoder``, ``UNITDecoder``, ``UNITGenerator``; ``discriminators``:
``MsImageDiscriminator``; ``layers``: ``Conv2dBlock``, ``ResBlock``, ``LayerNorm2d``; ``losses``:
``unit_kl_loss``); this module holds the config and the training step.

Code names -> paper (sec. 2-3, fig. 2):

* ``enc_A`` + ``enc_shared`` is the paper's encoder E1 (domain A = X1), ``enc_B`` + ``enc_shared``
  is E2. ``dec_shared`` + ``dec_A`` is the generator G1, ``dec_shared`` + ``dec_B`` is G2.
  ``dis_A`` is D1 (judges domain A images: ``real_A`` vs ``fake_A = G1(E2(b))``), ``dis_B`` is D2.
  (The reference's ``dis_a``/``dis_b`` naming; note CycleGAN's ``D_A`` judges domain B.)
* Shared latent space (the shared-latent assumption, sec. 2): ``mu = E(x)`` and, while
  training, ``z = mu + N(0, I)`` (the reference's "reduced VAE": a Gaussian with unit variance,
  ``VAEGen.encode`` returns ``hiddens, noise``). Inference uses ``z = mu`` (deterministic).
* **What is shared.** The last ``n_shared`` residual blocks of the two encoders are ONE module
  (``enc_shared``) and the first ``n_shared`` residual blocks of the two decoders are ONE
  module (``dec_shared``): the same ``nn.Parameter`` objects, updated by the losses of both
  domains. This is the paper's weight-sharing constraint ("we share the weights of the last
  few layers of E1 and E2 ... and the first few layers of G1 and G2"; the paper's networks and
  the reference's first PyTorch version, ``COCOResGen2`` with ``n_enc_shared_blk: 1``,
  ``n_gen_shared_blk: 1``, share one residual block on each side). The reference's later
  PyTorch version (``VAEGen`` x 2) shares no weights at all and ties the domains only through
  the common latent space, cross-domain decoding, the KL prior and the cycle loss:
  ``n_shared: 0`` gives exactly that network. Everything else (front convolutions,
  down/up-sampling, the output layer, the discriminators) is private to a domain.
* Losses, with the reference config's weights (``configs/unit_*.yaml``; the paper's
  lambda_0..4 = 10, 0.1, 100, 0.1, 100 are these times 10, the same ratios):

  - ``recon_x_A = recon_x_w * ||G1(z_a) - a||_1``: the VAE likelihood term of eq. 2
    (Laplacian -> L1); ``kl_A = recon_kl_w * mean(mu_a^2)``: its KL term
    (KL(N(mu, I) || N(0, I)) = sum(mu^2)/2 + const; the reference uses the mean). Same for B.
  - ``adv_A = gan_w * L_GAN(D1(G1(z_b)))`` (eq. 4, least squares as the reference's
    ``gan_type: lsgan``), summed over the discriminator's scales. Same for B.
  - ``cyc_x_A = recon_x_cyc_w * ||G1(E2(G2(z_a))) - a||_1`` and
    ``kl_cyc_A = recon_kl_cyc_w * mean(E2(G2(z_a))^2)``: the cycle-consistency terms of eq. 6
    (the KL of E1(a) itself is counted once, in ``kl_A``, as in the reference). Same for B.
  - ``D_A = gan_w * sum_scales [mean(D1(fake_A)^2) + mean((D1(a) - 1)^2)]`` (no 1/2 factor).

* One training step is the reference's ``dis_update`` then ``gen_update`` (``train.py``
  order), each with its own noise draw. Adam(lr 1e-4, betas (0.5, 0.999), weight decay 1e-4)
  for both; generators kaiming-initialised, discriminators N(0, 0.02) (``weights_init``).

Not implemented: the reference's optional VGG perceptual loss (``vgg_w``, 0 in every UNIT
config; it downloads weights) and its list-file data loaders.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from pydantic import Field, model_validator
from torch import nn

from transfigure.models.base import Precision, TranslationModel, VariantConfig, loss_values, set_requires_grad
from transfigure.models.discriminators import MsImageDiscriminator
from transfigure.models.generators import UNITDecoder, UNITEncoder, UNITGenerator, check_unit_blocks
from transfigure.models.layers import ActivationType, ConvNormType, InitType, PaddingType, init_weights, res_blocks
from transfigure.models.losses import GANLoss, GANMode, unit_kl_loss


class UNITConfig(VariantConfig):
    """UNIT hyper-parameters; defaults are the reference config's (``configs/unit_*.yaml``).

    Domain A images have ``input_nc`` channels (reference ``input_dim_a``), domain B ``output_nc``
    (``input_dim_b``). ``dim``/``n_downsample``/``n_res``/``activ``/``pad_type`` are the reference's
    ``gen:`` block, ``dis_*`` its ``dis:`` block. ``n_shared`` (not in the reference's later
    version) is how many of the ``n_res`` residual blocks are shared between the domains at the
    end of the encoders and at the start of the decoders; 0 = no shared weights.
    """

    input_nc: int = Field(3, ge=1)
    output_nc: int = Field(3, ge=1)
    dim: int = Field(64, ge=1)
    n_downsample: int = Field(2, ge=0)
    n_res: int = Field(4, ge=0)
    n_shared: int = Field(1, ge=0)
    activ: ActivationType = "relu"
    pad_type: PaddingType = "reflect"
    dis_dim: int = Field(64, ge=1)
    dis_n_layer: int = Field(4, ge=1)
    dis_num_scales: int = Field(3, ge=1)
    dis_norm: ConvNormType = "none"
    dis_activ: ActivationType = "lrelu"
    dis_pad_type: PaddingType = "reflect"
    gan_mode: GANMode = "lsgan"  # the reference's gan_type: lsgan | nsgan (= vanilla)
    gan_w: float = Field(1.0, ge=0)
    recon_x_w: float = Field(10.0, ge=0)
    recon_kl_w: float = Field(0.01, ge=0)
    recon_x_cyc_w: float = Field(10.0, ge=0)
    recon_kl_cyc_w: float = Field(0.01, ge=0)
    lr: float = Field(1e-4, gt=0)
    beta1: float = 0.5
    beta2: float = 0.999
    weight_decay: float = Field(1e-4, ge=0)
    init_type: InitType = "kaiming"  # generators; discriminators are always N(0, 0.02) as in the reference
    init_gain: float = 0.02
    seed: int = 0

    @model_validator(mode="after")
    def _check(self) -> UNITConfig:
        check_unit_blocks(self.n_downsample, self.n_res, self.n_shared)
        return self


class UNIT(TranslationModel):
    """Two VAE-GANs whose encoders end and decoders start in shared weights; a shared latent space."""

    variant: ClassVar[str] = "unit"
    config_class: ClassVar[type[VariantConfig]] = UNITConfig
    config: UNITConfig

    def __init__(self, config: UNITConfig | None = None, **overrides: Any) -> None:
        if overrides:  # keyword overrides are validated like the config itself (unknown keys are errors)
            config = UNITConfig(**{**(config or UNITConfig()).model_dump(), **overrides})
        config = config or UNITConfig()
        super().__init__(config)
        c = config
        torch.manual_seed(c.seed)  # the same config gives the same initial weights
        latent = c.dim * 2**c.n_downsample
        private = c.n_res - c.n_shared
        self.enc_A = UNITEncoder(c.input_nc, c.dim, c.n_downsample, private, c.activ, c.pad_type)
        self.enc_B = UNITEncoder(c.output_nc, c.dim, c.n_downsample, private, c.activ, c.pad_type)
        self.enc_shared = res_blocks(c.n_shared, latent, c.activ, c.pad_type)
        self.dec_shared = res_blocks(c.n_shared, latent, c.activ, c.pad_type)
        self.dec_A = UNITDecoder(latent, c.input_nc, c.n_downsample, private, c.activ, c.pad_type)
        self.dec_B = UNITDecoder(latent, c.output_nc, c.n_downsample, private, c.activ, c.pad_type)
        dis = {
            "dim": c.dis_dim,
            "n_layer": c.dis_n_layer,
            "num_scales": c.dis_num_scales,
            "norm": c.dis_norm,
            "activ": c.dis_activ,
            "pad_type": c.dis_pad_type,
        }
        self.dis_A = MsImageDiscriminator(c.input_nc, **dis)
        self.dis_B = MsImageDiscriminator(c.output_nc, **dis)
        for net in self.generator_modules():
            init_weights(net, c.init_type, c.init_gain)
        for net in (self.dis_A, self.dis_B):
            init_weights(net, "normal", 0.02)
        self.criterion_gan = GANLoss(c.gan_mode)
        # The exported directions are views on the modules above (a plain dict: not registered
        # as sub-modules, so the checkpoint holds every weight once).
        common = {
            "dim": c.dim,
            "n_downsample": c.n_downsample,
            "n_res": c.n_res,
            "n_shared": c.n_shared,
            "activ": c.activ,
            "pad_type": c.pad_type,
        }
        self._directions: dict[str, UNITGenerator] = {
            "AtoB": UNITGenerator.from_parts(
                {"input_nc": c.input_nc, "output_nc": c.output_nc, **common},
                self.enc_A,
                self.enc_shared,
                self.dec_shared,
                self.dec_B,
            ),
            "BtoA": UNITGenerator.from_parts(
                {"input_nc": c.output_nc, "output_nc": c.input_nc, **common},
                self.enc_B,
                self.enc_shared,
                self.dec_shared,
                self.dec_A,
            ),
        }
        self._visuals: dict[str, torch.Tensor] = {}

    def generator_modules(self) -> list[nn.Module]:
        """Every generator module once (the shared ones are not repeated)."""
        return [self.enc_A, self.enc_B, self.enc_shared, self.dec_shared, self.dec_A, self.dec_B]

    # -- E1/E2, G1/G2 --------------------------------------------------------------------
    def encode(self, x: torch.Tensor, domain: str) -> torch.Tensor:
        """Latent mean ``mu`` of an image of ``domain`` ("A" or "B")."""
        enc = self.enc_A if domain == "A" else self.enc_B
        return self.enc_shared(enc(x))

    def decode(self, z: torch.Tensor, domain: str) -> torch.Tensor:
        """Image of ``domain`` ("A" or "B") for latent ``z``."""
        dec = self.dec_A if domain == "A" else self.dec_B
        return dec(self.dec_shared(z))

    def _adversarial(self, dis: MsImageDiscriminator, x: torch.Tensor, real: bool) -> torch.Tensor:
        return sum((self.criterion_gan(out, real) for out in dis(x)), torch.zeros((), device=x.device))

    @staticmethod
    def _l1(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (x.float() - target.float()).abs().mean()

    # -- engine interface ------------------------------------------------------------------
    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        c = self.config
        kw = {"lr": c.lr, "betas": (c.beta1, c.beta2), "weight_decay": c.weight_decay}
        gen_params = [p for net in self.generator_modules() for p in net.parameters()]
        return {
            "G": torch.optim.Adam(gen_params, **kw),
            "D": torch.optim.Adam([*self.dis_A.parameters(), *self.dis_B.parameters()], **kw),
        }

    def training_step(
        self, batch: dict[str, Any], optimizers: dict[str, torch.optim.Optimizer], precision: Precision
    ) -> dict[str, float]:
        c = self.config
        real_A, real_B = batch["A"], batch["B"]
        opt_G, opt_D = optimizers["G"], optimizers["D"]

        # Discriminators first (reference dis_update): cross-domain fakes from sampled latents.
        set_requires_grad([self.dis_A, self.dis_B], True)
        opt_D.zero_grad(set_to_none=True)
        with torch.no_grad(), precision.autocast():
            mu_a, mu_b = self.encode(real_A, "A"), self.encode(real_B, "B")
            fake_A = self.decode(mu_b + torch.randn_like(mu_b), "A").float()
            fake_B = self.decode(mu_a + torch.randn_like(mu_a), "B").float()
        with precision.autocast():
            loss_D_A = c.gan_w * (
                self._adversarial(self.dis_A, fake_A, False) + self._adversarial(self.dis_A, real_A, True)
            )
            loss_D_B = c.gan_w * (
                self._adversarial(self.dis_B, fake_B, False) + self._adversarial(self.dis_B, real_B, True)
            )
        precision.backward(loss_D_A + loss_D_B)
        precision.step(opt_D)

        # Encoders and decoders (reference gen_update); the discriminators are fixed meanwhile.
        set_requires_grad([self.dis_A, self.dis_B], False)
        opt_G.zero_grad(set_to_none=True)
        with precision.autocast():
            mu_a, mu_b = self.encode(real_A, "A"), self.encode(real_B, "B")
            z_a, z_b = mu_a + torch.randn_like(mu_a), mu_b + torch.randn_like(mu_b)
            s_a, s_b = self.dec_shared(z_a), self.dec_shared(z_b)  # the shared decoder blocks, once per latent
            rec_x_A, fake_B = self.dec_A(s_a), self.dec_B(s_a)  # within-domain G1(z_a), cross-domain G2(z_a)
            rec_x_B, fake_A = self.dec_B(s_b), self.dec_A(s_b)
            mu_ab, mu_ba = self.encode(fake_B, "B"), self.encode(fake_A, "A")  # E2(G2(z_a)), E1(G1(z_b))
            rec_A = self.decode(mu_ab + torch.randn_like(mu_ab), "A")  # A -> B -> A
            rec_B = self.decode(mu_ba + torch.randn_like(mu_ba), "B")  # B -> A -> B
            losses: dict[str, torch.Tensor] = {
                "adv_A": c.gan_w * self._adversarial(self.dis_A, fake_A, True),
                "adv_B": c.gan_w * self._adversarial(self.dis_B, fake_B, True),
                "recon_x_A": c.recon_x_w * self._l1(rec_x_A, real_A),
                "recon_x_B": c.recon_x_w * self._l1(rec_x_B, real_B),
                "kl_A": c.recon_kl_w * unit_kl_loss(mu_a),
                "kl_B": c.recon_kl_w * unit_kl_loss(mu_b),
                "cyc_x_A": c.recon_x_cyc_w * self._l1(rec_A, real_A),
                "cyc_x_B": c.recon_x_cyc_w * self._l1(rec_B, real_B),
                "kl_cyc_A": c.recon_kl_cyc_w * unit_kl_loss(mu_ab),
                "kl_cyc_B": c.recon_kl_cyc_w * unit_kl_loss(mu_ba),
            }
            loss_G = sum(losses.values())
        precision.backward(loss_G)
        precision.step(opt_G)
        set_requires_grad([self.dis_A, self.dis_B], True)

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
        return dict(self._directions)

    @torch.no_grad()
    def translate(self, x: torch.Tensor, direction: str = "AtoB") -> torch.Tensor:
        """Map a batch in [-1, 1] to the other domain through the latent mean (deterministic)."""
        if direction not in self._directions:
            raise ValueError(f"unknown direction {direction!r}: use one of {sorted(self._directions)}")
        return self._directions[direction](x)
