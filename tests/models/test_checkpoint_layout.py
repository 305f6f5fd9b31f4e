"""Checkpoints and exported generators of earlier releases keep loading into today's code.

``checkpoint_layout.json`` was recorded from the released code: for a small config of every
variant (fixed seed), the state-dict keys and shapes of the model and of each exported
generator, per-tensor checksums of the initial weights, the exported generators' JSON
configs, and the outputs of the generators and discriminators on fixed inputs. Moving or
refactoring a network must leave all of it unchanged. Regenerate the file only for an
intended, documented break of checkpoint compatibility::

    PYTHONPATH=src python tests/models/test_checkpoint_layout.py
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from transfigure.models import VARIANTS, TranslationModel

SNAPSHOT = Path(__file__).with_name("checkpoint_layout.json")

#: variant -> small config, and the discriminators to probe with their input channels
SPECS: dict[str, dict[str, Any]] = {
    "cyclegan": {
        "config": {"ngf": 8, "ndf": 8, "netG": "resnet_6blocks", "seed": 5},
        "discriminators": {"D_A": 3, "D_B": 3},
    },
    "pix2pix": {"config": {"netG": "unet", "num_downs": 5, "ngf": 8, "ndf": 8, "seed": 5}, "discriminators": {"D": 6}},
    "unit": {
        "config": {"dim": 8, "n_res": 2, "n_shared": 1, "dis_dim": 8, "dis_n_layer": 3, "dis_norm": "bn", "seed": 5},
        "discriminators": {"dis_A": 3, "dis_B": 3},
    },
    "spade": {
        "config": {
            "label_nc": 4,
            "contain_dontcare_label": True,
            "use_instance": True,
            "ngf": 4,
            "ndf": 4,
            "spade_hidden": 8,
            "crop_size": 64,
            "norm_G": "spectralspadeinstance3x3",
            "use_vae": True,
            "z_dim": 8,
            "seed": 5,
        },
        "discriminators": {"netD": 4 + 1 + 1 + 3},
        "size": 64,
    },  # a 2x2 latent grid: instance norm works
}


def _inputs(variant: str, size: int) -> tuple[Any, ...]:
    g = torch.Generator().manual_seed(11)
    if variant == "spade":
        label = torch.randint(0, 5, (2, 1, size, size), generator=g)
        instance = torch.randint(0, 3, (2, 1, size, size), generator=g).float()
        style = torch.rand(2, 3, size, size, generator=g) * 2 - 1
        return label, instance, None, style
    return (torch.rand(2, 3, size, size, generator=g) * 2 - 1,)


def _stats(t: torch.Tensor) -> list[float]:
    """Size, sum, absolute sum and eight values spread over the tensor: enough to tell two apart."""
    flat = t.detach().double().flatten()
    picks = flat[torch.linspace(0, flat.numel() - 1, 8).long()] if flat.numel() else flat
    return [flat.numel(), float(flat.sum()), float(flat.abs().sum()), *map(float, picks)]


def _flatten(out: Any) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    return [t for item in out for t in _flatten(item)]


def snapshot(variant: str) -> dict[str, Any]:
    spec = SPECS[variant]
    model: TranslationModel = VARIANTS[variant](**spec["config"])
    state = model.state_dict()
    record: dict[str, Any] = {
        "config": spec["config"],
        "state": {k: [list(v.shape), *_stats(v)[:3]] for k, v in state.items()},
        "generators": {},
        "discriminators": {},
    }
    size = spec.get("size", 32)
    model.eval()
    with torch.no_grad():
        for direction, gen in model.generators().items():
            record["generators"][direction] = {
                "config": gen.config,
                "keys": {k: list(v.shape) for k, v in gen.state_dict().items()},
                "output": _stats(gen(*_inputs(variant, size))),
            }
        for name, channels in spec["discriminators"].items():
            x = torch.rand(2, channels, size, size, generator=torch.Generator().manual_seed(12)) * 2 - 1
            record["discriminators"][name] = [_stats(t) for t in _flatten(getattr(model, name)(x))]
    return record


def _close(actual: list[float], expected: list[float]) -> bool:
    """Equal up to float rounding, measured against the tensor's typical magnitude (sums cancel)."""
    n, abs_sum = expected[0], expected[2]
    mean_abs = abs_sum / n if n else 0.0
    return (
        actual[0] == n
        and actual[2] == pytest.approx(abs_sum, rel=1e-5, abs=1e-12)
        and actual[1] == pytest.approx(expected[1], abs=1e-5 * abs_sum + 1e-12)
        and actual[3:] == pytest.approx(expected[3:], abs=1e-4 * mean_abs + 1e-12)
    )


@pytest.mark.parametrize("variant", sorted(SPECS))
def test_checkpoint_layout_and_outputs_match_the_released_networks(variant):
    assert set(SPECS) == set(VARIANTS)  # a new variant needs a snapshot too
    expected = json.loads(SNAPSHOT.read_text())[variant]
    assert expected["config"] == SPECS[variant]["config"]
    actual = snapshot(variant)
    # names and shapes first (what load_state_dict(strict=True) and safetensors files depend on)
    assert {k: v[0] for k, v in actual["state"].items()} == {k: v[0] for k, v in expected["state"].items()}
    assert list(actual["state"]) == list(expected["state"])  # registration order too (optimizer state follows it)
    init = [k for k, v in actual["state"].items() if not _close(v[1:], expected["state"][k][1:])]
    assert not init, f"initial values changed: {init[:5]}"
    assert actual["generators"].keys() == expected["generators"].keys()
    for direction, gen in expected["generators"].items():
        assert actual["generators"][direction]["config"] == gen["config"]
        assert actual["generators"][direction]["keys"] == gen["keys"]
        assert _close(actual["generators"][direction]["output"], gen["output"]), direction
    for name, outputs in expected["discriminators"].items():
        got = actual["discriminators"][name]
        assert len(got) == len(outputs) and all(_close(a, e) for a, e in zip(got, outputs, strict=True)), name


if __name__ == "__main__":
    torch.set_num_threads(1)
    text = json.dumps({v: snapshot(v) for v in sorted(SPECS)}, indent=1)
    for inner in (r"[^\[\]{}]", r"[^\[\]{}]|\[[^\[\]{}]*\]"):  # lists (of lists) on one line each
        text = re.sub(rf"\[(?:{inner})*\]", lambda m: re.sub(r"\s+", " ", m.group(0)), text)
    SNAPSHOT.write_text(text + "\n")
    print(f"wrote {SNAPSHOT}", file=sys.stderr)
