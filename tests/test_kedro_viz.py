"""`kedro viz build` draws every pipeline of the registry into a static site, offline."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from _support import env_with_default_store, project_copy

KEDRO = str(Path(sys.executable).with_name("kedro"))


@pytest.mark.slow
def test_kedro_viz_build_draws_every_registered_pipeline(tmp_path: Path) -> None:
    from transfigure.pipeline_registry import register_pipelines

    root = project_copy(tmp_path)
    proc = subprocess.run(
        [KEDRO, "viz", "build"], cwd=root, env=env_with_default_store(), capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    build = root / "build"
    assert (build / "index.html").is_file()
    drawn = {p.name for p in (build / "api" / "pipelines").iterdir()}
    assert set(register_pipelines()) <= drawn
    graph = json.loads((build / "api" / "pipelines" / "train_cyclegan").read_text())
    names = {n["name"] for n in graph["nodes"] if n.get("type") == "task"}
    assert any("train" in n for n in names), names
