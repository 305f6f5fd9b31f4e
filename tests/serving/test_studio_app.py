"""The studio's own routes (the page, its assets, the Models view's data and sample grids) and the Models view's
summary gathered from the registry at start-up; the page in a browser: test_studio.py."""

from __future__ import annotations

import io
import json
import re

import pytest
from PIL import Image
from starlette.testclient import TestClient

from _support import encode, noise_image, register_generator_version
from transfigure.serving.resolution import ResolvedModel
from transfigure.serving.studio import ASSETS, HERE, studio_app
from transfigure.serving.studio.catalog import SAMPLE_GRID_ARTIFACT, STUDIO_ENV, models_summary


def resolved(name: str, version: str, *, source: str = "registry", **extra) -> ResolvedModel:
    return ResolvedModel(name=name, ref="champion", version=version, folder="/nowhere", source=source, **extra)


@pytest.fixture
def registry(mlflow_uri, tmp_path, monkeypatch):
    """cyclegan v1 (champion, with a sample grid and an evaluation metric) and v2 (challenger, no grid)."""
    from mlflow import MlflowClient

    monkeypatch.setenv("TRANSFIGURE_MODEL_CACHE", str(tmp_path / "cache"))
    v1 = register_generator_version("cyclegan", tmp_path / "v1")
    v2 = register_generator_version("cyclegan", tmp_path / "v2", alias="challenger", seed=1)
    client = MlflowClient(mlflow_uri)
    client.log_image(v1["run_id"], noise_image(96, 32), SAMPLE_GRID_ARTIFACT)
    client.set_model_version_tag("cyclegan", v1["version"], "metric.fid", "123.5")
    return {"uri": mlflow_uri, "v1": v1, "v2": v2}


def test_summary_lists_served_champion_and_challenger_with_metrics_and_grids(registry):
    served = resolved(
        "cyclegan", registry["v1"]["version"], run_id=registry["v1"]["run_id"], tracking_uri=registry["uri"]
    )
    (entry,) = models_summary([served])
    versions = {v["version"]: v for v in entry["versions"]}
    champion, challenger = versions[registry["v1"]["version"]], versions[registry["v2"]["version"]]
    assert champion["roles"] == ["served", "champion"] and challenger["roles"] == ["challenger"]
    assert champion["metrics"]["metric.fid"] == 123.5
    assert Image.open(champion["grid"]).size == (96, 32)  # downloaded once, into the model cache
    assert challenger["grid"] is None  # its run logged no grid: no picture, no failure


def test_summary_never_stops_the_service(registry):
    """A model the registry does not know (or an unreachable store) keeps what resolution recorded."""
    lost = resolved("ghost", "3", metrics={"loss_G": 1.0}, tracking_uri=registry["uri"])
    bundled = resolved("spade", "2", source="bundle", metrics={"metric.fid": 40.0})
    ghost, spade = models_summary([lost, bundled])
    assert [v["version"] for v in ghost["versions"]] == ["3"] and ghost["versions"][0]["metrics"] == {"loss_G": 1.0}
    assert spade["versions"][0]["roles"] == ["served"] and spade["versions"][0]["metrics"] == {"metric.fid": 40.0}


@pytest.fixture
def client(tmp_path, monkeypatch):
    grid = tmp_path / "grid.png"
    grid.write_bytes(encode(noise_image(64, 32)))
    summary = [
        {
            "model": "cyclegan",
            "version": "2",
            "versions": [
                {"version": "2", "roles": ["served", "champion"], "metrics": {}, "grid": str(grid)},
                {"version": "1", "roles": ["challenger"], "metrics": {}, "grid": None},
            ],
        }
    ]
    monkeypatch.setenv(STUDIO_ENV, json.dumps(summary))
    return TestClient(studio_app())


def test_page_and_assets_are_served_with_a_this_origin_only_policy(client):
    for name, media_type in ASSETS.items():
        reply = client.get("/" if name == "index.html" else f"/{name}")
        assert reply.status_code == 200 and reply.headers["content-type"] == media_type
        assert "default-src 'none'" in reply.headers["content-security-policy"]
    assert client.get("/__init__.py").status_code == 404  # only the page's files


def test_the_page_references_nothing_remote():
    """Everything is bundled: the studio works offline (no CDN, no remote font or script)."""
    for name in ASSETS:
        text = (HERE / name).read_text()
        assert not re.findall(r"(?:https?:)?//[\w.-]+\.[a-z]{2,}", text), name


def test_models_data_names_grids_by_url_and_serves_only_known_grids(client):
    models = client.get("/api/models").json()["models"]
    grids = {v["version"]: v["grid"] for v in models[0]["versions"]}
    assert grids == {"2": "api/grid/cyclegan/2", "1": None}
    image = client.get("/api/grid/cyclegan/2")
    assert image.status_code == 200 and Image.open(io.BytesIO(image.content)).size == (64, 32)
    for missing in ("/api/grid/cyclegan/1", "/api/grid/spade/2"):
        reply = client.get(missing)
        assert reply.status_code == 404 and set(reply.json()) == {"error", "detail"}
    assert client.get("/api/grid/cyclegan/..%2F..%2F..%2Fetc%2Fpasswd").status_code == 404  # looked up, never a path
