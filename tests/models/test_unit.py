"""UNIT: the reference networks' sizes, the shared weights, real optimisation steps, the export."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image
from pydantic import ValidationError

from transfigure.inference import Translator
from transfigure.models import UNIT, MsImageDiscriminator, Precision, UNITConfig, UNITGenerator, build_generator
from transfigure.models.io import load_generators, save_generators
from transfigure.models.layers import count_parameters


def tiny(**kw) -> UNIT:
    """A small UNIT for 32 px images (3 discriminator layers so that 3 scales fit in 32 px)."""
    return UNIT(**{"dim": 8, "n_res": 2, "n_shared": 1, "dis_dim": 8, "dis_n_layer": 3, **kw})


def batch(seed: int = 0, size: int = 32, n: int = 2) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {
        "A": torch.rand(n, 3, size, size, generator=g) * 2 - 1,
        "B": torch.rand(n, 3, size, size, generator=g) * 2 - 1,
    }


def smooth_batch(size: int = 32) -> dict:
    """Colour ramps: learnable in a few steps, unlike white noise."""
    r = torch.linspace(-1, 1, size)
    h, v = r.view(1, -1).expand(size, size), r.view(-1, 1).expand(size, size)
    return {"A": torch.stack([h, v, -h]).unsqueeze(0), "B": torch.stack([v, -h, h * v]).unsqueeze(0)}


# -- the reference's numbers ------------------------------------------------------------
def test_reference_parameter_counts_without_sharing_equal_two_vaegens():
    # reference networks.py with configs/unit_*.yaml (dim 64, n_downsample 2, n_res 4, 3-channel):
    # VAEGen = ContentEncoder 5,385,856 + Decoder 5,754,627; MsImageDis(n_layer 4, 3 scales) = 8,271,171
    model = UNIT(n_shared=0)
    assert count_parameters(model.enc_A) == 5_385_856
    assert count_parameters(model.dec_A) == 5_754_627
    assert count_parameters(model.enc_shared) == 0 and count_parameters(model.dec_shared) == 0
    assert count_parameters(model.dis_A) == count_parameters(model.dis_B) == 8_271_171
    assert sum(count_parameters(m) for m in model.generator_modules()) == 2 * 11_140_483


def test_paper_sharing_parameter_counts():
    model = UNIT()  # n_res 4, of which 1 shared at the end of the encoders and the start of the decoders
    assert model.config.n_shared == 1
    block = 2 * (256 * 256 * 9 + 256)  # one residual block at 256 channels: 1,180,160
    assert count_parameters(model.enc_shared) == count_parameters(model.dec_shared) == block == 1_180_160
    gens = sum(count_parameters(m) for m in model.generator_modules())
    assert gens == 2 * 11_140_483 - 2 * block == 19_920_646
    # each exported direction is a full reference VAEGen path: E_A (3 private + 1 shared) -> G_B (1 shared + 3)
    for gen in model.generators().values():
        assert count_parameters(gen) == 11_140_483
    assert count_parameters(model) == 19_920_646 + 2 * 8_271_171
    # the optimiser sees every generator weight exactly once
    opt = model.configure_optimizers()["G"]
    params = [p for g in opt.param_groups for p in g["params"]]
    assert len(params) == len({id(p) for p in params}) and sum(p.numel() for p in params) == 19_920_646


# -- shapes ---------------------------------------------------------------------------------
@pytest.mark.parametrize("h,w", [(32, 32), (32, 48), (64, 40)])
def test_latent_and_output_shapes(h, w):
    model = tiny().eval()
    x = torch.rand(2, 3, h, w) * 2 - 1
    with torch.no_grad():
        mu = model.encode(x, "A")
        assert mu.shape == (2, 8 * 4, h // 4, w // 4)  # dim * 2**n_downsample channels, 1/4 resolution
        for direction in ("AtoB", "BtoA"):
            y = model.translate(x, direction)
            assert y.shape == x.shape and y.abs().max() <= 1.0


def test_multiscale_discriminator_outputs_and_size_check():
    d = MsImageDiscriminator(3, dim=8, n_layer=4, num_scales=3)
    outs = d(torch.randn(1, 3, 64, 64))
    assert [tuple(o.shape) for o in outs] == [(1, 1, 4, 4), (1, 1, 2, 2), (1, 1, 1, 1)]
    assert d.min_input_size() == 61
    with pytest.raises(ValueError, match=r"32x32 px are too small .* >= 61 px"):
        d(torch.randn(1, 3, 32, 32))
    three_layers = MsImageDiscriminator(3, dim=8, n_layer=3, num_scales=3)
    assert three_layers.min_input_size() == 29
    assert [tuple(o.shape) for o in three_layers(torch.randn(1, 3, 32, 32))] == [
        (1, 1, 4, 4),
        (1, 1, 2, 2),
        (1, 1, 1, 1),
    ]


def test_one_channel_domain():
    model = tiny(input_nc=1)  # greyscale A, RGB B
    assert model.translate(torch.zeros(1, 1, 32, 32), "AtoB").shape == (1, 3, 32, 32)
    assert model.translate(torch.zeros(1, 3, 32, 32), "BtoA").shape == (1, 1, 32, 32)
    assert model.generators()["AtoB"].config["input_nc"] == 1 and model.generators()["BtoA"].config["output_nc"] == 1


# -- weight sharing -----------------------------------------------------------------------
def test_shared_blocks_are_the_same_tensors_in_both_directions():
    model = tiny()
    ab, ba = model.generators()["AtoB"], model.generators()["BtoA"]
    assert ab.enc_shared is ba.enc_shared is model.enc_shared
    assert ab.dec_shared is ba.dec_shared is model.dec_shared
    assert ab.enc is model.enc_A and ba.enc is model.enc_B and ab.dec is model.dec_B and ba.dec is model.dec_A
    shared = dict(ab.named_parameters())["enc_shared.0.model.0.conv.weight"]
    assert shared is dict(ba.named_parameters())["enc_shared.0.model.0.conv.weight"]
    # the private parts are distinct
    assert ab.enc.model[0].conv.weight is not ba.enc.model[0].conv.weight
    # the checkpoint holds each weight once (the direction views are not sub-modules)
    assert not any(k.startswith("_directions") for k in model.state_dict())


def test_shared_blocks_get_gradients_from_both_domains():
    model = tiny()
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    grads = {}
    for domain in ("A", "B"):
        model.zero_grad(set_to_none=True)
        model.decode(model.encode(x, domain), domain).abs().mean().backward()  # this domain's VAE path only
        grads[domain] = {name: p.grad for name, p in model.named_parameters() if not name.startswith("dis_")}
    for domain, other in (("A", "B"), ("B", "A")):
        g = grads[domain]
        assert g["enc_shared.0.model.0.conv.weight"].abs().sum() > 0
        assert g["dec_shared.0.model.1.conv.weight"].abs().sum() > 0
        assert g[f"enc_{domain}.model.0.conv.weight"].abs().sum() > 0
        assert g[f"enc_{other}.model.0.conv.weight"] is None  # the other domain's private encoder is untouched
    # one parameter, two different gradient contributions
    key = "enc_shared.0.model.0.conv.weight"
    assert not torch.equal(grads["A"][key], grads["B"][key])


# -- training -----------------------------------------------------------------------------
LOSS_TERMS = ("adv_A", "adv_B", "recon_x_A", "recon_x_B", "kl_A", "kl_B", "cyc_x_A", "cyc_x_B", "kl_cyc_A", "kl_cyc_B")


def test_training_step_gives_finite_losses_and_changes_every_network():
    model = tiny()
    opts = model.configure_optimizers()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        mu_a = model.encode(batch()["A"], "A")  # the step's G loss uses these (not yet updated) weights
    losses = model.training_step(batch(), opts, Precision("fp32"))
    assert set(losses) == {*LOSS_TERMS, "G", "D_A", "D_B"}
    assert all(math.isfinite(v) for v in losses.values())
    assert losses["G"] == pytest.approx(sum(losses[k] for k in LOSS_TERMS), rel=1e-5)
    after = model.state_dict()
    for prefix in ("enc_A.", "enc_B.", "enc_shared.", "dec_shared.", "dec_A.", "dec_B.", "dis_A.", "dis_B."):
        keys = [k for k in before if k.startswith(prefix)]
        assert keys and all(not torch.equal(before[k], after[k]) for k in keys if k.endswith("weight")), prefix
    # L1 between images in [-1, 1] is below 2, times recon_x_w = 10; KL terms are 0.01 * mean(mu^2)
    assert 0 < losses["recon_x_A"] < 10 * 2.0
    assert losses["kl_A"] == pytest.approx(0.01 * mu_a.pow(2).mean().item(), rel=1e-5)
    assert list(model.visuals()) == ["real_A", "fake_B", "rec_A", "real_B", "fake_A", "rec_B"]
    assert all(v.shape == (2, 3, 32, 32) for v in model.visuals().values())


@pytest.mark.slow
def test_reconstruction_loss_decreases_on_a_fixed_batch():
    model = tiny(lr=1e-3, dis_n_layer=2, dis_num_scales=2)  # 16 px images: cheap steps
    opts = model.configure_optimizers()
    b = smooth_batch(16)
    torch.manual_seed(0)
    first = model.training_step(b, opts, Precision("fp32"))
    for _ in range(20):
        last = model.training_step(b, opts, Precision("fp32"))
    assert last["recon_x_A"] < 0.6 * first["recon_x_A"]
    assert last["recon_x_B"] < 0.6 * first["recon_x_B"]
    assert last["cyc_x_A"] < first["cyc_x_A"]


def test_config_validation():
    assert UNITConfig().model_dump()["recon_kl_w"] == 0.01
    with pytest.raises(ValidationError, match="n_shared"):
        UNITConfig(n_res=1, n_shared=2)


# -- export -------------------------------------------------------------------------------
def test_exported_generator_is_deterministic_and_rebuilds_from_json(tmp_path):
    model = tiny(n_downsample=3)
    model.training_step(batch(), model.configure_optimizers(), Precision("fp32"))  # trained weights
    model.train()  # even in training mode the exported path decodes mu, without noise
    x = torch.rand(1, 3, 40, 56) * 2 - 1
    gens = model.generators()
    for gen in gens.values():
        assert isinstance(gen, UNITGenerator) and gen.size_multiple == 8
        with torch.no_grad():
            y1, y2 = gen(x), gen(x)
            assert torch.equal(y1, y2)
            rebuilt = build_generator(gen.config)
            rebuilt.load_state_dict(gen.state_dict(), strict=True)
            assert torch.allclose(rebuilt.eval()(x), y1, atol=1e-6)
    save_generators(tmp_path / "gen", gens, variant="unit", model_config=model.config.model_dump())
    doc, loaded = load_generators(tmp_path / "gen")
    assert doc["generators"]["AtoB"] == {
        "type": "unit",
        "input_nc": 3,
        "output_nc": 3,
        "dim": 8,
        "n_downsample": 3,
        "n_res": 2,
        "n_shared": 1,
        "activ": "relu",
        "pad_type": "reflect",
    }
    translator = Translator(loaded, doc, torch.device("cpu"))
    assert translator.size_multiple == 8
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (60, 100, 3), dtype=np.uint8))
    for direction in ("AtoB", "BtoA"):
        out1, out2 = translator.translate(img, direction), translator.translate(img, direction)
        assert out1.size == (100, 60) and np.array_equal(np.asarray(out1), np.asarray(out2))


def test_checkpoint_round_trip_gives_the_same_translation():
    model = tiny()
    model.training_step(batch(), model.configure_optimizers(), Precision("fp32"))
    fresh = tiny(seed=7)
    fresh.load_state_dict(model.state_dict())
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    assert torch.equal(fresh.translate(x, "AtoB"), model.translate(x, "AtoB"))
    # the direction views follow the loaded weights (they hold the same modules)
    assert fresh.generators()["BtoA"].enc_shared is fresh.enc_shared
