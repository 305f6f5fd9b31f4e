"""What every GAN variant in ``transfigure.models.VARIANTS`` must do alike, one test per behaviour.

Variant-specific behaviour (each paper's losses, networks and reference numbers) is tested in
``test_<variant>.py``.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any

import pydantic
import pytest
import torch

from transfigure.models import VARIANTS, Precision, TranslationModel
from transfigure.models.io import load_generators, save_generators


def _images(seed: int, size: int = 32) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "A": torch.rand(2, 3, size, size, generator=g) * 2 - 1,
        "B": torch.rand(2, 3, size, size, generator=g) * 2 - 1,
    }


def _label_maps(seed: int, size: int = 32) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "label": torch.randint(0, 5, (2, 1, size, size), generator=g),  # 4 = the mapped "don't care"
        "instance": torch.randint(0, 3, (2, 1, size, size), generator=g).float(),
        "image": torch.rand(2, 3, size, size, generator=g) * 2 - 1,
    }


#: variant -> (small config, batch of 32 px samples for a training step)
CASES: dict[str, tuple[dict[str, Any], Callable[[int], dict[str, torch.Tensor]]]] = {
    "cyclegan": ({"ngf": 8, "ndf": 8, "netG": "resnet_6blocks", "pool_size": 4}, _images),
    "pix2pix": ({"netG": "unet", "num_downs": 5, "ngf": 8, "ndf": 8}, _images),
    "unit": ({"dim": 8, "n_res": 2, "n_shared": 1, "dis_dim": 8, "dis_n_layer": 3}, _images),
    "spade": (
        {
            "label_nc": 4,
            "contain_dontcare_label": True,
            "use_instance": True,
            "ngf": 4,
            "ndf": 4,
            "spade_hidden": 8,
            "crop_size": 32,
            "norm_G": "spectralspadebatch3x3",
        },
        _label_maps,
    ),
}
#: variants whose translate() takes a direction (SPADE's takes label maps and has one)
DIRECTIONAL = sorted(v for v, cls in VARIANTS.items() if "direction" in inspect.signature(cls.translate).parameters)


def tiny(variant: str, **kw: Any) -> TranslationModel:
    return VARIANTS[variant](**{**CASES[variant][0], **kw})


def batch(variant: str, seed: int = 0) -> dict[str, torch.Tensor]:
    return CASES[variant][1](seed)


def generator_inputs(variant: str, b: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
    return (b["label"], b["instance"]) if variant == "spade" else (b["A"],)


def test_every_variant_has_a_case():
    assert set(CASES) == set(VARIANTS)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_bf16_autocast_step_on_cpu_is_finite(variant):
    model = tiny(variant)
    losses = model.training_step(batch(variant), model.configure_optimizers(), Precision("bf16", "cpu"))
    assert losses and all(math.isfinite(v) for v in losses.values())


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_same_seed_same_initial_weights(variant):
    a, b, c = tiny(variant, seed=3), tiny(variant, seed=3), tiny(variant, seed=4)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    weights = {name: p for name, p in a.named_parameters() if p.dim() > 1}  # randomly initialised tensors
    other = dict(c.named_parameters())
    assert weights and not [name for name, p in weights.items() if torch.equal(p, other[name])]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_unknown_config_keys_are_errors(variant):
    cls = VARIANTS[variant]
    for make in (cls.config_class, cls):  # the typed config, and keyword overrides of the model
        with pytest.raises(pydantic.ValidationError, match="no_such_option"):
            make(no_such_option=1)  # a typo is an error, not a silently ignored key


@pytest.mark.parametrize("variant", DIRECTIONAL)
def test_translate_every_direction_and_name_an_unknown_one(variant):
    model = tiny(variant).eval()
    x = torch.rand(1, 3, 32, 64) * 2 - 1
    for direction in model.generators():
        assert model.translate(x, direction).shape == x.shape
    with pytest.raises(ValueError, match="sideways"):
        model.translate(x, "sideways")


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_exported_generators_reload_with_the_same_config_and_outputs(variant, tmp_path):
    model = tiny(variant)
    model.training_step(batch(variant), model.configure_optimizers(), Precision("fp32"))  # trained weights, BN stats
    model.eval()
    save_generators(tmp_path, model.generators(), variant=variant, model_config=model.config.model_dump())
    doc, loaded = load_generators(tmp_path)
    assert doc["variant"] == variant and doc["model_config"] == model.config.model_dump()
    assert loaded.keys() == model.generators().keys()
    inputs = generator_inputs(variant, batch(variant, seed=1))
    for direction, gen in model.generators().items():
        assert doc["generators"][direction] == gen.config
        with torch.no_grad():
            assert torch.allclose(loaded[direction](*inputs), gen(*inputs), atol=1e-6), direction
