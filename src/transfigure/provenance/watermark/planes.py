"""Images of any Pillow mode as float planes in 0..255 units, and the read every layer of the mark shares.

* :func:`planes` splits an image into the channels the mark is added to and a function that rebuilds the
  same mode (16-bit and float modes scaled, palettes re-quantised, alpha kept); :func:`read_channels` is
  the detector's view of any image.
* **Clamped read.** Embedder and detector clamp every channel to [``READ_LOW`` x mean luminance,
  ``READ_HIGH``] before taking the luminance. A brightness (x -> a x) or contrast (x -> a x + (1 - a) mean)
  change maps that read exactly onto the read clamped at (a low + b, a high + b) as long as it clips
  beyond the clamp, so the content next to clipped areas, which the mark is read against, stays the same.
* **Saturation taper.** The mark fades out towards both clamps, where the read cannot see it and a
  brightness or contrast change would clip it.
* **Channels.** The mark lives in the luminance; colour images carry it on R, G and B in proportion to
  ``CHANNEL_SHARE`` (half way between equal changes and the luma weights: most of the least-squares gain
  without a visible tint; JPEG's Y has the same weights, so chroma subsampling leaves it alone).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import cv2
import numpy as np
from PIL import Image

__all__ = [
    "CHANNEL_SHARE",
    "MIN_PSNR",
    "Planes",
    "clamped_luma",
    "clamped_read",
    "limit_distortion",
    "luma",
    "planes",
    "psnr",
    "read_channels",
    "read_clamp",
    "saturation_taper",
    "taper_luma",
]

#: The output never goes below this PSNR (dB): the pattern is scaled down if it would.
MIN_PSNR: Final = 42.2
#: The mark fades out between these channel values (0..255 units) towards white ...
TAPER_HIGH: Final = (200.0, 224.0)
#: ... and towards black from this far above the read's low clamp.
TAPER_LOW: Final = (4.0, 16.0)
#: The read clamps every channel to [READ_LOW * mean luminance, READ_HIGH] before the luminance.
READ_LOW: Final = 0.18
READ_HIGH: Final = 227.0


def value_scale(mode: str, arr: np.ndarray) -> tuple[float, float, float | None]:
    """(offset, factor, clip maximum in native units or None): 0..255 units = (native - offset) * factor,
    for the single-channel numeric modes. Float images are scaled by their own value range."""
    if mode.startswith("I;16"):
        return 0.0, 1.0 / 257.0, 65535.0
    if mode == "I":
        return (0.0, 1.0 / 257.0, 65535.0) if arr.max(initial=0) > 255 else (0.0, 1.0, 255.0)
    if mode == "F":
        finite = arr[np.isfinite(arr)]
        low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        if low >= 0.0 and high <= 1.0:
            return 0.0, 255.0, 1.0
        return low, 255.0 / (high - low) if high > low else 1.0, None
    return 0.0, 1.0, 255.0


def luma(image: Image.Image) -> np.ndarray:
    """Luminance in 0..255 units (float32), for any Pillow mode."""
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        arr = np.asarray(image, dtype=np.float32)
        offset, factor, _ = value_scale(image.mode, arr)
        return np.nan_to_num((arr - offset) * factor)
    try:
        grey = image.convert("L")
    except ValueError:  # e.g. premultiplied La, LAB: through a mode Pillow can convert
        grey = image.convert("LA" if image.mode == "La" else "RGB").convert("L")
    return np.asarray(grey, dtype=np.float32)


def read_channels(image: Image.Image) -> np.ndarray:
    """The image as (H, W, C) float32 in 0..255 units (C = 1 or 3), for reading."""
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        return luma(image)[..., None]
    if image.mode not in ("RGB", "L"):
        try:
            image = image.convert("L" if image.mode in ("LA", "La", "1") else "RGB")
        except ValueError:
            image = image.convert("RGB")
    arr = np.asarray(image, dtype=np.float32)
    return arr.reshape(*arr.shape[:2], -1)


LUMA_WEIGHTS: Final = np.array([0.299, 0.587, 0.114], dtype=np.float32)
#: How a unit luminance change is shared out over R, G and B (JPEG's Y has the same luma weights w).
#: In proportion to w is the least squared error (|d|^2 = 1 / |w|^2 = 2.24 against 3 for the same
#: change on every channel: 1.27 dB more mark at the same PSNR) but puts a green-magenta tint into
#: grey areas (CIEDE2000 0.27 -> 0.87 on a grey photo). Half way between the two keeps 0.92 dB of the
#: gain (|d|^2 = 2.43) at half the tint (dE 0.52).
CHANNEL_MIX: Final = 0.5
CHANNEL_SHARE: Final = ((1.0 - CHANNEL_MIX) + CHANNEL_MIX * LUMA_WEIGHTS / float(LUMA_WEIGHTS @ LUMA_WEIGHTS)).astype(
    np.float32
)


def read_clamp(mean: float) -> tuple[float, float]:
    """The read's clamp for an image of this mean luminance (0..255 units)."""
    return (READ_LOW * mean, READ_HIGH)


def clamped_luma(channels: np.ndarray, clamp: tuple[float, float] | None) -> np.ndarray:
    """Luminance of the channels clamped to ``clamp`` = (low, high) (per channel; None: no clamp)."""
    if clamp is not None:
        channels = np.clip(channels, np.float32(clamp[0]), np.float32(clamp[1]))
    if channels.shape[2] == 1:
        return channels[..., 0]
    return cv2.transform(channels.astype(np.float32, copy=False), LUMA_WEIGHTS[None])  # channels @ weights, 2x faster


def clamped_read(channels: np.ndarray) -> tuple[float, np.ndarray]:
    """(mean luminance, luminance through the read's clamp for that mean) of an image's channels."""
    mean = float(clamped_luma(channels, None).mean())
    return mean, clamped_luma(channels, read_clamp(mean))


@dataclass
class Planes:
    """The channels the mark is added to (H, W, C float32 in 0..255 units) and how to rebuild the image."""

    values: np.ndarray
    rebuild: Callable[[np.ndarray], Image.Image]
    #: a second way to rebuild, used when the first one loses the mark (palette images)
    fallback: Callable[[np.ndarray], Image.Image] | None = None
    #: value grid (0..255 units) and range of the native pixels: 1 for 8 bit, 1/257 for 16 bit
    step: float | None = 1.0
    top: float | None = 255.0

    def finish(self, values: np.ndarray) -> np.ndarray:
        """Values as the native pixels can hold them (clipped, on the native grid)."""
        out = values if self.top is None else np.clip(values, 0.0, self.top)
        if self.step is None:
            return out
        if self.step == 1.0:  # 8 bit: one pass, in place on the clipped copy
            return np.rint(out, out=out) if out is not values else np.rint(out)
        return np.rint(out / self.step) * self.step

    def luma(self, values: np.ndarray) -> np.ndarray:
        return clamped_luma(values, None)


def _uint8_rebuilder(mode: str, extra: Image.Image | None = None) -> Callable[[np.ndarray], Image.Image]:
    def rebuild(values: np.ndarray) -> Image.Image:
        arr = np.clip(np.rint(values), 0, 255).astype(np.uint8)
        base = Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr, "L" if arr.shape[2] == 1 else "RGB")
        if extra is not None:  # alpha
            base = Image.merge(base.mode + "A", (*base.split(), extra))
        return base if base.mode == mode else base.convert(mode)

    return rebuild


def planes(image: Image.Image) -> Planes:
    """Split an image of any mode into markable planes and a function that rebuilds the same mode."""
    mode = image.mode
    if mode in ("RGB", "L"):
        arr = np.asarray(image, dtype=np.float32)
        return Planes(arr.reshape(*arr.shape[:2], -1), _uint8_rebuilder(mode))
    if mode in ("RGBA", "LA", "RGBa", "La", "PA"):
        straight = image.convert("RGBA" if mode.startswith("RGB") else "LA")
        *colour, alpha = straight.split()
        arr = np.stack([np.asarray(c, dtype=np.float32) for c in colour], axis=-1)
        return Planes(arr, _uint8_rebuilder(mode, alpha))
    if mode.startswith("I;16") or mode in ("I", "F"):
        return _numeric_planes(image)
    if mode == "P":
        return _palette_planes(image)
    if mode == "1":
        raise ValueError(
            "a bilevel (mode '1') image cannot carry the watermark (1-bit dithering destroys it); "
            "convert it to 'L' first"
        )
    # CMYK, YCbCr, HSV, LAB, RGBX, ...: through RGB and back
    via = "RGB"
    try:
        arr = np.asarray(image.convert(via), dtype=np.float32)
        Image.new(via, (1, 1)).convert(mode)
    except (ValueError, OSError) as exc:
        raise ValueError(
            f"cannot watermark an image of mode {mode!r}: Pillow cannot convert it to and from {via}"
        ) from exc
    return Planes(arr.reshape(*arr.shape[:2], -1), _uint8_rebuilder(mode))


def _numeric_planes(image: Image.Image) -> Planes:
    mode = image.mode
    arr = np.asarray(image, dtype=np.float32)
    offset, factor, top = value_scale(mode, arr)
    native_dtype = np.asarray(image).dtype

    def rebuild(values: np.ndarray) -> Image.Image:
        out = values[..., 0] / factor + offset
        if top is not None:
            out = np.clip(out, 0.0, top)
        if mode == "F":
            return Image.fromarray(out.astype(np.float32), "F")
        out = np.rint(out).astype(native_dtype)
        return Image.frombytes(mode, image.size, out.tobytes())

    step = None if mode == "F" else factor
    return Planes(
        (np.nan_to_num(arr - offset) * factor)[..., None], rebuild, step=step, top=None if top is None else top * factor
    )


def _palette_planes(image: Image.Image) -> Planes:
    """Palette images: mark in RGB, then map back to the *same* palette with error diffusion
    (which keeps the low-frequency mark); transparent pixels keep their index."""
    indices = np.asarray(image)
    transparency = image.info.get("transparency")
    arr = np.asarray(image.convert("RGB"), dtype=np.float32)

    def rebuild(values: np.ndarray, adaptive: bool = False) -> Image.Image:
        rgb = Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), "RGB")
        if adaptive:  # a fresh palette; index 255 is kept free for transparent pixels
            out = rgb.quantize(colors=255 if isinstance(transparency, int) else 256, dither=Image.Dither.FLOYDSTEINBERG)
            return _with_transparency(out, indices, transparency, 255)
        out = rgb.quantize(palette=image, dither=Image.Dither.FLOYDSTEINBERG)
        return _with_transparency(out, indices, transparency, transparency)

    return Planes(arr, rebuild, functools.partial(rebuild, adaptive=True))


def _with_transparency(out: Image.Image, indices: np.ndarray, transparency: Any, index: Any) -> Image.Image:
    """Keep the transparent pixels of a palette image transparent (as index ``index``)."""
    if isinstance(transparency, int) and isinstance(index, int):
        idx = np.asarray(out).copy()
        idx[indices == transparency] = index
        palette = (out.getpalette() or []) + [0] * 768
        out = Image.fromarray(idx, "P")
        out.putpalette(palette[:768])
        out.info["transparency"] = index
    return out


def psnr(a: Image.Image | np.ndarray, b: Image.Image | np.ndarray) -> float:
    """PSNR in dB between two images (or arrays) of the same size, on a 0..255 scale."""
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    mse = float(np.mean((x - y) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def saturation_taper(values: np.ndarray, clamp: tuple[float, float]) -> np.ndarray:
    """Per pixel and channel of ``values`` (H, W, C in 0..255 units), how much of the mark to add (0..1):
    it fades out towards the read's clamp (near white, and near black relative to the mean), where the
    read cannot see it and a brightness or contrast change would clip it away."""
    v = values.astype(np.float32, copy=False)
    low_start, low_full = clamp[0] + TAPER_LOW[0], clamp[0] + TAPER_LOW[1]
    high = np.float32(TAPER_HIGH[1]) - v
    high /= np.float32(TAPER_HIGH[1] - TAPER_HIGH[0])
    np.clip(high, 0.0, 1.0, out=high)
    low = v - np.float32(low_start)
    low /= np.float32(low_full - low_start)
    np.clip(low, 0.0, 1.0, out=low)
    high *= low
    return high


def limit_distortion(planes: Planes, marked: np.ndarray, pattern: np.ndarray) -> np.ndarray:
    """Scale the pattern down if the marked image would fall below MIN_PSNR."""
    mse = cv2.norm(marked, planes.values, cv2.NORM_L2SQR) / marked.size
    limit = 255.0**2 / 10 ** (MIN_PSNR / 10)
    if mse <= limit:
        return marked
    return planes.finish(planes.values + math.sqrt(limit / mse) * 0.98 * pattern)


def taper_luma(
    channels: np.ndarray, clamp: tuple[float, float], change: tuple[float, float] | None = None
) -> np.ndarray:
    """How much of a unit luminance change each pixel can carry (0..1): :func:`saturation_taper` of the
    channels, shared out over R, G and B as the embedder does, as a luminance. ``change`` = (a, b): the
    taper of the values a change x -> a x + b was made from, (channels - b) / a. 8-bit values go through a
    lookup table of the 256 levels (the same float32 numbers per pixel, a tenth of the time)."""
    if channels.dtype == np.float32 and channels.min() >= 0 and channels.max() <= 255:
        whole = channels.astype(np.uint8)
        if np.array_equal(whole, channels):
            levels = np.arange(256, dtype=np.float32)[:, None, None]
            if change is not None:
                levels = (levels - np.float32(change[1])) * np.float32(1.0 / change[0])
            table = saturation_taper(np.repeat(levels, channels.shape[2], axis=2), clamp)  # (256, 1, C)
            weights = (CHANNEL_SHARE * LUMA_WEIGHTS) if channels.shape[2] == 3 else np.ones(1, np.float32)
            table = (table * weights).astype(np.float32).reshape(256, 1, channels.shape[2])
            looked = (
                cv2.LUT(whole, table) if channels.shape[2] > 1 else cv2.LUT(whole[..., 0], table[..., 0])[..., None]
            )
            return (
                cv2.transform(looked, np.ones((1, channels.shape[2]), np.float32))
                if channels.shape[2] > 1
                else looked[..., 0]
            )
    if change is not None:
        channels = (channels - np.float32(change[1])) * np.float32(1.0 / change[0])
    taper = saturation_taper(channels, clamp)
    if taper.shape[2] == 3:
        taper = taper * CHANNEL_SHARE
    return clamped_luma(taper, None)
