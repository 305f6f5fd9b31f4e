from __future__ import annotations

import time

import pytest
import torch

from transfigure.models import Precision
from transfigure.runtime import device as device_mod
from transfigure.runtime.device import choose_channels_last, choose_precision, resolve_device, resolve_precision


def test_auto_device_follows_cuda_availability():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only error")
def test_explicit_cuda_without_cuda_is_a_clear_error():
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        resolve_device("cuda")


def _fake_cpu(monkeypatch, *flags: str) -> None:
    monkeypatch.setattr(device_mod, "cpu_flags", lambda: frozenset({"sse4_2", "avx2", *flags}))


@pytest.mark.parametrize(
    ("flags", "mode", "reason"),
    [
        ((), "fp32", "cpu without amx_bf16/avx512_bf16"),
        (("avx512f",), "fp32", "cpu without amx_bf16/avx512_bf16"),
        (("avx512_bf16",), "bf16", "cpu avx512_bf16"),
        (("amx_bf16", "amx_tile"), "bf16", "cpu amx_bf16"),
        (("avx512_bf16", "amx_bf16"), "bf16", "cpu amx_bf16+avx512_bf16"),
    ],
)
def test_auto_precision_on_cpu_follows_native_bf16_flags(monkeypatch, flags, mode, reason):
    _fake_cpu(monkeypatch, *flags)
    choice = choose_precision("auto", torch.device("cpu"))
    assert (choice.mode, choice.reason) == (mode, reason)
    assert resolve_precision("auto", torch.device("cpu")) == mode


@pytest.mark.parametrize(("side", "mode"), [(32, "fp32"), (64, "fp32"), (127, "fp32"), (128, "bf16"), (256, "bf16")])
def test_auto_precision_on_a_bf16_cpu_pays_only_from_128_px(monkeypatch, side, mode):
    _fake_cpu(monkeypatch, "avx512_bf16")
    choice = choose_precision("auto", torch.device("cpu"), image_side=side)
    assert choice.mode == mode
    assert choice.reason.startswith("cpu avx512_bf16")
    if mode == "fp32":
        assert f"{side} px < 128 px" in choice.reason
    monkeypatch.setattr(device_mod, "cuda_capability", lambda device: (9, 0))
    assert choose_precision("auto", torch.device("cuda"), image_side=side).mode == "bf16"  # no size rule on GPUs
    assert choose_precision("bf16", torch.device("cpu"), image_side=side).mode == "bf16"  # explicit wins


@pytest.mark.parametrize(("cc", "mode"), [((7, 5), "fp32"), ((8, 0), "bf16"), ((9, 0), "bf16"), ((6, 1), "fp32")])
def test_auto_precision_on_cuda_needs_compute_capability_8(monkeypatch, cc, mode):
    monkeypatch.setattr(device_mod, "cuda_capability", lambda device: cc)
    choice = choose_precision("auto", torch.device("cuda"))
    assert choice.mode == mode
    assert choice.reason.startswith(f"cuda cc {cc[0]}.{cc[1]}")


@pytest.mark.parametrize("mode", ["fp32", "bf16"])
def test_explicit_precision_is_honoured_whatever_the_hardware(monkeypatch, mode):
    for flags in [(), ("avx512_bf16", "amx_bf16")]:
        _fake_cpu(monkeypatch, *flags)
        assert choose_precision(mode, torch.device("cpu")) == device_mod.PrecisionChoice(mode, "requested")
    monkeypatch.setattr(device_mod, "cuda_capability", lambda device: (9, 0))
    assert resolve_precision(mode, torch.device("cuda")) == mode


@pytest.mark.parametrize(
    ("load", "own", "threads", "warns"),
    [(0.2, 0.0, 2, False), (1.3, 0.0, 2, True), (1.3, 0.0, 1, False), (3.7, 0.0, 1, True), (1.9, 1.8, 2, False)],
)
def test_auto_bf16_on_a_busy_cpu_warns_but_resolves_as_on_an_idle_one(monkeypatch, caplog, load, own, threads, warns):
    """Other jobs' load warns; this process's own share of the load average (e.g. a benchmark that has been
    training on both cores) does not."""
    _fake_cpu(monkeypatch, "avx512_bf16")
    monkeypatch.setattr(device_mod, "cpu_cores", lambda: 2)
    monkeypatch.setattr(device_mod, "own_load", lambda: own)
    monkeypatch.setattr(torch, "get_num_threads", lambda: threads)
    monkeypatch.setattr(device_mod, "load_average", lambda: 0.0)
    idle = choose_precision("auto", torch.device("cpu"), image_side=128)
    monkeypatch.setattr(device_mod, "load_average", lambda: load)
    with caplog.at_level("WARNING", logger=device_mod.__name__):
        busy = choose_precision("auto", torch.device("cpu"), image_side=128)
    assert busy == idle == device_mod.PrecisionChoice("bf16", "cpu avx512_bf16")  # load never changes the choice
    messages = [r.getMessage() for r in caplog.records]
    if warns:
        assert len(messages) == 1
        assert "precision: fp32" in messages[0] and "OMP_NUM_THREADS=1" in messages[0]
    else:
        assert messages == []


def test_own_load_counts_this_process_s_busy_cores():
    start = time.process_time()
    while time.process_time() - start < 0.3:  # keep one core busy
        pass
    assert 0.0 < device_mod.own_load() <= device_mod.cpu_cores()


def test_cpu_flags_reads_proc_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse avx512_bf16 amx_tile\n\nprocessor\t: 1\n")
    assert {"avx512_bf16", "amx_tile", "fpu"} <= device_mod.cpu_flags.__wrapped__(str(info))
    assert isinstance(device_mod.cpu_flags.__wrapped__(str(tmp_path / "missing")), frozenset)


def test_channels_last_auto_follows_the_variants_measurements():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert choose_channels_last("auto", cpu, "bf16", ("bf16",))[0] is True
    assert choose_channels_last("auto", cpu, "fp32", ("bf16",))[0] is False
    assert choose_channels_last("auto", cuda, "bf16", ("bf16",))[0] is False  # not measured on CUDA
    assert choose_channels_last(True, cpu, "fp32", ())[0] is True
    assert choose_channels_last(False, cpu, "bf16", ("bf16",))[0] is False


def test_fp16_needs_cuda_and_bf16_autocasts_on_cpu():
    with pytest.raises(ValueError, match="fp16"):
        Precision("fp16", "cpu")
    p = Precision("bf16", "cpu")
    with p.autocast():
        y = torch.nn.Linear(4, 4)(torch.randn(2, 4))
    assert y.dtype == torch.bfloat16
