"""Image-translation datasets for the four on-disk layouts users have.

=============  ==============================================  ======================
format         layout under ``root``                            reference equivalent
=============  ==============================================  ======================
``aligned``    ``{split}/*``: one ``A|B`` side-by-side image    ``AlignedDataset``
``paired``     ``{split}A/name.ext`` + ``{split}B/name.ext``    (none)
``unaligned``  ``{split}A/*``, ``{split}B/*`` (unpaired)        ``UnalignedDataset``
``labelmap``   ``{split}_label``, ``{split}_img``,              SPADE/pix2pixHD
               optional ``{split}_inst``                        ``Pix2pixDataset``
=============  ==============================================  ======================

Differences from the reference (junyanz/pytorch-CycleGAN-and-pix2pix):

* **Direction is applied here.** With ``direction="BtoA"`` the dataset swaps
  the domains, so ``item["A"]`` is always the generator's input and
  ``item["B"]`` its target (``A_paths``/``B_paths`` swap with them);
  ``input_nc`` describes ``item["A"]`` and ``output_nc`` ``item["B"]``. The
  reference returns the files' A/B and swaps in the model's ``set_input``.
* **Randomness is per item, not global.** Crop/flip parameters and the random
  B index of ``unaligned`` come from ``random.Random(f"{seed}:{epoch}:{index}")``,
  so an item is a pure function of (files, seed, epoch, index), identical in
  every DataLoader worker and across runs. Call :meth:`set_epoch` at the start
  of each epoch (with ``persistent_workers=True`` the workers keep their own
  copy of the dataset and do not see it: use non-persistent workers).
* Problems surface early and by name: missing/empty folders, orphan pairs,
  odd ``A|B`` widths and out-of-range label ids raise errors naming the file.
* Files are listed by :func:`transfigure.data.layout.list_images` (the image
  extensions data validation checks; hidden files and folders skipped), in the
  folders :data:`transfigure.data.layout.LAYOUTS` names.
* ``holdout`` (a :class:`~transfigure.data.layout.Holdout`, for datasets without a
  test/val split) keeps one side of the ``train`` split: all but the held-out files
  (training) or only them (evaluation); pairs are held out whole, unpaired data per domain.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final, TypeVar

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from transfigure.data.images import load_image, load_label_map
from transfigure.data.layout import (
    IMAGE_EXTENSIONS,
    LOSSY_EXTENSIONS,
    Holdout,
    domain_folders,
    file_key,
    list_images,
)
from transfigure.data.rules import DONTCARE_ID, LabelIdError, check_label_ids
from transfigure.data.transforms import (
    TransformConfig,
    TransformParams,
    sample_params,
    transform_image,
    transform_label,
)

__all__ = [
    "DATASET_FORMATS",
    "AlignedDataset",
    "LabelIdError",  # re-exported: its home is transfigure.data.rules
    "LabelMapDataset",
    "PairedDataset",
    "TranslationDataset",
    "UnalignedDataset",
    "make_dataset",
]

logger = logging.getLogger(__name__)

_DIRECTIONS: Final = ("AtoB", "BtoA")
T = TypeVar("T")


def _require_images(folder: Path, layout: str) -> list[Path]:
    """:func:`list_images` that explains the expected layout when ``folder`` is missing/empty."""
    if not folder.is_dir():
        raise FileNotFoundError(f"dataset folder '{folder}' does not exist; expected layout: {layout}")
    paths = list_images(folder)
    if not paths:
        raise FileNotFoundError(
            f"dataset folder '{folder}' holds no images "
            f"(extensions {', '.join(sorted(IMAGE_EXTENSIONS))}); expected layout: {layout}"
        )
    return paths


def _index_by_stem(paths: list[Path], folder: Path) -> dict[str, Path]:
    index: dict[str, Path] = {}
    for path in paths:
        key = file_key(path, folder)
        if key in index:
            raise ValueError(
                f"two files in '{folder}' share the name '{key}': '{index[key]}' and '{path}'; "
                "files are paired by name, so names must be unique regardless of extension"
            )
        index[key] = path
    return index


def _match_by_stem(
    folders: dict[str, Path], listings: dict[str, list[Path]], required: Sequence[str]
) -> list[dict[str, Path]]:
    """Pair files of several folders by stem; orphans in any folder -> ValueError naming them."""
    indexes = {role: _index_by_stem(listings[role], folders[role]) for role in listings}
    keys = set().union(*(set(ix) for ix in indexes.values()))
    problems: list[str] = []
    for role, ix in indexes.items():
        if role not in required:
            continue
        others = [r for r in indexes if r != role]
        orphans = sorted(k for k in keys if k in ix and any(k not in indexes[o] for o in others))
        if orphans:
            shown = ", ".join(f"'{ix[k]}'" for k in orphans[:10])
            more = f" and {len(orphans) - 10} more" if len(orphans) > 10 else ""
            missing_in = sorted({o for o in others for k in orphans if k not in indexes[o]})
            problems.append(
                f"{len(orphans)} file(s) in '{folders[role]}' have no counterpart with the same "
                f"name in {', '.join(repr(str(folders[m])) for m in missing_in)}: {shown}{more}"
            )
    if problems:
        raise ValueError("incomplete pairs: " + "; ".join(problems))
    common = sorted(set.intersection(*(set(indexes[r]) for r in required)))
    return [{role: indexes[role][k] for role in indexes if k in indexes[role]} for k in common]


def _mode_for(nc: int, name: str) -> str:
    if nc == 1:
        return "L"
    if nc == 3:
        return "RGB"
    raise ValueError(f"{name} must be 1 (greyscale) or 3 (RGB), got {nc}")


def _check_direction(direction: str) -> None:
    if direction not in _DIRECTIONS:
        raise ValueError(f"direction must be 'AtoB' or 'BtoA', got {direction!r}")


def _with_path(path: Path | str, fn: Callable[[], Any]) -> Any:
    """Run ``fn`` and re-raise a geometry ValueError with the file name in front."""
    try:
        return fn()
    except ValueError as exc:
        if str(path) in str(exc):
            raise
        raise ValueError(f"'{path}': {exc}") from exc


class TranslationDataset(Dataset[dict[str, Any]]):
    """Base class of the four formats: root/split, transform config, per-item randomness.

    Subclasses implement ``__len__`` and ``__getitem__`` and draw all their
    randomness from :meth:`rng`.
    """

    layout: str = ""

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str = "train",
        *,
        transform: TransformConfig,
        direction: str = "AtoB",
        seed: int = 0,
        input_nc: int = 3,
        output_nc: int = 3,
        holdout: Holdout | None = None,
    ) -> None:
        if holdout is not None and not isinstance(holdout, Holdout):
            raise TypeError(f"holdout must be a Holdout or None, got {type(holdout).__name__}")
        if not isinstance(transform, TransformConfig):
            raise TypeError(f"transform must be a TransformConfig, got {type(transform).__name__}")
        _check_direction(direction)
        self.root = Path(root)
        self.split = str(split)
        self.transform = transform
        self.direction = direction
        self.seed = int(seed)
        self.input_nc = int(input_nc)
        self.output_nc = int(output_nc)
        self.mode_A = _mode_for(self.input_nc, "input_nc")
        self.mode_B = _mode_for(self.output_nc, "output_nc")
        self.epoch = 0
        self.holdout = holdout
        #: with a holdout: its rule and, per domain ("pairs" for paired data), held-out and total counts
        self.holdout_summary: dict[str, Any] | None = None

    def _hold_out(self, items: list[T], key: Callable[[T], str], domain: str, what: str) -> list[T]:
        """``items`` of this dataset's side of :attr:`holdout` (all of them without one); logs the split."""
        if self.holdout is None:
            return items
        chosen = self.holdout.select(items, key)
        held = len(chosen) if self.holdout.part == "held_out" else len(items) - len(chosen)
        if not held:
            message = (
                f"'{self.root}' has no test/ or val/ split, and its {self.split!r} split has too few {what} "
                f"({len(items)}) to hold any out for evaluation; add a test split or more images"
            )
            if self.holdout.part == "held_out":
                raise ValueError(message)
            logger.warning("%s: training on all of them, evaluation will fail", message)
        if self.holdout_summary is None:
            self.holdout_summary = {**self.holdout.describe(), "part": self.holdout.part, "held_out": {}, "total": {}}
        self.holdout_summary["held_out"][domain] = held
        self.holdout_summary["total"][domain] = len(items)
        rule = f"data.holdout_fraction {self.holdout.fraction:g}, at least {self.holdout.min_count}; by file name hash"
        if self.holdout.part == "train":
            logger.info(
                "no test/ or val/ split in %s: %d of %d %s of %r held out for evaluation (%s); training on %d",
                self.root,
                held,
                len(items),
                what,
                self.split,
                rule,
                len(chosen),
            )
        else:
            logger.info(
                "no test/ or val/ split in %s: evaluating on the %d of %d %s of %r held out from training (%s)",
                self.root,
                held,
                len(items),
                what,
                self.split,
                rule,
            )
        return chosen

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose random crops/flips (and B indices) items use."""
        self.epoch = int(epoch)

    def rng(self, index: int) -> random.Random:
        """The item's private random stream: ``random.Random(f"{seed}:{epoch}:{index}")``."""
        return random.Random(f"{self.seed}:{self.epoch}:{index}")

    def _check_index(self, index: int) -> int:
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"index {index} out of range for a dataset of {n} items")
        return int(index)

    def __len__(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(root='{self.root}', split={self.split!r}, "
            f"items={len(self)}, direction={self.direction!r}, seed={self.seed})"
        )


def _paired_transform(
    img_a: Image.Image,
    img_b: Image.Image,
    path_a: Path,
    path_b: Path,
    cfg: TransformConfig,
    rng: random.Random,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Transform A and B with one set of params (sampled from A's size)."""
    if img_a.size != img_b.size and cfg.preprocess != "resize_and_crop":
        raise ValueError(
            f"paired images differ in size: '{path_a}' is {img_a.size[0]}x{img_a.size[1]}, "
            f"'{path_b}' is {img_b.size[0]}x{img_b.size[1]}; with "
            f"preprocess={cfg.preprocess!r} both must have the same size "
            "(or use preprocess='resize_and_crop')"
        )
    params = _with_path(path_a, lambda: sample_params(img_a.size, cfg, rng))
    a = _with_path(path_a, lambda: transform_image(img_a, cfg, params))
    b = _with_path(path_b, lambda: transform_image(img_b, cfg, params))
    return a, b


class AlignedDataset(TranslationDataset):
    """pix2pix layout: ``root/{split}/*``, each file an ``A|B`` side-by-side pair.

    The left half is A, the right half B (reference ``AlignedDataset``: a
    512x256 file gives two 256x256 images). Both halves get the same crop and
    flip. An odd width raises :class:`ValueError` naming the file (the
    reference silently drops a column). ``A_paths`` and ``B_paths`` are both
    the side-by-side file.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str = "train",
        *,
        transform: TransformConfig,
        direction: str = "AtoB",
        seed: int = 0,
        input_nc: int = 3,
        output_nc: int = 3,
        holdout: Holdout | None = None,
    ) -> None:
        super().__init__(
            root,
            split,
            transform=transform,
            direction=direction,
            seed=seed,
            input_nc=input_nc,
            output_nc=output_nc,
            holdout=holdout,
        )
        self.folder = domain_folders(self.root, "aligned", self.split)["AB"]
        self.layout = (
            f"'{self.root}/{self.split}/<name>.png', each image holding A (left half) and B (right half) side by side"
        )
        paths = _require_images(self.folder, self.layout)
        self.paths = self._hold_out(paths, lambda p: file_key(p, self.folder), "pairs", "pairs")
        logger.info("aligned dataset %s/%s: %d pairs", self.root, self.split, len(self.paths))

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = self._check_index(index)
        path = self.paths[index]
        both_grey = self.mode_A == "L" and self.mode_B == "L"
        ab = load_image(path, "L" if both_grey else "RGB")
        w, h = ab.size
        if w % 2:
            raise ValueError(
                f"aligned image '{path}' is {w}x{h}: its width must be even (A and B side by side, each half the width)"
            )
        half = w // 2
        left = ab.crop((0, 0, half, h))
        right = ab.crop((half, 0, w, h))
        src, dst = (left, right) if self.direction == "AtoB" else (right, left)
        if src.mode != self.mode_A:
            src = src.convert(self.mode_A)
        if dst.mode != self.mode_B:
            dst = dst.convert(self.mode_B)
        a, b = _paired_transform(src, dst, path, path, self.transform, self.rng(index))
        return {"A": a, "B": b, "A_paths": str(path), "B_paths": str(path)}


class PairedDataset(TranslationDataset):
    """Two folders of corresponding images: ``root/{split}A/x.ext`` <-> ``root/{split}B/x.ext``.

    Files are paired by their path relative to the folder without extension
    (``a/x.png`` pairs with ``a/x.jpg``). A file without a partner raises
    :class:`ValueError` listing the orphans. A and B get the same crop/flip;
    with any preprocess other than ``resize_and_crop`` they must have the same
    size. (No reference equivalent: the reference only knows side-by-side
    files.)
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str = "train",
        *,
        transform: TransformConfig,
        direction: str = "AtoB",
        seed: int = 0,
        input_nc: int = 3,
        output_nc: int = 3,
        holdout: Holdout | None = None,
    ) -> None:
        super().__init__(
            root,
            split,
            transform=transform,
            direction=direction,
            seed=seed,
            input_nc=input_nc,
            output_nc=output_nc,
            holdout=holdout,
        )
        folders = domain_folders(self.root, "paired", self.split)
        self.dir_A, self.dir_B = folders["A"], folders["B"]
        self.layout = f"'{self.dir_A}/<name>.<ext>' and '{self.dir_B}/<name>.<ext>' with the same names in both folders"
        listings = {role: _require_images(folder, self.layout) for role, folder in folders.items()}
        matched = _match_by_stem(folders, listings, required=("A", "B"))
        matched = self._hold_out(matched, lambda m: file_key(m["A"], self.dir_A), "pairs", "pairs")
        self.pairs: list[tuple[Path, Path]] = [(m["A"], m["B"]) for m in matched]
        logger.info("paired dataset %s/%s: %d pairs", self.root, self.split, len(self.pairs))

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = self._check_index(index)
        path_a, path_b = self.pairs[index]
        if self.direction == "BtoA":
            path_a, path_b = path_b, path_a
        img_a = load_image(path_a, self.mode_A)
        img_b = load_image(path_b, self.mode_B)
        a, b = _paired_transform(img_a, img_b, path_a, path_b, self.transform, self.rng(index))
        return {"A": a, "B": b, "A_paths": str(path_a), "B_paths": str(path_b)}


class UnalignedDataset(TranslationDataset):
    """CycleGAN layout: unpaired ``root/{split}A/*`` and ``root/{split}B/*``.

    As in the reference ``UnalignedDataset``: ``len`` is ``max(len A, len B)``,
    item ``i`` takes A number ``i % len A`` and a random B (``i % len B`` with
    ``serial_batches=True``). A and B get independent crops/flips. With
    ``direction="BtoA"`` the folders swap roles.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str = "train",
        *,
        transform: TransformConfig,
        direction: str = "AtoB",
        seed: int = 0,
        input_nc: int = 3,
        output_nc: int = 3,
        serial_batches: bool = False,
        holdout: Holdout | None = None,
    ) -> None:
        super().__init__(
            root,
            split,
            transform=transform,
            direction=direction,
            seed=seed,
            input_nc=input_nc,
            output_nc=output_nc,
            holdout=holdout,
        )
        self.serial_batches = bool(serial_batches)
        folders = domain_folders(self.root, "unaligned", self.split)
        self.layout = f"unpaired images in '{folders['A']}/' and '{folders['B']}/'"
        listed = {  # the held-out files are chosen per folder, whatever the direction
            domain: self._hold_out(
                _require_images(folder, self.layout), lambda p, f=folder: file_key(p, f), domain, f"{domain} images"
            )
            for domain, folder in folders.items()
        }
        src, dst = ("B", "A") if self.direction == "BtoA" else ("A", "B")
        self.dir_A, self.dir_B = folders[src], folders[dst]
        self.A_paths, self.B_paths = listed[src], listed[dst]
        logger.info(
            "unaligned dataset %s/%s: %d A, %d B (direction %s)",
            self.root,
            self.split,
            len(self.A_paths),
            len(self.B_paths),
            self.direction,
        )

    def __len__(self) -> int:
        return max(len(self.A_paths), len(self.B_paths))

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = self._check_index(index)
        rng = self.rng(index)
        path_a = self.A_paths[index % len(self.A_paths)]
        b_index = rng.randrange(len(self.B_paths))
        if self.serial_batches:
            b_index = index % len(self.B_paths)
        path_b = self.B_paths[b_index]
        img_a = load_image(path_a, self.mode_A)
        img_b = load_image(path_b, self.mode_B)
        cfg = self.transform
        params_a = _with_path(path_a, lambda: sample_params(img_a.size, cfg, rng))
        params_b = _with_path(path_b, lambda: sample_params(img_b.size, cfg, rng))
        a = _with_path(path_a, lambda: transform_image(img_a, cfg, params_a))
        b = _with_path(path_b, lambda: transform_image(img_b, cfg, params_b))
        return {"A": a, "B": b, "A_paths": str(path_a), "B_paths": str(path_b)}


class LabelMapDataset(TranslationDataset):
    """Semantic image synthesis (SPADE/pix2pixHD) layout, files matched by name.

    ``root/{split}_label/*.png`` (class ids, see :func:`load_label_map`),
    ``root/{split}_img/*`` (photos) and, with ``use_instance=True``,
    ``root/{split}_inst/*.png`` (instance ids). Photo, label and instance get
    the same crop/flip; labels and instances use NEAREST resampling.

    Items: ``{"label": LongTensor 1xHxW, "instance": FloatTensor 1xHxW of raw
    instance ids (an empty tensor when ``use_instance=False``), "image":
    Tensor output_nc x H x W in [-1, 1], "path": photo path}``.

    Label ids must be ``< label_nc``; with ``contain_dontcare_label=True`` the
    id 255 is also allowed and, as in SPADE, remapped to ``label_nc`` (so the
    model needs ``label_nc + 1`` input channels). Other ids raise
    :class:`LabelIdError` when the item is loaded (or for every file at once
    with :meth:`check_labels`). JPEG label maps are refused (lossy compression
    changes ids). Only ``direction="AtoB"`` (label -> photo) is supported.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str = "train",
        *,
        transform: TransformConfig,
        label_nc: int,
        contain_dontcare_label: bool = False,
        use_instance: bool = False,
        direction: str = "AtoB",
        seed: int = 0,
        input_nc: int = 3,
        output_nc: int = 3,
        holdout: Holdout | None = None,
    ) -> None:
        super().__init__(
            root,
            split,
            transform=transform,
            direction=direction,
            seed=seed,
            input_nc=input_nc,
            output_nc=output_nc,
            holdout=holdout,
        )
        if self.direction != "AtoB":
            raise ValueError(
                "labelmap datasets translate label maps into photos: only direction='AtoB' "
                f"is supported, got {self.direction!r}"
            )
        if isinstance(label_nc, bool) or not isinstance(label_nc, int) or label_nc < 1:
            raise ValueError(f"label_nc must be a positive int (number of classes), got {label_nc!r}")
        self.label_nc = label_nc
        self.contain_dontcare_label = bool(contain_dontcare_label)
        self.use_instance = bool(use_instance)
        folders = domain_folders(self.root, "labelmap", self.split)
        self.dir_label, self.dir_img, self.dir_inst = folders["label"], folders["image"], folders["instance"]
        self.layout = (
            f"'{self.dir_label}/<name>.png' (class ids), '{self.dir_img}/<name>.<ext>' (photos)"
            + (f" and '{self.dir_inst}/<name>.png' (instance ids)" if self.use_instance else "")
            + ", matched by name"
        )
        if not self.use_instance:
            del folders["instance"]
        listings = {role: _require_images(folder, self.layout) for role, folder in folders.items()}
        for role in ("label", "instance"):
            lossy = [p for p in listings.get(role, []) if p.suffix.lower() in LOSSY_EXTENSIONS]
            if lossy:
                raise ValueError(
                    f"{role} maps must be lossless (PNG/BMP/TIFF): JPEG compression changes ids; "
                    f"found {', '.join(repr(str(p)) for p in lossy[:5])}"
                    + (f" and {len(lossy) - 5} more" if len(lossy) > 5 else "")
                )
        matched = _match_by_stem(folders, listings, required=tuple(folders))
        self.items: list[dict[str, Path]] = self._hold_out(
            matched, lambda m: file_key(m["label"], self.dir_label), "pairs", "pairs"
        )
        logger.info(
            "labelmap dataset %s/%s: %d items (label_nc=%d, instances %s)",
            self.root,
            self.split,
            len(self.items),
            self.label_nc,
            "on" if self.use_instance else "off",
        )

    def __len__(self) -> int:
        return len(self.items)

    def _checked_label(self, path: Path) -> np.ndarray:
        label = load_label_map(path)
        check_label_ids(str(path), np.unique(label).tolist(), self.label_nc, self.contain_dontcare_label)
        if self.contain_dontcare_label:
            label = np.where(label == DONTCARE_ID, self.label_nc, label)
        return label

    def check_labels(self) -> None:
        """Load every label map now and raise :class:`LabelIdError` at the first bad one."""
        for item in self.items:
            self._checked_label(item["label"])

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = self._check_index(index)
        item = self.items[index]
        label_path, image_path = item["label"], item["image"]
        label = self._checked_label(label_path)
        image = load_image(image_path, self.mode_B)
        h, w = label.shape
        cfg = self.transform
        if image.size != (w, h) and cfg.preprocess != "resize_and_crop":
            raise ValueError(
                f"photo '{image_path}' is {image.size[0]}x{image.size[1]} but its label map "
                f"'{label_path}' is {w}x{h}; with preprocess={cfg.preprocess!r} they must "
                "have the same size"
            )
        rng = self.rng(index)
        params: TransformParams = _with_path(label_path, lambda: sample_params((w, h), cfg, rng))
        label_t = _with_path(label_path, lambda: transform_label(label, cfg, params))
        image_t = _with_path(image_path, lambda: transform_image(image, cfg, params))
        if self.use_instance:
            inst_path = item["instance"]
            inst = load_label_map(inst_path)
            if inst.shape != label.shape:
                raise ValueError(
                    f"instance map '{inst_path}' is {inst.shape[1]}x{inst.shape[0]} but label "
                    f"map '{label_path}' is {w}x{h}; they must have the same size"
                )
            inst_t = _with_path(inst_path, lambda: transform_label(inst, cfg, params)).float()
        else:
            inst_t = torch.empty(0)
        return {"label": label_t, "instance": inst_t, "image": image_t, "path": str(image_path)}


DATASET_FORMATS: Final[dict[str, type[TranslationDataset]]] = {
    "aligned": AlignedDataset,
    "paired": PairedDataset,
    "unaligned": UnalignedDataset,
    "labelmap": LabelMapDataset,
}


def make_dataset(fmt: str, root: str | os.PathLike[str], split: str = "train", **kwargs: Any) -> TranslationDataset:
    """Build the dataset class registered for ``fmt`` in :data:`DATASET_FORMATS`.

    Raises:
        ValueError: unknown format (the message lists the known ones).
    """
    try:
        cls = DATASET_FORMATS[fmt]
    except KeyError:
        raise ValueError(f"unknown dataset format {fmt!r}; known formats: {', '.join(DATASET_FORMATS)}") from None
    return cls(root, split, **kwargs)
