"""Log exported generators as MLflow models, register them, and fetch them back."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from transfigure.inference import Translator, pyfunc_model_path
from transfigure.tracking.client import mlflow_client
from transfigure.tracking.config import resolve_tracking_uri

logger = logging.getLogger(__name__)

#: the "models from code" file MLflow copies into every logged generator model (it runs on load)
PYFUNC_CODE = pyfunc_model_path()
GENERATOR_ARTIFACT = "generator"


def _pip_requirements() -> list[str]:
    import torch

    return [f"torch=={torch.__version__.split('+')[0]}", "safetensors", "pillow", "numpy", "pandas", "transfigure"]


def generator_signature() -> Any:
    """Pyfunc I/O (see :mod:`transfigure.inference.pyfunc_model`): encoded image bytes (+ optional direction,
    format, quality, width, height, seed, style image) in; stamped image bytes, provenance id, media type
    and a per-row error out."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

    optional = [("string", "direction"), ("string", "format"), ("long", "quality"), ("long", "width")]
    optional += [("long", "height"), ("long", "seed"), ("binary", "style")]
    return ModelSignature(
        inputs=Schema([ColSpec("binary", "image"), *(ColSpec(t, name, required=False) for t, name in optional)]),
        outputs=Schema(
            [
                ColSpec("binary", "image", required=False),
                ColSpec("string", "provenance_id", required=False),
                ColSpec("string", "media_type", required=False),
                ColSpec("string", "error", required=False),
            ]
        ),
        params=ParamSchema([ParamSpec("direction", "string", "AtoB")]),
    )


def _input_example(export_dir: Path) -> Any:
    """A 64x64 PNG MLflow runs the logged model on, proving it loads and predicts: grey RGB for
    image generators, an all-zeros label map (class 0) for label-map generators (SPADE). Its output
    is stamped like any other (a ledger row records the check; 64 px is the smallest output stamped)."""
    import io
    import json

    import pandas as pd
    from PIL import Image

    generators = json.loads((export_dir / "config.json").read_text()).get("generators", {})
    takes_labels = any("label_nc" in cfg for cfg in generators.values())
    buf = io.BytesIO()
    (Image.new("L", (64, 64), 0) if takes_labels else Image.new("RGB", (64, 64), (128, 128, 128))).save(
        buf, format="PNG"
    )
    return pd.DataFrame({"image": [buf.getvalue()]})


def log_generator_model(
    export_dir: str | Path, *, name: str = "generator", registered_model_name: str | None = None
) -> Any:
    """Log ``export_dir`` (safetensors + config.json) as a pyfunc model of the active run.

    ``registered_model_name``: the registry name its versions will have; the model stamps it into its
    outputs (``model_config``; without it, the variant).
    """
    export_dir = Path(export_dir)
    if export_dir.name != GENERATOR_ARTIFACT:
        raise ValueError(f"export folder must be named '{GENERATOR_ARTIFACT}', got '{export_dir}'")
    return mlflow.pyfunc.log_model(
        name=name,
        python_model=str(PYFUNC_CODE),
        artifacts={GENERATOR_ARTIFACT: str(export_dir)},
        model_config={"registered_model_name": registered_model_name} if registered_model_name else None,
        pip_requirements=_pip_requirements(),
        signature=generator_signature(),
        input_example=_input_example(export_dir),
    )


#: parameters copied onto each registered version as ``param.<key>`` (when the run has them)
KEY_PARAMS: tuple[str, ...] = (
    "model.netG",
    "model.num_downs",
    "model.ngf",
    "model.ndf",
    "model.dim",
    "model.n_res",
    "model.label_nc",
    "model.lr",
    "model.gan_mode",
    "data.crop_size",
    "training.batch_size",
    "training.n_epochs",
    "training.n_epochs_decay",
    "training.max_steps",
    "training.seed",
)
#: run tags copied onto each registered version
RUN_TAGS_FOR_VERSION: tuple[str, ...] = ("variant", "git_commit", "git_dirty", "dataset_fingerprint")


def params_digest(params: Mapping[str, str]) -> str:
    """sha256 over a run's (flattened) parameters: equal digests mean identical configurations."""
    doc = json.dumps(sorted((str(k), str(v)) for k, v in params.items()), separators=(",", ":"))
    return hashlib.sha256(doc.encode()).hexdigest()


def version_tags_from_run(client: MlflowClient, run_id: str) -> dict[str, str]:
    """What a registered version should carry about the run that made it: run id, git commit (and
    dirty flag), training-data fingerprint, the key parameters and a digest of all of them."""
    run = client.get_run(run_id)
    params, run_tags = run.data.params, run.data.tags
    tags = {"run_id": run_id, "params_digest": params_digest(params)}
    tags.update({k: run_tags[k] for k in RUN_TAGS_FOR_VERSION if run_tags.get(k)})
    tags.update({f"param.{k}": params[k] for k in KEY_PARAMS if k in params and params[k] != "None"})
    return tags


def _num(value: float) -> str:
    return f"{value:.4g}"


def version_description(client: MlflowClient, run_id: str, version_tags: Mapping[str, str] | None = None) -> str:
    """A registered version's description (Markdown, shown under *Models > name > version*): what it
    was trained on, for how long, its final losses and FID curve, and, once evaluated (version tags
    ``metric.<key>``, ``eval_split``, ``eval_n_images``), its held-out metrics."""
    run = client.get_run(run_id)
    tags, metrics, params = run.data.tags, run.data.metrics, run.data.params
    variant = tags.get("variant", "model")
    root = tags.get("dataset_root", "")
    data = Path(root.rstrip("/")).name or "unknown data"
    facts = [tags.get("dataset_format", "")]
    if "data_images" in metrics:
        facts.append(f"{int(metrics['data_images'])} images")
    if tags.get("dataset_fingerprint"):
        facts.append(f"fingerprint `{tags['dataset_fingerprint'][:12]}`")
    step = int(metrics.get("final_step", 0))
    lines = [f"**{variant}** trained on **{data}** ({', '.join(f for f in facts if f)}) for **{step} steps**"]
    if "train_seconds" in metrics:
        lines[0] += f" in {metrics['train_seconds']:.0f} s"
    if params.get("data.crop_size"):
        lines[0] += f", {params['data.crop_size']} px crops"
    lines[0] += "."
    losses = {k.removeprefix("loss_"): v for k, v in sorted(metrics.items()) if k.startswith("loss_")}
    if losses:
        lines.append("Final losses: " + ", ".join(f"{k} {_num(v)}" for k, v in losses.items()) + ".")
    if "fid" in metrics:
        lines.append(f"FID during training (last point of the curve): {_num(metrics['fid'])}.")
    vtags = version_tags or {}
    evaluated = {k.removeprefix("metric."): v for k, v in sorted(vtags.items()) if k.startswith("metric.")}
    if evaluated:
        where = f"{vtags.get('eval_split', 'held-out')} split, {vtags.get('eval_n_images', '?')} images"
        shown = ", ".join(f"{k} {_num(float(v))}" for k, v in evaluated.items())
        lines.append(f"Held-out evaluation ({where}): {shown}.")
    lines.append(f"Run `{run_id}`" + (f", commit `{tags['git_commit'][:12]}`" if tags.get("git_commit") else "") + ".")
    return "\n\n".join(lines)


def describe_version(client: MlflowClient, name: str, version: str) -> str:
    """Rewrite the description of ``name`` version ``version`` from its run and its tags; returns it."""
    mv = client.get_model_version(name, str(version))
    if not mv.run_id:
        return mv.description or ""
    text = version_description(client, mv.run_id, mv.tags)
    client.update_model_version(name, str(version), description=text)
    return text


_LOGGED_MODEL_RE = re.compile(r"^models:/(m-[0-9a-f]+)/?$")


def logged_model_id(model_uri: str) -> str | None:
    """``models:/m-<id>`` (a logged model, MLflow 3) -> ``m-<id>``; None for other URIs.

    A tracking server refuses such a source unless the model id comes with it
    (``INVALID_PARAMETER_VALUE: ... model_id request parameter must identify the resource``).
    """
    match = _LOGGED_MODEL_RE.match(model_uri)
    return match.group(1) if match else None


def register_generator(
    client: MlflowClient,
    model_uri: str,
    name: str,
    *,
    run_id: str | None = None,
    tags: dict[str, str] | None = None,
    description: str | None = None,
) -> Any:
    """Register ``model_uri`` as a new version of ``name`` (creating the registered model if needed).

    With ``run_id`` the version is tagged from its run (:func:`version_tags_from_run`); ``tags``
    are added on top. Evaluation adds ``metric.<key>`` and ``eval_split_fingerprint`` later.
    """
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name, description=f"transfigure {name} generator")
    all_tags = {**(version_tags_from_run(client, run_id) if run_id else {}), **(tags or {})}
    version = client.create_model_version(
        name, model_uri, run_id=run_id, tags=all_tags, description=description, model_id=logged_model_id(model_uri)
    )
    logger.info("registered %s version %s (%s)", name, version.version, model_uri)
    return version


_VERSION_RE = re.compile(r"^\d+$")


def resolve_model_uri(client: MlflowClient, name: str, alias_or_version: str | int) -> tuple[str, str]:
    """``models:/`` URI and concrete version for an alias, a version number or ``latest``."""
    ref = str(alias_or_version)
    try:
        if _VERSION_RE.match(ref):
            mv = client.get_model_version(name, ref)
        elif ref == "latest":
            versions = client.search_model_versions(f"name='{name}'")
            if not versions:
                raise MlflowException(f"no versions of {name}")
            mv = max(versions, key=lambda v: int(v.version))
        else:
            mv = client.get_model_version_by_alias(name, ref)
    except MlflowException as exc:
        if ref == "latest":
            hint = f"run `kedro run --pipeline=train_{name}` to train and register one"
        elif not _VERSION_RE.match(ref):
            hint = (
                f"no version carries the alias {ref!r}; give it one in the MLflow UI (Models > {name} > version > "
                f"Aliases) or with MlflowClient().set_registered_model_alias({name!r}, {ref!r}, VERSION); "
                f"`kedro run --pipeline=train_{name}` trains and registers a new version"
            )
        else:
            hint = "check the name and version in the MLflow UI"
        raise LookupError(f"no model '{name}' {ref!r} in the MLflow registry: {hint} ({exc.message})") from exc
    return f"models:/{name}/{mv.version}", str(mv.version)


def download_generator(
    name: str,
    alias_or_version: str | int = "champion",
    *,
    tracking_uri: str | None = None,
    dst: str | Path | None = None,
) -> Path:
    """Download a registered generator and return the folder holding its ``config.json``."""
    uri = resolve_tracking_uri(tracking_uri)
    client = mlflow_client(uri)
    model_uri, _ = resolve_model_uri(client, name, alias_or_version)
    mlflow.set_tracking_uri(uri)
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(dst) if dst else None))
    folder = local / "artifacts" / GENERATOR_ARTIFACT
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"model {model_uri} holds no transfigure generator (looked in {folder})")
    return folder


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
    folder = download_generator(name, alias_or_version, tracking_uri=tracking_uri)
    translator = Translator.from_folder(folder, device=device)
    logger.info("loaded %s %s from the registry (%s)", name, alias_or_version, folder)
    return translator


__all__ = [
    "describe_version",
    "download_generator",
    "load_translator",
    "log_generator_model",
    "logged_model_id",
    "params_digest",
    "register_generator",
    "resolve_model_uri",
    "version_description",
    "version_tags_from_run",
]
