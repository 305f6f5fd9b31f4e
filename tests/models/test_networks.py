"""Architecture checks against the reference implementation's numbers."""

from __future__ import annotations

import pytest
import torch

from transfigure.models import CycleGAN, GANLoss, ImagePool, ResnetGenerator, build_discriminator, build_generator
from transfigure.models.layers import count_parameters, get_norm_layer, init_weights


def test_resnet_9blocks_parameter_count_matches_reference():
    # reference: networks.define_G(3, 3, 64, 'resnet_9blocks', 'instance') -> 11.378M
    assert count_parameters(ResnetGenerator(3, 3, ngf=64, n_blocks=9)) == 11_378_179


def test_resnet_6blocks_parameter_count():
    assert count_parameters(ResnetGenerator(3, 3, ngf=64, n_blocks=6)) == 7_837_699


def test_patchgan_basic_instance_norm_parameter_count():
    # reference: define_D(3, 64, 'basic', norm='instance') -> 2.765M
    assert count_parameters(build_discriminator("basic", 3, 64)) == 2_764_737


@pytest.mark.parametrize("h,w", [(64, 64), (32, 96), (100, 60)])
def test_resnet_generator_keeps_size_and_range(h, w):
    g = ResnetGenerator(3, 3, ngf=8, n_blocks=2).eval()
    with torch.no_grad():
        y = g(torch.randn(2, 3, h, w))
    assert y.shape == (2, 3, h, w)
    assert y.abs().max() <= 1.0


def test_patchgan_70x70_output_grid():
    d = build_discriminator("basic", 3, 8)
    # 256 -> 128 -> 64 -> 32 -> 31 -> 30: 30x30 patches, each seeing 70x70 pixels
    assert d(torch.randn(1, 3, 256, 256)).shape == (1, 1, 30, 30)
    assert build_discriminator("n_layers", 3, 8, n_layers=5)(torch.randn(1, 3, 256, 256)).shape == (1, 1, 6, 6)
    assert build_discriminator("pixel", 3, 8)(torch.randn(1, 3, 17, 23)).shape == (1, 1, 17, 23)


def test_instance_norm_has_no_parameters_and_batch_norm_does():
    assert sum(p.numel() for p in get_norm_layer("instance")(16).parameters()) == 0
    assert sum(p.numel() for p in get_norm_layer("batch")(16).parameters()) == 32


def test_generator_rebuilds_from_its_config():
    g = ResnetGenerator(3, 1, ngf=8, n_blocks=3, use_dropout=True)
    g2 = build_generator(g.config)
    assert g2.config == g.config
    assert [p.shape for p in g.parameters()] == [p.shape for p in g2.parameters()]
    with pytest.raises(ValueError, match="unknown generator type"):
        build_generator({"type": "unet_9000"})


def test_normal_init_std():
    g = init_weights(ResnetGenerator(3, 3, ngf=64, n_blocks=9), "normal", 0.02)
    w = torch.cat([m.weight.flatten() for m in g.modules() if isinstance(m, torch.nn.Conv2d)])
    assert abs(w.std().item() - 0.02) < 1e-3
    assert abs(w.mean().item()) < 1e-3


def test_gan_loss_values():
    pred = torch.zeros(1, 1, 4, 4)
    assert GANLoss("lsgan")(pred, True).item() == pytest.approx(1.0)
    assert GANLoss("lsgan")(pred, False).item() == pytest.approx(0.0)
    assert GANLoss("vanilla")(pred, True).item() == pytest.approx(0.693147, rel=1e-5)
    with pytest.raises(ValueError):
        GANLoss("wasserstein-ish")


def test_image_pool_fills_then_mixes_history():
    pool = ImagePool(pool_size=3, seed=0)
    first = torch.arange(3.0).view(3, 1, 1, 1)
    assert torch.equal(pool.query(first), first)  # filling: returned as is
    later = torch.full((50, 1, 1, 1), 99.0)
    out = pool.query(later)
    from_history = (out != 99.0).sum().item()
    assert 0 < from_history <= 3 + 50  # some history images come back
    assert len(pool.images) == 3
    # the state round-trips, so a resumed run draws the same sequence
    state = pool.state_dict()
    a = pool.query(torch.full((20, 1, 1, 1), 7.0))
    pool2 = ImagePool(3)
    pool2.load_state_dict(state)
    assert torch.equal(pool2.query(torch.full((20, 1, 1, 1), 7.0)), a)


def test_zero_size_pool_passes_through():
    x = torch.randn(4, 3, 2, 2)
    assert torch.equal(ImagePool(0).query(x), x)


def test_cyclegan_identity_loss_needs_equal_channel_counts():
    with pytest.raises(ValueError, match="identity"):
        CycleGAN(input_nc=1, output_nc=3, ngf=4, ndf=4, netG="resnet_6blocks")
