"""Dataset validation: a per-file image metadata table checked with Great Expectations.

Typical use (e.g. in a Kedro node)::

    from transfigure.validation import (
        ValidationConfig, build_image_metadata, run_validation, save_report,
    )

    metadata = build_image_metadata("data/01_raw/facades", "aligned")
    report = run_validation(metadata, "aligned", ValidationConfig.from_dict(params))
    save_report(report, Path("data/08_reporting"))
    report.raise_if_failed()  # DataValidationError naming the offending files
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from transfigure.data.layout import FORMATS, IMAGE_EXTENSIONS, SPLITS
from transfigure.validation.metadata import (
    METADATA_COLUMNS,
    build_image_metadata,
    inspect_image,
)
from transfigure.validation.suites import (
    DataValidationError,
    Failure,
    ValidationConfig,
    ValidationReport,
    run_validation,
    save_report,
)

__all__ = [
    "FORMATS",
    "IMAGE_EXTENSIONS",
    "METADATA_COLUMNS",
    "DataValidationError",
    "Failure",
    "ValidationConfig",
    "ValidationReport",
    "build_image_metadata",
    "inspect_image",
    "run_validation",
    "save_report",
    "validate_dataset",
]


def validate_dataset(
    root: str | Path,
    fmt: str,
    config: ValidationConfig | None = None,
    splits: Sequence[str] = SPLITS,
) -> ValidationReport:
    """Scan ``root`` with :func:`build_image_metadata` and check it with :func:`run_validation`."""
    return run_validation(build_image_metadata(root, fmt, splits), fmt, config)
