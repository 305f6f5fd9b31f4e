"""Pix2Pix: U-Net and conditional PatchGAN against the reference numbers, real optimisation steps."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image
from pydantic import ValidationError
from torch import nn

from transfigure.inference import Translator
from transfigure.models import (
    VARIANTS,
    Pix2Pix,
    Pix2PixConfig,
    Precision,
    ResnetGenerator,
    UnetGenerator,
    build_discriminator,
    build_generator,
)
from transfigure.models.generators import NAMED_GENERATORS, UnetSkipConnectionBlock
from transfigure.models.io import load_generators, save_generators
from transfigure.models.layers import count_parameters


def unet_params_by_hand(num_downs: int, ngf: int = 64, nc: int = 3) -> int:
    """The reference construction, level by level, batch norm (convs without bias, BN weight+bias)."""
    k = 16  # 4x4 kernels
    outermost = nc * ngf * k + (2 * ngf * nc * k + nc)  # Conv(3->64), ConvT(128->3) with bias

    def level(outer: int, inner: int) -> int:  # Conv, BN(inner), ConvT(2*inner->outer), BN(outer)
        return outer * inner * k + 2 * inner + 2 * inner * outer * k + 2 * outer

    innermost = 8 * ngf * 8 * ngf * k + 8 * ngf * 8 * ngf * k + 2 * 8 * ngf  # Conv, ConvT, BN(outer)
    return (
        outermost
        + level(ngf, 2 * ngf)
        + level(2 * ngf, 4 * ngf)
        + level(4 * ngf, 8 * ngf)
        + (num_downs - 5) * level(8 * ngf, 8 * ngf)
        + innermost
    )


# -- architecture -------------------------------------------------------------------------


def test_unet_256_parameter_count_matches_reference():
    # reference: networks.define_G(3, 3, 64, 'unet_256', 'batch', use_dropout=True) -> 54.414 M
    assert unet_params_by_hand(8) == 54_413_955
    assert count_parameters(UnetGenerator(3, 3, num_downs=8, ngf=64, norm="batch", use_dropout=True)) == 54_413_955


def test_unet_128_parameter_count():
    assert unet_params_by_hand(7) == 41_828_995
    assert count_parameters(UnetGenerator(3, 3, num_downs=7, ngf=64, norm="batch")) == 41_828_995


def test_unet_instance_norm_has_conv_biases_instead_of_norm_parameters():
    # instance norm: no affine parameters but every conv gets a bias; net -4,352 vs batch
    assert count_parameters(UnetGenerator(3, 3, num_downs=8, ngf=64, norm="instance")) == 54_409_603


def test_conditional_patchgan_on_six_channels_parameter_count():
    # reference pix2pix: define_D(3 + 3, 64, 'basic', norm='batch') -> 2.769 M
    d = build_discriminator("basic", 6, 64, norm="batch")
    assert count_parameters(d) == 2_768_705
    assert d.model[0].in_channels == 6


def test_default_config_is_the_paper_setup():
    model = Pix2Pix()
    c = model.config
    assert (c.netG, c.norm, c.use_dropout, c.gan_mode, c.lambda_L1, c.lr, c.beta1) == (
        "unet_256",
        "batch",
        True,
        "vanilla",
        100.0,
        2e-4,
        0.5,
    )
    assert isinstance(model.G, UnetGenerator) and model.G.size_multiple == 256
    assert count_parameters(model.G) == 54_413_955 and count_parameters(model.D) == 2_768_705
    assert VARIANTS["pix2pix"] is Pix2Pix
    assert model.generators() == {"AtoB": model.G}


def test_unet_256_layer_structure_follows_the_reference():
    g = UnetGenerator(3, 3, num_downs=8, ngf=8, norm="batch", use_dropout=True)
    mods = list(g.modules())
    dropouts = [m for m in mods if isinstance(m, nn.Dropout)]
    assert len(dropouts) == 3 and all(m.p == 0.5 for m in dropouts)  # CD512 x3 next to the bottleneck
    assert sum(isinstance(m, nn.LeakyReLU) and m.negative_slope == 0.2 for m in mods) == 7  # every down but the first
    assert sum(isinstance(m, nn.ReLU) for m in mods) == 8  # every up
    assert (
        sum(isinstance(m, nn.Conv2d) for m in mods) == 8 and sum(isinstance(m, nn.ConvTranspose2d) for m in mods) == 8
    )
    assert (
        sum(isinstance(m, nn.BatchNorm2d) for m in mods) == 2 * 6 + 1
    )  # none on the first down, the bottleneck or the output
    assert isinstance(g.model.model[-1], nn.Tanh)
    assert not any(isinstance(m, nn.Dropout) for m in UnetGenerator(3, 3, 8, 8, use_dropout=False).modules())
    # reference state-dict layout (loads the reference's latest_net_G.pth key for key)
    keys = list(g.state_dict())
    assert keys[0] == "model.model.0.weight" and "model.model.3.bias" in keys
    assert "model.model.1.model.3.model.3.model.3.model.3.model.3.model.3.model.1.weight" in keys  # innermost conv


def test_skip_connection_block_concatenates_input():
    inner = UnetSkipConnectionBlock(8, 8, innermost=True)
    y = inner(torch.randn(2, 8, 4, 4))
    assert y.shape == (2, 16, 4, 4)  # x and up(down(x)) along channels


@pytest.mark.parametrize("h,w", [(32, 32), (64, 96), (32, 160), (96, 64)])
def test_unet_output_shapes_and_range(h, w):
    g = UnetGenerator(3, 2, num_downs=5, ngf=4).eval()
    assert g.size_multiple == 32
    with torch.no_grad():
        y = g(torch.randn(1, 3, h, w))
    assert y.shape == (1, 2, h, w)
    assert y.abs().max() <= 1.0


def test_unet_rejects_sizes_that_are_not_multiples_clearly():
    g = UnetGenerator(3, 3, num_downs=6, ngf=4)
    with pytest.raises(ValueError, match=r"multiples of 64, got 64x100.*crop_size"):
        g(torch.randn(1, 3, 64, 100))
    with pytest.raises(ValueError, match="num_downs must be >= 5"):
        UnetGenerator(num_downs=4)


def test_unet_rebuilds_from_config_and_named_generators():
    g = UnetGenerator(1, 3, num_downs=6, ngf=4, norm="instance", use_dropout=True)
    g2 = build_generator(g.config)
    assert (
        g2.config
        == g.config
        == {
            "type": "unet",
            "input_nc": 1,
            "output_nc": 3,
            "num_downs": 6,
            "ngf": 4,
            "norm": "instance",
            "use_dropout": True,
        }
    )
    assert [p.shape for p in g.parameters()] == [p.shape for p in g2.parameters()]
    assert NAMED_GENERATORS["unet_256"] == {"type": "unet", "num_downs": 8}
    assert NAMED_GENERATORS["unet_128"] == {"type": "unet", "num_downs": 7}


# -- config ---------------------------------------------------------------------------------


def test_config_validation():
    assert Pix2PixConfig(netG="unet", num_downs=6).generator_config()["num_downs"] == 6
    assert Pix2PixConfig(netG="unet_128").generator_config()["num_downs"] == 7
    assert Pix2PixConfig(netG="unet_128", num_downs=7).generator_config()["num_downs"] == 7
    with pytest.raises(ValidationError, match="needs num_downs"):
        Pix2PixConfig(netG="unet")
    with pytest.raises(ValidationError, match="'unet_256' has num_downs 8 but num_downs is 6"):
        Pix2PixConfig(netG="unet_256", num_downs=6)
    resnet = Pix2Pix(netG="resnet_6blocks", ngf=8, ndf=8).G  # the reference also allows ResNet generators
    assert isinstance(resnet, ResnetGenerator) and resnet.config["n_blocks"] == 6 and resnet.config["norm"] == "batch"


# -- training ---------------------------------------------------------------------------------


def tiny(**kw) -> Pix2Pix:
    return Pix2Pix(**{"netG": "unet", "num_downs": 5, "ngf": 8, "ndf": 8, **kw})


def batch(seed: int = 0, size: int = 32, nc_a: int = 3) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {
        "A": torch.rand(2, nc_a, size, size, generator=g) * 2 - 1,
        "B": torch.rand(2, 3, size, size, generator=g) * 2 - 1,
    }


def test_training_step_gives_finite_losses_and_changes_both_networks():
    model = tiny()
    opts = model.configure_optimizers()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    losses = model.training_step(batch(), opts, Precision("fp32"))
    assert set(losses) == {"G_GAN", "G_L1", "G", "D_real", "D_fake", "D"}
    assert all(math.isfinite(v) for v in losses.values())
    assert losses["G"] == pytest.approx(losses["G_GAN"] + losses["G_L1"], rel=1e-6)
    assert losses["D"] == pytest.approx(0.5 * (losses["D_real"] + losses["D_fake"]), rel=1e-6)
    # random outputs vs random targets in [-1, 1]: mean |a - b| is about 2/3 (x lambda 100) before training
    assert 30 < losses["G_L1"] < 110
    after = model.state_dict()
    for prefix in ("G.", "D."):
        changed = [
            k for k in before if k.startswith(prefix) and k.endswith("weight") and not torch.equal(before[k], after[k])
        ]
        assert changed, f"{prefix} weights did not change"
    assert all(p.requires_grad for p in model.D.parameters())  # D unfrozen again after the G update
    vis = model.visuals()
    assert list(vis) == ["real_A", "fake_B", "real_B"] and vis["fake_B"].shape == (2, 3, 32, 32)


@pytest.mark.slow
def test_l1_loss_decreases_on_a_fixed_pair():
    model = tiny(use_dropout=False, lr=1e-3)  # a higher LR than the paper's so that 30 steps tell
    opts = model.configure_optimizers()
    ramp = torch.linspace(-1, 1, 32)
    x, y = ramp.view(1, -1).expand(32, 32), ramp.view(-1, 1).expand(32, 32)
    b = {"A": torch.stack([x, y, -x]).unsqueeze(0), "B": torch.stack([y, -x, x * y]).unsqueeze(0)}
    first = model.training_step(b, opts, Precision("fp32"))
    for _ in range(30):
        last = model.training_step(b, opts, Precision("fp32"))
    assert last["G_L1"] < 0.5 * first["G_L1"]


def test_discriminator_is_conditional_on_the_input():
    model = tiny(input_nc=1, output_nc=3)
    assert model.D.model[0].in_channels == 4  # cat(A with 1 channel, B with 3)
    losses = model.training_step(batch(nc_a=1), model.configure_optimizers(), Precision("fp32"))
    assert all(math.isfinite(v) for v in losses.values())
    with pytest.raises(ValueError, match="A with 3 and B with 3 channels.*input_nc=1"):
        model.training_step(batch(), model.configure_optimizers(), Precision("fp32"))


@pytest.mark.parametrize("gan_mode,netD", [("lsgan", "pixel"), ("vanilla", "n_layers")])
def test_other_objectives_and_discriminators_train(gan_mode, netD):
    model = tiny(gan_mode=gan_mode, netD=netD, n_layers_D=2, norm="instance")
    losses = model.training_step(batch(), model.configure_optimizers(), Precision("fp32"))
    assert all(math.isfinite(v) for v in losses.values())


def test_translate_one_direction_only():
    model = tiny().eval()
    x = torch.rand(1, 3, 32, 64) * 2 - 1
    assert model.translate(x).shape == x.shape
    with pytest.raises(ValueError, match="'BtoA'.*one mapping"):
        model.translate(x, "BtoA")


def test_exported_generator_translates_any_image_size(tmp_path):
    model = tiny(num_downs=6)
    save_generators(tmp_path, model.generators(), variant="pix2pix", model_config=model.config.model_dump())
    doc, gens = load_generators(tmp_path)
    assert list(gens) == ["AtoB"] and doc["generators"]["AtoB"]["type"] == "unet"
    translator = Translator(gens, doc, torch.device("cpu"))
    assert translator.size_multiple == 64
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (60, 100, 3), dtype=np.uint8))
    out = translator.translate(img)
    assert out.size == (100, 60) and out.mode == "RGB"
