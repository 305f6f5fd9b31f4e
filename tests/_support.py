"""Helpers shared by test modules (not fixtures): ``from _support import project_catalog``."""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from kedro.config import OmegaConfigLoader
from kedro.io import DataCatalog
from PIL import Image

from transfigure import settings

PROJECT = Path(__file__).resolve().parents[1]


def project_catalog() -> DataCatalog:
    """The project's real conf/base/catalog.yml, resolved as `kedro run` resolves it (OmegaConfigLoader
    with the project's resolvers); relative paths point into the test's working directory."""
    loader = OmegaConfigLoader(
        str(PROJECT / "conf"),
        base_env="base",
        default_run_env="base",
        custom_resolvers=settings.CONFIG_LOADER_ARGS["custom_resolvers"],
    )
    return DataCatalog.from_config(loader["catalog"])


def project_copy(tmp_path: Path) -> Path:
    """A runnable copy of the Kedro project (pyproject, conf without local/, empty src/) for
    `kedro run` subprocesses; the package itself is installed (pip install -e)."""
    root = tmp_path / "project"
    root.mkdir()
    for name in ("pyproject.toml", ".telemetry"):
        shutil.copy(PROJECT / name, root / name)
    shutil.copytree(PROJECT / "conf", root / "conf", ignore=shutil.ignore_patterns("local"))
    (root / "conf" / "local").mkdir()
    (root / "src").mkdir()  # kedro insists on the source folder existing
    return root


def env_with_default_store() -> dict[str, str]:
    """This process's environment without MLFLOW_TRACKING_URI: a subprocess uses the project's own store."""
    return {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}


# -- tiny datasets of each format, made on the fly -----------------------------------------------------------
def _scene(rng: np.random.Generator, size: int, dark: bool = False) -> np.ndarray:
    """A smooth random colour field with a rectangle (uint8 HxWx3): cheap, decodable, distinct per seed."""
    y, x = np.mgrid[0:size, 0:size] / size
    base = rng.uniform(0.2, 0.9, 3)
    img = np.stack([base[c] * (0.6 + 0.4 * np.sin(3 * x + 2 * y + c + rng.uniform(0, 6))) for c in range(3)], -1)
    x0, y0 = rng.integers(0, size // 2, 2)
    img[y0 : y0 + size // 3, x0 : x0 + size // 4] = rng.uniform(0, 1, 3)
    return (img * (0.3 if dark else 1.0) * 255).clip(0, 255).astype(np.uint8)


def make_unaligned(root: Path, size: int = 32, n_train: int = 4, n_test: int = 2, seed: int = 0) -> Path:
    """CycleGAN/UNIT layout: trainA/trainB/testA/testB of distinct tiny PNGs (A bright, B dark)."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("test", n_test)):
        for dom in "AB":
            folder = root / f"{split}{dom}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.fromarray(_scene(rng, size, dark=dom == "B")).save(folder / f"{split}{dom}_{i:03d}.png")
    return root


def make_aligned(root: Path, size: int = 32, n_train: int = 4, n_test: int = 2, seed: int = 0) -> Path:
    """pix2pix layout: {train,test}/NNN.png, each A|B side by side (B = A's colour negative)."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("test", n_test)):
        (root / split).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            a = _scene(rng, size)
            Image.fromarray(np.concatenate([a, 255 - a], axis=1)).save(root / split / f"{i:03d}.png")
    return root


#: the label-map datasets' classes and the colour each is photographed in
LABEL_COLOURS = np.array([[200, 220, 255], [60, 160, 60], [120, 120, 120], [180, 80, 40]], dtype=np.uint8)


def make_labelmap(root: Path, size: int = 32, n_train: int = 4, n_test: int = 2, seed: int = 0) -> Path:
    """SPADE layout: {split}_label (ids 0..3, mode L), {split}_inst (mode L), {split}_img (photo coloured by class)."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("test", n_test)):
        for sub in ("label", "inst", "img"):
            (root / f"{split}_{sub}").mkdir(parents=True, exist_ok=True)
        for i in range(n):
            label = np.zeros((size, size), np.uint8)
            inst = np.zeros((size, size), np.uint8)
            label[size // 2 :] = 1
            for k in range(1, 4):  # a few objects of classes 2 and 3
                x0, y0 = rng.integers(0, size - 8, 2)
                label[y0 : y0 + 8, x0 : x0 + 6] = 2 + k % 2
                inst[y0 : y0 + 8, x0 : x0 + 6] = k
            photo = LABEL_COLOURS[label].astype(np.int16) + rng.integers(-20, 20, (size, size, 3))
            name = f"{split}_{i:03d}.png"
            Image.fromarray(label, mode="L").save(root / f"{split}_label" / name)
            Image.fromarray(inst, mode="L").save(root / f"{split}_inst" / name)
            Image.fromarray(photo.clip(0, 255).astype(np.uint8)).save(root / f"{split}_img" / name)
    return root


# -- tiny trained + registered generators (promotion, export, notebook, mlflow server tests) -------------------
#: each variant's smallest networks for 32 px images (unit: 3 discriminator layers, so that its third scale, 8 px,
#: still fits; spade: the latent grid sized for a 32 px crop)
TINY_MODEL: dict[str, dict] = {
    "cyclegan": {"ngf": 4, "ndf": 4},
    "pix2pix": {"ngf": 4, "ndf": 4, "num_downs": 5},
    "unit": {"dim": 4, "dis_dim": 4, "dis_n_layer": 3},
    "spade": {"ngf": 4, "ndf": 4, "spade_hidden": 8, "crop_size": 32},
}


def project_params(variant: str) -> dict:
    """conf/base parameters of ``variant`` with ${...} interpolations resolved, as Kedro's OmegaConfigLoader does."""
    import yaml
    from omegaconf import OmegaConf

    raw = yaml.safe_load((PROJECT / f"conf/base/parameters_train_{variant}.yml").read_text())
    return OmegaConf.to_container(OmegaConf.create(raw), resolve=True)[variant]


def tiny_variant_params(variant: str, output_dir: Path, *, max_steps: int = 2, seed: int = 0, **model) -> dict:
    """The project's parameters for ``variant`` shrunk to a seconds-long CPU run: 32 px, :data:`TINY_MODEL`,
    ``max_steps``, no FID curve."""
    p = project_params(variant)
    p["output_dir"] = str(output_dir)
    p["data"].update(load_size=36, crop_size=32)
    p["model"].update({**TINY_MODEL[variant], "seed": seed, **model})
    p["training"].update(
        {
            "progress": False,
            "max_steps": max_steps,
            "log_every": 1,
            "sample_every": 1000,
            "checkpoint_every": 1000,
            "eval_every": None,  # the FID curve (on by default) has tests of its own: tests/evaluation/test_curve.py
            "seed": seed,
            # batch norm at the 1x1 latent grid of a 32 px crop needs more than one value per channel
            **({"batch_size": 2} if variant == "spade" else {}),
        }
    )
    p.setdefault("evaluation", {}).update(
        {"max_images": 4, "kid_subset_size": 2, "kid_subsets": 5, "report_rows": 2, "curve_images": 2}
    )
    return p


def default_dataset(base: Path, subset: str = "day2night") -> dict:
    """The embedded default dataset (built offline in ~1 s) as the validation pipeline describes it."""
    from transfigure.data.default_dataset import build_default_dataset
    from transfigure.pipelines.data_validation.nodes import prepare_dataset

    build_default_dataset(base)
    return prepare_dataset({"path": str(base / subset)})


def train_and_register(params: dict, dataset: dict, variant: str = "cyclegan") -> dict:
    """Train with the real tracked engine (MLflow run + logged pyfunc model) and register a version."""
    from transfigure.pipelines.training.nodes import train
    from transfigure.tracking.runs import register_trained_model

    summary = train(
        variant,
        {**dataset, "fingerprint": "test"},
        {"success": True, "summary": {}},
        params["data"],
        params["model"],
        params["training"],
        params["tracking"],
        params["output_dir"],
    )
    return register_trained_model(summary, params["tracking"])


def git_checkout(root: Path) -> str:
    """Make ``root`` a git repository with one commit; returns the commit (runs record it)."""
    import subprocess

    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q", str(root)], check=True)
    subprocess.run([*git, "-C", str(root), "commit", "-q", "--allow-empty", "-m", "x"], check=True)
    return subprocess.run(
        ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()


def add_evaluated_version(client, name: str, registered: dict, split: str | None = "split-1", **metrics: float) -> str:
    """Register ``registered``'s model once more as a version of ``name`` with evaluation tags set by hand
    (``metric.<key>``, ``eval_split_fingerprint``): drives the promotion gate without evaluating."""
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name)
    tags = {f"metric.{k}": repr(float(v)) for k, v in metrics.items()}
    if split:
        tags["eval_split_fingerprint"] = split
    from transfigure.tracking.registry import logged_model_id

    return str(
        client.create_model_version(
            name,
            registered["source"],
            run_id=registered["run_id"],
            tags=tags,
            model_id=logged_model_id(registered["source"]),
        ).version
    )


# -- tiny untrained generators, exported and registered without training (batch translation, the MLflow model) ----
#: what the project's parameters set besides :data:`TINY_MODEL` for a small generator of these variants
_TINY_EXPORT: dict[str, dict] = {"cyclegan": {"netG": "resnet_6blocks"}, "pix2pix": {"netG": "unet"}}


def export_generator(variant: str, folder: Path, *, seed: int = 0, metadata: dict | None = None, **model) -> Path:
    """An untrained generator of ``variant`` (:data:`TINY_MODEL` networks, weights drawn from ``seed``) exported as
    training exports it: ``folder/`` with ``config.json`` and ``<direction>.safetensors``."""
    import torch

    from transfigure.models import VARIANTS
    from transfigure.models.io import save_generators

    torch.manual_seed(seed)
    cls = VARIANTS[variant]
    net = cls(cls.config_class(**{**TINY_MODEL[variant], **_TINY_EXPORT.get(variant, {}), "seed": seed, **model}))
    return save_generators(
        folder, net.generators(), variant=variant, model_config=net.config.model_dump(), metadata=metadata
    )


def register_generator_version(
    variant: str, root: Path, *, name: str | None = None, alias: str | None = "champion", seed: int = 0, **model
) -> dict:
    """Export an untrained generator in an MLflow run of the current store (``$MLFLOW_TRACKING_URI``), log it as
    the pyfunc model and register it as a new version of ``name`` (default: the variant), with ``alias``."""
    import mlflow

    from transfigure.tracking.client import mlflow_client
    from transfigure.tracking.mlflow_utils import configure_mlflow
    from transfigure.tracking.registry import log_generator_model, register_generator

    name = name or variant
    _, experiment_id = configure_mlflow(f"tiny-{variant}")
    with mlflow.start_run(experiment_id=experiment_id) as run:
        folder = export_generator(
            variant,
            root / run.info.run_id / "generator",
            seed=seed,
            metadata={"mlflow_run_id": run.info.run_id},
            **model,
        )
        logged = log_generator_model(folder, registered_model_name=name)
    client = mlflow_client()
    version = str(register_generator(client, logged.model_uri, name, run_id=run.info.run_id).version)
    if alias:
        client.set_registered_model_alias(name, alias, version)
    return {"name": name, "version": version, "run_id": run.info.run_id, "folder": folder}


# -- images for inference and serving tests ---------------------------------------------------------------
def noise_image(width: int, height: int, seed: int = 0, mode: str = "RGB") -> Image.Image:
    """A smooth random colour field (distinct per seed) in ``mode``."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(width, height)
    base = rng.uniform(0.2, 0.9, 3)
    img = np.stack([base[c] * (0.5 + 0.5 * np.sin(5 * x + 3 * y * c + rng.uniform(0, 6))) for c in range(3)], -1)
    img = (img * 255 + rng.normal(0, 8, img.shape)).clip(0, 255).astype(np.uint8)
    return Image.fromarray(img).convert(mode)


def encode(image: Image.Image, fmt: str = "PNG", **options: Any) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **options)
    return buf.getvalue()


def label_map(width: int, height: int, ids: tuple[int, ...] = (0, 1, 2, 3)) -> Image.Image:
    """A single-channel label map (mode L) using ``ids`` in bands and a block."""
    arr = np.full((height, width), ids[0], np.uint8)
    arr[height // 2 :] = ids[1 % len(ids)]
    arr[height // 4 : height // 2, width // 4 : width // 2] = ids[2 % len(ids)]
    arr[: height // 4, width // 2 :] = ids[-1]
    return Image.fromarray(arr, mode="L")


def bomb_png(width: int = 50000, height: int = 50000) -> bytes:
    """A 300-byte PNG whose header declares ``width`` x ``height`` pixels (a decompression bomb)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 4096)) + chunk(b"IEND", b"")
    )
