"""Generators saved as safetensors weights + a JSON config, loaded without unpickling code.

Layout of an exported translator folder::

    config.json          {"format": 1, "variant": ..., "generators": {"AtoB": {...}, ...}, "model_config": {...}}
    AtoB.safetensors     one file per direction
    BtoA.safetensors
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from transfigure.models.generators import build_generator

EXPORT_FORMAT = 1
CONFIG_NAME = "config.json"


def save_generators(
    folder: str | Path,
    generators: dict[str, nn.Module],
    *,
    variant: str,
    model_config: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Write each generator's weights (safetensors) and the config needed to rebuild it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    configs = {}
    for direction, gen in generators.items():
        config = getattr(gen, "config", None)
        if config is None:
            raise ValueError(f"generator {direction!r} has no .config: it cannot be rebuilt from JSON")
        configs[direction] = dict(config)
        state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in gen.state_dict().items()}
        save_file(
            state, str(folder / f"{direction}.safetensors"), metadata={"direction": direction, "variant": variant}
        )
    doc = {
        "format": EXPORT_FORMAT,
        "variant": variant,
        "generators": configs,
        "model_config": model_config or {},
        "metadata": metadata or {},
    }
    (folder / CONFIG_NAME).write_text(json.dumps(doc, indent=2, sort_keys=True))
    return folder


def load_generators(
    folder: str | Path, device: str | torch.device = "cpu"
) -> tuple[dict[str, Any], dict[str, nn.Module]]:
    """Read a folder written by :func:`save_generators`: ``(config document, direction -> generator)``."""
    folder = Path(folder)
    cfg_path = folder / CONFIG_NAME
    if not cfg_path.is_file():
        raise FileNotFoundError(f"'{folder}' holds no exported generator ({CONFIG_NAME} missing)")
    doc = json.loads(cfg_path.read_text())
    if doc.get("format") != EXPORT_FORMAT:
        raise ValueError(f"'{cfg_path}': unsupported export format {doc.get('format')!r}")
    generators: dict[str, nn.Module] = {}
    for direction, config in doc["generators"].items():
        gen = build_generator(config)
        gen.load_state_dict(load_file(str(folder / f"{direction}.safetensors")), strict=True)
        generators[direction] = gen.to(device).eval()
    return doc, generators
