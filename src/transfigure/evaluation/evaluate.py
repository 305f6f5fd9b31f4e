"""Evaluate a translator on the held-out split: FID/KID (offline Inception), L1/PSNR/SSIM, cycle L1, a report.

Metric keys (directions in :data:`~transfigure.tracking.metric_tags.METRIC_DIRECTIONS`):

* two-way models (CycleGAN, UNIT): ``fid_AtoB``, ``fid_BtoA``, ``kid_AtoB``, ``kid_BtoA``
  (each against the real images of the target domain), ``cycle_l1_A`` (``|G_BA(G_AB(a)) - a|``),
  ``cycle_l1_B``, and ``fid`` / ``kid`` = the mean of the two directions;
* one-way models (Pix2Pix, SPADE): ``fid`` and ``kid`` of the outputs against the targets;
* paired test data (aligned, paired, labelmap) adds ``l1``, ``psnr``, ``ssim`` of A -> B outputs
  against their targets.

Outputs are what users get: each test image goes through :meth:`Translator.translate`
(PIL in, 8-bit PIL out; the generators in eval mode). Same checkpoint + same files + same
parameters give the same numbers (fixed preprocessing, fixed seeds, no randomness in the
metrics).
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import torch
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from transfigure.evaluation.data import HeldOutSet, load_held_out, to_batch
from transfigure.evaluation.inception import PROTOCOL, inception_features
from transfigure.evaluation.metrics import (
    frechet_distance,
    kernel_inception_distance,
    l1_distance,
    psnr,
    ssim,
)
from transfigure.evaluation.report import png_bytes, report_grid
from transfigure.inference import Translator
from transfigure.runtime.device import resolve_device
from transfigure.tracking.client import mlflow_client
from transfigure.tracking.config import resolve_tracking_uri
from transfigure.tracking.registry import GENERATOR_ARTIFACT, download_generator, resolve_model_uri

logger = logging.getLogger(__name__)

_INVERSE = {"AtoB": "BtoA", "BtoA": "AtoB"}


class EvaluationConfig(BaseModel):
    """The ``<variant>.evaluation`` parameters (unknown keys are errors)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    split: str | None = Field(None, description="held-out split; null = 'test', else 'val'")
    size: int | None = Field(None, ge=16, description="images are resized to size x size; null = data.crop_size")
    max_images: int | None = Field(None, ge=2, description="first N images per domain (unpaired) or pairs; null = all")
    batch_size: int = Field(16, ge=1, description="images per Inception forward pass")
    kid_subset_size: int = Field(50, ge=2, description="KID subset size (capped at the number of images)")
    kid_subsets: int = Field(100, ge=1, description="KID subsets averaged")
    report_rows: int = Field(4, ge=1, description="rows of the image report (per direction for two-way models)")
    curve_images: int = Field(16, ge=2, description="images per domain of the FID curve during training (eval_every)")
    model_version: str | int | None = Field(None, description="evaluate_<variant>: version or alias; null = latest")
    seed: int = 0
    device: str = "auto"

    @classmethod
    def from_params(cls, params: dict[str, Any] | None) -> EvaluationConfig:
        try:
            return cls(**(params or {}))
        except ValidationError as exc:
            problems = "; ".join(f"evaluation.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise ValueError(f"invalid evaluation parameters: {problems}") from None


@dataclass
class EvaluationResult:
    """Metrics of one model on one held-out split, where they came from, and the image report."""

    metrics: dict[str, float]
    split: dict[str, Any]  # {"root", "format", "split", "files", "n", "fingerprint", "size", "kind"}
    model: dict[str, Any]  # {"name", "version", "run_id", "source", "step"}
    report_png: bytes | None = None
    protocol: str = field(default=PROTOCOL)

    def report_image(self) -> Image.Image | None:
        import io

        return None if self.report_png is None else Image.open(io.BytesIO(self.report_png)).convert("RGB")

    def to_metrics_json(self) -> dict[str, Any]:
        """The flat document DVC reads as metrics (``data/08_reporting/<variant>/metrics.json``).

        Numbers are metrics to DVC; it skips the strings, nulls and the ``split_files`` list."""
        version = self.model.get("version")
        return {
            **self.metrics,
            "n_images": int(self.split["n"]),
            "image_size": int(self.split["size"]),
            "split": self.split["split"],
            "split_fingerprint": self.split["fingerprint"],
            "model_name": self.model.get("name"),
            "model_version": int(version) if str(version).isdigit() else version,
            "run_id": self.model.get("run_id"),
            "split_files": list(self.split.get("files", [])),
        }


def _translate_all(
    translator: Translator, images: list[Image.Image], direction: str, instances: list[Any] | None, seed: int
) -> list[Image.Image]:
    if translator.takes_label_maps(direction):
        insts = instances or [None] * len(images)
        return [
            translator.translate(img, direction, instance=inst, seed=seed + i)
            for i, (img, inst) in enumerate(zip(images, insts))
        ]
    return [translator.translate(img, direction) for img in images]


def _check_compatible(translator: Translator, held: HeldOutSet) -> None:
    if "AtoB" not in translator.directions:
        raise ValueError(f"this {translator.variant} model has no AtoB generator (directions {translator.directions})")
    takes_labels = translator.takes_label_maps("AtoB")
    if takes_labels != (held.kind == "labelmap"):
        what = "label maps" if takes_labels else "images"
        raise ValueError(
            f"the {translator.variant} model translates {what}, but the held-out data in '{held.root}' is "
            f"{held.format!r}; evaluate it on a dataset of the layout it was trained on"
        )


def evaluate_held_out(
    translator: Translator,
    held: HeldOutSet,
    config: EvaluationConfig,
    *,
    fid_only: bool = False,
    real_features: dict[str, np.ndarray] | None = None,
    device: torch.device | None = None,
) -> tuple[dict[str, float], list[list[Image.Image]]]:
    """Metrics and report rows of ``translator`` on ``held``.

    ``fid_only`` computes just ``fid`` (the training-time curve); ``real_features`` caches the real
    images' Inception features per domain ("A", "B") across calls.
    """
    _check_compatible(translator, held)
    scorer = _Scorer(
        translator,
        held,
        config,
        device or resolve_device(config.device),
        real_features if real_features is not None else {},
        fid_only,
    )
    two_way = held.kind != "labelmap" and {"AtoB", "BtoA"} <= set(translator.directions)
    metrics: dict[str, float] = {}
    rows: list[list[Image.Image]] = []
    for direction in ("AtoB", "BtoA") if two_way else ("AtoB",):
        metrics.update(scorer.direction(direction, cycle=two_way and not fid_only))
        if two_way and held.kind == "unpaired":
            rows += scorer.rows.get(direction, [])
    if two_way:
        for key in ("fid", "kid"):
            if f"{key}_AtoB" in metrics:
                metrics[key] = (metrics[f"{key}_AtoB"] + metrics[f"{key}_BtoA"]) / 2
    else:
        metrics = {k.removesuffix("_AtoB"): v for k, v in metrics.items()}
    if held.kind != "unpaired" and not fid_only:
        out, target = to_batch(scorer.fakes["AtoB"]), to_batch(held.b)
        metrics.update(l1=l1_distance(out, target), psnr=psnr(out, target), ssim=ssim(out, target))
    if held.kind != "unpaired" or not two_way:  # input | output (| target)
        targets: list[Image.Image | None] = list(held.b) if held.kind != "unpaired" else [None] * len(held.a)
        rows = [[x, y, *([t] if t is not None else [])] for x, y, t in zip(held.a, scorer.fakes["AtoB"], targets)]
        rows = rows[: config.report_rows]
    bad = {k: v for k, v in metrics.items() if not np.isfinite(v)}
    if bad:
        raise FloatingPointError(
            f"non-finite metrics {bad} on '{held.root}' ({held.split}): the model outputs NaN/inf?"
        )
    return metrics, rows


class _Scorer:
    """Translates one direction of the held-out set and scores it against the real target domain."""

    def __init__(
        self,
        translator: Translator,
        held: HeldOutSet,
        config: EvaluationConfig,
        device: torch.device,
        cache: dict[str, np.ndarray],
        fid_only: bool,
    ) -> None:
        self.translator, self.held, self.config, self.device = translator, held, config, device
        self.cache, self.fid_only = cache, fid_only
        self.fakes: dict[str, list[Image.Image]] = {}
        self.rows: dict[str, list[list[Image.Image]]] = {}

    def features(self, images: list[Image.Image]) -> np.ndarray:
        return inception_features(to_batch(images), batch_size=self.config.batch_size, device=self.device)

    def direction(self, direction: str, *, cycle: bool) -> dict[str, float]:
        """``fid_<direction>`` (+ ``kid_<direction>``, and ``cycle_l1_<source>`` with ``cycle``)."""
        src, dst = ("A", "B") if direction == "AtoB" else ("B", "A")
        real = {"A": self.held.a, "B": self.held.b}
        cfg = self.config
        fake = _translate_all(
            self.translator, real[src], direction, self.held.instances if src == "A" else None, cfg.seed
        )
        self.fakes[direction] = fake
        if dst not in self.cache:
            self.cache[dst] = self.features(real[dst])
        fake_features = self.features(fake)
        out = {f"fid_{direction}": frechet_distance(self.cache[dst], fake_features)}
        if self.fid_only:
            return out
        out[f"kid_{direction}"] = kernel_inception_distance(
            self.cache[dst], fake_features, subset_size=cfg.kid_subset_size, subsets=cfg.kid_subsets, seed=cfg.seed
        )[0]
        if cycle:
            rec = _translate_all(self.translator, fake, _INVERSE[direction], None, cfg.seed)
            out[f"cycle_l1_{src}"] = l1_distance(to_batch(rec), to_batch(real[src]))
            self.rows[direction] = [list(r) for r in zip(real[src], fake, rec)][: cfg.report_rows]
        return out


def _report_headers(held: HeldOutSet, columns: int) -> list[str]:
    if held.kind == "unpaired" and columns == 3:
        return ["input", "translated", "reconstructed"]
    return ["input", "output", "target"][:columns]


def _model_info(translator: Translator, model: dict[str, Any] | None) -> dict[str, Any]:
    meta = translator.metadata
    base = {
        "name": translator.variant,
        "version": None,
        "run_id": meta.get("mlflow_run_id"),
        "source": None,
        "step": meta.get("step"),
    }
    return {**base, **(model or {})}


def evaluate_translator(
    translator: Translator,
    dataset: dict[str, Any],
    data: dict[str, Any],
    evaluation: dict[str, Any],
    *,
    model: dict[str, Any] | None = None,
) -> EvaluationResult:
    """Evaluate ``translator`` on the held-out split of ``dataset`` (the validation pipeline's
    ``validated_dataset``), preprocessed by ``data`` (the variant's data parameters) and the
    ``evaluation`` parameters. ``model`` (name, version, run_id, source) is recorded with the result."""
    config = EvaluationConfig.from_params(evaluation)
    held = load_held_out(dataset, data, split=config.split, size=config.size, max_images=config.max_images)
    logger.info(
        "evaluating %s on %s (%s split, %d samples at %d px)",
        translator.variant,
        held.root,
        held.split,
        held.n,
        held.size,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        metrics, rows = evaluate_held_out(translator, held, config)
    report = png_bytes(report_grid(rows, _report_headers(held, len(rows[0])))) if rows else None
    result = EvaluationResult(
        metrics=metrics, split=held.describe(), model=_model_info(translator, model), report_png=report
    )
    logger.info("evaluation of %s: %s", result.model.get("name"), {k: round(v, 4) for k, v in metrics.items()})
    return result


def evaluate_model_folder(
    folder: str,
    dataset: dict[str, Any],
    data: dict[str, Any],
    evaluation: dict[str, Any],
    *,
    model: dict[str, Any] | None = None,
) -> EvaluationResult:
    """Evaluate an exported generator folder (``config.json`` + safetensors)."""
    config = EvaluationConfig.from_params(evaluation)
    translator = Translator.from_folder(folder, device=config.device)
    return evaluate_translator(translator, dataset, data, evaluation, model=model)


def evaluate_registered(
    name: str,
    version_or_alias: str | int,
    dataset: dict[str, Any],
    data: dict[str, Any],
    evaluation: dict[str, Any],
    *,
    tracking_uri: str | None = None,
) -> EvaluationResult:
    """Evaluate version ``version_or_alias`` (a number, ``"latest"`` or an alias) of registered model ``name``.

    The store is ``$MLFLOW_TRACKING_URI``, else ``tracking_uri``, else the project's sqlite store.
    """
    uri = resolve_tracking_uri(tracking_uri)
    client = mlflow_client(uri)
    _, version = resolve_model_uri(client, name, version_or_alias)
    mv = client.get_model_version(name, version)
    with tempfile.TemporaryDirectory(prefix="transfigure-eval-") as tmp:
        folder = download_generator(name, version, tracking_uri=uri, dst=tmp)
        info = {"name": name, "version": str(version), "run_id": mv.run_id, "source": mv.source}
        return evaluate_model_folder(str(folder), dataset, data, evaluation, model=info)


def evaluate_logged_model(
    model_uri: str,
    dataset: dict[str, Any],
    data: dict[str, Any],
    evaluation: dict[str, Any],
    *,
    run_id: str | None = None,
    tracking_uri: str | None = None,
) -> EvaluationResult:
    """Evaluate a logged (not registered) generator model, e.g. ``models:/m-...`` or ``runs:/<id>/generator``."""
    uri = resolve_tracking_uri(tracking_uri)
    with tempfile.TemporaryDirectory(prefix="transfigure-eval-") as tmp:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=tmp, tracking_uri=uri))
        folder = local / "artifacts" / GENERATOR_ARTIFACT
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(f"model {model_uri} holds no transfigure generator (looked in {folder})")
        info = {"name": None, "version": None, "run_id": run_id, "source": model_uri}
        return evaluate_model_folder(str(folder), dataset, data, evaluation, model=info)
