"""Typed ``data`` parameters (``<variant>.data`` in ``conf/base/parameters_train_<variant>.yml``).

:class:`DataConfig` is the one place that knows which data parameter feeds what: the
dataset to use (``path``, ``default_subset``, ``default_root``, ``format``), the
:class:`~transfigure.data.transforms.TransformConfig` (``preprocess``, ``load_size``,
``crop_size``, ``flip``), the dataset-constructor arguments of each format
(:meth:`DataConfig.dataset_kwargs`), the model settings that default to the data's
(:meth:`DataConfig.model_defaults`) and, for a dataset without a test/val split, the part of
``train`` held out for evaluation (``holdout_fraction``, ``holdout_min_count``:
:meth:`DataConfig.holdout`). Unknown keys are refused by name.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from transfigure.data.datasets import TranslationDataset, make_dataset
from transfigure.data.layout import Holdout, check_format, train_holdout
from transfigure.data.transforms import Preprocess, TransformConfig

__all__ = ["DataConfig"]

#: Data parameters each format's dataset class takes (besides root, split, transform, seed).
_FORMAT_ARGS: dict[str, tuple[str, ...]] = {
    "aligned": ("direction", "input_nc", "output_nc"),
    "paired": ("direction", "input_nc", "output_nc"),
    "unaligned": ("direction", "input_nc", "output_nc", "serial_batches"),
    "labelmap": ("direction", "input_nc", "output_nc", "label_nc", "contain_dontcare_label", "use_instance"),
}
#: Data parameters that also describe the model (channels, classes, size): a variant's model
#: config takes them from the data section unless the model section sets them.
_MODEL_KEYS = ("input_nc", "output_nc", "label_nc", "contain_dontcare_label", "use_instance", "crop_size")


class DataConfig(BaseModel):
    """What to train on and how images are prepared; the keys of a ``data:`` section."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str | None = Field(None, description="dataset folder; null = the embedded default dataset")
    default_subset: str = Field("day2night", description="embedded subset used while path is null")
    default_root: str = Field("data/01_raw/default", description="where the embedded dataset is built")
    format: Literal["auto", "aligned", "paired", "unaligned", "labelmap"] = "auto"
    direction: Literal["AtoB", "BtoA"] = "AtoB"
    preprocess: Preprocess = "resize_and_crop"
    load_size: int = Field(286, ge=1)
    crop_size: int = Field(256, ge=1)
    flip: bool = True
    input_nc: int = Field(3, ge=1, description="channels of the generator's input (A after direction)")
    output_nc: int = Field(3, ge=1, description="channels of its output (B after direction)")
    label_nc: int | None = Field(None, ge=1, description="labelmap: number of classes")
    contain_dontcare_label: bool = Field(False, description="labelmap: id 255 means 'don't care'")
    use_instance: bool = Field(False, description="labelmap: read {split}_inst/ instance maps")
    serial_batches: bool = Field(False, description="unaligned: B of item i is i % len(B), not random")
    holdout_fraction: float | None = Field(
        0.1,
        gt=0,
        le=0.5,
        description="no test/ or val/ split: this fraction of train (chosen by file name hash) is held out "
        "for evaluation and not trained on; null = off (evaluation then needs a test/ or val/ split)",
    )
    holdout_min_count: int = Field(
        8, ge=1, description="hold out at least this many files (per domain), at most half of them"
    )

    @field_validator("format", mode="before")
    @classmethod
    def _auto(cls, value: object) -> object:
        return "auto" if value in (None, "") else value

    @classmethod
    def from_params(cls, params: DataConfig | Mapping[str, Any] | None) -> DataConfig:
        """Validate a ``data`` parameters mapping (as Kedro passes it).

        Raises:
            ValueError: an unknown key or a bad value; the message names the key(s).
        """
        if isinstance(params, DataConfig):
            return params
        if params is None:
            return cls()
        if not isinstance(params, Mapping):
            raise ValueError(f"the data parameters must be a mapping, got {type(params).__name__}")
        try:
            return cls(**dict(params))
        except ValidationError as exc:
            problems = []
            for error in exc.errors():
                key = ".".join(str(part) for part in error["loc"]) or "data"
                if error["type"] == "extra_forbidden":
                    problems.append(f"unknown key data.{key}")
                else:
                    problems.append(f"data.{key}={error.get('input')!r}: {error['msg']}")
            raise ValueError(
                "invalid data parameters: " + "; ".join(problems) + f". Known keys: {', '.join(cls.model_fields)}"
            ) from None

    def transform(self) -> TransformConfig:
        """The training-time resize/crop/flip of these parameters."""
        return TransformConfig(self.preprocess, self.load_size, self.crop_size, self.flip)

    def dataset_kwargs(self, fmt: str) -> dict[str, Any]:
        """The keyword arguments of ``fmt``'s dataset class that these parameters set.

        Raises:
            ValueError: unknown ``fmt``, or ``labelmap`` without ``label_nc``.
        """
        check_format(fmt)
        if fmt == "labelmap" and self.label_nc is None:
            raise ValueError("label-map data needs data.label_nc (the number of classes)")
        return {key: getattr(self, key) for key in _FORMAT_ARGS[fmt]}

    def holdout(self, root: str | os.PathLike[str], fmt: str) -> Holdout | None:
        """The part of ``root``'s train split held out for evaluation (the training side of it);
        None when the dataset has a test/val split or ``holdout_fraction`` is null."""
        return train_holdout(root, fmt, self.holdout_fraction, self.holdout_min_count)

    def make_dataset(
        self,
        root: str | os.PathLike[str],
        fmt: str,
        split: str = "train",
        *,
        seed: int = 0,
        transform: TransformConfig | None = None,
        holdout: Holdout | None = None,
    ) -> TranslationDataset:
        """The ``fmt`` dataset of ``root/split`` (``transform`` defaults to :meth:`transform`).

        The ``train`` split leaves out its held-out files (:meth:`holdout`), so no training on
        these parameters sees them; ``holdout`` picks a side explicitly (evaluation passes
        ``held_out``).
        """
        kwargs = self.dataset_kwargs(fmt)
        if holdout is None and split == "train":
            holdout = self.holdout(root, fmt)
        return make_dataset(
            fmt, root, split, transform=transform or self.transform(), seed=seed, holdout=holdout, **kwargs
        )

    def model_defaults(self, fields: Collection[str]) -> dict[str, Any]:
        """Data values a model config with ``fields`` takes as its defaults.

        Only keys the parameters set explicitly: an unset key leaves the model's own default.
        """
        return {key: getattr(self, key) for key in _MODEL_KEYS if key in fields and key in self.model_fields_set}
