"""The standard distortions the watermark is specified against (issue 6), as plain functions.

Used by ``benchmarks/watermark.py`` and the tests; each takes and returns a PIL image of the same
size (RGB in, RGB out; other modes are converted to RGB first). Deterministic (noise is seeded).
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageEnhance

__all__ = ["ATTACKS", "brightness", "centre_crop", "contrast", "gaussian_noise", "jpeg", "resize_back", "rotate"]


def _rgb(image: Image.Image) -> Image.Image:
    return image if image.mode == "RGB" else image.convert("RGB")


def jpeg(image: Image.Image, quality: int) -> Image.Image:
    """Re-encode as JPEG (Pillow's defaults: 4:2:0 chroma subsampling)."""
    buf = io.BytesIO()
    _rgb(image).save(buf, "JPEG", quality=quality)
    buf.seek(0)
    with Image.open(buf) as decoded:
        return decoded.convert("RGB")


def resize_back(image: Image.Image, factor: float = 0.5) -> Image.Image:
    """Resize by ``factor`` and back to the original size (bicubic both ways)."""
    image = _rgb(image)
    w, h = image.size
    small = image.resize((max(1, round(w * factor)), max(1, round(h * factor))), Image.Resampling.BICUBIC)
    return small.resize((w, h), Image.Resampling.BICUBIC)


def gaussian_noise(image: Image.Image, sigma: float = 5.0, seed: int = 0) -> Image.Image:
    """Add i.i.d. Gaussian noise (``sigma`` grey levels) to every channel; rounded and clipped."""
    arr = np.asarray(_rgb(image), dtype=np.float32)
    noisy = arr + np.random.default_rng(seed).normal(0.0, sigma, arr.shape)
    return Image.fromarray(np.clip(np.rint(noisy), 0, 255).astype(np.uint8))


def brightness(image: Image.Image, factor: float) -> Image.Image:
    """Pillow's ImageEnhance.Brightness (1.2 = +20 %)."""
    return ImageEnhance.Brightness(_rgb(image)).enhance(factor)


def contrast(image: Image.Image, factor: float) -> Image.Image:
    """Pillow's ImageEnhance.Contrast (1.2 = +20 %)."""
    return ImageEnhance.Contrast(_rgb(image)).enhance(factor)


def centre_crop(image: Image.Image, fraction: float = 0.9, rescale: bool = True) -> Image.Image:
    """Keep the central ``fraction`` of each side; rescale to the original size (bicubic) if asked."""
    image = _rgb(image)
    w, h = image.size
    cw, ch = round(w * fraction), round(h * fraction)
    left, top = (w - cw) // 2, (h - ch) // 2
    cropped = image.crop((left, top, left + cw, top + ch))
    return cropped.resize((w, h), Image.Resampling.BICUBIC) if rescale else cropped


def rotate(image: Image.Image, degrees: float) -> Image.Image:
    """Pillow's ``rotate`` as is: same size, corners black, nearest-neighbour resampling (its default)."""
    return _rgb(image).rotate(degrees)


#: name -> distortion, in the order of the benchmark table
ATTACKS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "none": _rgb,
    "jpeg90": lambda im: jpeg(im, 90),
    "jpeg75": lambda im: jpeg(im, 75),
    "jpeg50": lambda im: jpeg(im, 50),
    "resize0.5": resize_back,
    "noise5": gaussian_noise,
    "brightness+20": lambda im: brightness(im, 1.2),
    "brightness-20": lambda im: brightness(im, 0.8),
    "contrast+20": lambda im: contrast(im, 1.2),
    "contrast-20": lambda im: contrast(im, 0.8),
    "crop90": centre_crop,
    "rotate+5": lambda im: rotate(im, 5),
    "rotate-5": lambda im: rotate(im, -5),
    "resize0.5+jpeg75": lambda im: jpeg(resize_back(im), 75),
}
