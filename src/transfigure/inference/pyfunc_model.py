"""MLflow "models from code" definition of a transfigure generator: every image it returns is stamped.

MLflow stores a copy of this file (not a pickle) next to the safetensors weights; loading
the model runs that copy and reads weights + JSON. Copies stored by earlier releases (logged
from ``transfigure/tracking/pyfunc_model.py``, or this file before outputs were stamped) run the
same way: they need only ``transfigure.inference.Translator``, which must therefore stay importable
under that name (tests/inference/test_pyfunc_model.py loads such a copy).

``predict`` goes through :func:`transfigure.inference.translate_and_stamp`, like the service and
batch translation: each output carries the watermark, a signed manifest and a ledger row
(:meth:`transfigure.provenance.ProvenanceConfig.from_env`), so ``mlflow models serve -m
models:/cyclegan@champion`` is a marked deployment path too. The model named in them: the registry
name given at log time (``model_config={"registered_model_name": ...}``; else the variant), the
version registered from the generator's training run (looked up once, on the first prediction,
through :func:`transfigure.tracking.client.mlflow_client`; ``run:<run id>`` when no registry holds
it or none is reachable, ``unregistered`` without a run id), the run id and variant from the
generator's ``config.json``.

Input: a pandas DataFrame, one row per image:

=============  =======  ==========================================================================
``image``      bytes    the encoded image (PNG, JPEG, WebP, ...); a label map for SPADE
``direction``  string   optional; default the ``direction`` parameter (``AtoB``)
``format``     string   optional output format: ``png`` (default), ``jpeg``, ``webp``
``quality``    long     optional JPEG/WebP quality, 1..100
``width``      long     optional output width (alone: the aspect ratio is kept)
``height``     long     optional output height
``seed``       long     optional: SPADE with a style encoder, the random style's seed
``style``      bytes    optional: SPADE with a style encoder, an image whose style is copied
=============  =======  ==========================================================================

Give an optional column for every row or leave it out (MLflow refuses a long column with gaps).

Output: one row per input row, in order: ``image`` (the stamped encoded bytes), ``provenance_id``,
``media_type`` and ``error``. A row that cannot be translated (undecodable or oversized image, unknown
direction, a label map with unknown class ids, too small to carry a watermark, ...) gets its reason
in ``error`` and None in the other columns; it never fails the other rows. Images and outputs may have
at most 4096x4096 pixels (:data:`transfigure.inference.batch.DEFAULT_MAX_PIXELS`); outputs need 64 pixels
a side (:data:`~transfigure.inference.batch.MIN_OUTPUT_SIDE`) to carry a reliable watermark, as in the service.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd

logger = logging.getLogger(__name__)

#: optional request columns, besides ``image``
OPTION_COLUMNS = ("direction", "format", "quality", "width", "height", "seed", "style")


def registered_version(name: str, run_id: str | None) -> str:
    """The version of ``name`` registered from ``run_id`` (the first, when registered more than once), or
    ``run:<run id>`` when the registry holds none or cannot be reached; ``unregistered`` without a run."""
    if not run_id:
        return "unregistered"
    fallback = f"run:{run_id}"
    from transfigure.tracking.client import mlflow_client
    from transfigure.tracking.config import resolve_tracking_uri

    uri = resolve_tracking_uri()
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        return fallback  # no store here: do not create an empty one
    try:
        versions = [v for v in mlflow_client(uri).search_model_versions(f"run_id='{run_id}'") if v.name == name]
    except Exception as exc:  # noqa: BLE001 - a registry that cannot be reached must not stop predictions
        logger.warning(
            "cannot look up the registered version of %s (run %s): %s; stamping %s", name, run_id, exc, fallback
        )
        return fallback
    return str(min(int(v.version) for v in versions)) if versions else fallback


def _cell(row: pd.Series, key: str) -> Any:
    """The row's value of an optional column, None when absent or missing."""
    if key not in row.index:
        return None
    value = row[key]
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value


class GeneratorModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:  # type: ignore[no-untyped-def]
        from transfigure.inference import Translator

        self.translator = Translator.from_folder(context.artifacts["generator"])
        model_config = dict(getattr(context, "model_config", None) or {})
        self.variant = self.translator.variant or None
        self.run_id = self.translator.metadata.get("mlflow_run_id") or None
        self.name = str(model_config.get("registered_model_name") or self.variant or "generator")
        self._info: Any = None

    def model_info(self) -> Any:
        """The :class:`~transfigure.provenance.ModelInfo` stamped into outputs (the version looked up once)."""
        if self._info is None:
            from transfigure.provenance import ModelInfo

            version = registered_version(self.name, self.run_id)
            self._info = ModelInfo(self.name, version, run_id=self.run_id, variant=self.variant)
        return self._info

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:  # type: ignore[no-untyped-def]
        from transfigure.inference import translate_and_stamp
        from transfigure.inference.batch import DEFAULT_MAX_PIXELS, BatchOptions, decode_input_bytes

        default_direction = (params or {}).get("direction") or "AtoB"
        rows = model_input.reset_index(drop=True)
        n = len(rows)
        out: dict[str, list[Any]] = {"image": [None] * n, "provenance_id": [None] * n, "media_type": [None] * n}
        errors: list[str | None] = [None] * n
        groups: dict[tuple[Any, ...], list[tuple[int, Any]]] = {}
        for i, row in rows.iterrows():
            try:
                options = BatchOptions(
                    direction=_cell(row, "direction") or default_direction,
                    format=_cell(row, "format") or "png",
                    **{k: int(v) for k in ("quality", "width", "height", "seed") if (v := _cell(row, k)) is not None},
                )
                image = decode_input_bytes(bytes(row["image"]), max_pixels=DEFAULT_MAX_PIXELS)
                size = options.output_size(image.size)  # ValueError: under 64 px a side or over the pixel bound
                style = _cell(row, "style")
                key = (
                    options.direction,
                    options.encoder,
                    options.quality,
                    options.seed,
                    size,
                    bytes(style) if style is not None else None,
                )
            except (ValueError, TypeError) as exc:  # UntrustedImageError and pydantic's errors are ValueErrors
                errors[i] = _reason(exc)
                continue
            groups.setdefault(key, []).append((i, image))
        for (direction, fmt, quality, seed, size, style_bytes), members in groups.items():
            try:
                style = decode_input_bytes(style_bytes, max_pixels=DEFAULT_MAX_PIXELS) if style_bytes else None
                results = translate_and_stamp(
                    self.translator,
                    [image for _, image in members],
                    model_info=self.model_info(),
                    direction=direction,
                    size=size,
                    fmt=fmt,
                    quality=quality,
                    style=style,
                    seed=seed,
                )
            except (ValueError, RuntimeError) as exc:  # unknown direction, seed/style for a model without them,
                results = [exc] * len(members)  # a bad style image, the generator out of memory
            for (i, _), result in zip(members, results):
                if isinstance(result, Exception):
                    errors[i] = _reason(result)
                else:
                    out["image"][i], out["provenance_id"][i] = result.data, result.provenance_id
                    out["media_type"][i] = result.media_type
        # object columns keep None as None (JSON null from `mlflow models serve`), not NaN
        return pd.DataFrame({key: pd.Series(values, dtype=object) for key, values in {**out, "error": errors}.items()})


def _reason(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):  # pydantic: one line per field
        try:
            return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors())
        except Exception:  # noqa: BLE001
            pass
    return str(exc)


mlflow.models.set_model(GeneratorModel())
