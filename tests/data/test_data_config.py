"""DataConfig: every shipped data section parses, unknown keys are named, and the one mapping to
dataset arguments builds the same datasets as the former deny-list in pipelines/training.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from transfigure.data import DataConfig, TransformConfig, make_dataset
from transfigure.data.default_dataset import build_default_dataset
from transfigure.data.layout import resolve_format
from transfigure.models import VARIANTS
from transfigure.pipelines.training.nodes import build_dataset, model_config

CONF = Path(__file__).resolve().parents[2] / "conf"
VARIANT_NAMES = ("cyclegan", "pix2pix", "spade", "unit")


def _params(variant: str, env: str = "base") -> dict[str, Any]:
    path = CONF / env / f"parameters_train_{variant}.yml"
    return yaml.safe_load(path.read_text())[variant] if path.is_file() else {}


def _data(variant: str, env: str = "base") -> dict[str, Any]:
    data = dict(_params(variant)["data"])
    if env != "base":
        data.update(_params(variant, env).get("data", {}))
    return data


def _legacy_dataset(dataset: dict[str, str], data: dict[str, Any], split: str = "train", seed: int = 0) -> Any:
    """How pipelines/training.py built datasets before DataConfig (its deny-list, verbatim)."""
    not_dataset_args = {
        "path",
        "default_subset",
        "default_root",
        "format",
        "preprocess",
        "load_size",
        "crop_size",
        "flip",
        "holdout_fraction",  # added since; not a dataset argument (and these datasets have a test split)
        "holdout_min_count",
    }
    transform = TransformConfig(
        preprocess=data.get("preprocess", "resize_and_crop"),
        load_size=int(data.get("load_size", 286)),
        crop_size=int(data.get("crop_size", 256)),
        flip=bool(data.get("flip", True)),
    )
    kwargs = {k: v for k, v in data.items() if k not in not_dataset_args}
    return make_dataset(dataset["format"], dataset["root"], split, transform=transform, seed=seed, **kwargs)


@pytest.fixture(scope="module")
def default_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("default")
    build_default_dataset(root)
    return root


@pytest.mark.parametrize("env", ["base", "paper"])
@pytest.mark.parametrize("variant", VARIANT_NAMES)
def test_every_shipped_data_section_parses(variant: str, env: str) -> None:
    data = _data(variant, env)
    config = DataConfig.from_params(data)
    assert config.model_dump(include=set(data)) == data  # keys kept exactly as users write them
    assert config.transform() == TransformConfig(data["preprocess"], data["load_size"], data["crop_size"], data["flip"])


def test_unknown_or_bad_key_is_named() -> None:
    with pytest.raises(ValueError, match=r"unknown key data\.crop_szie.*Known keys: path,"):
        DataConfig.from_params({**_data("cyclegan"), "crop_szie": 32})
    with pytest.raises(ValueError, match=r"data\.direction='AtoZ'"):
        DataConfig.from_params({"direction": "AtoZ"})
    with pytest.raises(ValueError, match="invalid data parameters"):
        build_dataset({"root": "unused", "format": "aligned"}, {"flip": "sometimes"})


def test_labelmap_needs_label_nc() -> None:
    with pytest.raises(ValueError, match="data.label_nc"):
        DataConfig().dataset_kwargs("labelmap")


@pytest.mark.parametrize("variant", VARIANT_NAMES)
def test_default_config_builds_the_same_dataset_as_before(variant: str, default_root: Path) -> None:
    data = {**_data(variant), "load_size": 36, "crop_size": 32}
    root = default_root / data["default_subset"]
    dataset = {"root": str(root), "format": resolve_format(root, data["format"])}

    new, old = build_dataset(dataset, data, seed=3), _legacy_dataset(dataset, data, seed=3)

    assert type(new) is type(old) and len(new) == len(old) and repr(new) == repr(old)
    for index in (0, len(old) - 1):
        got, want = new[index], old[index]
        assert got.keys() == want.keys()
        for key, value in want.items():
            if isinstance(value, torch.Tensor):
                assert torch.equal(got[key], value), key
            else:
                assert got[key] == value, key


@pytest.mark.parametrize("variant", VARIANT_NAMES)
def test_model_takes_only_the_data_values_set(variant: str) -> None:
    params = _params(variant)
    config_class = VARIANTS[variant].config_class
    keys = ("input_nc", "output_nc", "label_nc", "contain_dontcare_label", "use_instance", "crop_size")
    before = {k: params["data"][k] for k in keys if k in params["data"] and k in config_class.model_fields}
    model = {k: v for k, v in params["model"].items() if not (isinstance(v, str) and v.startswith("${"))}
    assert model_config(variant, params["data"], model) == config_class(**{**before, **model})
