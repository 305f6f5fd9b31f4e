"""Geometric preprocessing shared by images and label maps (no torchvision).

This re-implements ``get_params`` / ``get_transform`` of the reference
(junyanz/pytorch-CycleGAN-and-pix2pix, ``data/base_dataset.py``) with PIL and
numpy only. Random parameters are drawn once per item with
:func:`sample_params` and then applied identically to every image of the item
(A and B of a pair, or photo, label and instance map), which is what keeps
paired data aligned.

Preprocess modes (``TransformConfig.preprocess``), as in the reference:

``resize_and_crop``
    resize to ``load_size x load_size`` (aspect ratio is *not* kept), then
    crop ``crop_size x crop_size`` at ``crop_pos``.
``crop``
    crop ``crop_size x crop_size`` from the image at its own size.
``scale_width``
    scale the width to ``load_size`` keeping the aspect ratio, with the
    height raised to at least ``crop_size`` (reference ``__scale_width``).
``scale_width_and_crop``
    ``scale_width`` then crop ``crop_size x crop_size``.
``none``
    only round both sides to the nearest multiple of 4 (reference
    ``__make_power_2(base=4)``).

Differences from the reference:

* :func:`sample_params` computes the crop range from the size the image
  *really* has after resizing (the reference's ``get_params`` uses
  ``load_size * h // w`` for ``scale_width_and_crop`` while ``__scale_width``
  raises the height to ``crop_size``; the two disagree for wide images).
* ``crop`` on an image smaller than ``crop_size`` raises :class:`ValueError`
  (the reference returns it uncropped, or crops past the border and pads with
  black when only one side is too small, which yields batches of mixed sizes).
* ``none`` never rounds a side down to 0 (a side of 1 becomes 4).
* :func:`tensor_to_pil` rounds instead of truncating and keeps one-channel
  tensors as ``"L"`` (the reference's ``tensor2im`` tiles them to RGB).
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from typing import Final, Literal, get_args

import numpy as np
import torch
from PIL import Image

__all__ = [
    "PREPROCESS_MODES",
    "Preprocess",
    "TransformConfig",
    "TransformParams",
    "apply_transform",
    "output_size",
    "resized_size",
    "sample_params",
    "tensor_to_pil",
    "to_tensor",
    "transform_image",
    "transform_label",
]

logger = logging.getLogger(__name__)

Preprocess = Literal["resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "none"]
PREPROCESS_MODES: Final[tuple[str, ...]] = get_args(Preprocess)
_MIN_SIZE: Final = 4
_POWER_BASE: Final = 4


@dataclass(frozen=True)
class TransformConfig:
    """How images are resized, cropped and flipped (reference ``--preprocess`` options).

    Attributes:
        preprocess: one of :data:`PREPROCESS_MODES` (see the module docstring).
        load_size: the size images are resized to (``resize_and_crop``) or
            the width they are scaled to (``scale_width*``); unused by
            ``crop`` and ``none``.
        crop_size: side of the square crop; for ``scale_width`` also the
            minimum height.
        flip: random horizontal flips (reference: ``not --no_flip``).
    """

    preprocess: Preprocess = "resize_and_crop"
    load_size: int = 286
    crop_size: int = 256
    flip: bool = True

    def __post_init__(self) -> None:
        if self.preprocess not in PREPROCESS_MODES:
            raise ValueError(f"unknown preprocess {self.preprocess!r}; use one of {', '.join(PREPROCESS_MODES)}")
        for name in ("load_size", "crop_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name} must be an int, got {value!r}")
            if value < _MIN_SIZE:
                raise ValueError(f"{name}={value} is too small; set {name} to at least {_MIN_SIZE}")
        if not isinstance(self.flip, bool):
            raise ValueError(f"flip must be a bool, got {self.flip!r}")
        if self.preprocess in ("resize_and_crop", "scale_width_and_crop") and (self.load_size < self.crop_size):
            raise ValueError(
                f"load_size={self.load_size} is smaller than crop_size={self.crop_size} with "
                f"preprocess={self.preprocess!r}: set load_size >= crop_size "
                f"(e.g. load_size={self.crop_size}) or lower crop_size"
            )

    @property
    def crops(self) -> bool:
        """Whether this config crops (``crop`` is part of ``preprocess``)."""
        return "crop" in self.preprocess


@dataclass(frozen=True)
class TransformParams:
    """Random parameters of one item (reference ``get_params`` dict).

    Attributes:
        crop_pos: ``(x, y)`` of the crop's top-left corner in the *resized*
            image; ``(0, 0)`` when the config does not crop.
        flip: whether to flip horizontally.
    """

    crop_pos: tuple[int, int]
    flip: bool


def _scale_width_size(size: tuple[int, int], load_size: int, crop_size: int) -> tuple[int, int]:
    """Reference ``__scale_width``: width -> load_size, height >= crop_size."""
    ow, oh = size
    if ow == load_size and oh >= crop_size:
        return ow, oh
    return load_size, int(max(load_size * oh / ow, crop_size))


def _power_size(size: tuple[int, int], base: int = _POWER_BASE) -> tuple[int, int]:
    """Reference ``__make_power_2``: round each side to the nearest multiple of ``base``."""
    ow, oh = size
    return max(base, int(round(ow / base) * base)), max(base, int(round(oh / base) * base))


def resized_size(size: tuple[int, int], cfg: TransformConfig) -> tuple[int, int]:
    """Size ``(w, h)`` of an image of ``size`` after the resize step (before cropping)."""
    w, h = size
    if w < 1 or h < 1:
        raise ValueError(f"image size must be positive, got {w}x{h}")
    if cfg.preprocess == "resize_and_crop":
        return cfg.load_size, cfg.load_size
    if cfg.preprocess in ("scale_width", "scale_width_and_crop"):
        return _scale_width_size(size, cfg.load_size, cfg.crop_size)
    if cfg.preprocess == "none":
        return _power_size(size)
    return w, h  # "crop"


def _check_croppable(size: tuple[int, int], cfg: TransformConfig) -> None:
    w, h = size
    if cfg.crops and (w < cfg.crop_size or h < cfg.crop_size):
        raise ValueError(
            f"image is {w}x{h} after resizing, smaller than crop_size={cfg.crop_size} "
            f"(preprocess={cfg.preprocess!r}); use preprocess='resize_and_crop' or "
            "'scale_width_and_crop', or a smaller crop_size"
        )


def output_size(size: tuple[int, int], cfg: TransformConfig) -> tuple[int, int]:
    """Final size ``(w, h)`` that :func:`apply_transform` gives an image of ``size``."""
    resized = resized_size(size, cfg)
    if cfg.crops:
        _check_croppable(resized, cfg)
        return cfg.crop_size, cfg.crop_size
    return resized


def sample_params(size: tuple[int, int], cfg: TransformConfig, rng: random.Random) -> TransformParams:
    """Draw crop position and flip for an image of ``size = (w, h)`` (reference ``get_params``).

    Always consumes three draws from ``rng`` (x, y, flip) so the stream does
    not depend on the config.

    Raises:
        ValueError: the config crops and the (resized) image is smaller than
            ``crop_size``.
    """
    new_w, new_h = resized_size(size, cfg)
    x = rng.randint(0, max(0, new_w - cfg.crop_size))
    y = rng.randint(0, max(0, new_h - cfg.crop_size))
    flip = rng.random() > 0.5
    if not cfg.crops:
        x = y = 0
    else:
        _check_croppable((new_w, new_h), cfg)
    return TransformParams(crop_pos=(x, y), flip=bool(flip and cfg.flip))


def apply_transform(
    img: Image.Image,
    cfg: TransformConfig,
    params: TransformParams,
    resample: Image.Resampling | int = Image.Resampling.BICUBIC,
) -> Image.Image:
    """Resize / crop / flip ``img`` as the reference ``get_transform`` does with ``params``.

    Args:
        img: any PIL image (for label maps use ``resample=Image.NEAREST``).
        cfg: the preprocessing config.
        params: from :func:`sample_params` for this image's size.
        resample: PIL resampling filter for the resize steps.

    Raises:
        ValueError: the crop window does not fit the resized image (params
            sampled for another size, or an image smaller than ``crop_size``).
    """
    target = resized_size(img.size, cfg)
    if target != img.size:
        img = img.resize(target, resample)
    if cfg.crops:
        _check_croppable(img.size, cfg)
        x, y = params.crop_pos
        w, h = img.size
        if not (0 <= x <= w - cfg.crop_size and 0 <= y <= h - cfg.crop_size):
            raise ValueError(
                f"crop_pos={params.crop_pos} with crop_size={cfg.crop_size} does not fit "
                f"an image of {w}x{h}; were the params sampled for another image size?"
            )
        if (w, h) != (cfg.crop_size, cfg.crop_size):
            img = img.crop((x, y, x + cfg.crop_size, y + cfg.crop_size))
    if cfg.flip and params.flip:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return img


def to_tensor(img: Image.Image) -> torch.Tensor:
    """PIL ``"RGB"``/``"L"`` image -> float32 tensor CxHxW in [-1, 1].

    Same values as the reference's ``ToTensor()`` + ``Normalize(0.5, 0.5)``
    (``x / 127.5 - 1``).

    Raises:
        ValueError: the image is not ``"RGB"`` or ``"L"`` (use ``load_image``).
    """
    if img.mode not in ("RGB", "L"):
        raise ValueError(
            f"to_tensor expects an 'RGB' or 'L' image, got mode {img.mode!r}; load it with transfigure.data.load_image"
        )
    arr = np.asarray(img, dtype=np.float32)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    t = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))
    return t.div_(127.5).sub_(1.0)


def tensor_to_pil(t: torch.Tensor) -> Image.Image:
    """Tensor CxHxW or 1xCxHxW with values in [-1, 1] -> PIL image (1 channel "L", 3 "RGB").

    Values are clamped to [-1, 1] and rounded to 8 bit; the inverse of
    :func:`to_tensor` up to rounding.

    Raises:
        ValueError: wrong shape or channel count.
    """
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"tensor_to_pil expects a torch.Tensor, got {type(t).__name__}")
    if t.ndim == 4:
        if t.shape[0] != 1:
            raise ValueError(
                f"tensor_to_pil takes one image; got a batch of shape {tuple(t.shape)} (index it, e.g. t[0])"
            )
        t = t[0]
    if t.ndim != 3 or t.shape[0] not in (1, 3):
        raise ValueError(f"tensor_to_pil expects CxHxW or 1xCxHxW with C in (1, 3), got shape {tuple(t.shape)}")
    x = t.detach().to(device="cpu", dtype=torch.float32).clamp(-1.0, 1.0)
    x = torch.nan_to_num(x, nan=0.0)
    arr = ((x + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()
    if arr.shape[0] == 1:
        return Image.fromarray(arr[0], mode="L")
    return Image.fromarray(np.ascontiguousarray(arr.transpose(1, 2, 0)), mode="RGB")


def transform_image(img: Image.Image, cfg: TransformConfig, params: TransformParams) -> torch.Tensor:
    """:func:`apply_transform` (bicubic) then :func:`to_tensor`."""
    return to_tensor(apply_transform(img, cfg, params, Image.Resampling.BICUBIC))


def transform_label(label: np.ndarray, cfg: TransformConfig, params: TransformParams) -> torch.Tensor:
    """Apply the same geometry to an integer label/instance map with NEAREST resampling.

    Args:
        label: HxW integer array (class or instance ids, >= 0, < 2**31).

    Returns:
        ``torch.LongTensor`` of shape 1xHxW holding only ids present in ``label``.

    Raises:
        ValueError: not a 2-D integer array, or ids outside the int32 range.
    """
    arr = np.asarray(label)
    if arr.ndim != 2 or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"label must be a 2-D integer array, got shape {arr.shape} dtype {arr.dtype}")
    info = np.iinfo(np.int32)
    if arr.size and (int(arr.min()) < info.min or int(arr.max()) > info.max):
        raise ValueError("label ids must fit in int32 to be resampled")
    img = Image.fromarray(arr.astype(np.int32), mode="I")
    out = apply_transform(img, cfg, params, Image.Resampling.NEAREST)
    return torch.from_numpy(np.asarray(out).astype(np.int64))[None]
