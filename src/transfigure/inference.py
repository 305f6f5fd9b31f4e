"""Use a trained generator: ``load_translator("cyclegan", "champion").translate(image)``.

The same :class:`Translator` serves the Python API, the MLflow pyfunc and (later) the
BentoML service, so all of them translate identically.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image

from transfigure.data.transforms import tensor_to_pil, to_tensor
from transfigure.models.io import load_generators
from transfigure.training.device import resolve_device

logger = logging.getLogger(__name__)


class Translator:
    """Translate PIL images of any size with exported generators (one per direction)."""

    def __init__(self, generators: dict[str, torch.nn.Module], config: dict[str, Any], device: torch.device) -> None:
        self.generators = generators
        self.config = config
        self.device = device
        self.variant: str = config.get("variant", "")
        self.metadata: dict[str, Any] = dict(config.get("metadata", {}))
        self.size_multiple = max((int(getattr(g, "size_multiple", 1)) for g in generators.values()), default=1)

    @classmethod
    def from_folder(cls, folder: str | Path, device: str = "auto") -> Translator:
        dev = resolve_device(device)
        config, generators = load_generators(folder, dev)
        return cls(generators, config, dev)

    @property
    def directions(self) -> list[str]:
        return sorted(self.generators)

    def _input_channels(self, direction: str) -> int:
        return int(self.config["generators"][direction].get("input_nc", 3))

    @torch.no_grad()
    def translate_tensor(self, x: torch.Tensor, direction: str = "AtoB") -> torch.Tensor:
        """NxCxHxW in [-1, 1] -> same size output; pads reflectively to the generator's size multiple."""
        if direction not in self.generators:
            raise ValueError(f"unknown direction {direction!r} for this {self.variant} model: use one of {self.directions}")
        h, w = x.shape[-2:]
        m = self.size_multiple
        ph, pw = (-h) % m, (-w) % m
        x = x.to(self.device)
        if ph or pw:
            mode = "reflect" if (ph < h and pw < w) else "replicate"
            x = F.pad(x, (0, pw, 0, ph), mode=mode)
        y = self.generators[direction](x)
        return y[..., :h, :w]

    def translate(self, image: Image.Image, direction: str = "AtoB") -> Image.Image:
        """Translate one PIL image; the output has the input's size (RGB, or L for 1-channel models)."""
        if not isinstance(image, Image.Image):
            raise TypeError(f"translate() takes a PIL.Image.Image, got {type(image).__name__}")
        mode = "L" if self._input_channels(direction) == 1 else "RGB"
        x = to_tensor(image.convert(mode)).unsqueeze(0)
        return tensor_to_pil(self.translate_tensor(x, direction)[0])


def load_translator(
    name: str = "cyclegan",
    alias_or_version: str | int = "champion",
    *,
    tracking_uri: str | None = None,
    device: str = "auto",
) -> Translator:
    """Load a registered generator from the MLflow model registry.

    ``alias_or_version``: an alias (``"champion"``), a version number (``3`` or ``"3"``), or
    ``"latest"``. Only safetensors weights and JSON are read: no code is unpickled.
    """
    from transfigure.tracking.registry import download_generator

    folder = download_generator(name, alias_or_version, tracking_uri=tracking_uri)
    translator = Translator.from_folder(folder, device=device)
    logger.info("loaded %s %s from the registry (%s)", name, alias_or_version, folder)
    return translator
