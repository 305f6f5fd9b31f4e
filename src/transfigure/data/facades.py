"""CMP facades (Tylecek & Sara 2013) in the pix2pix A|B layout -> the ``labelmap`` layout.

The pix2pix copy of the CMP Facade Database stores each pair as one 512x256 JPEG: the photo
on the LEFT, the label map on the RIGHT as colours. SPADE-style training needs class ids,
so :func:`convert_facades` maps every label pixel to the NEAREST colour of the CMP palette
(:data:`CMP_PALETTE`, Euclidean in RGB): JPEG compression blurs the colours, so they are only
approximately the palette's (and a few pixels at region borders, where two colours mix, may
take a third, in-between class).

Classes (id = CMP id - 1; SPADE's ``facades`` dataset mode keeps the 1-based CMP ids and uses
``label_nc: 13`` with id 0 unused, here ``label_nc: 12``):

==  ==========  ==================  ==  ==========  ==================
id  class       RGB                 id  class       RGB
==  ==========  ==================  ==  ==========  ==================
0   background  (0, 0, 222)         6   balcony     (192, 255, 64)
1   facade      (0, 48, 255)        7   blind       (255, 240, 0)
2   window      (0, 127, 255)       8   deco        (255, 159, 0)
3   door        (0, 207, 255)       9   molding     (255, 80, 0)
4   cornice     (33, 255, 224)      10  pillar      (255, 0, 0)
5   sill        (112, 255, 143)     11  shop        (174, 0, 0)
==  ==========  ==================  ==  ==========  ==================

(The palette is a jet-like colour ramp; the values are the centres of the colour clusters
measured over the 400 training pairs, which agree with the ramp's order of the CMP classes.)

Output layout (what :class:`~transfigure.data.datasets.LabelMapDataset` reads)::

    OUT_DIR/train_img/<name>.png     photos (PNG: no second lossy compression)
    OUT_DIR/train_label/<name>.png   class ids 0..11, mode L
    OUT_DIR/test_img/, test_label/   the held-out part (--test-fraction)
    OUT_DIR/classes.json             class names, palette, which file went where

Run ``python -m transfigure.data.facades SRC_DIR OUT_DIR [--test-fraction 0.1] [--seed 0]``.
The output depends only on the input files and the options (the hold-out is a seeded
permutation of the sorted file names).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import numpy as np
from PIL import Image

from transfigure.data.images import load_image
from transfigure.data.layout import domain_folders, list_images

__all__ = ["CMP_CLASSES", "CMP_PALETTE", "colours_to_ids", "convert_facades", "main", "split_pair"]

logger = logging.getLogger(__name__)

#: CMP facade class names, by id (CMP's own ids are these + 1)
CMP_CLASSES: Final[tuple[str, ...]] = (
    "background",
    "facade",
    "window",
    "door",
    "cornice",
    "sill",
    "balcony",
    "blind",
    "deco",
    "molding",
    "pillar",
    "shop",
)
#: colour of each class in the colour-coded label maps, by id
CMP_PALETTE: Final[tuple[tuple[int, int, int], ...]] = (
    (0, 0, 222),
    (0, 48, 255),
    (0, 127, 255),
    (0, 207, 255),
    (33, 255, 224),
    (112, 255, 143),
    (192, 255, 64),
    (255, 240, 0),
    (255, 159, 0),
    (255, 80, 0),
    (255, 0, 0),
    (174, 0, 0),
)


def colours_to_ids(rgb: np.ndarray | Image.Image, palette: Sequence[Sequence[int]] = CMP_PALETTE) -> np.ndarray:
    """``HxWx3`` colours -> ``HxW`` uint8 ids of the nearest palette colour (ties: the lower id)."""
    arr = np.asarray(rgb.convert("RGB") if isinstance(rgb, Image.Image) else rgb)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 colour image, got shape {arr.shape}")
    pal = np.asarray(palette, dtype=np.int32)
    if len(pal) > 256:
        raise ValueError("at most 256 classes fit in an 8-bit label map")
    flat = arr.reshape(-1, 3).astype(np.int32)
    dist = ((flat[:, None, :] - pal[None, :, :]) ** 2).sum(-1)
    return dist.argmin(1).astype(np.uint8).reshape(arr.shape[:2])


def split_pair(path: str | Path, label_side: str = "right") -> tuple[Image.Image, Image.Image]:
    """One A|B file -> ``(photo, colour label)``; ``label_side`` says which half holds the labels."""
    ab = load_image(path, "RGB")
    w, h = ab.size
    if w % 2:
        raise ValueError(f"'{path}' is {w}x{h}: an A|B pair needs an even width")
    left, right = ab.crop((0, 0, w // 2, h)), ab.crop((w // 2, 0, w, h))
    if label_side == "right":
        return left, right
    if label_side == "left":
        return right, left
    raise ValueError(f"label_side must be 'left' or 'right', got {label_side!r}")


def convert_facades(
    src: str | Path,
    out: str | Path,
    *,
    test_fraction: float = 0.1,
    seed: int = 0,
    label_side: str = "right",
    overwrite: bool = False,
) -> dict[str, object]:
    """Convert every A|B image under ``src`` into the labelmap layout under ``out``.

    ``ceil(n * test_fraction)`` pairs (chosen by a ``seed``-ed permutation of the sorted names;
    none when the fraction is 0) go to ``test_*``, the rest to ``train_*``. The conversion is
    written to a temporary folder and moved into place at the end.

    Returns:
        The ``classes.json`` document (class names, palette, per-split file lists).

    Raises:
        FileNotFoundError: ``src`` holds no images.
        FileExistsError: ``out`` already holds a conversion and ``overwrite`` is false.
        ValueError: a bad option or an odd-width image (named).
    """
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}")
    src, out = Path(src), Path(out)
    files = list_images(src)
    if not files:
        raise FileNotFoundError(f"'{src}' holds no images")
    ours = [domain_folders(out, "labelmap", split)[role] for split in ("train", "test") for role in ("image", "label")]
    ours.append(out / "classes.json")
    existing = [p for p in ours if p.exists()]
    if existing and not overwrite:
        held = ", ".join(p.name for p in existing)
        raise FileExistsError(f"'{out}' already holds {held}; pass --overwrite to replace")
    stems = [f.relative_to(src).with_suffix("").as_posix().replace("/", "__") for f in files]
    if len(set(stems)) != len(stems):
        raise ValueError(f"two files under '{src}' share a name (up to the extension)")
    order = sorted(range(len(files)), key=lambda i: stems[i])
    shuffled = order[:]
    random.Random(seed).shuffle(shuffled)
    n_test = math.ceil(len(files) * test_fraction) if test_fraction > 0 else 0
    test = set(shuffled[:n_test])
    start = time.perf_counter()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.converting-", dir=out.parent))
    splits: dict[str, list[str]] = {"train": [], "test": []}
    counts = np.zeros(len(CMP_PALETTE), dtype=np.int64)
    try:
        for i in order:
            split = "test" if i in test else "train"
            photo, colours = split_pair(files[i], label_side)
            ids = colours_to_ids(colours)
            counts += np.bincount(ids.ravel(), minlength=len(CMP_PALETTE))
            for role, img in (("image", photo), ("label", Image.fromarray(ids, mode="L"))):
                folder = domain_folders(tmp, "labelmap", split)[role]
                folder.mkdir(parents=True, exist_ok=True)
                img.save(folder / f"{stems[i]}.png")
            splits[split].append(stems[i])
        doc: dict[str, object] = {
            "source": str(src),
            "label_nc": len(CMP_CLASSES),
            "classes": list(CMP_CLASSES),
            "palette": [list(c) for c in CMP_PALETTE],
            "label_side": label_side,
            "test_fraction": test_fraction,
            "seed": seed,
            "pixels_per_class": {name: int(c) for name, c in zip(CMP_CLASSES, counts, strict=True)},
            "splits": splits,
        }
        (tmp / "classes.json").write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        out.mkdir(parents=True, exist_ok=True)
        for path in ours:
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
        for path in sorted(tmp.iterdir()):
            path.replace(out / path.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info(
        "converted %d facades pairs into '%s' (%d train, %d test) in %.1f s",
        len(files),
        out,
        len(splits["train"]),
        len(splits["test"]),
        time.perf_counter() - start,
    )
    return doc


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m transfigure.data.facades SRC_DIR OUT_DIR [options]``."""
    parser = argparse.ArgumentParser(
        prog="python -m transfigure.data.facades",
        description="Convert CMP facades A|B JPEGs (colour labels) into train_img/train_label (class ids).",
    )
    parser.add_argument("src_dir", type=Path, help="folder of A|B images (e.g. ../shared/datasets/facades/train)")
    parser.add_argument("out_dir", type=Path, help="output folder (labelmap layout)")
    parser.add_argument("--test-fraction", type=float, default=0.1, help="share held out as test_* (default 0.1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the hold-out permutation (default 0)")
    parser.add_argument(
        "--label-side",
        choices=("right", "left"),
        default="right",
        help="which half holds the colour labels (default right)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing conversion")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        convert_facades(
            args.src_dir,
            args.out_dir,
            test_fraction=args.test_fraction,
            seed=args.seed,
            label_side=args.label_side,
            overwrite=args.overwrite,
        )
    except (ValueError, FileNotFoundError, FileExistsError) as exc:
        logger.error("%s", exc)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
