"""Data loading for transfigure: strict image I/O, reference-compatible transforms,
datasets for the four on-disk layouts, and the embedded procedural default dataset.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from transfigure.data.datasets import (
    DATASET_FORMATS,
    IMAGE_EXTENSIONS,
    AlignedDataset,
    LabelIdError,
    LabelMapDataset,
    PairedDataset,
    TranslationDataset,
    UnalignedDataset,
    list_images,
    make_dataset,
)
from transfigure.data.images import ImageLoadError, convert_image, load_image, load_label_map
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

__all__ = [
    "CLASSES",
    "DATASET_FORMATS",
    "DEFAULT_SUBSETS",
    "IMAGE_EXTENSIONS",
    "AlignedDataset",
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

if TYPE_CHECKING:  # for type checkers; imported lazily at run time (see __getattr__)
    from transfigure.data.default_dataset import CLASSES, DEFAULT_SUBSETS, build_default_dataset

_LAZY = {"CLASSES", "DEFAULT_SUBSETS", "build_default_dataset"}


def __getattr__(name: str) -> object:
    # Imported lazily so ``python -m transfigure.data.default_dataset`` does not
    # import its own module twice (runpy warns about that).
    if name in _LAZY:
        from transfigure.data import default_dataset

        return getattr(default_dataset, name)
    raise AttributeError(f"module 'transfigure.data' has no attribute {name!r}")
