"""Strict image and label-map loading.

The reference implementation (junyanz/pytorch-CycleGAN-and-pix2pix) loads
every image with ``Image.open(path).convert("RGB")``. That is lazy (a truncated
file only fails later, inside a DataLoader worker, with an unhelpful
``OSError``), it drops alpha onto black, it clips 16-bit greyscale to 255
instead of scaling it, and it ignores EXIF orientation, so a phone photo can
arrive rotated relative to its label.

:func:`load_image` differs on purpose:

* it decodes the whole file at once (``Image.load()``) and turns every failure
  (empty file, not an image, truncated data, decompression bomb) into an
  :class:`ImageLoadError` that names the file and says what is wrong;
* it applies the EXIF orientation (``ImageOps.exif_transpose``);
* it converts *any* Pillow mode to ``"RGB"`` or ``"L"`` with well-defined
  rules (see :func:`convert_image`).

:func:`load_label_map` reads class-id maps as integers, never as colours.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Final

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from transfigure.data import rules
from transfigure.untrusted import declared_pixels

__all__ = [
    "ImageLoadError",
    "convert_image",
    "load_image",
    "load_label_map",
]

logger = logging.getLogger(__name__)

_TARGET_MODES: Final = ("RGB", "L")
_SIXTEEN_BIT_MODES: Final = ("I;16", "I;16B", "I;16L", "I;16N")
_ALPHA_MODES: Final = ("LA", "La", "PA", "RGBA", "RGBa")
#: Modes that Pillow converts to RGB directly and correctly.
_DIRECT_RGB_MODES: Final = ("RGB", "RGBX", "CMYK", "YCbCr", "HSV")
_WHITE: Final = (255, 255, 255)


class ImageLoadError(ValueError):
    """An image (or label map) file that cannot be used.

    Attributes:
        path: the file, as given to the loader.
        reason: what was wrong with it, in words.
    """

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path: str = str(path)
        self.reason: str = reason
        super().__init__(f"cannot load image '{self.path}': {reason}")

    def __reduce__(self) -> tuple[type[ImageLoadError], tuple[str, str]]:
        # Keep the two-argument constructor picklable (DataLoader workers
        # send exceptions back to the main process).
        return (type(self), (self.path, self.reason))


def _warn_if_truncated_images_allowed() -> None:
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        logger.warning(
            "PIL.ImageFile.LOAD_TRUNCATED_IMAGES is True in this process: "
            "truncated files will decode silently (with grey/black areas) "
            "instead of raising ImageLoadError"
        )


def _first_bytes(path: Path, n: int = 16) -> bytes:
    try:
        with path.open("rb") as fh:
            return fh.read(n)
    except OSError:
        return b""


def _open_decoded(path: str | os.PathLike[str], max_pixels: int | None) -> Image.Image:
    """Open ``path``, check its declared size, decode it fully, apply EXIF orientation.

    Returns a loaded image detached from the file.

    Raises:
        FileNotFoundError: the file does not exist.
        ImageLoadError: for every other problem (names the file and the reason).
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"image file '{path}' does not exist")
    if not p.is_file():
        raise ImageLoadError(path, "not a regular file (is it a directory?)")
    try:
        n_bytes = p.stat().st_size
    except OSError as exc:
        raise ImageLoadError(path, f"cannot stat file ({exc})") from exc
    if n_bytes == 0:
        raise ImageLoadError(path, "file is empty (0 bytes)")
    if max_pixels is None:  # read at call time: rules.MAX_PIXELS is the one limit every reader follows
        max_pixels = rules.MAX_PIXELS
    if max_pixels < 1:
        raise ValueError(f"max_pixels must be >= 1, got {max_pixels}")

    _warn_if_truncated_images_allowed()
    try:
        # Pillow's own decompression-bomb guard warns above
        # Image.MAX_IMAGE_PIXELS and raises above twice that; we apply our
        # own, explicit limit (max_pixels) instead, so silence the warning.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(p) as img:
                width, height = img.size
                if rules.exceeds_pixel_limit(width, height, max_pixels):
                    raise ImageLoadError(
                        path,
                        f"image declares {width}x{height} = {width * height:,} pixels, "
                        f"more than max_pixels={max_pixels:,} "
                        "(possible decompression bomb; raise max_pixels if the file is genuine)",
                    )
                img.load()
                loaded = img
    except ImageLoadError:
        raise
    except Image.DecompressionBombError as exc:
        # Raised by Image.open before we see the size; the message carries the count.
        raise ImageLoadError(
            path,
            f"image declares {declared_pixels(exc)}, more than Pillow's limit of "
            f"{2 * (Image.MAX_IMAGE_PIXELS or 0):,} (and max_pixels={max_pixels:,}); "
            "possible decompression bomb",
        ) from exc
    except UnidentifiedImageError as exc:
        head = _first_bytes(p)
        raise ImageLoadError(
            path,
            f"not a recognised image format (Pillow cannot identify it; "
            f"{n_bytes} bytes, starting with {head!r}); "
            "the file may be corrupt, truncated in its header, or not an image at all",
        ) from exc
    except (OSError, SyntaxError, EOFError, ValueError, MemoryError) as exc:
        # Pillow reports truncated/corrupt pixel data as OSError
        # ("image file is truncated ..."), SyntaxError ("broken PNG file")
        # or EOFError, depending on the plugin.
        text = str(exc) or type(exc).__name__
        if "truncated" in text.lower() or isinstance(exc, EOFError):
            reason = f"file is truncated or its pixel data is incomplete ({text})"
        else:
            reason = f"pixel data could not be decoded ({type(exc).__name__}: {text})"
        raise ImageLoadError(path, reason) from exc

    try:
        ImageOps.exif_transpose(loaded, in_place=True)
    except Exception as exc:  # corrupt EXIF must not lose the pixels
        logger.warning("ignoring unreadable EXIF orientation in '%s': %s", path, exc)
    return loaded


def _scale_to_uint8(arr: np.ndarray, max_value: float) -> np.ndarray:
    """Linearly map ``[0, max_value]`` to ``[0, 255]`` with rounding."""
    scaled = np.rint(arr.astype(np.float64) * (255.0 / max_value))
    return np.clip(scaled, 0, 255).astype(np.uint8)


def _greyscale_to_l(img: Image.Image, path: str | os.PathLike[str]) -> Image.Image:
    """Map the single-channel high-depth modes (I;16*, I, F) to 8-bit "L"."""
    arr = np.asarray(img)
    if img.mode in _SIXTEEN_BIT_MODES:
        return Image.fromarray(_scale_to_uint8(arr, 65535.0), mode="L")
    if img.mode == "I":
        lo, hi = (int(arr.min()), int(arr.max())) if arr.size else (0, 0)
        if lo < 0 or hi > 65535:
            raise ImageLoadError(
                path,
                f"32-bit integer image (mode I) with values {lo}..{hi} outside 0..65535; "
                "only 16-bit data stored as mode I can be mapped to 8 bit unambiguously",
            )
        return Image.fromarray(_scale_to_uint8(arr, 65535.0), mode="L")
    if img.mode == "F":
        finite = np.isfinite(arr)
        if not finite.all():
            raise ImageLoadError(path, "floating-point image (mode F) contains NaN or infinity")
        f_lo, f_hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
        if f_lo < 0.0 or f_hi > 1.0:
            raise ImageLoadError(
                path,
                f"floating-point image (mode F) with values {f_lo:g}..{f_hi:g}; only values in "
                "[0, 1] are accepted (their meaning is otherwise ambiguous), "
                "convert it to 8- or 16-bit first",
            )
        return Image.fromarray(_scale_to_uint8(arr, 1.0), mode="L")
    raise AssertionError(img.mode)  # pragma: no cover


def convert_image(img: Image.Image, mode: str = "RGB", *, path: str | os.PathLike[str] = "<image>") -> Image.Image:
    """Convert a decoded image of any Pillow mode to ``"RGB"`` or ``"L"``.

    Rules:

    * ``1``, ``L``, ``P`` (no transparency), ``RGB``, ``RGBX``, ``CMYK``,
      ``YCbCr``, ``HSV``: Pillow's own conversion (``L`` from colour uses the
      ITU-R 601-2 luma weights, like the reference's ``convert('L')``).
    * Modes with alpha (``LA``, ``PA``, ``RGBA``, premultiplied ``La``/``RGBa``)
      and ``P`` with a ``transparency`` entry: **composited over white**.
      The reference drops alpha, which shows transparent areas as whatever
      colour the invisible pixels happen to hold (often black).
    * 16-bit ``I;16``/``I;16B``/``I;16L``: scaled by ``255/65535`` with
      rounding (the full 16-bit range maps onto 8 bit); the reference clips
      everything above 255 to white.
    * ``I`` (32-bit int): treated as 16-bit data (older Pillow opened 16-bit
      PNGs as ``I``), scaled like ``I;16``; values outside 0..65535 are refused.
    * ``F`` (float): accepted only when every value is finite and in [0, 1]
      (scaled by 255); anything else is refused.
    * Anything else (``LAB``, multi-band float, ...) is refused.

    Args:
        img: a decoded image.
        mode: ``"RGB"`` or ``"L"``.
        path: the file name to put into error messages.

    Raises:
        ValueError: ``mode`` is not ``"RGB"``/``"L"``.
        ImageLoadError: the image's mode cannot be converted.
    """
    if mode not in _TARGET_MODES:
        raise ValueError(f"mode must be one of {_TARGET_MODES}, got {mode!r}")
    src = img.mode

    if src == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
        src = "RGBA"
    if src in _ALPHA_MODES:
        if src == "La":
            # Pillow cannot convert La directly; un-premultiply by hand.
            arr = np.asarray(img).astype(np.float64)
            alpha = arr[..., 1]
            lum = np.where(alpha > 0, arr[..., 0] * 255.0 / np.maximum(alpha, 1), 0)
            img = Image.fromarray(
                np.stack([np.clip(np.rint(lum), 0, 255), alpha], axis=-1).astype(np.uint8),
                mode="LA",
            )
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*_WHITE, 255))
        composited = Image.alpha_composite(background, rgba).convert("RGB")
        return composited if mode == "RGB" else composited.convert("L")

    if src in _SIXTEEN_BIT_MODES or src in ("I", "F"):
        grey = _greyscale_to_l(img, path)
        return grey if mode == "L" else grey.convert("RGB")

    if src in ("1", "L", "P") or src in _DIRECT_RGB_MODES:
        if src == mode:
            return img
        if mode == "L" and src not in ("1", "L", "P", "RGB"):
            return img.convert("RGB").convert("L")
        return img.convert(mode)

    raise ImageLoadError(
        path,
        f"unsupported image mode {src!r} (bands {img.getbands()}); "
        "save it as 8-bit RGB, greyscale, palette or 16-bit greyscale",
    )


def load_image(
    path: str | os.PathLike[str],
    mode: str = "RGB",
    max_pixels: int | None = None,
) -> Image.Image:
    """Load an image file fully decoded, EXIF-oriented and converted to ``mode``.

    Args:
        path: image file.
        mode: ``"RGB"`` or ``"L"``; see :func:`convert_image` for how every
            Pillow mode is mapped (alpha is composited over white, 16-bit is
            scaled, not clipped).
        max_pixels: refuse images whose header declares more pixels than this
            (decompression-bomb guard), before any pixel is decoded; default
            :data:`transfigure.data.rules.MAX_PIXELS`.

    Returns:
        A loaded ``PIL.Image.Image`` of mode ``mode``, detached from the file.

    Raises:
        FileNotFoundError: the file does not exist.
        ImageLoadError: empty file, not an image, truncated/corrupt data,
            too many pixels, or an unconvertible mode. The message names the
            file and the reason.
        ValueError: ``mode`` is not ``"RGB"`` or ``"L"``.
    """
    if mode not in _TARGET_MODES:
        raise ValueError(f"mode must be one of {_TARGET_MODES}, got {mode!r}")
    img = _open_decoded(path, max_pixels)
    return convert_image(img, mode, path=path)


def load_label_map(path: str | os.PathLike[str], max_pixels: int | None = None) -> np.ndarray:
    """Load a label map (one class id per pixel) as an ``int64`` array of shape HxW.

    Accepted modes (:data:`transfigure.data.rules.LABEL_MODES`): ``L`` (8-bit ids), ``P`` (the palette *indices* are the
    ids; the palette colours are ignored), ``I`` and ``I;16*`` (16/32-bit ids,
    kept exactly, not scaled) and ``1`` (ids 0/1). EXIF orientation is applied
    like for photos so a label stays aligned with its photo.

    The reference (pix2pixHD/SPADE style) opens labels with ``Image.open`` and
    multiplies ``ToTensor()`` output by 255, which silently turns an RGB
    "colour-coded" label map into garbage; here it is refused.

    Raises:
        FileNotFoundError: the file does not exist.
        ImageLoadError: unreadable file, or a colour / float / negative-id map.
    """
    img = _open_decoded(path, max_pixels)
    if img.mode not in rules.LABEL_MODES:
        if img.mode in ("RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "LA", "PA", "HSV", "LAB"):
            raise ImageLoadError(
                path,
                f"label map has colour mode {img.mode!r}; label maps must hold class ids, "
                "not colours: save one id per pixel as a single-channel 8-bit (mode L), "
                "palette (mode P) or 16-bit greyscale PNG",
            )
        raise ImageLoadError(
            path,
            f"label map has mode {img.mode!r}; label maps must hold integer class ids (modes L, P, I or I;16)",
        )
    arr = np.asarray(img).astype(np.int64)
    if arr.ndim != 2:  # pragma: no cover - guarded by the mode check
        raise ImageLoadError(path, f"label map decodes to shape {arr.shape}, expected HxW")
    if arr.size and int(arr.min()) < 0:
        raise ImageLoadError(path, f"label map holds negative ids (min {int(arr.min())})")
    return arr
