from __future__ import annotations

import pytest
import torch

from transfigure.models import Precision
from transfigure.runtime.device import resolve_device, resolve_precision


def test_auto_device_follows_cuda_availability():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only error")
def test_explicit_cuda_without_cuda_is_a_clear_error():
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        resolve_device("cuda")


def test_precision_auto_is_fp32_on_cpu_and_bf16_on_cuda():
    assert resolve_precision("auto", torch.device("cpu")) == "fp32"
    assert resolve_precision("bf16", torch.device("cpu")) == "bf16"
    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        assert resolve_precision("auto", torch.device("cuda")) == "bf16"


def test_fp16_needs_cuda_and_bf16_autocasts_on_cpu():
    with pytest.raises(ValueError, match="fp16"):
        Precision("fp16", "cpu")
    p = Precision("bf16", "cpu")
    with p.autocast():
        y = torch.nn.Linear(4, 4)(torch.randn(2, 4))
    assert y.dtype == torch.bfloat16
