"""The ``tracking`` and ``promotion`` parameter sections are typed: every shipped file validates, typos fail early."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from transfigure.tracking.config import PromotionConfig, TrackingConfig

PARAMETER_FILES = sorted((Path(__file__).resolve().parents[2] / "conf" / "base").glob("parameters_train_*.yml"))


@pytest.mark.parametrize("path", PARAMETER_FILES, ids=lambda p: p.name)
def test_shipped_sections_validate_with_their_keys_unchanged(path):
    ((variant, params),) = yaml.safe_load(path.read_text()).items()
    tracking = TrackingConfig.from_params(params["tracking"])
    promotion = PromotionConfig.from_params(params["promotion"])
    assert tracking.model_dump(by_alias=True) == params["tracking"]
    assert promotion.model_dump() == params["promotion"]
    assert tracking.model_name_for(variant) == variant


def test_defaults_when_a_section_is_left_out():
    tracking = TrackingConfig.from_params(None)
    assert tracking.experiment_for("unit") == "transfigure-unit" and tracking.register_model
    assert not TrackingConfig.from_params({"register": False}).register_model
    assert PromotionConfig.from_params({}).primary_metric == "fid"


@pytest.mark.parametrize(
    ("cls", "params", "message"),
    [
        (TrackingConfig, {"registred_model_name": "x"}, "tracking.registred_model_name"),
        (PromotionConfig, {"margin": -1}, "promotion.margin"),
        (PromotionConfig, {"margin": float("nan")}, "promotion.margin"),
    ],
)
def test_a_bad_key_or_value_is_named(cls, params, message):
    with pytest.raises(ValueError, match=message):
        cls.from_params(params)
