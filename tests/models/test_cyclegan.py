"""Real CycleGAN optimisation steps on tiny tensors."""

from __future__ import annotations

import math

import pytest
import torch

from transfigure.models import CycleGAN, Precision


def tiny(**kw) -> CycleGAN:
    return CycleGAN(ngf=8, ndf=8, netG="resnet_6blocks", pool_size=4, **kw)


def batch(seed: int = 0, size: int = 32) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {
        "A": torch.rand(2, 3, size, size, generator=g) * 2 - 1,
        "B": torch.rand(2, 3, size, size, generator=g) * 2 - 1,
    }


def test_training_step_gives_finite_losses_and_changes_all_networks():
    model = tiny()
    opts = model.configure_optimizers()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    losses = model.training_step(batch(), opts, Precision("fp32"))
    assert {"G_A", "G_B", "cycle_A", "cycle_B", "idt_A", "idt_B", "D_A", "D_B", "G"} <= set(losses)
    assert all(math.isfinite(v) for v in losses.values())
    for prefix in ("G_A.", "G_B.", "D_A.", "D_B."):
        changed = [k for k in before if k.startswith(prefix) and not torch.equal(before[k], model.state_dict()[k])]
        assert changed, f"{prefix} weights did not change"
    assert losses["G"] == pytest.approx(
        sum(losses[k] for k in ("G_A", "G_B", "cycle_A", "cycle_B", "idt_A", "idt_B")), rel=1e-6
    )


def test_identity_loss_off_when_lambda_zero():
    model = tiny(lambda_identity=0.0)
    losses = model.training_step(batch(), model.configure_optimizers(), Precision("fp32"))
    assert "idt_A" not in losses and "idt_B" not in losses


@pytest.mark.slow
def test_cycle_loss_decreases_with_training():
    model = tiny(lambda_identity=0.0)
    opts = model.configure_optimizers()
    # smooth images (a colour ramp per sample) are learnable in a few steps, unlike white noise
    ramp = torch.linspace(-1, 1, 32)
    b = {
        "A": torch.stack(
            [ramp.view(1, -1).expand(32, 32), ramp.view(-1, 1).expand(32, 32), -ramp.view(1, -1).expand(32, 32)]
        ).unsqueeze(0),
        "B": torch.stack(
            [ramp.view(-1, 1).expand(32, 32), -ramp.view(1, -1).expand(32, 32), ramp.view(1, -1).expand(32, 32)]
        ).unsqueeze(0),
    }
    first = model.training_step(b, opts, Precision("fp32"))
    for _ in range(30):
        last = model.training_step(b, opts, Precision("fp32"))
    assert last["cycle_A"] < first["cycle_A"] * 0.8
    assert last["cycle_B"] < first["cycle_B"] * 0.8
