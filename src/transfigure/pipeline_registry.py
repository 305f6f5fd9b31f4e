"""The project's pipelines, all named in one place.

Per variant in ``transfigure.models.VARIANTS`` (``kedro run --pipeline=<stage>_<variant>``):

    validate_<v>   the data validation that starts training, on its own (a DVC stage)
    train_<v>      validate -> train -> register -> curves -> evaluate -> promote (gated)
    evaluate_<v>   validate -> evaluate the latest (or ``<v>.evaluation.model_version``) registered version
    promote_<v>    validate -> gate the registered version into ``<v>@champion``
    translate_<v>  translate a folder with ``<v>@champion`` (``translate.<v>`` in parameters_translate.yml)

and ``prepare_data`` (build the embedded default dataset), ``data_validation`` (every variant's
validation) and ``__default__`` (= ``train_cyclegan``). Each stage's nodes and builder live in
``transfigure.pipelines.<stage>``. Kedro loads every ``conf/base/parameters*.yml`` whatever runs:
all stages of a variant read its ``<variant>.*`` keys from ``parameters_train_<variant>.yml``;
``translate_<variant>`` also reads ``translate.<variant>`` from ``parameters_translate.yml``.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Iterator, Mapping

from kedro.pipeline import Pipeline

from transfigure.models import VARIANTS

#: pipeline-name prefix -> the builder taking the variant, as (module, function) under ``transfigure.pipelines``
PER_VARIANT: dict[str, tuple[str, str]] = {
    "validate": ("data_validation.pipeline", "validation_pipeline"),
    "train": ("training.pipeline", "training_pipeline"),
    "evaluate": ("evaluation.pipeline", "standalone_evaluation_pipeline"),
    "promote": ("promotion.pipeline", "standalone_promotion_pipeline"),
    "translate": ("translation.pipeline", "translation_pipeline"),
}
#: pipelines not built per variant -> their builder (no arguments)
SINGLE: dict[str, tuple[str, str]] = {
    "prepare_data": ("prepare_data.pipeline", "create_pipeline"),
    "data_validation": ("data_validation.pipeline", "create_pipeline"),
}
DEFAULT = "train_cyclegan"


def _build(ref: tuple[str, str], *args: str) -> Pipeline:
    module, function = ref
    return getattr(importlib.import_module(f"transfigure.pipelines.{module}"), function)(*args)


class _LazyPipelines(Mapping[str, Pipeline]):
    """Pipeline name -> pipeline, built (and its stage's modules imported) on first access.

    ``kedro run --pipeline=validate_pix2pix`` then imports the validation stage only, not the
    training, MLflow and evaluation code every ``train_<variant>`` needs; listing the names
    (``kedro registry list``) builds them all.
    """

    def __init__(self, builders: dict[str, Callable[[], Pipeline]]) -> None:
        self._builders = builders
        self._built: dict[str, Pipeline] = {}

    def __getitem__(self, name: str) -> Pipeline:
        if name not in self._built:
            self._built[name] = self._builders[name]()  # KeyError for an unknown name, as Kedro expects
        return self._built[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._builders)

    def __len__(self) -> int:
        return len(self._builders)


def register_pipelines() -> Mapping[str, Pipeline]:
    """Register the project's pipelines (see the module docstring for the names)."""
    builders: dict[str, Callable[[], Pipeline]] = {name: functools.partial(_build, ref) for name, ref in SINGLE.items()}
    for prefix, ref in PER_VARIANT.items():
        for variant in VARIANTS:
            builders[f"{prefix}_{variant}"] = functools.partial(_build, ref, variant)
    builders["__default__"] = builders[DEFAULT]
    return _LazyPipelines(builders)
