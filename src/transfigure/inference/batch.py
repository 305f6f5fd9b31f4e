"""Batch translation of image files: every output stamped, bad inputs refused alone, re-runs resume.

:func:`translate_folder` is the core that ``kedro run --pipeline=translate_<variant>`` and
``transfigure translate`` share (both in :mod:`transfigure.tracking.translation`, which adds the
model reference and the MLflow run). It knows nothing of Kedro or MLflow:

* inputs are files and folders (folders listed recursively with
  :func:`transfigure.data.layout.list_images`: the trainer's extensions, hidden files skipped);
* every file is decoded as untrusted bytes (:func:`transfigure.untrusted.decode_untrusted`): its
  declared size is checked against ``max_pixels`` before any pixel is decoded, so an oversized image
  is refused before it reaches the generator; corrupt, truncated, unreadable files, modes the
  model cannot take and label maps with unknown class ids are refused with the reason, never a crash;
* equal sizes go through the generator together (:func:`~transfigure.inference.translate_and_stamp`,
  at most ``batch_size`` at a time), which watermarks, signs and records every output;
* each output is written to a temporary name in its folder and renamed (``os.replace``): a killed run
  leaves no half-written output; ``<output>/<relative input path>`` with the format's extension;
* a state file in the output folder (:data:`STATE_FILE`, JSON lines) records each output with the
  input's relative path, content hash, the model (name, version, run) and the settings: a re-run
  skips what is recorded and still on disk, and redoes inputs whose content, model version or
  settings changed;
* the table of all inputs (:data:`TABLE_FILE`, CSV: input, output, provenance id, model, version,
  sizes, seconds, status ``ok`` / ``skipped`` / ``refused`` and the reason) is written at the end.

Two runs must not write into the same output folder at the same time.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import logging
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

import numpy as np
from PIL import Image, ImageOps
from pydantic import BaseModel, ConfigDict, Field, field_validator

from transfigure.data.grid import make_grid
from transfigure.data.images import convert_image
from transfigure.data.layout import list_images
from transfigure.data.rules import LABEL_MODES, MAX_PIXELS
from transfigure.data.transforms import to_tensor
from transfigure.inference.translator import Translator, translate_and_stamp
from transfigure.untrusted import UntrustedImageError, decode_untrusted, open_untrusted

if TYPE_CHECKING:
    from transfigure.provenance import ModelInfo, ProvenanceConfig

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "MIN_OUTPUT_SIDE",
    "OUTPUT_FORMATS",
    "STATE_FILE",
    "TABLE_FILE",
    "BatchOptions",
    "BatchResult",
    "BatchRow",
    "InputFile",
    "collect_inputs",
    "decode_input_bytes",
    "sample_grid",
    "translate_folder",
]

logger = logging.getLogger(__name__)

#: Largest input (pixels) translated by default: a cost bound, like the service's 4096x4096; it may be
#: raised up to the image rule :data:`transfigure.data.rules.MAX_PIXELS`.
DEFAULT_MAX_PIXELS: Final = 4096 * 4096
#: Smallest output side: smaller images cannot carry a reliably detectable watermark (the service's
#: ``TRANSFIGURE_MIN_SIDE`` default; the watermark's own hard floor is ``provenance.watermark.MIN_SIDE``).
MIN_OUTPUT_SIDE: Final = 64
#: ``format`` -> (Pillow encoder, file extension)
OUTPUT_FORMATS: Final = {
    "png": ("PNG", ".png"),
    "jpeg": ("JPEG", ".jpg"),
    "jpg": ("JPEG", ".jpg"),
    "webp": ("WEBP", ".webp"),
}
#: the resume record in the output folder (hidden: never read back as an input)
STATE_FILE: Final = ".transfigure-batch.jsonl"
#: the table of a run's inputs and outcomes, in the output folder
TABLE_FILE: Final = "translations.csv"
_PART_SUFFIX: Final = ".part"
OK, SKIPPED, REFUSED = "ok", "skipped", "refused"


class BatchOptions(BaseModel):
    """How a batch is translated (the ``transfigure translate`` flags and the ``translate.<variant>`` parameters)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    direction: str | None = Field(None, description="AtoB or BtoA; null = the model's first direction")
    width: int | None = Field(
        None, ge=MIN_OUTPUT_SIDE, description="output width; alone: keeps each input's aspect ratio"
    )
    height: int | None = Field(None, ge=MIN_OUTPUT_SIDE, description="output height; alone: keeps the aspect ratio")
    format: str = Field("png", description="png | jpeg | webp")
    quality: int | None = Field(None, ge=1, le=100, description="JPEG/WebP quality (default 95 / 90)")
    batch_size: int = Field(8, ge=1, description="images of equal size per generator pass")
    max_pixels: int = Field(
        DEFAULT_MAX_PIXELS, ge=1, le=MAX_PIXELS, description="inputs declaring more pixels are refused undecoded"
    )
    pair_half: Literal["left", "right"] | None = Field(
        None, description="inputs are A|B pairs side by side (pix2pix 'aligned' layout): translate this half"
    )
    instances: str | None = Field(None, description="SPADE: folder of instance maps, matched to label maps by name")
    style: str | None = Field(None, description="SPADE with a style encoder (use_vae): style image for every output")
    seed: int | None = Field(None, description="SPADE with use_vae: seed of the random style (same seed, same pixels)")
    progress: bool = Field(True, description="progress bar on a terminal")

    @field_validator("format")
    @classmethod
    def _known_format(cls, value: str) -> str:
        key = value.strip().lower()
        if key not in OUTPUT_FORMATS:
            raise ValueError(f"unknown output format {value!r}: use png, jpeg or webp")
        return "jpeg" if key == "jpg" else key

    @property
    def encoder(self) -> str:
        return OUTPUT_FORMATS[self.format][0]

    @property
    def extension(self) -> str:
        return OUTPUT_FORMATS[self.format][1]

    def output_size(self, size: tuple[int, int]) -> tuple[int, int]:
        """The output (width, height) for an input of ``size``: as asked, one side with the aspect ratio kept,
        or the input's own size.

        Raises:
            ValueError: a side under :data:`MIN_OUTPUT_SIDE` or more than ``max_pixels`` pixels.
        """
        w0, h0 = size
        width, height = w0, h0
        if self.width is not None or self.height is not None:
            width = self.width if self.width is not None else max(1, round(w0 * self.height / h0))  # type: ignore[operator]
            height = self.height if self.height is not None else max(1, round(h0 * self.width / w0))  # type: ignore[operator]
        if min(width, height) < MIN_OUTPUT_SIDE:
            raise ValueError(
                f"the output would be {width}x{height}: both sides must be at least {MIN_OUTPUT_SIDE} pixels to "
                "carry a reliably detectable watermark (ask for a larger output with width/height)"
            )
        if width * height > self.max_pixels:
            raise ValueError(
                f"the output would be {width}x{height} = {width * height:,} pixels, more than "
                f"max_pixels={self.max_pixels:,}"
            )
        return width, height


# -- inputs -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class InputFile:
    """One input: the file and its path relative to what was given (the output keeps it)."""

    path: Path
    rel: str


def collect_inputs(
    inputs: Sequence[str | os.PathLike[str]], exclude: str | os.PathLike[str] | None = None
) -> list[InputFile]:
    """The image files of ``inputs`` (files as given, folders listed recursively), in order.

    One folder: relative paths start inside it. Several inputs: each folder's files go under its
    name, each file under its own name. Files under ``exclude`` (the output folder) are left out.

    Raises:
        FileNotFoundError: an input does not exist.
    """
    excluded = Path(exclude).resolve() if exclude is not None else None
    single = len(inputs) == 1
    found: list[InputFile] = []
    seen: set[str] = set()
    for item in inputs:
        root = Path(item)
        if root.is_dir():
            files = [(p, p.relative_to(root).as_posix()) for p in list_images(root)]
            if not single:
                files = [(p, f"{root.resolve().name}/{rel}") for p, rel in files]
        elif root.exists() or root.is_symlink():
            files = [(root, root.name)]
        else:
            raise FileNotFoundError(f"input '{root}' does not exist")
        for path, rel in files:
            if excluded is not None and _is_within(path, excluded):
                continue
            unique, n = rel, 2
            while unique in seen:  # the same name from two inputs
                unique, n = f"{Path(rel).with_suffix('')}-{n}{Path(rel).suffix}", n + 1
            seen.add(unique)
            found.append(InputFile(path, unique))
    return found


def _is_within(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder)
    except ValueError:
        return False
    return True


def _output_names(entries: Sequence[InputFile], extension: str) -> dict[str, str]:
    """input rel -> output rel: the input's path with the format's extension (``x.jpg`` -> ``x.png``);
    when two inputs would share a name (``x.jpg``, ``x.png``) the later keeps its extension (``x.png.png``)."""
    names: dict[str, str] = {}
    taken: set[str] = set()
    for entry in entries:
        rel = Path(entry.rel)
        for candidate in (rel.with_suffix(extension), Path(f"{rel}{extension}")):
            if candidate.as_posix() not in taken:
                break
        else:  # pragma: no cover - both taken: only with names built to collide
            n = 2
            while (candidate := rel.with_name(f"{rel.stem}-{n}{extension}")).as_posix() in taken:
                n += 1
        taken.add(candidate.as_posix())
        names[entry.rel] = candidate.as_posix()
    return names


def decode_input_bytes(data: bytes, *, max_pixels: int) -> Image.Image:
    """Decode an input image's bytes as untrusted (its declared size checked before any pixel is decoded)
    and apply its EXIF orientation, like the trainer's loader; the mode is kept (label maps stay ids).
    Batch translation and the MLflow model decode with it.

    Raises:
        UntrustedImageError: empty, not an image, over ``max_pixels``, truncated or corrupt.
    """
    image = decode_untrusted(data, max_pixels=max_pixels)
    try:
        image = ImageOps.exif_transpose(image)
    except Exception:  # noqa: BLE001 - a broken EXIF block must not lose the pixels
        pass
    return image


# -- results ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BatchRow:
    """One input's outcome: a row of the table."""

    input: str
    output: str
    provenance_id: str
    model: str
    model_version: str
    input_size: str
    output_size: str
    seconds: float
    status: str  # ok | skipped | refused
    reason: str = ""


@dataclass
class BatchResult:
    """What a batch did: one :class:`BatchRow` per input, in input order, and where things are."""

    rows: list[BatchRow]
    output_dir: Path
    table_path: Path
    model: ModelInfo
    seconds: float
    settings: dict[str, Any] = field(default_factory=dict)
    #: input rel -> its file
    sources: dict[str, Path] = field(default_factory=dict, repr=False)
    #: whether the inputs were label maps (SPADE)
    labels: bool = False

    def count(self, status: str) -> int:
        return sum(row.status == status for row in self.rows)

    @property
    def translated(self) -> int:
        return self.count(OK)

    @property
    def skipped(self) -> int:
        return self.count(SKIPPED)

    @property
    def refused(self) -> list[BatchRow]:
        return [row for row in self.rows if row.status == REFUSED]

    @property
    def images_per_second(self) -> float:
        busy = sum(row.seconds for row in self.rows if row.status == OK)
        return self.translated / busy if busy > 0 else 0.0

    def summary(self) -> dict[str, Any]:
        """A JSON-able summary: counts, throughput, model, folders and every refusal with its reason."""
        return {
            "model": self.model.name,
            "model_version": str(self.model.version),
            "model_run_id": self.model.run_id,
            "variant": self.model.variant,
            "inputs": len(self.rows),
            "translated": self.translated,
            "skipped": self.skipped,
            "refused": len(self.refused),
            "images_per_second": round(self.images_per_second, 4),
            "seconds": round(self.seconds, 3),
            "output_dir": str(self.output_dir),
            "table": str(self.table_path),
            "refusals": [{"input": row.input, "reason": row.reason} for row in self.refused],
            "settings": self.settings,
        }

    def summary_text(self) -> str:
        """Counts on one line, then one line per refused input with its reason."""
        lines = [
            f"{self.translated} translated, {self.skipped} skipped (done before), {len(self.refused)} refused "
            f"of {len(self.rows)} input(s); {self.images_per_second:.2f} images/s; "
            f"model {model_label(self.model)}; outputs in {self.output_dir}, table {self.table_path}"
        ]
        lines += [f"  refused {row.input}: {row.reason}" for row in self.refused]
        return "\n".join(lines)


def model_label(model: ModelInfo) -> str:
    """``cyclegan v3``, or ``cyclegan run:<id>`` / ``cyclegan local:<digest>`` for unregistered models."""
    version = str(model.version)
    return f"{model.name} v{version}" if version.isdigit() else f"{model.name} {version}"


# -- the resume state -------------------------------------------------------------------------------------
def _model_key(model: ModelInfo) -> str:
    return f"{model.name}|{model.version}|{model.run_id or ''}"


def _read_state(output_dir: Path) -> dict[str, dict[str, Any]]:
    """The last record per input of the state file; a line cut short by a kill is ignored."""
    records: dict[str, dict[str, Any]] = {}
    path = output_dir / STATE_FILE
    if not path.is_file():
        return records
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and isinstance(record.get("input"), str):
            records[record["input"]] = record
    return records


def _compact_state(output_dir: Path) -> None:
    """Rewrite the state file with the last record per input (re-runs with other versions append)."""
    records = _read_state(output_dir)
    text = "".join(json.dumps(records[key], sort_keys=True) + "\n" for key in sorted(records))
    _write_atomically(output_dir / STATE_FILE, text.encode("utf-8"))


class _StateWriter:
    """Appends one JSON line per finished output, flushed and fsynced, after the output is in place."""

    def __init__(self, output_dir: Path) -> None:
        self.path = output_dir / STATE_FILE
        self._fh = self.path.open("a", encoding="utf-8")

    def append(self, record: dict[str, Any]) -> None:
        self._fh.write(json.dumps(record, sort_keys=True) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()


def _write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary name beside ``path``, fsync, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}{_PART_SUFFIX}")
    try:
        with tmp.open("wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _remove_stale_parts(output_dir: Path) -> None:
    """Temporary files a killed run left behind (never complete outputs)."""
    for part in output_dir.rglob(f".*{_PART_SUFFIX}"):
        if part.is_file():
            part.unlink(missing_ok=True)


def _file_sha256(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


# -- the batch --------------------------------------------------------------------------------------------
@dataclass
class _Todo:
    entry: InputFile
    sha256: str
    declared: tuple[int, int]  # the size the file declares
    output: str  # relative output path
    instance: Path | None = None
    instance_sha256: str | None = None
    out_size: tuple[int, int] = (0, 0)  # set once decoded (EXIF orientation, pair half)


def _check_model_options(translator: Translator, direction: str, options: BatchOptions) -> None:
    """Options the model cannot honour are usage errors (ValueError), found before any image is read."""
    if direction not in translator.generators:
        raise ValueError(
            f"unknown direction {direction!r} for this {translator.variant} model: use one of {translator.directions}"
        )
    if translator.takes_label_maps(direction):
        cfg = translator.config["generators"][direction]
        if (options.style is not None or options.seed is not None) and not cfg.get("use_vae", False):
            raise ValueError(
                "style and seed choose the style of a SPADE model with a style encoder (trained with use_vae=true); "
                "this model has none, so its output does not depend on them: leave them out"
            )
        if options.instances is not None and not cfg.get("use_instance", False):
            raise ValueError(
                "this SPADE model was trained without instance maps (use_instance=false): leave out instances"
            )
    elif options.style is not None or options.seed is not None or options.instances is not None:
        raise ValueError(
            f"instances, style and seed are for label-map models (SPADE); this is a {translator.variant} model"
        )


def _instance_index(folder: str | None) -> tuple[dict[str, Path], dict[str, list[Path]]]:
    """Instance maps by relative path without extension, and by bare file stem."""
    if folder is None:
        return {}, {}
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"instance map folder '{root}' does not exist")
    by_rel: dict[str, Path] = {}
    by_stem: dict[str, list[Path]] = {}
    for path in list_images(root):
        by_rel[path.relative_to(root).with_suffix("").as_posix()] = path
        by_stem.setdefault(path.stem, []).append(path)
    return by_rel, by_stem


def _crop_half(image: Image.Image, half: str | None) -> Image.Image:
    if half is None:
        return image
    w, h = image.size
    box = (0, 0, w // 2, h) if half == "left" else (w - w // 2, 0, w, h)
    return image.crop(box)


def _fmt_size(size: tuple[int, int] | None) -> str:
    return f"{size[0]}x{size[1]}" if size else ""


def translate_folder(
    translator: Translator,
    inputs: Sequence[str | os.PathLike[str]],
    output_dir: str | os.PathLike[str],
    *,
    model_info: ModelInfo,
    options: BatchOptions | None = None,
    config: ProvenanceConfig | None = None,
) -> BatchResult:
    """Translate every image of ``inputs`` into ``output_dir`` and stamp each output (see the module doc).

    ``model_info`` names the model in every manifest and ledger row and keys the resume state (an
    output made by another version is made again). Returns the rows of all inputs, in input order
    (also written to ``output_dir/translations.csv``).

    Raises:
        FileNotFoundError: an input (or the instance folder, the style image) does not exist.
        ValueError: options the model cannot take (direction, style/seed/instances for the wrong model).
    """
    return _Batch(translator, output_dir, model_info, options or BatchOptions(), config).run(inputs)


class _Batch:
    """One call of :func:`translate_folder`: the settings, the rows so far, the state file."""

    def __init__(
        self,
        translator: Translator,
        output_dir: str | os.PathLike[str],
        model_info: ModelInfo,
        options: BatchOptions,
        config: ProvenanceConfig | None,
    ) -> None:
        self.translator, self.model, self.options, self.config = translator, model_info, options, config
        self.out_root = Path(output_dir)
        self.direction = options.direction or translator.directions[0]
        _check_model_options(translator, self.direction, options)
        self.labels = translator.takes_label_maps(self.direction)
        self.style: Image.Image | None = None
        style_sha = None
        if options.style is not None:
            style_path = Path(options.style)
            if not style_path.is_file():
                raise FileNotFoundError(f"style image '{style_path}' does not exist")
            style_bytes = style_path.read_bytes()
            self.style = decode_input_bytes(style_bytes, max_pixels=options.max_pixels)
            style_sha = hashlib.sha256(style_bytes).hexdigest()
        self.by_rel, self.by_stem = _instance_index(options.instances)
        self.settings = {
            "direction": self.direction,
            "format": options.format,
            "quality": options.quality,
            "width": options.width,
            "height": options.height,
            "pair_half": options.pair_half,
            "seed": options.seed,
            "style_sha256": style_sha,
        }
        self.settings_key = hashlib.sha256(json.dumps(self.settings, sort_keys=True).encode()).hexdigest()[:16]
        self.model_key = _model_key(model_info)
        self.rows: dict[str, BatchRow] = {}
        self.writer: _StateWriter | None = None

    # -- rows
    def row(self, entry: InputFile, status: str, **values: Any) -> None:
        values.setdefault("output", "")
        values.setdefault("provenance_id", "")
        values.setdefault("input_size", "")
        values.setdefault("output_size", "")
        values.setdefault("seconds", 0.0)
        values["seconds"] = round(float(values["seconds"]), 4)
        self.rows[entry.rel] = BatchRow(
            input=entry.rel, model=self.model.name, model_version=str(self.model.version), status=status, **values
        )

    def refuse(self, entry: InputFile, reason: str, size: tuple[int, int] | None = None, seconds: float = 0.0) -> None:
        logger.warning("refused %s: %s", entry.rel, reason)
        self.row(entry, REFUSED, input_size=_fmt_size(size), seconds=seconds, reason=reason)

    # -- the run
    def run(self, inputs: Sequence[str | os.PathLike[str]]) -> BatchResult:
        from tqdm.auto import tqdm

        t_start = time.perf_counter()
        entries = collect_inputs(inputs, exclude=self.out_root)
        self.out_root.mkdir(parents=True, exist_ok=True)
        _remove_stale_parts(self.out_root)
        todo = self.scan(entries, _read_state(self.out_root), _output_names(entries, self.options.extension))
        self.writer = _StateWriter(self.out_root)
        bar = tqdm(
            total=len(todo),
            desc=f"translate ({model_label(self.model)})",
            unit="img",
            disable=None if self.options.progress else True,  # None: only on a terminal
        )
        try:
            for chunk in _chunks(todo, self.options.batch_size, group=not self.labels):
                self.translate_chunk(chunk)
                bar.update(len(chunk))
        finally:
            bar.close()
            self.writer.close()
        _compact_state(self.out_root)
        result = BatchResult(
            [self.rows[entry.rel] for entry in entries],
            self.out_root,
            self.out_root / TABLE_FILE,
            self.model,
            time.perf_counter() - t_start,
            dict(self.settings),
            {entry.rel: entry.path for entry in entries},
            self.labels,
        )
        write_table(result.rows, result.table_path)
        logger.info("%s", result.summary_text())
        return result

    def scan(self, entries: list[InputFile], state: dict[str, dict[str, Any]], names: dict[str, str]) -> list[_Todo]:
        """Read and hash every input and check its declared size (no pixel decoded); skip what is done."""
        todo = []
        for entry in entries:
            t0 = time.perf_counter()
            try:
                data = entry.path.read_bytes()
            except OSError as exc:
                self.refuse(entry, f"cannot read the file ({exc.strerror or exc})")
                continue
            try:
                declared = open_untrusted(data, max_pixels=self.options.max_pixels).size
            except UntrustedImageError as exc:
                hint = " (the max_pixels setting)" if exc.kind == "too_large" else ""
                self.refuse(entry, exc.reason + hint, seconds=time.perf_counter() - t0)
                continue
            item = _Todo(entry, hashlib.sha256(data).hexdigest(), declared, names[entry.rel])
            if self.labels and (self.by_rel or self.by_stem):
                matches = self.by_stem.get(Path(entry.rel).stem, [])
                item.instance = self.by_rel.get(Path(entry.rel).with_suffix("").as_posix()) or (
                    matches[0] if len(matches) == 1 else None
                )
                if item.instance is not None:
                    item.instance_sha256 = _file_sha256(item.instance)
            done = state.get(entry.rel)
            if (
                done is not None
                and done.get("sha256") == item.sha256
                and done.get("model") == self.model_key
                and done.get("settings") == self.settings_key
                and done.get("instance_sha256") == item.instance_sha256
                and (self.out_root / str(done.get("output", ""))).is_file()
            ):
                self.row(
                    entry,
                    SKIPPED,
                    output=str(done["output"]),
                    provenance_id=str(done.get("provenance_id", "")),
                    input_size=_fmt_size(declared),
                    output_size=str(done.get("output_size", "")),
                    reason=f"translated before by {model_label(self.model)} with these settings",
                )
                continue
            todo.append(item)
        return todo

    def decode(self, item: _Todo) -> tuple[Image.Image, Image.Image | None] | None:
        """The input (and its instance map) decoded, oriented, cropped to its half; None when refused."""
        try:
            image = decode_input_bytes(item.entry.path.read_bytes(), max_pixels=self.options.max_pixels)
            instance = None
            if item.instance is not None:
                instance = decode_input_bytes(item.instance.read_bytes(), max_pixels=self.options.max_pixels)
                instance.filename = str(item.instance)  # type: ignore[attr-defined]
        except UntrustedImageError as exc:
            self.refuse(item.entry, exc.reason, item.declared)
            return None
        except OSError as exc:
            self.refuse(item.entry, f"cannot read the file ({exc.strerror or exc})", item.declared)
            return None
        image = _crop_half(image, self.options.pair_half)
        image.filename = item.entry.rel  # type: ignore[attr-defined]  # names the file in refusals
        if self.labels and image.mode not in LABEL_MODES:
            self.refuse(
                item.entry,
                f"a label map holds one class id per pixel (modes {', '.join(LABEL_MODES)}); this file has mode "
                f"{image.mode!r}",
                item.declared,
            )
            return None
        try:
            out_size = self.options.output_size(image.size)
        except ValueError as exc:
            self.refuse(item.entry, str(exc), item.declared)
            return None
        item.out_size = out_size
        return image, instance

    def translate_chunk(self, chunk: list[_Todo]) -> None:
        """Decode, translate + stamp (equal output sizes together), write each output atomically, record it."""
        t0 = time.perf_counter()
        groups: dict[tuple[int, int], list[tuple[_Todo, Image.Image, Image.Image | None]]] = {}
        for item in chunk:
            decoded = self.decode(item)
            if decoded is not None:
                groups.setdefault(item.out_size, []).append((item, *decoded))
        results: list[tuple[_Todo, Any]] = []
        for size, members in groups.items():
            outputs = self.stamp([m[1] for m in members], [m[2] for m in members], size)
            results += [(m[0], out) for m, out in zip(members, outputs)]
        seconds = (time.perf_counter() - t0) / max(1, len(chunk))
        for item, out in results:
            if isinstance(out, Exception):
                self.refuse(item.entry, str(out), item.declared, seconds)
                continue
            target = self.out_root / item.output
            try:
                _write_atomically(target, out.data)
            except OSError as exc:
                self.refuse(item.entry, f"cannot write {target} ({exc.strerror or exc})", item.declared, seconds)
                continue
            out_size = _fmt_size((out.manifest["pixels"]["width"], out.manifest["pixels"]["height"]))
            assert self.writer is not None
            self.writer.append(
                {
                    "input": item.entry.rel,
                    "sha256": item.sha256,
                    "instance_sha256": item.instance_sha256,
                    "model": self.model_key,
                    "settings": self.settings_key,
                    "output": item.output,
                    "provenance_id": out.provenance_id,
                    "output_size": out_size,
                    "created_at": out.manifest.get("created_at"),
                }
            )
            self.row(
                item.entry,
                OK,
                output=item.output,
                provenance_id=out.provenance_id,
                input_size=_fmt_size(item.declared),
                output_size=out_size,
                seconds=seconds,
            )

    def stamp(self, images: list[Image.Image], instances: list[Image.Image | None], size: tuple[int, int]) -> list[Any]:
        """:func:`translate_and_stamp` on images of one output size; a failure of the generator itself (out of
        memory, say) is retried image by image, and refuses only the image it happens on."""
        kwargs: dict[str, Any] = {
            "model_info": self.model,
            "direction": self.direction,
            "size": size,
            "fmt": self.options.encoder,
            "quality": self.options.quality,
            "config": self.config,
            "batch_size": self.options.batch_size,
        }
        if self.labels:
            kwargs.update(style=self.style, seed=self.options.seed)
        try:
            return translate_and_stamp(self.translator, images, instances=instances if self.labels else None, **kwargs)
        except (RuntimeError, MemoryError) as exc:
            if len(images) == 1:
                return [RuntimeError(f"the generator failed on this image ({type(exc).__name__}: {exc})")]
        return [self.stamp([image], [instance], size)[0] for image, instance in zip(images, instances)]


def _chunks(todo: list[_Todo], batch_size: int, group: bool) -> Iterator[list[_Todo]]:
    """Chunks of at most ``batch_size`` items; with ``group``, each of one declared input size (a generator
    batch); label maps go through the generator one by one anyway."""
    if not group:
        for i in range(0, len(todo), batch_size):
            yield todo[i : i + batch_size]
        return
    by_size: dict[tuple[int, int], list[_Todo]] = {}
    for item in todo:
        by_size.setdefault(item.declared, []).append(item)
    for items in by_size.values():
        for i in range(0, len(items), batch_size):
            yield items[i : i + batch_size]


# -- the table and the sample grid ------------------------------------------------------------------------
TABLE_COLUMNS: Final = tuple(f.name for f in dataclasses.fields(BatchRow))


def write_table(rows: Sequence[BatchRow], path: str | os.PathLike[str]) -> Path:
    """The rows as CSV (header :data:`TABLE_COLUMNS`), written atomically."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=TABLE_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(dataclasses.asdict(row))
    path = Path(path)
    _write_atomically(path, buf.getvalue().encode("utf-8"))
    return path


def _label_colours(image: Image.Image) -> Image.Image:
    """A label map in false colours (a fixed colour per class id), for the sample grid."""
    palette = np.random.default_rng(0).integers(40, 256, (256, 3), dtype=np.uint8)
    ids = np.asarray(image).astype(np.int64) % 256
    return Image.fromarray(palette[ids])


def sample_grid(result: BatchResult, *, n: int = 4, side: int = 128) -> Image.Image | None:
    """Rows of input | output for the first ``n`` inputs with an output (translated now or before), each
    ``side`` pixels square; label maps in false colours. None when there is no output."""
    rows = []
    for row in result.rows:
        if row.status == REFUSED or row.input not in result.sources:
            continue
        try:
            source = decode_input_bytes(result.sources[row.input].read_bytes(), max_pixels=MAX_PIXELS)
            output = decode_input_bytes((result.output_dir / row.output).read_bytes(), max_pixels=MAX_PIXELS)
        except (OSError, UntrustedImageError):
            continue
        source = _crop_half(source, result.settings.get("pair_half"))
        shown = _label_colours(source) if result.labels else convert_image(source, "RGB", path=row.input)
        pair = [shown, convert_image(output, "RGB", path=row.output)]
        rows.append([to_tensor(img.resize((side, side), Image.Resampling.BICUBIC)) for img in pair])
        if len(rows) == n:
            break
    return make_grid(rows) if rows else None
