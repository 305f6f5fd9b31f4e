"""Data loading for transfigure: dataset layouts and image rules, strict image I/O,
reference-compatible transforms, datasets for the four on-disk layouts, the typed ``data``
parameters and the embedded procedural default dataset.

Names are imported on first use, so that ``transfigure.data.layout`` and
``transfigure.data.rules`` (used by validation, provenance and serving) do not pull in torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__all__ = [
    "CLASSES",
    "DATASET_FORMATS",
    "DEFAULT_SUBSETS",
    "IMAGE_EXTENSIONS",
    "AlignedDataset",
    "DataConfig",
    "ImageLoadError",
    "LabelIdError",
    "LabelMapDataset",
    "PairedDataset",
    "TransformConfig",
    "TransformParams",
    "TranslationDataset",
    "UnalignedDataset",
    "apply_transform",
    "build_default_dataset",
    "convert_image",
    "list_images",
    "load_image",
    "load_label_map",
    "make_dataset",
    "sample_params",
    "tensor_to_pil",
    "to_tensor",
    "transform_image",
    "transform_label",
]

if TYPE_CHECKING:
    from transfigure.data.config import DataConfig
    from transfigure.data.datasets import (
        DATASET_FORMATS,
        AlignedDataset,
        LabelMapDataset,
        PairedDataset,
        TranslationDataset,
        UnalignedDataset,
        make_dataset,
    )
    from transfigure.data.default_dataset import CLASSES, DEFAULT_SUBSETS, build_default_dataset
    from transfigure.data.images import ImageLoadError, convert_image, load_image, load_label_map
    from transfigure.data.layout import IMAGE_EXTENSIONS, list_images
    from transfigure.data.rules import LabelIdError
    from transfigure.data.transforms import (
        TransformConfig,
        TransformParams,
        apply_transform,
        sample_params,
        tensor_to_pil,
        to_tensor,
        transform_image,
        transform_label,
    )

_HOME = {
    "DataConfig": "config",
    "DATASET_FORMATS": "datasets",
    "AlignedDataset": "datasets",
    "LabelMapDataset": "datasets",
    "PairedDataset": "datasets",
    "TranslationDataset": "datasets",
    "UnalignedDataset": "datasets",
    "make_dataset": "datasets",
    # also keeps ``python -m transfigure.data.default_dataset`` from importing its own module
    # twice (runpy warns about that)
    "CLASSES": "default_dataset",
    "DEFAULT_SUBSETS": "default_dataset",
    "build_default_dataset": "default_dataset",
    "ImageLoadError": "images",
    "convert_image": "images",
    "load_image": "images",
    "load_label_map": "images",
    "IMAGE_EXTENSIONS": "layout",
    "list_images": "layout",
    "LabelIdError": "rules",
    "TransformConfig": "transforms",
    "TransformParams": "transforms",
    "apply_transform": "transforms",
    "sample_params": "transforms",
    "tensor_to_pil": "transforms",
    "to_tensor": "transforms",
    "transform_image": "transforms",
    "transform_label": "transforms",
}


def __getattr__(name: str) -> object:
    if name in _HOME:
        return getattr(importlib.import_module(f"transfigure.data.{_HOME[name]}"), name)
    raise AttributeError(f"module 'transfigure.data' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
