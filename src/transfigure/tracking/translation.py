"""Batch translation with a model reference and an MLflow run (``translate_<variant>``, ``transfigure translate``).

:func:`load_generator` turns a model reference into a translator and the
:class:`~transfigure.provenance.ModelInfo` every output is stamped with: ``name@alias``
(``cyclegan@champion``), ``name@version`` (``cyclegan@3``), ``name@latest``, or a local exported
generator folder (``config.json`` + safetensors, or a downloaded MLflow model holding one).
:func:`translate_tracked` runs :func:`transfigure.inference.batch.translate_folder` inside an MLflow
run (experiment ``translate-<variant>``): parameters (model reference, resolved version, direction,
format, sizes, input count), metrics (translated, skipped, refused, images/s), the table
(``translations.csv`` and an MLflow table ``translations.json``), a sample grid and the summary.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow

from transfigure.inference import Translator
from transfigure.inference.batch import BatchOptions, BatchResult, sample_grid, translate_folder
from transfigure.provenance import ModelInfo, ProvenanceConfig
from transfigure.tracking.client import mlflow_client
from transfigure.tracking.config import resolve_tracking_uri
from transfigure.tracking.mlflow_utils import configure_mlflow, git_info
from transfigure.tracking.registry import GENERATOR_ARTIFACT, download_generator, resolve_model_uri

__all__ = ["LoadedGenerator", "load_generator", "parse_model_ref", "translate_tracked"]

logger = logging.getLogger(__name__)

_REF_RE = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]{0,99})(?:@(?P<ref>[A-Za-z0-9][A-Za-z0-9_.-]{0,99}))?$")


@dataclass(frozen=True)
class LoadedGenerator:
    """A translator, the model it stamps its outputs with, and where it came from."""

    translator: Translator
    info: ModelInfo
    ref: str  # as given
    source: str  # "registry" or "folder"
    folder: Path


def _generator_folder(path: Path) -> Path | None:
    """``path`` itself when it holds ``config.json``, or the generator inside a downloaded MLflow model."""
    for candidate in (path, path / "artifacts" / GENERATOR_ARTIFACT, path / GENERATOR_ARTIFACT):
        if (candidate / "config.json").is_file():
            return candidate
    return None


def parse_model_ref(ref: str) -> tuple[str, str] | Path:
    """``name@alias`` / ``name@version`` / ``name`` (= ``name@champion``) -> (name, alias or version); an
    existing folder -> its generator folder.

    Raises:
        ValueError: neither a folder holding a generator nor a model reference.
    """
    path = Path(ref).expanduser()
    if path.is_dir():
        folder = _generator_folder(path)
        if folder is None:
            raise ValueError(f"folder '{path}' holds no exported generator (config.json + <direction>.safetensors)")
        return folder
    match = _REF_RE.match(ref.strip())
    if not match:
        raise ValueError(
            f"model {ref!r} is neither a folder nor a registry reference: use name@alias (cyclegan@champion), "
            "name@version (cyclegan@3), name@latest, or an exported generator folder"
        )
    return match["name"], match["ref"] or "champion"


def _weights_digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(folder.glob("*.safetensors")) + [folder / "config.json"]:
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:12]


def load_generator(ref: str, *, device: str = "auto", tracking_uri: str | None = None) -> LoadedGenerator:
    """Load the generator ``ref`` names (see :func:`parse_model_ref`) on ``device``.

    Registry models are stamped with their name, version and run id. A local folder is stamped
    with the variant as name and ``run:<run id>`` (its config's training run) or ``local:<digest>``
    of its weights as version, so outputs of other weights are never taken for its own.

    Raises:
        ValueError: a malformed reference; LookupError: no such model or version in the registry.
    """
    parsed = parse_model_ref(ref)
    if isinstance(parsed, Path):
        translator = Translator.from_folder(parsed, device=device)
        run_id = translator.metadata.get("mlflow_run_id") or None
        version = f"run:{run_id}" if run_id else f"local:{_weights_digest(parsed)}"
        info = ModelInfo(translator.variant or parsed.name, version, run_id=run_id, variant=translator.variant or None)
        return LoadedGenerator(translator, info, ref, "folder", parsed)
    name, alias = parsed
    uri = resolve_tracking_uri(tracking_uri)
    client = mlflow_client(uri)
    _, version = resolve_model_uri(client, name, alias)
    mv = client.get_model_version(name, version)
    folder = download_generator(name, version, tracking_uri=uri)
    translator = Translator.from_folder(folder, device=device)
    info = ModelInfo(name, str(version), run_id=mv.run_id, variant=translator.variant or None)
    logger.info("translating with %s v%s (%s, run %s) on %s", name, version, ref, mv.run_id, translator.device)
    return LoadedGenerator(translator, info, ref, "registry", folder)


def _run_params(model: LoadedGenerator, options: BatchOptions, inputs: Sequence[str], output_dir: Path) -> dict:
    params: dict[str, Any] = {
        "model_ref": model.ref,
        "model_name": model.info.name,
        "model_version": model.info.version,
        "model_run_id": model.info.run_id,
        "model_source": model.source,
        "direction": options.direction or model.translator.directions[0],
        "device": str(model.translator.device),
        "inputs": ", ".join(str(i) for i in inputs),
        "output_dir": str(output_dir),
        **options.model_dump(exclude={"progress"}),
    }
    return {k: str(v)[:6000] for k, v in params.items() if v is not None}


def translate_tracked(
    model: LoadedGenerator,
    inputs: Sequence[str | Path],
    output_dir: str | Path,
    *,
    options: BatchOptions | None = None,
    experiment: str | None = None,
    run_name: str | None = None,
    tracking_uri: str | None = None,
    config: ProvenanceConfig | None = None,
) -> tuple[BatchResult, str]:
    """:func:`~transfigure.inference.batch.translate_folder` inside an MLflow run; returns (result, run id).

    ``experiment`` defaults to ``translate-<variant>``; the run is named ``run_name`` (default: the output
    folder's name). The run records parameters, counts and throughput, the table, a sample grid
    (``samples/grid.png``: input | output rows) and ``summary.json``; a run that raises ends FAILED.
    """
    options = options or BatchOptions()
    output_dir = Path(output_dir)
    variant = model.info.variant or model.info.name
    _, experiment_id = configure_mlflow(experiment or f"translate-{variant}", tracking_uri)
    inputs = [str(i) for i in inputs]
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name or output_dir.name) as run:
        mlflow.set_tags(
            {
                "variant": variant,
                "model_name": model.info.name,
                "model_version": str(model.info.version),
                "model_run_id": model.info.run_id or "",
                **git_info(),
            }
        )
        params = _run_params(model, options, inputs, output_dir)
        mlflow.log_params(params)
        result = translate_folder(
            model.translator, inputs, output_dir, model_info=model.info, options=options, config=config
        )
        mlflow.log_param("n_inputs", len(result.rows))
        mlflow.log_metrics(
            {
                "translated": result.translated,
                "skipped": result.skipped,
                "refused": len(result.refused),
                "images_per_second": result.images_per_second,
                "seconds": result.seconds,
            }
        )
        mlflow.log_artifact(str(result.table_path))
        columns = [dict(vars(row)) for row in result.rows]
        if columns:
            mlflow.log_table({key: [row[key] for row in columns] for key in columns[0]}, "translations.json")
        grid = sample_grid(result)
        if grid is not None:
            mlflow.log_image(grid, "samples/grid.png")
        mlflow.log_dict({**result.summary(), "mlflow_run_id": run.info.run_id}, "summary.json")
        return result, run.info.run_id
