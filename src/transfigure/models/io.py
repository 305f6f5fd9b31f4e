"""Generators saved as safetensors weights + a JSON config, loaded without unpickling code.

Layout of an exported translator folder::

    config.json          {"format": 1, "variant": ..., "generators": {"AtoB": {...}, ...}, "model_config": {...}}
    AtoB.safetensors     one file per direction
    BtoA.safetensors

The files are byte-reproducible: the same weights, configs and metadata give the same bytes in
any process (:func:`safetensors_bytes`; ``config.json`` with sorted keys), so DVC, which tracks
the exported folder, sees a change only when there is one. Keep per-run facts (MLflow run id,
git commit) out of a folder DVC tracks; :func:`copy_with_metadata` adds them to a copy.
"""

from __future__ import annotations

import json
import shutil
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save
from torch import nn

from transfigure.models.generators import build_generator

EXPORT_FORMAT = 1
CONFIG_NAME = "config.json"


def safetensors_bytes(tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None = None) -> bytes:
    """The safetensors encoding of ``tensors`` (+ string ``metadata``), the same bytes for the same input.

    safetensors (0.8) orders the tensors deterministically (data by dtype alignment, then name) but
    writes its ``__metadata__`` from a Rust ``HashMap``, whose order is randomly seeded for every
    map: saving the same weights twice, even in one process, can give different headers. So the
    header is rewritten canonically: ``__metadata__`` first with sorted keys, then the tensors in
    data-offset order, compact JSON padded with spaces to 8 bytes as safetensors pads it. The
    data section (offsets are relative to it) is kept byte for byte. Tensors are copied to the CPU
    and made contiguous first; nothing time-dependent is written.
    """
    cpu = {name: t.detach().to("cpu").contiguous() for name, t in sorted(tensors.items())}
    raw = save(cpu, metadata={str(k): str(v) for k, v in sorted((metadata or {}).items())} or None)
    (length,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + length])
    meta = header.pop("__metadata__", None)
    canonical: dict[str, Any] = {"__metadata__": dict(sorted(meta.items()))} if meta else {}
    for name in sorted(header, key=lambda k: (header[k]["data_offsets"], k)):
        entry = header[name]
        canonical[name] = {"dtype": entry["dtype"], "shape": entry["shape"], "data_offsets": entry["data_offsets"]}
    text = json.dumps(canonical, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + raw[8 + length :]


def _config_text(doc: Mapping[str, Any]) -> str:
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def save_generators(
    folder: str | Path,
    generators: dict[str, nn.Module],
    *,
    variant: str,
    model_config: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Write each generator's weights (safetensors) and the config needed to rebuild it.

    Byte-reproducible (see the module docstring): ``metadata`` should hold only what the weights
    determine (e.g. the training step) when the folder is DVC-tracked.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    configs = {}
    for direction, gen in generators.items():
        config = getattr(gen, "config", None)
        if config is None:
            raise ValueError(f"generator {direction!r} has no .config: it cannot be rebuilt from JSON")
        configs[direction] = dict(config)
        state = {k: v.detach().to("cpu", torch.float32) for k, v in gen.state_dict().items()}
        encoded = safetensors_bytes(state, metadata={"direction": direction, "variant": variant})
        (folder / f"{direction}.safetensors").write_bytes(encoded)
    doc = {
        "format": EXPORT_FORMAT,
        "variant": variant,
        "generators": configs,
        "model_config": model_config or {},
        "metadata": metadata or {},
    }
    (folder / CONFIG_NAME).write_text(_config_text(doc))
    return folder


def copy_with_metadata(src: str | Path, dst: str | Path, metadata: Mapping[str, Any]) -> Path:
    """Copy the exported folder ``src`` to ``dst`` with ``metadata`` merged into its config's.

    For facts of one run (MLflow run id, git commit) that belong with a logged model but would
    make a DVC-tracked export change although its weights did not.
    """
    src, dst = Path(src), Path(dst)
    doc = json.loads((src / CONFIG_NAME).read_text())
    shutil.copytree(src, dst)
    doc["metadata"] = {**doc.get("metadata", {}), **metadata}
    (dst / CONFIG_NAME).write_text(_config_text(doc))
    return dst


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
