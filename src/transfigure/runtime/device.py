"""Device and precision choice: CUDA when present, CPU otherwise."""

from __future__ import annotations

import logging

import torch

logger = logging.getLogger(__name__)


def resolve_device(requested: str = "auto") -> torch.device:
    """``auto`` -> ``cuda`` if available, else ``cpu``. An explicit CUDA request without CUDA is an error."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {requested!r} requested but CUDA is not available; use device: auto or cpu")
    return device


def resolve_precision(requested: str, device: torch.device) -> str:
    """``auto`` -> bf16 autocast on CUDA devices that support it, fp32 elsewhere."""
    if requested != "auto":
        return requested
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return "bf16"
    return "fp32"
