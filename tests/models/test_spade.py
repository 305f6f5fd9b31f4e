"""SPADE: reference parameter counts, semantic input, real optimisation steps, VGG19, export."""

from __future__ import annotations

import math
from pathlib import Path

import pydantic
import pytest
import torch

from transfigure.models import SPADE, MultiscaleDiscriminator, Precision, SPADEConfig, SPADEGenerator, build_generator
from transfigure.models.generators import ConvEncoder
from transfigure.models.io import load_generators, save_generators
from transfigure.models.layers import instance_edges, label_to_onehot
from transfigure.models.losses import VGG19, MultiscaleGANLoss, VGGWeightsError, feature_matching_loss, load_vgg19


def n_params(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


# -- parameter counts, derived from the reference construction ------------------------------
# SPADE(C) on a semantic map of S channels: mlp_shared 3x3 S->128 (+bias), mlp_gamma and mlp_beta
# 3x3 128->C (+bias) = 1152 S + 128 + 2306 C. SPADEResnetBlock(fin, fout): fmid = min(fin, fout),
# conv_0 3x3 fin->fmid, conv_1 3x3 fmid->fout (biases), norm_0 SPADE(fin), norm_1 SPADE(fmid), and
# when fin != fout conv_s 1x1 fin->fout (no bias) + norm_s SPADE(fin). Generator: fc 3x3 S->16nf,
# three 16nf blocks, up_0..up_3 halving the channels, conv_img 3x3 nf->3. Spectral norm adds no
# parameters (u, v are buffers).
def spade_norm(s: int, c: int, hidden: int = 128) -> int:
    return (s * hidden * 9 + hidden) + 2 * (hidden * c * 9 + c)


def spade_block(fin: int, fout: int, s: int) -> int:
    fmid = min(fin, fout)
    n = fin * fmid * 9 + fmid + fmid * fout * 9 + fout + spade_norm(s, fin) + spade_norm(s, fmid)
    if fin != fout:
        n += fin * fout + spade_norm(s, fin)
    return n


def spade_generator(s: int, nf: int = 64) -> int:
    n = s * 16 * nf * 9 + 16 * nf + 3 * spade_block(16 * nf, 16 * nf, s)
    for fin, fout in ((16, 8), (8, 4), (4, 2), (2, 1)):
        n += spade_block(fin * nf, fout * nf, s)
    return n + nf * 3 * 9 + 3


def test_generator_parameter_counts_match_the_reference_construction():
    with torch.device("meta"):
        coco = SPADEGenerator(label_nc=182, contain_dontcare_label=True, use_instance=True)  # S = 184
        ade = SPADEGenerator(label_nc=150, contain_dontcare_label=True, use_instance=False)  # S = 151
        city = SPADEGenerator(
            label_nc=35,
            contain_dontcare_label=False,
            use_instance=True,
            crop_size=512,
            aspect_ratio=2.0,
            num_upsampling_layers="more",
        )  # S = 36
    assert n_params(coco) == spade_generator(184) == 97_480_899
    assert n_params(ade) == spade_generator(151) == 96_492_483  # the paper's "96.5M" SPADE generator
    assert n_params(city) == spade_generator(36) == 93_048_003  # "more" adds an upsampling, no layer


def test_discriminator_encoder_and_vae_parameter_counts():
    with torch.device("meta"):
        d = MultiscaleDiscriminator(182 + 1 + 1 + 3)  # one-hot + don't care + edges + RGB
        e = ConvEncoder(64, 256, 256)
        vae = SPADEGenerator(label_nc=182, use_vae=True)
    # per scale: 4x4 convs C->64 (+bias), 64->128, 128->256, 256->512 (no bias: instance norm), 512->1 (+bias)
    per_d = 187 * 64 * 16 + 64 + 64 * 128 * 16 + 128 * 256 * 16 + 256 * 512 * 16 + 512 * 16 + 1
    assert n_params(d) == 2 * per_d == 5_904_514
    # six 3x3 stride-2 convs without bias (3->64->128->256->512->512->512) and two 8192->256 linear heads
    convs = 9 * (3 * 64 + 64 * 128 + 128 * 256 + 256 * 512 + 512 * 512 + 512 * 512)
    assert n_params(e) == convs + 2 * (512 * 16 * 256 + 256) == 10_463_424
    # with use_vae, fc is Linear(z_dim, 16 ngf * 8 * 8) instead of the 3x3 conv on the label map
    fc = 256 * 1024 * 64 + 1024 * 64
    assert n_params(vae) == spade_generator(184) - (184 * 1024 * 9 + 1024) + fc + 10_463_424 == 123_090_307


# -- semantic input --------------------------------------------------------------------------
def test_one_hot_with_dontcare_and_instance_edges():
    g = SPADEGenerator(label_nc=3, contain_dontcare_label=True, use_instance=True, ngf=4, spade_hidden=8, crop_size=32)
    label = torch.tensor([[[[0, 1, 2, 255]]]])
    instance = torch.tensor([[[[5.0, 5.0, 7.0, 7.0]]]])
    seg = g.semantics(label, instance)
    assert seg.shape == (1, 5, 1, 4)  # 3 classes + don't care + edges
    assert seg[0, :4, 0].argmax(0).tolist() == [0, 1, 2, 3]  # 255 -> channel label_nc
    assert torch.equal(seg[0, :4].sum(0), torch.ones(1, 4))
    assert seg[0, 4, 0].tolist() == [0.0, 1.0, 1.0, 0.0]  # both sides of the 5|7 boundary
    # an id the model cannot represent is named
    with pytest.raises(ValueError, match=r"\[7\]"):
        g.semantics(torch.tensor([[[[0, 7]]]]), instance[..., :2])
    with pytest.raises(ValueError, match="instance maps"):
        g.semantics(label)


def test_instance_edges_and_onehot_helpers():
    inst = torch.zeros(1, 1, 4, 4)
    inst[0, 0, 1:3, 1:3] = 3
    edges = instance_edges(inst)[0, 0]
    expected = torch.tensor([[0, 1, 1, 0], [1, 1, 1, 1], [1, 1, 1, 1], [0, 1, 1, 0]], dtype=torch.float32)
    assert torch.equal(edges, expected)
    onehot = label_to_onehot(torch.tensor([[[1, 0]]]), 2)
    assert onehot.tolist() == [[[[0.0, 1.0]], [[1.0, 0.0]]]]
    with pytest.raises(ValueError, match=r"\[-1\]"):
        label_to_onehot(torch.tensor([[[-1, 0]]]), 2)


@pytest.mark.parametrize(("mode", "multiple"), [("normal", 32), ("more", 64), ("most", 128)])
def test_generator_shapes_and_size_multiple(mode, multiple):
    g = SPADEGenerator(
        label_nc=4,
        contain_dontcare_label=False,
        use_instance=False,
        ngf=4,
        spade_hidden=8,
        crop_size=128,
        num_upsampling_layers=mode,
    ).eval()
    assert g.size_multiple == multiple
    label = torch.randint(0, 4, (2, 1, multiple, 2 * multiple))
    y = g(label)
    assert y.shape == (2, 3, multiple, 2 * multiple) and y.abs().max() <= 1
    with pytest.raises(ValueError, match=f"multiples of {multiple}"):
        g(torch.zeros(1, 1, multiple + 4, multiple, dtype=torch.long))


def test_vae_style_encoder_and_random_z():
    g = SPADEGenerator(
        label_nc=4,
        contain_dontcare_label=False,
        use_instance=False,
        ngf=4,
        spade_hidden=8,
        crop_size=64,
        use_vae=True,
        z_dim=8,
    ).eval()
    assert g.encoder.n_layers == 5 and g.encoder.input_size == 128  # below 256 px: 5 convs (reference bug fixed)
    label = torch.randint(0, 4, (1, 1, 64, 64))
    style = torch.rand(1, 3, 50, 70) * 2 - 1  # any size
    a, b = g(label, style=style), g(label, style=style)
    assert torch.equal(a, b)  # the style's mean z
    torch.manual_seed(0)
    c = g(label)
    d = g(label)
    assert not torch.equal(c, d)  # z ~ N(0, I): multi-modal
    assert g(torch.randint(0, 4, (1, 1, 96, 128))).shape == (1, 3, 96, 128)  # other sizes: the z grid is resized


# -- losses ----------------------------------------------------------------------------------
def test_hinge_loss_and_feature_matching_values():
    crit = MultiscaleGANLoss("hinge")
    x = torch.tensor([2.0, 0.5, -3.0])
    assert crit(x, True).item() == pytest.approx((0 + 0.5 + 4) / 3)  # mean(relu(1 - x))
    assert crit(x, False).item() == pytest.approx((3 + 1.5 + 0) / 3)  # mean(relu(1 + x))
    assert crit(x, True, for_discriminator=False).item() == pytest.approx(0.5 / 3)  # -mean(x)
    # multi-scale: the last element of each scale's list is the logits; averaged over scales
    assert crit([[torch.ones(1), x], [torch.ones(1), x + 1]], True).item() == pytest.approx(
        ((0 + 0.5 + 4) / 3 + (0 + 0 + 3) / 3) / 2
    )
    fake = [[torch.zeros(2), torch.zeros(3), torch.full((1,), 9.0)], [torch.zeros(2), torch.full((1,), 9.0)]]
    real = [[torch.ones(2), torch.full((3,), 2.0), torch.zeros(1)], [torch.full((2,), 3.0), torch.zeros(1)]]
    # logits excluded; (1 + 2) from scale 0, 3 from scale 1, times lambda_feat / num_D
    assert feature_matching_loss(fake, real, 10.0).item() == pytest.approx((1 + 2 + 3) * 10.0 / 2)


# -- the model -------------------------------------------------------------------------------
def tiny(**kw) -> SPADE:
    args = dict(
        label_nc=4,
        contain_dontcare_label=True,
        use_instance=True,
        ngf=4,
        ndf=4,
        spade_hidden=8,
        crop_size=32,
        norm_G="spectralspadebatch3x3",
    )
    return SPADE(**{**args, **kw})


def batch(seed: int = 0, size: int = 32) -> dict:
    g = torch.Generator().manual_seed(seed)
    label = torch.randint(0, 5, (2, 1, size, size), generator=g)  # 4 = the mapped "don't care"
    return {
        "label": label,
        "instance": torch.randint(0, 3, (2, 1, size, size), generator=g).float(),
        "image": torch.rand(2, 3, size, size, generator=g) * 2 - 1,
    }


def test_training_step_gives_finite_losses_and_changes_g_and_d():
    model = tiny()
    opts = model.configure_optimizers()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    losses = model.training_step(batch(), opts, Precision("fp32"))
    assert set(losses) == {"GAN", "GAN_Feat", "G", "D_Fake", "D_real", "D"}  # no VGG, no KLD by default
    assert all(math.isfinite(v) for v in losses.values())
    assert losses["G"] == pytest.approx(losses["GAN"] + losses["GAN_Feat"], rel=1e-6)
    assert losses["D"] == pytest.approx(losses["D_Fake"] + losses["D_real"], rel=1e-6)
    after = model.state_dict()
    for prefix in ("netG.", "netD."):
        changed = [
            k
            for k in before
            if k.startswith(prefix) and k.endswith("weight_orig") and not torch.equal(before[k], after[k])
        ]
        assert changed, f"{prefix} weights did not change"
    assert set(model.visuals()) == {"input_label", "synthesized_image", "real_image"}
    assert all(v.shape == (2, 3, 32, 32) for v in model.visuals().values())


def test_ttur_learning_rates_and_betas():
    opts = tiny().configure_optimizers()
    assert opts["G"].param_groups[0]["lr"] == pytest.approx(1e-4)
    assert opts["D"].param_groups[0]["lr"] == pytest.approx(4e-4)
    assert opts["G"].param_groups[0]["betas"] == (0.0, 0.9)
    plain = tiny(no_TTUR=True).configure_optimizers()
    assert plain["G"].param_groups[0]["lr"] == plain["D"].param_groups[0]["lr"] == pytest.approx(2e-4)
    assert plain["D"].param_groups[0]["betas"] == (0.5, 0.999)


def test_vae_training_adds_kld_and_trains_the_encoder():
    model = tiny(use_vae=True, z_dim=8)
    opts = model.configure_optimizers()
    enc = model.netG.encoder.fc_mu.weight.clone()
    losses = model.training_step(batch(), opts, Precision("fp32"))
    assert "KLD" in losses and math.isfinite(losses["KLD"]) and losses["KLD"] >= 0
    assert not torch.equal(enc, model.netG.encoder.fc_mu.weight)


def test_d_steps_per_g_skips_generator_updates():
    model = tiny(D_steps_per_G=2)
    opts = model.configure_optimizers()
    assert "G" in model.training_step(batch(0), opts, Precision("fp32"))
    g_before = model.netG.conv_img.weight.clone()
    second = model.training_step(batch(1), opts, Precision("fp32"))
    assert "G" not in second and "D" in second
    assert torch.equal(g_before, model.netG.conv_img.weight)
    assert model.extra_state() == {"step": 2}


def test_missing_instance_maps_are_a_clear_error():
    model = tiny()
    b = batch()
    b["instance"] = torch.empty(2, 0)
    with pytest.raises(ValueError, match="use_instance"):
        model.training_step(b, model.configure_optimizers(), Precision("fp32"))


def test_exported_generator_rebuilds_from_json_and_maps_raw_dontcare_ids(tmp_path):
    model = tiny()
    gen = model.netG.eval()
    save_generators(tmp_path / "generator", model.generators(), variant="spade")
    doc, loaded = load_generators(tmp_path / "generator")
    cfg = doc["generators"]["AtoB"]
    assert cfg["type"] == "spade" and cfg["label_nc"] == 4 and cfg["contain_dontcare_label"] and cfg["use_instance"]
    rebuilt = build_generator(cfg)
    assert isinstance(rebuilt, SPADEGenerator) and rebuilt.size_multiple == 32
    label = torch.randint(0, 4, (1, 1, 32, 64))
    label[0, 0, 0, :5] = 255  # raw "don't care" ids are mapped by the generator itself
    inst = torch.randint(0, 3, (1, 1, 32, 64)).float()
    with torch.no_grad():
        assert torch.allclose(loaded["AtoB"](label, inst), gen(label, inst), atol=1e-6)


# -- VGG19 perceptual loss --------------------------------------------------------------------
#: torchvision.models.vgg19().state_dict() "features" keys and shapes (the classifier is not used)
TORCHVISION_VGG19_FEATURES = {
    0: (64, 3),
    2: (64, 64),
    5: (128, 64),
    7: (128, 128),
    10: (256, 128),
    12: (256, 256),
    14: (256, 256),
    16: (256, 256),
    19: (512, 256),
    21: (512, 512),
    23: (512, 512),
    25: (512, 512),
    28: (512, 512),
    30: (512, 512),
    32: (512, 512),
    34: (512, 512),
}


def test_vgg19_matches_torchvision_state_dict_layout():
    with torch.device("meta"):
        vgg = VGG19()
    expected = {}
    for i, (out_c, in_c) in TORCHVISION_VGG19_FEATURES.items():
        expected[f"features.{i}.weight"] = (out_c, in_c, 3, 3)
        expected[f"features.{i}.bias"] = (out_c,)
    assert {k: tuple(v.shape) for k, v in vgg.state_dict().items()} == expected
    assert len(vgg.features) == 37 and n_params(vgg) == 20_024_384  # torchvision: 143,667,240 with the classifier
    feats = VGG19()(torch.zeros(1, 3, 32, 32))
    assert [tuple(f.shape) for f in feats] == [
        (1, 64, 32, 32),
        (1, 128, 16, 16),
        (1, 256, 8, 8),
        (1, 512, 4, 4),
        (1, 512, 2, 2),
    ]


def test_vgg_loss_is_off_by_default_and_needs_a_weights_file(tmp_path):
    assert SPADEConfig().use_vgg_loss is False
    with pytest.raises(pydantic.ValidationError, match="vgg_weights"):
        SPADEConfig(use_vgg_loss=True)
    missing = tmp_path / "vgg19-dcbb9e9d.pth"
    with pytest.raises(VGGWeightsError, match=r"vgg19-dcbb9e9d\.pth' not found"):
        tiny(use_vgg_loss=True, vgg_weights=str(missing))
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(VGGWeightsError, match="cannot read VGG19 weights"):
        load_vgg19(garbage)
    wrong = tmp_path / "wrong.pth"
    torch.save({"features.0.weight": torch.zeros(1)}, wrong)
    with pytest.raises(VGGWeightsError, match=r"missing \['features\.0\.bias'"):
        load_vgg19(wrong)


@pytest.mark.parametrize("fmt", ["pth", "safetensors"])
def test_vgg_loss_with_a_local_weights_file(tmp_path, fmt):
    torch.manual_seed(0)
    state = {f"features.{k}": v for k, v in VGG19().features.state_dict().items()}
    state["classifier.6.weight"] = torch.zeros(2, 2)  # torchvision files carry the classifier too: ignored
    path = tmp_path / f"vgg19.{fmt}"
    if fmt == "pth":
        torch.save(state, path)
    else:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    model = tiny(use_vgg_loss=True, vgg_weights=str(path))
    assert not any("vgg" in k for k in model.state_dict())  # frozen, not checkpointed
    assert all(p.requires_grad for p in model.parameters())  # and not among the trained parameters
    losses = model.training_step(batch(), model.configure_optimizers(), Precision("fp32"))
    assert losses["VGG"] > 0 and math.isfinite(losses["VGG"])
    assert losses["G"] == pytest.approx(losses["GAN"] + losses["GAN_Feat"] + losses["VGG"], rel=1e-6)
    assert torch.equal(model._vgg[0].vgg.features[0].weight, state["features.0.weight"])


def test_translate(tmp_path: Path):
    model = tiny().eval()
    y = model.translate(torch.randint(0, 4, (1, 1, 32, 32)), torch.zeros(1, 1, 32, 32))
    assert y.shape == (1, 3, 32, 32)


def test_batch_norm_on_a_single_latent_value_is_explained():
    model = tiny()
    b = {k: v[:1] for k, v in batch().items()}  # one 32 px image: a 1x1 latent grid
    with pytest.raises(ValueError, match="batch_size >= 2"):
        model.training_step(b, model.configure_optimizers(), Precision("fp32"))
    two = {k: v[:2] for k, v in batch().items()}  # two images: 2 values per channel, fine
    assert math.isfinite(model.training_step(two, model.configure_optimizers(), Precision("fp32"))["G"])


@pytest.mark.parametrize("norm", ["instance", "batch"])
def test_spade_modulation_keeps_float32_precision_under_bf16_autocast(norm):
    # a small learned scale, gamma = 2^-9 (exact in bf16), beta = 0: in bf16, 1 + gamma rounds to 1
    from transfigure.models.layers import SPADE as SPADENorm

    torch.manual_seed(0)
    block = SPADENorm(f"spade{norm}3x3", norm_nc=4, label_nc=3, nhidden=8)
    with torch.no_grad():
        for conv, bias in ((block.mlp_gamma, 2.0**-9), (block.mlp_beta, 0.0)):
            conv.weight.zero_()
            conv.bias.fill_(bias)
    x, seg = torch.randn(2, 4, 8, 8) * 3 + 5, torch.rand(2, 3, 8, 8)
    with torch.no_grad():
        expected = block(x, seg)
        assert torch.allclose(expected, block.param_free_norm(x) * (1 + 2.0**-9), rtol=1e-6, atol=1e-6)
        with Precision("bf16", "cpu").autocast():
            got = block(x, seg)
    assert got.dtype == torch.float32
    assert torch.allclose(got, expected, rtol=1e-6, atol=1e-6)
