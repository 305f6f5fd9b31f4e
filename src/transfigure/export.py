"""Export a trained generator to ONNX and TorchScript, checked numerically against PyTorch.

    transfigure export cyclegan --version 3                      # ONNX + TorchScript, every direction
    transfigure export cyclegan --alias champion --format onnx --out exported/
    transfigure export --from-dir data/06_models/cyclegan/generator

Each direction becomes ``<direction>.onnx`` (dynamic batch, height and width; exported with
``torch.onnx.export(dynamo=True)``) and ``<direction>.pt`` (``torch.jit.trace``). Both are run
(onnxruntime, ``torch.jit.load``) at two image sizes against the PyTorch generator;
``export_report.json`` holds the max abs differences, the inputs each file takes and the
pre/post-processing, and the export passes only when every difference is within ``tolerance``.

What the exported graphs take (the same contract as :meth:`Translator.translate_tensor`):

- image generators (CycleGAN, Pix2Pix, UNIT): ``input`` float32 ``N x C x H x W`` in [-1, 1],
  H and W multiples of ``size_multiple`` (pad reflectively first, as ``Translator`` does),
  output ``N x C' x H x W`` in [-1, 1]; the model is in eval mode (batch norm running
  statistics, no dropout) as in ``Translator``.
- label-map generators (SPADE): ``label`` int64 ``N x 1 x H x W`` class ids (255 = don't care when
  the model has that class), ``instance`` float32 ``N x 1 x H x W`` instance ids (when the model
  uses instance maps; the label map itself otherwise serves), ``z`` float32 ``N x z_dim`` (VAE
  models). Ids are not range-checked inside the graph: an id ``>= label_nc`` gives an all-zero
  one-hot vector, so check ids before (``Translator`` does).

Spectral normalisation is folded into the weights (as PyTorch computes it in eval mode).
"""

from __future__ import annotations

import argparse
import copy
import inspect
import json
import logging
import math
import sys
import tempfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from transfigure.models.io import CONFIG_NAME, load_generators
from transfigure.models.layers import instance_edges

logger = logging.getLogger(__name__)

FORMATS = ("onnx", "torchscript")
SUFFIX = {"onnx": ".onnx", "torchscript": ".pt"}
REPORT_NAME = "export_report.json"
DEFAULT_TOLERANCE = 1e-4


class ExportError(RuntimeError):
    """An export that failed or did not reproduce the PyTorch outputs."""


# -- what gets exported ----------------------------------------------------------------------------
class LabelMapGenerator(nn.Module):
    """A SPADE generator with an export-friendly front end: class ids -> one-hot by comparison.

    ``SPADEGenerator.semantics`` range-checks ids with data-dependent Python (which
    ``torch.export`` cannot trace) and builds the one-hot with ``scatter_``; this computes the
    same one-hot as ``label == arange(C)`` and then runs the generator's own ``synthesize``.
    """

    def __init__(self, generator: nn.Module) -> None:
        super().__init__()
        self.generator = generator
        self.label_nc = int(generator.label_nc)
        self.dontcare = bool(generator.contain_dontcare_label)
        self.use_instance = bool(generator.use_instance)
        self.use_vae = bool(generator.use_vae)
        n = self.label_nc + int(self.dontcare)
        self.register_buffer("classes", torch.arange(n).view(1, n, 1, 1), persistent=False)

    def forward(
        self, label: torch.Tensor, instance: torch.Tensor | None = None, z: torch.Tensor | None = None
    ) -> torch.Tensor:
        label = label.long()
        if self.dontcare:
            label = torch.where(label == 255, torch.full_like(label, self.label_nc), label)
        seg = (label == self.classes).float()
        if self.use_instance:
            if instance is None:
                raise ValueError("this SPADE generator uses instance maps: pass instance=")
            seg = torch.cat([seg, instance_edges(instance)], dim=1)
        return self.generator.synthesize(seg, z if self.use_vae else None)


def fold_spectral_norm(module: nn.Module) -> nn.Module:
    """Replace every ``spectral_norm`` weight by its eval-mode value (in place; returns ``module``)."""
    from torch.nn.utils.spectral_norm import SpectralNorm

    for sub in module.modules():
        if any(isinstance(hook, SpectralNorm) for hook in sub._forward_pre_hooks.values()):
            torch.nn.utils.remove_spectral_norm(sub)
    return module


def takes_label_maps(config: dict[str, Any]) -> bool:
    return "label_nc" in config


def export_module(generator: nn.Module, config: dict[str, Any]) -> nn.Module:
    """The module to export for one direction: an eval-mode copy, spectral norm folded, SPADE wrapped."""
    module = fold_spectral_norm(copy.deepcopy(generator).cpu().eval())
    return LabelMapGenerator(module).eval() if takes_label_maps(config) else module


def input_names(config: dict[str, Any]) -> list[str]:
    if not takes_label_maps(config):
        return ["input"]
    return ["label"] + (["instance"] if config.get("use_instance") else []) + (["z"] if config.get("use_vae") else [])


def sample_inputs(
    config: dict[str, Any], size: tuple[int, int], batch: int = 2, seed: int = 0
) -> tuple[torch.Tensor, ...]:
    """Seeded inputs of ``size`` (H, W) for one direction: images in [-1, 1], or ids + instance (+ z)."""
    g = torch.Generator().manual_seed(seed)
    h, w = size
    if not takes_label_maps(config):
        return (torch.rand(batch, int(config.get("input_nc", 3)), h, w, generator=g) * 2 - 1,)
    label_nc = int(config["label_nc"])
    # blocky label maps (regions of 8x8 pixels), as real layouts are, plus a few "don't care" pixels
    ids = torch.randint(0, label_nc, (batch, 1, math.ceil(h / 8), math.ceil(w / 8)), generator=g)
    ids = ids.repeat_interleave(8, 2).repeat_interleave(8, 3)[..., :h, :w].contiguous()
    if config.get("contain_dontcare_label"):
        ids[:, :, :2, :2] = 255
    out: list[torch.Tensor] = [ids]
    if config.get("use_instance"):
        out.append(ids.float())
    if config.get("use_vae"):
        out.append(torch.randn(batch, int(config.get("z_dim", 256)), generator=g))
    return tuple(out)


def reference_output(generator: nn.Module, config: dict[str, Any], inputs: tuple[torch.Tensor, ...]) -> np.ndarray:
    """What PyTorch gives, called the way :class:`Translator` calls the generator."""
    with torch.no_grad():
        if not takes_label_maps(config):
            return generator(inputs[0]).numpy()
        rest = list(inputs[1:])
        instance = rest.pop(0) if config.get("use_instance") else None
        z = rest.pop(0) if config.get("use_vae") else None
        return generator(inputs[0], instance, z=z).numpy()


def check_sizes(size_multiple: int) -> list[tuple[int, int]]:
    """Two sizes (H, W) to check at: a square >= 64 px and a larger non-square one, multiples of the model's."""
    m = max(1, int(size_multiple))
    base = m * math.ceil(64 / m)
    return [(base, base), (base + m, base + 2 * m)]


# -- exporters -------------------------------------------------------------------------------------
def _keyword_inputs(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
    """The inputs by the name of ``forward``'s parameters (``x``; or ``label``, ``instance``, ``z``)."""
    if isinstance(module, LabelMapGenerator):
        keys = ["label"] + (["instance"] if module.use_instance else []) + (["z"] if module.use_vae else [])
    else:
        keys = [next(iter(inspect.signature(module.forward).parameters))]
    return dict(zip(keys, inputs, strict=True))


def export_onnx(
    module: nn.Module, inputs: tuple[torch.Tensor, ...], names: list[str], path: Path, size_multiple: int
) -> None:
    """ONNX via ``torch.export`` (dynamo) with dynamic batch and height/width in multiples of the model's."""
    from torch.export import Dim

    blocks_h, blocks_w = Dim("blocks_h", min=1), Dim("blocks_w", min=1)
    batch = Dim("batch", min=1)
    kwargs = _keyword_inputs(module, inputs)
    shapes = {
        key: {0: batch} if key == "z" else {0: batch, 2: size_multiple * blocks_h, 3: size_multiple * blocks_w}
        for key in kwargs
    }
    # the exporter warns, once per op table, that torchvision (not a dependency here) is missing
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            module,
            (),
            kwargs=kwargs,
            dynamic_shapes=shapes,
            input_names=names,
            output_names=["output"],
            dynamo=True,
            verbose=False,
        )
    program.save(str(path))


def export_torchscript(module: nn.Module, inputs: tuple[torch.Tensor, ...], path: Path) -> None:
    """TorchScript by tracing (the networks have no data-dependent control flow at inference)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings about shape arithmetic: checked at other sizes below
        traced = torch.jit.trace(module, example_kwarg_inputs=_keyword_inputs(module, inputs), check_trace=False)
    traced.save(str(path))


def _run_onnx(path: Path) -> Any:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return lambda inputs: session.run(None, {n: t.numpy() for n, t in zip(names, inputs, strict=True)})[0]


def _run_torchscript(path: Path) -> Any:
    loaded = torch.jit.load(str(path), map_location="cpu")
    names = [a.name for a in loaded.forward.schema.arguments[1:]]  # the traced inputs, in order (no self)

    def run(inputs: tuple[torch.Tensor, ...]) -> np.ndarray:
        with torch.no_grad():
            return loaded(*inputs[: len(names)]).numpy()

    return run


@dataclass
class _Direction:
    name: str
    generator: nn.Module
    config: dict[str, Any]

    @property
    def size_multiple(self) -> int:
        return int(getattr(self.generator, "size_multiple", 1))


def _export_direction(d: _Direction, out_dir: Path, formats: Sequence[str], tolerance: float) -> dict[str, Any]:
    module = export_module(d.generator, d.config)
    names = input_names(d.config)
    sizes = check_sizes(d.size_multiple)
    example = sample_inputs(d.config, sizes[0], seed=1)
    entry: dict[str, Any] = {
        "inputs": names,
        "output": "output",
        "size_multiple": d.size_multiple,
        "takes_label_maps": takes_label_maps(d.config),
        "generator_config": d.config,
    }
    checks = [(size, sample_inputs(d.config, size, seed=2 + i)) for i, size in enumerate(sizes)]
    references = [reference_output(d.generator, d.config, inputs) for _, inputs in checks]
    for fmt in formats:
        path = out_dir / f"{d.name}{SUFFIX[fmt]}"
        t0 = time.perf_counter()
        if fmt == "onnx":
            export_onnx(module, example, names, path, d.size_multiple)
            runner = _run_onnx(path)
        else:
            export_torchscript(module, example, path)
            runner = _run_torchscript(path)
        seconds = time.perf_counter() - t0
        results = []
        for (size, inputs), ref in zip(checks, references, strict=True):
            out = runner(inputs)
            if out.shape != ref.shape:
                raise ExportError(
                    f"{path.name} at {size[0]}x{size[1]}: output shape {out.shape}, PyTorch gives {ref.shape}"
                )
            diff = np.abs(out.astype(np.float64) - ref.astype(np.float64))
            results.append(
                {
                    "height": size[0],
                    "width": size[1],
                    "batch": int(ref.shape[0]),
                    "max_abs_diff": float(diff.max()),
                    "mean_abs_diff": float(diff.mean()),
                    "output_abs_max": float(np.abs(ref).max()),
                    "unsaturated_fraction": float((np.abs(ref) < 0.99).mean()),
                }
            )
        worst = max(r["max_abs_diff"] for r in results)
        entry[fmt] = {
            "file": path.name,
            "bytes": path.stat().st_size,
            "export_seconds": round(seconds, 2),
            "checks": results,
            "max_abs_diff": worst,
            "ok": worst <= tolerance,
        }
        logger.info("%s %s: max abs diff %.3g over %s", d.name, fmt, worst, [f"{h}x{w}" for h, w in sizes])
    return entry


def _load_source(source: str | Path, tmp_root: Path) -> tuple[Path, dict[str, Any]]:
    """A generator folder for ``source`` (a folder, or an MLflow ``models:/``/``runs:/`` URI) + where it came from."""
    text = str(source)
    if "://" not in text and not text.startswith("models:/") and not text.startswith("runs:/"):
        folder = Path(text)
        if not (folder / CONFIG_NAME).is_file():
            raise ExportError(f"'{folder}' is not an exported generator folder ({CONFIG_NAME} missing)")
        return folder, {"source": str(folder)}
    import mlflow

    from transfigure.tracking.config import resolve_tracking_uri
    from transfigure.tracking.registry import GENERATOR_ARTIFACT

    local = Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=text, dst_path=str(tmp_root), tracking_uri=resolve_tracking_uri()
        )
    )
    folder = local / "artifacts" / GENERATOR_ARTIFACT
    if not (folder / CONFIG_NAME).is_file():
        raise ExportError(f"{text} holds no transfigure generator (looked in {folder})")
    return folder, {"source": text}


def export_generator(
    source: str | Path,
    out_dir: str | Path,
    formats: Sequence[str] = FORMATS,
    *,
    directions: Sequence[str] | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
) -> dict[str, Any]:
    """Export the generator at ``source`` (folder with ``config.json`` or a ``models:/`` URI) to ``out_dir``.

    Writes one file per direction and format plus ``export_report.json``; returns the report.
    ``report["ok"]`` is false when an output differs from PyTorch by more than ``tolerance``.
    """
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown or not formats:
        raise ExportError(f"unknown export format(s) {unknown or formats}: use {', '.join(FORMATS)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="transfigure-export-") as tmp:
        folder, origin = _load_source(source, Path(tmp))
        doc, generators = load_generators(folder, "cpu")
    chosen = list(directions) if directions else sorted(generators)
    missing = [d for d in chosen if d not in generators]
    if missing:
        raise ExportError(f"no direction(s) {missing} in this {doc.get('variant')} model: it has {sorted(generators)}")
    import onnx
    import onnxruntime

    report: dict[str, Any] = {
        **origin,
        "variant": doc.get("variant"),
        "metadata": doc.get("metadata", {}),
        "tolerance": tolerance,
        "formats": list(formats),
        "value_range": [-1.0, 1.0],
        "versions": {"torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__},
        "directions": {},
    }
    for name in chosen:
        report["directions"][name] = _export_direction(
            _Direction(name, generators[name], doc["generators"][name]), out_dir, formats, tolerance
        )
    report["max_abs_diff"] = max(e[f]["max_abs_diff"] for e in report["directions"].values() for f in formats)
    report["ok"] = all(e[f]["ok"] for e in report["directions"].values() for f in formats)
    (out_dir / REPORT_NAME).write_text(json.dumps(report, indent=2))
    return report


# -- CLI -------------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", nargs="?", help="registered model name, e.g. cyclegan")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--version", help="registered version to export")
    which.add_argument("--alias", help="registered alias to export, e.g. champion")
    which.add_argument("--from-dir", help="export a local generator folder (config.json + *.safetensors) instead")
    parser.add_argument(
        "--format",
        nargs="+",
        choices=FORMATS,
        default=list(FORMATS),
        dest="formats",
        help="onnx and/or torchscript (default: both)",
    )
    parser.add_argument("--direction", nargs="+", dest="directions", help="directions to export (default: all)")
    parser.add_argument(
        "--out",
        help="output folder (default: data/07_model_output/<model>/export_v<version>, "
        "with --from-dir data/07_model_output/export)",
    )
    parser.add_argument(
        "--tolerance",
        type=float,
        default=DEFAULT_TOLERANCE,
        help=f"max abs difference to PyTorch on [-1, 1] outputs (default: {DEFAULT_TOLERANCE})",
    )
    parser.add_argument(
        "--log-artifacts",
        action="store_true",
        help="also log the files and the report as artifacts of the version's MLflow run (export/)",
    )


def _registered_source(model: str, ref: str) -> tuple[str, str, str | None]:
    """``models:/name/version`` URI, the concrete version and its run id (LookupError when unknown)."""
    from transfigure.tracking.client import mlflow_client
    from transfigure.tracking.registry import resolve_model_uri

    client = mlflow_client()
    uri, version = resolve_model_uri(client, model, ref)
    return uri, version, client.get_model_version(model, version).run_id


def _usage_error(message: str) -> int:
    print(f"transfigure export: error: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    run_id = None
    if args.from_dir:
        source, out = args.from_dir, args.out or "data/07_model_output/export"
    elif args.model and (args.version or args.alias):
        try:
            source, version, run_id = _registered_source(args.model, args.version or args.alias)
        except LookupError as exc:
            return _usage_error(str(exc))
        out = args.out or f"data/07_model_output/{args.model}/export_v{version}"
    else:
        return _usage_error("give MODEL with --version N or --alias NAME, or --from-dir FOLDER")
    try:
        report = export_generator(source, out, args.formats, directions=args.directions, tolerance=args.tolerance)
    except ExportError as exc:
        return _usage_error(str(exc))
    for entry in report["directions"].values():
        for fmt in args.formats:
            e = entry[fmt]
            sizes = ", ".join(f"{c['height']}x{c['width']}: {c['max_abs_diff']:.2e}" for c in e["checks"])
            print(f"{'ok  ' if e['ok'] else 'FAIL'} {Path(out) / e['file']}  max abs diff vs PyTorch ({sizes})")
    print(f"report: {Path(out) / REPORT_NAME}")
    if args.log_artifacts and run_id:
        from transfigure.tracking.client import mlflow_client

        files = [Path(out) / REPORT_NAME] + [
            Path(out) / e[f]["file"] for e in report["directions"].values() for f in args.formats
        ]
        client = mlflow_client()
        for f in files:
            client.log_artifact(run_id, str(f), "export")
        print(f"logged {len(files)} file(s) to run {run_id} under export/")
    if not report["ok"]:
        print(f"export FAILED the numeric check (tolerance {args.tolerance})", file=sys.stderr)
        return 1
    return 0


__all__ = ["ExportError", "LabelMapGenerator", "export_generator", "fold_spectral_norm"]
