"""Nodes that locate a dataset, describe every image in a table and check it with Great Expectations."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import pandas as pd

from transfigure.data.config import DataConfig
from transfigure.data.default_dataset import DEFAULT_SUBSETS, build_default_dataset
from transfigure.data.layout import resolve_format
from transfigure.runtime.distributed import on_rank_zero
from transfigure.validation import (
    DataValidationError,
    ValidationConfig,
    ValidationReport,
    build_image_metadata,
    run_validation,
)

logger = logging.getLogger(__name__)


def prepare_dataset(data: dict[str, Any]) -> dict[str, str]:
    """Return ``{"root", "format"}`` of the dataset to use.

    ``data.path`` null -> the embedded default dataset, built offline and deterministically
    under ``data.default_root`` (a no-op when already built); otherwise the user's folder.
    """
    cfg = DataConfig.from_params(data)
    if cfg.path:
        root = Path(cfg.path).expanduser()
        if not root.is_dir():
            raise FileNotFoundError(f"data.path '{root}' is not a folder (relative paths start at the project root)")
    else:
        subset = cfg.default_subset
        if subset not in DEFAULT_SUBSETS:
            raise ValueError(f"unknown data.default_subset {subset!r}: use one of {sorted(DEFAULT_SUBSETS)}")
        base = Path(cfg.default_root)
        on_rank_zero(build_default_dataset)(base)  # under torchrun, rank 0 builds while the others wait
        root = base / subset
    fmt = resolve_format(root, cfg.format)
    logger.info("dataset: %s (format %s)", root, fmt)
    return {"root": str(root), "format": fmt}


def describe_images(dataset: dict[str, str]) -> pd.DataFrame:
    """One row of metadata per image file (path, split, domain, size, mode, bytes, decodable, pair, hash)."""
    table = build_image_metadata(dataset["root"], dataset["format"])
    logger.info("described %d image files under %s", len(table), dataset["root"])
    return table


def dataset_fingerprints(metadata: pd.DataFrame) -> dict[str, str]:
    """sha256 over the sorted content hashes of each split (and of all): a content version of the data."""
    out = {}
    for split, rows in [("all", metadata), *metadata.groupby("split")]:
        digest = hashlib.sha256("\n".join(sorted(rows["content_hash"].astype(str))).encode()).hexdigest()
        out[str(split)] = digest
    return out


def validate_images(
    metadata: pd.DataFrame, dataset: dict[str, str], validation: dict[str, Any]
) -> tuple[dict[str, Any], str]:
    """Run the Great Expectations suite; returns (the JSON report incl. the GX result, readable text).

    Failing does not raise here, so that the report is saved first; :func:`require_valid` stops the run.
    """
    report = run_validation(metadata, dataset["format"], ValidationConfig.from_dict(validation or {}))
    doc = report.to_dict()
    doc["dataset"] = dict(dataset)
    doc["fingerprints"] = dataset_fingerprints(metadata) if len(metadata) else {}
    text = f"dataset: {dataset['root']} (format {dataset['format']})\n{report.format()}\n"
    (logger.info if report.success else logger.error)("data validation %s", "passed" if report.success else "FAILED")
    return doc, text


def require_valid(report: dict[str, Any], report_text: str, dataset: dict[str, str]) -> dict[str, Any]:
    """Stop the pipeline before training when validation failed; pass the dataset on otherwise."""
    if not report.get("success", False):
        error = DataValidationError(ValidationReport.from_dict(report))
        error.args = (
            f"dataset '{dataset['root']}' failed validation; nothing was trained. Bad files are named below "
            f"(paths relative to the dataset folder); the full Great Expectations result is in "
            f"data/08_reporting/<variant>/validation_report.json\n{report_text}",
        )
        raise error
    return {**dataset, "fingerprint": report.get("fingerprints", {}).get("all", "")}
