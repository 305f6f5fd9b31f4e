"""Rules every image and label map must satisfy, wherever it is read.

The loaders (:mod:`transfigure.data.images`), data validation, inference, provenance
verification and the service apply these values, so an image that passes validation also
loads, and a label map the trainer accepts is accepted when translating.

Kept free of torch and PIL so that validation, provenance and serving import it cheaply.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final

__all__ = [
    "DONTCARE_ID",
    "LABEL_MODES",
    "MAX_PIXELS",
    "MAX_SIDE",
    "LabelIdError",
    "allowed_ids",
    "bad_label_ids",
    "check_label_ids",
    "exceeds_pixel_limit",
]

#: Largest side (pixels) validation accepts by default (``validation.max_width``/``max_height``).
MAX_SIDE: Final[int] = 8192

#: Most pixels an image may declare in its header before it is refused without decoding (a
#: decompression-bomb guard). ``MAX_SIDE`` squared, so that the size check and the pixel limit
#: agree: a square image at the largest side is exactly at the limit. It stays below Pillow's
#: own guard (about 89.5 Mpx), which therefore never fires first. Loaders read it at call time.
MAX_PIXELS: Final[int] = MAX_SIDE * MAX_SIDE

#: PIL modes whose pixels are integer class ids: the modes accepted for label and instance maps
#: (palette images: the indices are the ids, the colours are ignored). Colour-coded maps are not.
LABEL_MODES: Final[tuple[str, ...]] = ("1", "L", "P", "I", "I;16", "I;16B", "I;16L", "I;16N")

#: The id that means "don't care" when a dataset has ``contain_dontcare_label``.
DONTCARE_ID: Final[int] = 255


def exceeds_pixel_limit(width: int, height: int, max_pixels: int | None = None) -> bool:
    """Whether a ``width`` x ``height`` image is over ``max_pixels`` (default :data:`MAX_PIXELS`)."""
    limit = MAX_PIXELS if max_pixels is None else max_pixels
    return width * height > limit


class LabelIdError(ValueError):
    """A label map holds class ids that the model cannot represent.

    Attributes:
        path: the label file.
        ids: the offending ids, sorted.
        label_nc: the configured number of classes.
        dontcare: whether 255 was allowed as "don't care".
    """

    def __init__(self, path: str, ids: Sequence[int], label_nc: int, dontcare: bool) -> None:
        self.path = str(path)
        self.ids = [int(i) for i in ids]
        self.label_nc = int(label_nc)
        self.dontcare = bool(dontcare)
        super().__init__(
            f"label map '{self.path}' holds class ids [{_shown(self.ids)}] outside the valid range "
            f"{allowed_ids(self.label_nc, self.dontcare)} for label_nc={self.label_nc}; raise label_nc"
            + ("" if self.dontcare else " or set contain_dontcare_label=True if 255 means 'ignore'")
            + ", or fix the label map"
        )

    def __reduce__(self) -> tuple[type[LabelIdError], tuple[str, list[int], int, bool]]:
        return (type(self), (self.path, self.ids, self.label_nc, self.dontcare))


def _shown(ids: Sequence[int], limit: int = 20) -> str:
    return ", ".join(str(i) for i in ids[:limit]) + (" ..." if len(ids) > limit else "")


def allowed_ids(label_nc: int, dontcare: bool) -> str:
    """The valid ids in words, e.g. ``0..7 (and 255 = don't care)``."""
    return f"0..{label_nc - 1}" + (f" (and {DONTCARE_ID} = don't care)" if dontcare else "")


def bad_label_ids(ids: Iterable[int], label_nc: int, dontcare: bool = False) -> list[int]:
    """The ids of ``ids`` a model with ``label_nc`` classes cannot take, sorted and distinct.

    Valid are ``0 .. label_nc - 1`` and, with ``dontcare``, 255.
    """
    return sorted({int(i) for i in ids if not 0 <= int(i) < label_nc and not (dontcare and int(i) == DONTCARE_ID)})


def check_label_ids(path: str, ids: Iterable[int], label_nc: int, dontcare: bool = False) -> None:
    """Raise :class:`LabelIdError` naming ``path`` when ``ids`` holds any :func:`bad_label_ids`."""
    bad = bad_label_ids(ids, label_nc, dontcare)
    if bad:
        raise LabelIdError(path, bad, label_nc, dontcare)
