"""Serving settings from the environment: defaults, model lists, and errors that name the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from transfigure.data.rules import MAX_PIXELS
from transfigure.provenance import ProvenanceConfig
from transfigure.serving.config import ConfigError, ModelSpec, ServingConfig, is_loopback

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
    "TRANSFIGURE_MAX_OUTPUT_PIXELS",
    "TRANSFIGURE_LARGE_OUTPUT_PIXELS",
    "TRANSFIGURE_THREADS",
    "TRANSFIGURE_LARGE_THREADS",
    "TRANSFIGURE_LARGE_NICE",
    "TRANSFIGURE_ALLOW_DEV_KEYS",
    "TRANSFIGURE_MAX_CONCURRENCY",
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
    assert (cfg.max_output_pixels, cfg.large_output_pixels) == (1024 * 1024, 512 * 512)
    assert cfg.threads >= 1 and 1 <= cfg.large_threads <= cfg.threads and cfg.large_nice == 10
    assert cfg.allow_dev_keys is False and cfg.http_concurrency() is None


def test_lanes_deadlines_and_concurrency(monkeypatch):
    monkeypatch.setenv("TRANSFIGURE_TIMEOUT", "20")
    monkeypatch.setenv("TRANSFIGURE_MAX_CONCURRENCY", "5")
    monkeypatch.setenv("TRANSFIGURE_WORKERS", "2")
    cfg = ServingConfig.from_env()
    assert cfg.lane_of(512 * 512) == "small" and cfg.lane_of(512 * 512 + 1) == "large"
    assert cfg.job_deadline(1000.0) == 1000.0 + 20 - cfg.grace and 0 < cfg.grace < 20 / 2
    assert cfg.backstop_timeout > cfg.timeout and cfg.model_lane_timeout >= cfg.backstop_timeout
    assert cfg.http_concurrency() == 3  # 5 over 2 workers, rounded up
    assert cfg.limits()["max_output_pixels"] == 1024 * 1024 and set(cfg.lanes()) == {"small", "large"}


def test_the_output_limit_stays_within_the_pixel_limit(monkeypatch):
    monkeypatch.setenv("TRANSFIGURE_MAX_PIXELS", str(2048 * 2048))
    monkeypatch.setenv("TRANSFIGURE_MAX_OUTPUT_PIXELS", str(2048 * 2048))
    assert ServingConfig.from_env().max_output_pixels == 2048 * 2048
    monkeypatch.setenv("TRANSFIGURE_MAX_PIXELS", str(512 * 512))
    monkeypatch.delenv("TRANSFIGURE_MAX_OUTPUT_PIXELS")
    assert ServingConfig.from_env().max_output_pixels == 512 * 512  # the default follows a lower pixel limit
    monkeypatch.setenv("TRANSFIGURE_MAX_OUTPUT_PIXELS", str(512 * 512 + 1))
    with pytest.raises(ConfigError, match="TRANSFIGURE_MAX_OUTPUT_PIXELS=262145 is above TRANSFIGURE_MAX_PIXELS"):
        ServingConfig.from_env()


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.1.1", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.1.2.3", False),
        ("example.org", False),
    ],
)
def test_loopback_addresses(host, loopback):
    assert is_loopback(host) is loopback


def test_development_keys_are_refused_beyond_loopback_unless_allowed(monkeypatch, tmp_path):
    dev = ProvenanceConfig.from_env({}, root=tmp_path)
    real = ProvenanceConfig.from_env(
        {"TRANSFIGURE_WATERMARK_KEY": "s", "TRANSFIGURE_SIGNING_KEY": "k.pem", "TRANSFIGURE_SIGNING_CERT": "c.pem"},
        root=tmp_path,
    )
    cfg = ServingConfig.from_env()
    cfg.check_bind("127.0.0.1", dev)
    cfg.check_bind("0.0.0.0", real)
    with pytest.raises(ConfigError) as info:
        cfg.check_bind("0.0.0.0", dev)
    message = str(info.value)
    for words in (
        "0.0.0.0",
        "TRANSFIGURE_WATERMARK_KEY",
        "TRANSFIGURE_SIGNING_CERT",
        "transfigure provenance-cert",
        "TRANSFIGURE_ALLOW_DEV_KEYS=1",
    ):
        assert words in message
    monkeypatch.setenv("TRANSFIGURE_ALLOW_DEV_KEYS", "1")
    ServingConfig.from_env().check_bind("0.0.0.0", dev)
    monkeypatch.setenv("TRANSFIGURE_ALLOW_DEV_KEYS", "maybe")
    with pytest.raises(ConfigError, match="TRANSFIGURE_ALLOW_DEV_KEYS='maybe'"):
        ServingConfig.from_env()


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
        ("TRANSFIGURE_MAX_OUTPUT_PIXELS", "0", ">= 1"),
        ("TRANSFIGURE_LARGE_THREADS", "x", "not an integer"),
        ("TRANSFIGURE_LARGE_NICE", "-1", ">= 0"),
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
