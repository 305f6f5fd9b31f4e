"""Serving settings from the environment: defaults, model lists, and errors that name the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from transfigure.data.rules import MAX_PIXELS
from transfigure.serving.config import ConfigError, ModelSpec, ServingConfig

ENV = (
    "TRANSFIGURE_MODELS",
    "TRANSFIGURE_MODEL",
    "TRANSFIGURE_MODEL_ALIAS",
    "TRANSFIGURE_MODEL_SOURCE",
    "TRANSFIGURE_MAX_BODY_BYTES",
    "TRANSFIGURE_MAX_PIXELS",
    "TRANSFIGURE_WORKERS",
    "TRANSFIGURE_MAX_BATCH_SIZE",
    "TRANSFIGURE_TIMEOUT",
    "TRANSFIGURE_GPUS",
    "TRANSFIGURE_BUNDLE_DIR",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


def test_defaults():
    cfg = ServingConfig.from_env()
    assert cfg.models is None and cfg.model_source == "auto" and cfg.bundle_dir == Path("data/06_models/serving")
    assert (cfg.max_body_bytes, cfg.max_pixels, cfg.min_side) == (20_000_000, 4096 * 4096, 64)
    assert (cfg.workers, cfg.model_workers, cfg.gpus, cfg.timeout, cfg.max_batch_size) == (1, 1, 0, 60.0, 16)


def test_model_lists(monkeypatch):
    monkeypatch.setenv("TRANSFIGURE_MODELS", "cyclegan, pix2pix@3,spade@staging")
    assert ServingConfig.from_env().models == (
        ModelSpec("cyclegan", "champion"),
        ModelSpec("pix2pix", "3"),
        ModelSpec("spade", "staging"),
    )
    monkeypatch.delenv("TRANSFIGURE_MODELS")
    monkeypatch.setenv("TRANSFIGURE_MODEL", "unit")
    monkeypatch.setenv("TRANSFIGURE_MODEL_ALIAS", "challenger")
    assert ServingConfig.from_env().models == (ModelSpec("unit", "challenger"),)


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("TRANSFIGURE_MODELS", "cyclegan,cyclegan@2", "twice"),
        ("TRANSFIGURE_MODELS", "cycle gan", "not 'name'"),
        ("TRANSFIGURE_MODEL_SOURCE", "s3", "auto, registry, bundle"),
        ("TRANSFIGURE_MAX_BODY_BYTES", "20MB", "not an integer"),
        ("TRANSFIGURE_WORKERS", "0", ">= 1"),
        ("TRANSFIGURE_MAX_BATCH_SIZE", "1", ">= 2"),
        ("TRANSFIGURE_TIMEOUT", "-5", "> 0"),
    ],
)
def test_bad_values_name_the_variable(monkeypatch, name, value, words):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=words) as info:
        ServingConfig.from_env()
    assert name in str(info.value)


def test_the_pixel_budget_may_be_raised_only_up_to_what_transfigure_decodes(monkeypatch):
    monkeypatch.setenv("TRANSFIGURE_MAX_PIXELS", str(MAX_PIXELS))
    assert ServingConfig.from_env().max_pixels == MAX_PIXELS
    monkeypatch.setenv("TRANSFIGURE_MAX_PIXELS", str(MAX_PIXELS + 1))
    with pytest.raises(ConfigError, match="TRANSFIGURE_MAX_PIXELS=67108865 is above the largest image"):
        ServingConfig.from_env()
