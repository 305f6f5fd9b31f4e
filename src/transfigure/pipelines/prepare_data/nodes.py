"""Build the embedded default dataset: the raw data every variant trains on when ``<variant>.data.path`` is null."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from transfigure.data.default_dataset import DEFAULT_SUBSETS, MANIFEST_NAME, build_default_dataset

logger = logging.getLogger(__name__)


def build_default_data(options: dict[str, Any]) -> dict[str, Any]:
    """Build the default dataset under ``options["root"]`` (offline, deterministic; a no-op when already built).

    Returns a summary: the root, its subsets, the number of files and the sha256 of ``MANIFEST.json``
    (which itself holds a sha256 per file, so this one hash names the whole dataset's content).
    """
    if not isinstance(options, dict) or not options.get("root"):
        raise ValueError(
            "parameters 'prepare_data.root' must name the folder to build the default dataset in "
            "(conf/base/parameters_prepare_data.yml)"
        )
    root = build_default_dataset(Path(options["root"]))
    manifest_bytes = (root / MANIFEST_NAME).read_bytes()
    manifest = json.loads(manifest_bytes)
    summary = {
        "root": str(root),
        "subsets": {name: str(root / name) for name in DEFAULT_SUBSETS},
        "n_files": len(manifest.get("files", {})),
        "manifest_sha256": hashlib.sha256(manifest_bytes).hexdigest(),
    }
    logger.info(
        "default dataset ready in %s: %d files, manifest sha256 %s",
        root,
        summary["n_files"],
        summary["manifest_sha256"][:12],
    )
    return summary
