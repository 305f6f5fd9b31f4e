"""Fixtures for the provenance tests: real photos (scikit-image's bundled ones), a private
watermark key, ledger and development certificate per test (in tmp_path)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from transfigure.provenance import ProvenanceConfig

PHOTO_NAMES = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "camera",
    "moon",
    "coins",
    "brick",
    "gravel",
    "grass",
    "immunohistochemistry",
    "hubble_deep_field",
    "retina",
    "cell",
    "clock",
    "page",
    "text",
    "stereo_motorcycle",
)


@pytest.fixture(scope="session")
def photos() -> dict[str, Image.Image]:
    """scikit-image's natural photos (RGB), by name."""
    import skimage.data

    out = {}
    for name in PHOTO_NAMES:
        arr = getattr(skimage.data, name)()
        arr = arr[0] if isinstance(arr, tuple) else arr
        out[name] = Image.fromarray(np.asarray(arr)).convert("RGB")
    return out


@pytest.fixture(scope="session")
def photo(photos):
    """``photo(name, size)``: the centre square of a photo resized to size x size (or (w, h))."""

    def make(name: str, size: int | tuple[int, int]) -> Image.Image:
        image = photos[name]
        w, h = image.size
        s = min(w, h)
        box = ((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s)
        target = (size, size) if isinstance(size, int) else size
        return image.crop(box).resize(target, Image.Resampling.LANCZOS)

    return make


@pytest.fixture
def provenance_config(tmp_path, monkeypatch) -> ProvenanceConfig:
    """A test watermark key and a ledger in tmp_path; the working directory moves there, so the
    development certificate is created in tmp_path/conf/local/provenance."""
    for var in ("TRANSFIGURE_SIGNING_KEY", "TRANSFIGURE_SIGNING_CERT", "TRANSFIGURE_TRUST_ANCHORS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("TRANSFIGURE_WATERMARK_KEY", "provenance tests: not a real secret")
    monkeypatch.setenv("TRANSFIGURE_LEDGER", str(tmp_path / "ledger.sqlite"))
    monkeypatch.chdir(tmp_path)
    return ProvenanceConfig.from_env()
