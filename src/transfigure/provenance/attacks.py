"""The edits the watermark is specified against, as plain functions.

Used by ``benchmarks/watermark.py`` and the tests. Each takes a PIL image and returns the edited one
(RGB in, RGB out; other modes are converted first); a few take the photo's index to vary the corner or
the sign of an angle. Deterministic (noise is seeded).

* ``ATTACKS``: the signal-processing edits of the first release's table (issue 6), same size out;
* ``GEOMETRIC``: what people do to a picture's frame (issue 16): crops kept at their size or rescaled,
  reframing, squashing, flips, quarter turns, rotations, and combinations with re-encoding.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

__all__ = [
    "ATTACKS",
    "GEOMETRIC",
    "TARGETS",
    "brightness",
    "centre_crop",
    "contrast",
    "corner",
    "crop",
    "crop_box",
    "gaussian_noise",
    "inner_rectangle",
    "jpeg",
    "reframe",
    "resize_back",
    "rotate",
]


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


#: where ``crop`` puts the kept box: the centre or a corner
PLACES = ("centre", "top-left", "top-right", "bottom-left", "bottom-right")


def crop_box(width: int, height: int, fraction: float, place: str = "centre") -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the box ``crop`` keeps of a ``width`` x ``height`` image."""
    cw, ch = round(width * fraction), round(height * fraction)
    left = {"centre": (width - cw) // 2, "top-left": 0, "bottom-left": 0}.get(place, width - cw)
    top = {"centre": (height - ch) // 2, "top-left": 0, "top-right": 0}.get(place, height - ch)
    return left, top, left + cw, top + ch


def crop(
    image: Image.Image, fraction: float, place: str = "centre", size: tuple[int, int] | None = None
) -> Image.Image:
    """Keep ``fraction`` of each side at ``place`` (one of PLACES); resized to ``size`` if given (bicubic)."""
    image = _rgb(image)
    kept = image.crop(crop_box(*image.size, fraction, place))
    return kept.resize(size, Image.Resampling.BICUBIC) if size else kept


def centre_crop(image: Image.Image, fraction: float = 0.9, rescale: bool = True) -> Image.Image:
    """Keep the central ``fraction`` of each side; rescale to the original size (bicubic) if asked."""
    return crop(image, fraction, "centre", image.size if rescale else None)


def reframe(image: Image.Image, aspect: float) -> Image.Image:
    """The largest central crop of width / height ``aspect`` (16:9, 4:5, 1:1, 9:16 ...), kept at its size."""
    image = _rgb(image)
    w, h = image.size
    cw, ch = (w, round(w / aspect)) if w / h < aspect else (round(h * aspect), h)
    left, top = (w - cw) // 2, (h - ch) // 2
    return image.crop((left, top, left + cw, top + ch))


def rotate(
    image: Image.Image, degrees: float, expand: bool = False, resample: Image.Resampling = Image.Resampling.NEAREST
) -> Image.Image:
    """Pillow's ``rotate`` (default: same size, corners black, nearest-neighbour resampling)."""
    return _rgb(image).rotate(degrees, resample=resample, expand=expand)


def inner_rectangle(
    image: Image.Image, degrees: float, resample: Image.Resampling = Image.Resampling.NEAREST, rescale: bool = False
) -> Image.Image:
    """Rotate about the centre, then keep the largest upright rectangle of the original's aspect that
    holds only picture (a "straighten" tool); rescaled to the original size if asked."""
    image = _rgb(image)
    w, h = image.size
    t = math.radians(abs(degrees))
    # the largest w' x h' (same aspect) inside a w x h rectangle turned by t
    k = min(w / (w * math.cos(t) + h * math.sin(t)), h / (w * math.sin(t) + h * math.cos(t)))
    cw, ch = int(w * k), int(h * k)
    turned = image.rotate(degrees, resample=resample)
    left, top = (w - cw) // 2, (h - ch) // 2
    kept = turned.crop((left, top, left + cw, top + ch))
    return kept.resize((w, h), Image.Resampling.BICUBIC) if rescale else kept


def screenshot_frame(width: int, height: int) -> tuple[int, int, int, int]:
    """(left, top, width, height) of a ``width`` x ``height`` picture in its ``screenshot``."""
    return round(0.07 * width), round(0.09 * height), round(width * 0.6), round(height * 0.6)


def screenshot(image: Image.Image) -> Image.Image:
    """Shown at 0.6 of its size on a light page, captured with a margin, saved as JPEG 80."""
    image = _rgb(image)
    w, h = image.size
    left, top, sw, sh = screenshot_frame(w, h)
    small = image.resize((sw, sh), Image.Resampling.BICUBIC)
    framed = ImageOps.expand(small, border=(left, top, round(0.05 * w), round(0.11 * h)), fill=(238, 238, 236))
    return jpeg(framed, 80)


#: name -> distortion, in the order of the first release's benchmark table
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


def corner(i: int) -> str:
    """The corner the benchmark's rows crop photo ``i`` at (each in turn)."""
    return PLACES[1 + i % 4]


def _sign(i: int) -> int:
    return 1 if i % 2 == 0 else -1


def _geometric() -> dict[str, Callable[[Image.Image, int], Image.Image]]:
    rows: dict[str, Callable[[Image.Image, int], Image.Image]] = {}
    for pct in (90, 80, 70, 60, 50):
        f = pct / 100
        rows[f"crop{pct} centre"] = lambda im, i, f=f: crop(im, f)
        rows[f"crop{pct} corner"] = lambda im, i, f=f: crop(im, f, corner(i))
    for pct in (90, 80, 70, 60, 50):
        f = pct / 100
        rows[f"crop{pct} rescaled"] = lambda im, i, f=f: crop(im, f, corner(i + 1), im.size)
        rows[f"crop{pct} to 0.75x"] = lambda im, i, f=f: crop(
            im, f, PLACES[i % 5], (round(0.75 * im.width), round(0.75 * im.height))
        )
    rows["reframe 16:9"] = lambda im, i: reframe(im, 16 / 9)
    rows["reframe 4:5"] = lambda im, i: reframe(im, 4 / 5)
    rows["reframe 9:16"] = lambda im, i: reframe(im, 9 / 16)
    rows["reframe 1:1 of 4:3"] = lambda im, i: reframe(reframe(im, 4 / 3), 1.0)
    rows["squash 4:3"] = lambda im, i: _rgb(im).resize((im.width, round(im.height * 0.75)), Image.Resampling.BICUBIC)
    rows["flip horizontal"] = lambda im, i: _rgb(im).transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    rows["flip vertical"] = lambda im, i: _rgb(im).transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    rows["rotate 90"] = lambda im, i: _rgb(im).transpose(Image.Transpose.ROTATE_90)
    rows["rotate 180"] = lambda im, i: _rgb(im).transpose(Image.Transpose.ROTATE_180)
    rows["rotate 270"] = lambda im, i: _rgb(im).transpose(Image.Transpose.ROTATE_270)
    for deg in (10, 15):
        rows[f"rotate +-{deg}"] = lambda im, i, d=deg: rotate(im, _sign(i) * d)
        rows[f"rotate +-{deg} expand"] = lambda im, i, d=deg: rotate(im, _sign(i) * d, expand=True)
        rows[f"rotate +-{deg} inner"] = lambda im, i, d=deg: inner_rectangle(im, _sign(i) * d)
    rows["crop70 + jpeg75"] = lambda im, i: jpeg(crop(im, 0.7, corner(i)), 75)
    rows["flip + crop80 + resize0.5"] = lambda im, i: crop(
        _rgb(im).transpose(Image.Transpose.FLIP_LEFT_RIGHT),
        0.8,
        corner(i),
        (round(0.4 * im.width), round(0.4 * im.height)),
    )
    rows["rotate10 + crop80 + jpeg75"] = lambda im, i: jpeg(crop(rotate(im, _sign(i) * 10), 0.8), 75)
    rows["screenshot"] = lambda im, i: screenshot(im)
    return rows


#: name -> edit(image, photo index), in the order of the benchmark table
GEOMETRIC: dict[str, Callable[[Image.Image, int], Image.Image]] = _geometric()

#: detection rate each row must reach (issue 6 and issue 16); rows not named here: 0.95
TARGETS: dict[str, float] = {
    **{name: 0.99 for name in ATTACKS},
    "jpeg50": 0.9,
    "crop90 centre": 0.99,
    "crop90 corner": 0.99,
    "crop80 centre": 0.99,
    "crop80 corner": 0.99,
    "flip horizontal": 0.99,
    "rotate 90": 0.99,
    "rotate 180": 0.99,
    "rotate 270": 0.99,
}
