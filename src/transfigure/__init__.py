"""transfigure: an MLOps workflow for image-to-image translation GANs."""

from __future__ import annotations

from transfigure._env import disable_telemetry

disable_telemetry()

__version__ = "0.1.0"

__all__ = ["__version__", "load_translator"]


def __getattr__(name: str):  # lazy: importing the package must stay cheap
    if name == "load_translator":
        from transfigure.tracking.registry import load_translator

        return load_translator
    raise AttributeError(f"module 'transfigure' has no attribute {name!r}")
