"""The model workers' side of the service: loaded generators, and running an adaptive batch of jobs.

Each model worker (a process of one of the model services declared in
:mod:`transfigure.serving.service`) loads the models the main process resolved
(:func:`load_models`) and answers each adaptive batch of :class:`~transfigure.serving.jobs.TranslationJob`
with one :class:`~transfigure.serving.jobs.TranslationResult` per job (:func:`run_jobs`), through
:func:`transfigure.inference.translate_and_stamp`, the one translate + watermark path.

Deadlines: a job whose deadline has passed is dropped, not translated: before its group starts,
before each generator chunk, and (``ProvenanceConfig.deadline``) just before its output would be
recorded in the ledger. A dropped job answers 504 and leaves no ledger row.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from transfigure.serving.config import ServingConfig
from transfigure.serving.jobs import TranslationJob, TranslationResult
from transfigure.serving.resolution import ResolvedModel, resolve_models, resolved_from_env

if TYPE_CHECKING:
    from transfigure.inference import Translator
    from transfigure.provenance import ModelInfo, ProvenanceConfig

logger = logging.getLogger(__name__)

#: what a job dropped at its deadline answers (the HTTP side words the detail with the configured timeout)
DEADLINE_ERROR = "timeout"


@dataclass
class LoadedModel:
    """A resolved model with its translator, ready to serve."""

    resolved: ResolvedModel
    translator: Translator

    @property
    def info(self) -> ModelInfo:
        from transfigure.provenance import ModelInfo

        r = self.resolved
        return ModelInfo(name=r.name, version=r.version, run_id=r.run_id, variant=r.variant or self.translator.variant)

    def generator_config(self, direction: str) -> dict[str, Any]:
        return dict(self.translator.config.get("generators", {}).get(direction, {}))

    def describe(self) -> dict[str, Any]:
        """What ``/info`` reports about this model."""
        t, r = self.translator, self.resolved
        gens = t.config.get("generators", {})
        label_nc = {d: int(cfg["label_nc"]) for d, cfg in gens.items() if "label_nc" in cfg}
        return {
            "model": r.name,
            "alias": r.ref,
            "version": r.version,
            "variant": t.variant,
            "run_id": r.run_id,
            "directions": t.directions,
            "takes_label_maps": bool(label_nc),
            "label_nc": label_nc or None,
            "takes_style": any(bool(cfg.get("use_vae")) for cfg in gens.values()),
            "takes_instance_maps": any(bool(cfg.get("use_instance")) for cfg in gens.values()),
            "step": t.metadata.get("step"),
            "git_commit": t.metadata.get("git_commit"),
            "metrics": r.metrics,
            "source": r.source,
            "device": str(t.device),
        }


def load_models(cfg: ServingConfig, *, threads: int | None = None) -> dict[str, LoadedModel]:
    """Load the models the main process resolved (or resolve them now, outside ``bentoml serve``);
    ``threads``: torch's intra-op threads in this process (None leaves torch's default)."""
    import torch

    from transfigure.inference import Translator

    if threads:
        torch.set_num_threads(threads)
    resolved = resolved_from_env()
    if resolved is None:
        resolved = resolve_models(cfg)
    models: dict[str, LoadedModel] = {}
    for r in resolved:
        t0 = time.perf_counter()
        translator = Translator.from_folder(r.folder, device=cfg.device)
        models[r.name] = LoadedModel(r, translator)
        logger.info(
            "loaded %s v%s (%s) on %s in %.1fs (%d torch threads)",
            r.name,
            r.version,
            translator.variant,
            translator.device,
            time.perf_counter() - t0,
            torch.get_num_threads(),
        )
    return models


# -- one batch ---------------------------------------------------------------------------------------
def _refuse_options(model: LoadedModel, name: str, direction: str, job: TranslationJob) -> TranslationResult | None:
    """400 for SPADE-only options the model cannot take (the HTTP side cannot know the model's config)."""
    asked = [
        what
        for what, given in (
            ("a style image", job.style is not None),
            ("seed", job.seed is not None),
            ("an instance map", job.instance is not None),
        )
        if given
    ]
    if not asked:
        return None
    cfg = model.generator_config(direction)
    if "label_nc" not in cfg:
        return TranslationResult.refused(
            400,
            "option not supported",
            f"{', '.join(asked)}: style, seed and instance maps are for SPADE models (label maps in); "
            f"model '{name}' is a {model.translator.variant} model",
        )
    if (job.style is not None or job.seed is not None) and not cfg.get("use_vae", False):
        return TranslationResult.refused(
            400,
            "option not supported",
            f"model '{name}' has no style encoder (trained with use_vae=False): it takes no style image or seed",
        )
    if job.instance is not None and not cfg.get("use_instance", False):
        return TranslationResult.refused(
            400,
            "option not supported",
            f"model '{name}' was trained without instance maps (use_instance=False): send no 'instance' field",
        )
    return None


def _stamped(out: Any, model: LoadedModel) -> TranslationResult:
    info = model.info
    return TranslationResult(
        data=out.data,
        media_type=out.media_type,
        provenance_id=out.provenance_id,
        manifest=out.manifest,
        model=info.name,
        version=info.version,
        variant=info.variant,
        run_id=info.run_id,
    )


def _dropped(stage: str) -> TranslationResult:
    return TranslationResult.refused(
        504, DEADLINE_ERROR, f"the request's deadline passed {stage}; the job was dropped, nothing was recorded"
    )


def run_jobs(
    models: dict[str, LoadedModel],
    jobs: Sequence[TranslationJob],
    *,
    provenance: ProvenanceConfig | None,
    batch_size: int,
    clock: Callable[[], float] = time.time,
) -> list[TranslationResult]:
    """Translate and stamp a batch of jobs; one :class:`TranslationResult` per job, in order.

    Jobs are grouped by (model, direction, output size, format, quality, seed, style): each group
    goes through :func:`transfigure.inference.translate_and_stamp` in chunks of ``batch_size``,
    which batches equal image sizes. A job gets a 4xx result of its own for an unknown model or
    direction, options its model cannot take, or an unusable image; 504 when its deadline passes
    before its output is recorded; a failure inside the generator gives 500 for its chunk only.
    """
    from transfigure.data.rules import LabelIdError
    from transfigure.inference import translate_and_stamp
    from transfigure.provenance import DeadlinePassed

    default = next(iter(models))
    results: list[TranslationResult | None] = [None] * len(jobs)
    groups: dict[tuple[Any, ...], list[int]] = {}
    dropped = 0
    for i, job in enumerate(jobs):
        name = job.model or default
        if name not in models:
            results[i] = TranslationResult.refused(
                404, "unknown model", f"model={name!r} is not served here; served: {', '.join(models)}"
            )
            continue
        translator = models[name].translator
        direction = job.direction or translator.directions[0]
        if direction not in translator.directions:
            results[i] = TranslationResult.refused(
                400,
                "invalid direction",
                f"direction={direction!r}: the {translator.variant} model '{name}' translates {', '.join(translator.directions)}",
            )
            continue
        refusal = _refuse_options(models[name], name, direction, job)
        if refusal is not None:
            results[i] = refusal
            continue
        size = (job.width, job.height) if job.width and job.height else None
        key = (name, direction, size, job.fmt, job.quality, job.seed, job.style_key)
        groups.setdefault(key, []).append(i)

    for (name, direction, size, fmt, quality, seed, _), members in groups.items():
        model = models[name]
        for start in range(0, len(members), max(1, batch_size)):
            chunk = []
            for i in members[start : start + max(1, batch_size)]:
                if jobs[i].expired(clock()):  # before its group starts, and between generator chunks
                    results[i] = _dropped("while it waited for the model")
                    dropped += 1
                else:
                    chunk.append(i)
            if not chunk:
                continue
            images, instances = [], []
            for i in chunk:
                job = jobs[i]
                job.image.filename = job.source  # named in label-map error messages
                if job.instance is not None:
                    job.instance.filename = f"{job.source} (instance map)"
                images.append(job.image)
                instances.append(job.instance)
            deadlines = [jobs[i].deadline for i in chunk if jobs[i].deadline is not None]
            config = provenance
            if deadlines:
                from transfigure.provenance import ProvenanceConfig

                config = replace(provenance or ProvenanceConfig.from_env(), deadline=min(deadlines))
            try:
                outputs = translate_and_stamp(
                    model.translator,
                    images,
                    model_info=model.info,
                    direction=direction,
                    size=size,
                    fmt=fmt,
                    quality=quality,
                    config=config,
                    batch_size=batch_size,
                    instances=instances if any(m is not None for m in instances) else None,
                    style=jobs[chunk[0]].style,
                    seed=seed,
                )
            except Exception as exc:  # noqa: BLE001 - report, keep the worker alive
                logger.exception("translating a batch of %d with %s failed", len(chunk), name)
                for i in chunk:
                    results[i] = TranslationResult.refused(500, "translation failed", f"{type(exc).__name__}: {exc}")
                continue
            for i, out in zip(chunk, outputs):
                if isinstance(out, DeadlinePassed):
                    results[i] = _dropped("before its output was recorded")
                    dropped += 1
                elif isinstance(out, LabelIdError):
                    results[i] = TranslationResult.refused(422, "unknown label ids", str(out))
                elif isinstance(out, ValueError):
                    results[i] = TranslationResult.refused(422, "unusable image", str(out))
                else:
                    results[i] = _stamped(out, model)
    if dropped:
        logger.warning("dropped %d of %d job(s) past their deadline: no image recorded or returned", dropped, len(jobs))
    return [r if r is not None else TranslationResult.refused(500, "internal error", "no result") for r in results]
