"""Device and precision choice: CUDA when present, CPU otherwise; bf16 where the hardware computes it.

``precision: auto`` resolves by capability, not by device type: bf16 autocast on CPUs whose
instruction set has native bf16 arithmetic (AVX512-BF16 or AMX-BF16: Intel Cooper Lake /
Sapphire Rapids and later, AMD Zen 4 and later) and on CUDA GPUs of compute capability 8.0 or
more (Ampere and later; older GPUs emulate bf16 slowly); fp32 everywhere else. The resolved
choice carries its reason ("cpu avx512_bf16", "cuda cc 8.0", "cpu without avx512_bf16/amx_bf16")
so a run can log *why* it trained in the precision it did. The machine's load never changes the
choice (resume must stay bit-exact); a CPU busy with other jobs only gets a warning (:func:`warn_if_cpu_busy`).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import torch

logger = logging.getLogger(__name__)

#: CPU flags (as /proc/cpuinfo spells them) that mean native bf16 matrix arithmetic
CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
#: the lowest CUDA compute capability with native bf16 tensor cores (Ampere)
CUDA_BF16_MIN_CAPABILITY = (8, 0)
#: the smallest training crop side at which bf16 autocast pays on a CPU. On a 2-core Xeon with
#: AMX/AVX512-BF16 (README: Training throughput) bf16 was 1.2-2.5x faster from 128 px, but 0.93-0.97x
#: at the default run's 64 px (ngf 16) and 0.6-0.9x for the tests' 32 px models: below this side
#: the casts cost more than the faster matrix units save.
CPU_BF16_MIN_SIDE = 128
#: how many cores' worth of other jobs' load (the 1-minute load average less this process's own
#: share, beyond the cores torch's threads leave free) makes :func:`warn_if_cpu_busy` warn. On 2 cores at load 2-4, 2-thread CycleGAN@128
#: steps ran 0.87-0.94x in bf16 vs fp32, 1-thread ones 2.8-3.1x faster (README: contended CPU).
CPU_BUSY_MARGIN = 1.0


def resolve_device(requested: str = "auto") -> torch.device:
    """``auto`` -> ``cuda`` if available, else ``cpu``. An explicit CUDA request without CUDA is an error."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {requested!r} requested but CUDA is not available; use device: auto or cpu")
    return device


@functools.cache
def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> frozenset[str]:
    """The CPU's feature flags from ``/proc/cpuinfo`` (Linux). Elsewhere, what torch reports.

    Tests fake the hardware by monkeypatching this function.
    """
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        text = ""
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return frozenset(line.split(":", 1)[1].split())
    flags: set[str] = set()  # not Linux: ask torch's own CPU probe (private helpers, guarded)
    with contextlib.suppress(Exception):
        if torch.cpu._is_avx512_bf16_supported():
            flags.add("avx512_bf16")
    with contextlib.suppress(Exception):
        if torch.cpu._is_amx_tile_supported():
            flags.add("amx_bf16")
    return frozenset(flags)


def cuda_capability(device: torch.device) -> tuple[int, int]:
    """The compute capability of a CUDA device (tests monkeypatch this)."""
    return torch.cuda.get_device_capability(device)


def native_bf16(device: torch.device) -> tuple[bool, str]:
    """Whether ``device`` computes bf16 natively, and why (a short human-readable reason)."""
    device = torch.device(device)
    if device.type == "cuda":
        major, minor = cuda_capability(device)
        ok = (major, minor) >= CUDA_BF16_MIN_CAPABILITY
        return ok, f"cuda cc {major}.{minor}" + ("" if ok else " < 8.0")
    if device.type == "cpu":
        flags = cpu_flags()
        found = [f for f in CPU_BF16_FLAGS if f in flags]
        if found:
            return True, "cpu " + "+".join(found)
        return False, "cpu without " + "/".join(CPU_BF16_FLAGS)
    return False, f"{device.type}: no bf16 rule"


@dataclass(frozen=True)
class PrecisionChoice:
    """The precision a run resolved to, and why (logged to MLflow as ``precision``/``precision_reason``)."""

    mode: str
    reason: str


def choose_precision(requested: str, device: torch.device, image_side: int | None = None) -> PrecisionChoice:
    """``auto`` -> ``bf16`` where :func:`native_bf16` (on a CPU only from :data:`CPU_BF16_MIN_SIDE`
    px training crops, when ``image_side`` is known), else ``fp32``; explicit modes are honoured."""
    if requested != "auto":
        return PrecisionChoice(requested, "requested")
    ok, why = native_bf16(device)
    on_cpu = torch.device(device).type == "cpu"
    if ok and on_cpu and image_side is not None and image_side < CPU_BF16_MIN_SIDE:
        return PrecisionChoice("fp32", f"{why}, but {image_side} px < {CPU_BF16_MIN_SIDE} px: fp32 measured faster")
    if ok and on_cpu:
        warn_if_cpu_busy()
    return PrecisionChoice("bf16" if ok else "fp32", why)


def cpu_cores() -> int:
    """The cores this process may run on (its affinity mask where the OS has one)."""
    with contextlib.suppress(AttributeError, OSError):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def load_average() -> float | None:
    """The 1-minute load average, or None where the OS has none (tests monkeypatch this)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def own_load() -> float:
    """This process's mean number of busy cores since it started: its own share of the load average
    (a benchmark or a pipeline that has been computing loads the CPU itself; that is not other jobs)."""
    with contextlib.suppress(psutil.Error, OSError):
        process = psutil.Process()
        cpu = process.cpu_times()
        return (cpu.user + cpu.system) / max(time.time() - process.create_time(), 1.0)
    return 0.0


def warn_if_cpu_busy(threads: int | None = None) -> bool:
    """Warn (and return True) when torch's threads would oversubscribe a CPU other jobs already load.

    bf16 autocast on a CPU is fast on free cores but much slower than fp32 when its threads compete
    with other jobs for the cores. This only logs: the resolved precision must never depend on the
    machine's load (a resumed run must train bit-exactly as it started), and neither may the thread
    count (it changes the kernels' reduction order, hence the results).
    """
    load = load_average()
    if load is None:
        return False
    others = max(0.0, load - own_load())
    threads = threads or torch.get_num_threads()
    cores = cpu_cores()
    if others < cores - threads + CPU_BUSY_MARGIN:
        return False
    logger.warning(
        "bf16 on a busy CPU: other jobs load %.1f of %d cores, and torch uses %d threads. bf16 steps can run "
        "several times slower than fp32 when their threads compete with other jobs: give torch only the "
        "free cores (OMP_NUM_THREADS=%d) or set training.precision: fp32",
        others,
        cores,
        threads,
        max(1, cores - round(others)),
    )
    return True


def resolve_precision(requested: str, device: torch.device) -> str:
    """The mode of :func:`choose_precision` (``fp32``/``bf16``/``fp16``)."""
    return choose_precision(requested, device).mode


def choose_channels_last(
    requested: bool | str, device: torch.device, precision: str, measured_faster: tuple[str, ...] = ()
) -> tuple[bool, str]:
    """``auto`` -> channels_last on CPU where the variant measured faster in that precision, else off.

    ``measured_faster`` is the variant's list of precisions in which NHWC measured faster on CPU
    (``TranslationModel.channels_last_cpu``). On CUDA nothing is measured here, so ``auto`` stays
    off; an explicit ``true``/``false`` is honoured everywhere.
    """
    if requested != "auto":
        return bool(requested), "requested"
    device = torch.device(device)
    if device.type == "cpu" and precision in measured_faster:
        return True, f"cpu {precision}: measured faster for this variant"
    return False, f"{device.type} {precision}: not measured faster"
