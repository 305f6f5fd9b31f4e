"""Use a trained generator: ``Translator.from_folder(folder).translate(image)``.

``transfigure.load_translator("cyclegan", "champion")`` fetches the folder from the MLflow
registry first. :class:`Translator` returns RAW pixels (no watermark, no manifest, no ledger row):
it is the Python API for whoever needs them. Every path that hands images to others (the BentoML
service, batch translation, the registered MLflow model) goes through :func:`translate_and_stamp`,
which translates with the same :class:`Translator` and the same input conversion
(:func:`transfigure.data.images.convert_image`: alpha composited over white, 16 bit scaled), so
the pixels agree across all paths, and stamps every output.

Generators whose config has a ``label_nc`` (SPADE) take a LABEL MAP instead of a photo: a
single-channel PIL image of class ids (modes L, P, I, I;16; colour-coded RGB maps are refused),
optionally an instance map and a style image, and return an RGB image of the label map's size.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from transfigure.data.images import convert_image
from transfigure.data.rules import DONTCARE_ID, LABEL_MODES, check_label_ids
from transfigure.data.transforms import tensor_to_pil, to_tensor
from transfigure.models.io import load_generators
from transfigure.runtime.device import resolve_device

if TYPE_CHECKING:
    from transfigure.provenance import ModelInfo, ProvenanceConfig, Stamped


class Translator:
    """Translate PIL images of any size with exported generators (one per direction)."""

    def __init__(self, generators: dict[str, torch.nn.Module], config: dict[str, Any], device: torch.device) -> None:
        self.generators = generators
        self.config = config
        self.device = device
        self.variant: str = config.get("variant", "")
        self.metadata: dict[str, Any] = dict(config.get("metadata", {}))
        self.size_multiple = max((int(getattr(g, "size_multiple", 1)) for g in generators.values()), default=1)

    @classmethod
    def from_folder(cls, folder: str | Path, device: str = "auto") -> Translator:
        dev = resolve_device(device)
        config, generators = load_generators(folder, dev)
        return cls(generators, config, dev)

    @property
    def directions(self) -> list[str]:
        return sorted(self.generators)

    def _input_channels(self, direction: str) -> int:
        return int(self.config["generators"][direction].get("input_nc", 3))

    def input_mode(self, direction: str = "AtoB") -> str:
        """The Pillow mode ``direction``'s generator reads photos in: ``"L"`` or ``"RGB"``."""
        return "L" if self._input_channels(direction) == 1 else "RGB"

    def prepare(self, image: Image.Image, direction: str = "AtoB", *, name: str | None = None) -> Image.Image:
        """``image`` converted like training data for ``direction`` (photo generators only).

        Every path (this class, the service, batch translation, the MLflow model) converts with
        :func:`~transfigure.data.images.convert_image`, so an RGBA or 16-bit input gives the
        same pixels everywhere. Raises ``ValueError`` for modes that cannot be converted.
        """
        name = name or str(getattr(image, "filename", "") or "<image given to translate()>")
        return convert_image(image, self.input_mode(direction), path=name)

    @torch.no_grad()
    def translate_tensor(self, x: torch.Tensor, direction: str = "AtoB") -> torch.Tensor:
        """NxCxHxW in [-1, 1] -> same size output; pads reflectively to the generator's size multiple."""
        if direction not in self.generators:
            raise ValueError(
                f"unknown direction {direction!r} for this {self.variant} model: use one of {self.directions}"
            )
        h, w = x.shape[-2:]
        m = self.size_multiple
        ph, pw = (-h) % m, (-w) % m
        x = x.to(self.device)
        if ph or pw:
            mode = "reflect" if (ph < h and pw < w) else "replicate"
            x = F.pad(x, (0, pw, 0, ph), mode=mode)
        y = self.generators[direction](x)
        return y[..., :h, :w]

    def takes_label_maps(self, direction: str = "AtoB") -> bool:
        """Whether ``direction``'s generator synthesises images from label maps (SPADE)."""
        cfg = self.config.get("generators", {}).get(direction, {})
        return "label_nc" in cfg

    def translate(
        self,
        image: Image.Image,
        direction: str = "AtoB",
        *,
        instance: Image.Image | None = None,
        style: Image.Image | None = None,
        seed: int | None = None,
    ) -> Image.Image:
        """Translate one PIL image; the output has the input's size (RGB, or L for 1-channel models).

        The output is UNMARKED (no watermark, manifest or ledger row): use it in your own code;
        :func:`translate_and_stamp` is the path for images that leave your hands. Photos are
        converted like training data (:meth:`prepare`: alpha over white, 16 bit scaled).

        For label-map generators (SPADE) ``image`` is the label map (class ids) and the result is
        an RGB photo; ``instance`` is the instance-id map (when the model uses one; without it the
        label map's own class boundaries serve as instance edges), ``style`` an image whose style
        a VAE model copies, ``seed`` fixes its random z otherwise.
        """
        if not isinstance(image, Image.Image):
            raise TypeError(f"translate() takes a PIL.Image.Image, got {type(image).__name__}")
        if direction not in self.generators:
            raise ValueError(
                f"unknown direction {direction!r} for this {self.variant} model: use one of {self.directions}"
            )
        if self.takes_label_maps(direction):
            return self._translate_label_map(image, direction, instance, style, seed)
        if instance is not None or style is not None or seed is not None:
            raise ValueError(
                f"instance/style/seed are for label-map generators (SPADE); this is a {self.variant} model"
            )
        x = to_tensor(self.prepare(image, direction)).unsqueeze(0)
        return tensor_to_pil(self.translate_tensor(x, direction)[0])

    # -- label maps (SPADE) ----------------------------------------------------------------
    def _pad_ids(self, ids: np.ndarray) -> torch.Tensor:
        """HxW ids -> 1x1xH'xW' LongTensor padded (replicating the border) to the size multiple."""
        t = torch.from_numpy(ids.astype(np.int64))[None, None]
        h, w = ids.shape
        m = self.size_multiple
        ph, pw = (-h) % m, (-w) % m
        if ph or pw:
            t = F.pad(t.double(), (0, pw, 0, ph), mode="replicate").round().long()
        return t.to(self.device)

    @torch.no_grad()
    def _translate_label_map(
        self,
        label: Image.Image,
        direction: str,
        instance: Image.Image | None,
        style: Image.Image | None,
        seed: int | None,
    ) -> Image.Image:
        cfg = self.config["generators"][direction]
        label_nc, dontcare = int(cfg["label_nc"]), bool(cfg.get("contain_dontcare_label", False))
        name = str(getattr(label, "filename", "") or "<label map given to translate()>")
        ids = label_ids_from_image(label, name)
        check_label_ids(name, np.unique(ids).tolist(), label_nc, dontcare)
        if dontcare:
            ids = np.where(ids == DONTCARE_ID, label_nc, ids)
        inst_t = None
        if cfg.get("use_instance", False):
            if instance is None:
                inst = ids  # class boundaries as instance edges
            else:
                inst_name = str(getattr(instance, "filename", "") or "<instance map given to translate()>")
                inst = label_ids_from_image(instance, inst_name, what="instance map")
                if inst.shape != ids.shape:
                    raise ValueError(
                        f"instance map is {inst.shape[1]}x{inst.shape[0]} but the label map is "
                        f"{ids.shape[1]}x{ids.shape[0]}; they must have the same size"
                    )
            inst_t = self._pad_ids(inst).float()
        elif instance is not None:
            raise ValueError("this model was trained without instance maps (use_instance=False): do not pass one")
        gen = self.generators[direction]
        z = style_t = None
        if style is not None:
            if not cfg.get("use_vae", False):
                raise ValueError(
                    "this model has no style encoder (trained with use_vae=False): style images need use_vae"
                )
            style_t = to_tensor(style.convert("RGB")).unsqueeze(0).to(self.device)
        elif cfg.get("use_vae", False):
            g = torch.Generator().manual_seed(seed) if seed is not None else None
            z = torch.randn(1, int(cfg.get("z_dim", 256)), generator=g).to(self.device)
        h, w = ids.shape
        y = gen(self._pad_ids(ids), inst_t, z=z, style=style_t)
        return tensor_to_pil(y[0, :, :h, :w])


def label_ids_from_image(image: Image.Image, name: str = "<label map>", what: str = "label map") -> np.ndarray:
    """A PIL label/instance map -> ``HxW`` int64 ids; colour images are refused with an explanation."""
    if image.mode not in LABEL_MODES:
        raise ValueError(
            f"{what} '{name}' has mode {image.mode!r}: a {what} must hold one class id per pixel as a "
            f"single-channel image (modes {', '.join(LABEL_MODES)}), not colours. Convert a "
            "colour-coded map to ids first (CMP facades: python -m transfigure.data.facades)"
        )
    ids = np.asarray(image).astype(np.int64)
    if ids.ndim != 2:
        raise ValueError(f"{what} '{name}' decodes to shape {ids.shape}, expected HxW ids")
    if ids.size and int(ids.min()) < 0:
        raise ValueError(f"{what} '{name}' holds negative ids (min {int(ids.min())})")
    return ids


def _resized_ids(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """A label/instance map resized without inventing ids (nearest neighbour), keeping its name."""
    out = image.resize(size, Image.Resampling.NEAREST)
    out.filename = getattr(image, "filename", "")  # type: ignore[attr-defined]
    return out


def translate_and_stamp(
    translator: Translator,
    images: Sequence[Image.Image],
    *,
    model_info: ModelInfo,
    direction: str | None = None,
    size: tuple[int, int] | None = None,
    fmt: str = "PNG",
    quality: int | None = None,
    config: ProvenanceConfig | None = None,
    batch_size: int = 16,
    instances: Sequence[Image.Image | None] | None = None,
    style: Image.Image | None = None,
    seed: int | None = None,
) -> list[Stamped | ValueError]:
    """Translate images and stamp every output: the one translate + watermark path of transfigure.

    The BentoML service calls it for each adaptive batch; a batch job over a folder calls it the
    same way. Each output is watermarked with a fresh provenance id, encoded as ``fmt`` (PNG,
    JPEG, WEBP) with a signed manifest and recorded in the ledger
    (:func:`transfigure.provenance.stamp_output`); no unmarked image leaves this function.

    ``size`` = (width, height) resizes every input first (bicubic; nearest for label maps).
    Photos of the same size run through the generator together, at most ``batch_size`` at a
    time; sizes are never mixed in a batch, since padding to a common size would change the
    per-image (instance-norm) statistics and so the pixels. Label maps (SPADE) are translated
    one by one, each with its instance map (``instances[i]``, resized like its label map) and the
    shared ``style`` image or ``seed`` (multimodal SPADE: the style image's look, or a
    reproducible random one). Photo inputs of any Pillow mode are converted like training data
    (:meth:`Translator.prepare`), exactly as :meth:`Translator.translate` converts them.

    Returns, in input order, a :class:`~transfigure.provenance.Stamped` per image, or the
    ``ValueError`` that refused that image (a label map with unknown class ids, an unconvertible
    mode, an output too small for a watermark): one bad image does not fail the others.

    Raises:
        ValueError: ``direction`` is not one of the model's directions.
    """
    from transfigure.provenance import stamp_output

    direction = direction or translator.directions[0]
    if direction not in translator.generators:
        raise ValueError(
            f"unknown direction {direction!r} for this {translator.variant} model: use one of {translator.directions}"
        )
    if instances is not None and len(instances) != len(images):
        raise ValueError(f"{len(instances)} instance maps for {len(images)} images: give one (or None) per image")
    outputs: list[Image.Image | ValueError | None] = [None] * len(images)
    if translator.takes_label_maps(direction):
        for i, label in enumerate(images):
            instance = instances[i] if instances is not None else None
            try:
                if size is not None and label.size != tuple(size):
                    label = _resized_ids(label, tuple(size))
                    if instance is not None:
                        instance = _resized_ids(instance, tuple(size))
                outputs[i] = translator.translate(label, direction, instance=instance, style=style, seed=seed)
            except ValueError as exc:  # LabelIdError, colour label maps, ...
                outputs[i] = exc
    else:
        if (instances is not None and any(m is not None for m in instances)) or style is not None or seed is not None:
            raise ValueError(
                f"instance maps, style and seed are for label-map generators (SPADE); this is a {translator.variant} model"
            )
        by_size: dict[tuple[int, int], list[tuple[int, torch.Tensor]]] = {}
        for i, image in enumerate(images):
            try:
                x = translator.prepare(image, direction, name=str(getattr(image, "filename", "") or f"image {i}"))
            except ValueError as exc:
                outputs[i] = exc
                continue
            if size is not None and x.size != tuple(size):
                x = x.resize(tuple(size), Image.Resampling.BICUBIC)
            by_size.setdefault(x.size, []).append((i, to_tensor(x)))
        for members in by_size.values():
            for start in range(0, len(members), max(1, batch_size)):
                chunk = members[start : start + max(1, batch_size)]
                y = translator.translate_tensor(torch.stack([t for _, t in chunk]), direction).cpu()
                for (i, _), out in zip(chunk, y):
                    outputs[i] = tensor_to_pil(out)
    results: list[Stamped | ValueError] = []
    for out in outputs:
        if isinstance(out, ValueError):
            results.append(out)
            continue
        assert out is not None
        try:
            results.append(stamp_output(out, model=model_info, fmt=fmt, quality=quality, config=config))
        except ValueError as exc:  # e.g. too small to carry a watermark: refused, never returned unmarked
            results.append(exc)
    return results
