"""Great Expectations checks over the image metadata table.

:func:`run_validation` derives a few columns from the table built by
:func:`transfigure.validation.metadata.build_image_metadata` (pair
completeness, cross-split leakage, ...), builds a GX ``ExpectationSuite`` of
core expectations, runs it through a GX ``Checkpoint`` on the pandas
DataFrame in an *ephemeral* (in-memory) data context, and turns the result
into a :class:`ValidationReport` that names the offending files.

Great Expectations is imported lazily (it takes a couple of seconds), with
analytics switched off and no data docs site, so that it never writes files
nor tries the network.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from transfigure._env import disable_telemetry
from transfigure.data import rules
from transfigure.data.layout import DOMAINS, LAYOUTS, check_format
from transfigure.validation.metadata import LABEL_COLUMNS, METADATA_COLUMNS, parse_label_ids

if TYPE_CHECKING:
    from great_expectations.data_context.data_context.abstract_data_context import (
        AbstractDataContext,
    )
    from great_expectations.expectations.expectation import Expectation

logger = logging.getLogger(__name__)

__all__ = [
    "DataValidationError",
    "Failure",
    "ValidationConfig",
    "ValidationReport",
    "run_validation",
    "save_report",
]


#: Domains that each split present must contain (``instance`` is optional).
_REQUIRED_DOMAINS: dict[str, tuple[str, ...]] = {
    fmt: tuple(folder.domain for folder in folders if folder.required) for fmt, folders in LAYOUTS.items()
}

_FILES_SHOWN = 20
_REPORT_JSON = "validation_report.json"
_REPORT_TXT = "validation_report.txt"


# --------------------------------------------------------------------------- config


@dataclass
class ValidationConfig:
    """Thresholds of the dataset checks (Kedro ``parameters`` friendly).

    Attributes:
        min_width, max_width, min_height, max_height: allowed size of one
            sample, inclusive. For the ``aligned`` format a file holds two
            samples side by side, so its width is checked against twice the
            width bounds.
        allowed_modes: PIL modes accepted for decodable images.
        min_images_per_domain: fewest decodable images each domain of each
            split present must have; the ``train`` split is always required.
        max_images_per_domain: most decodable images per split and domain.
        check_pairs: check pair completeness (not for ``unaligned``).
        check_leakage: fail when the same decoded pixels occur in two splits.
        max_bytes: largest file size accepted, in bytes.
        label_nc: ``labelmap`` only: the number of classes; every label map's ids must be
            ``< label_nc`` (checked when set; ``None`` skips the check).
        contain_dontcare_label: with ``label_nc``, also allow the id 255 ("don't care").
    """

    min_width: int = 16
    max_width: int = rules.MAX_SIDE
    min_height: int = 16
    max_height: int = rules.MAX_SIDE
    # every label-map mode is also an allowed image mode: a label map must pass both checks
    allowed_modes: tuple[str, ...] = ("LA", "RGB", "RGBA", "CMYK", "YCbCr", *rules.LABEL_MODES)
    min_images_per_domain: int = 1
    max_images_per_domain: int = 1_000_000
    check_pairs: bool = True
    check_leakage: bool = True
    max_bytes: int = 50_000_000
    label_nc: int | None = None
    contain_dontcare_label: bool = False

    def __post_init__(self) -> None:
        """Normalise ``allowed_modes`` to a tuple and check every value."""
        if isinstance(self.allowed_modes, str):
            raise ValueError(f"allowed_modes must be a list of PIL modes, not the string {self.allowed_modes!r}")
        self.allowed_modes = tuple(self.allowed_modes)
        if not self.allowed_modes or not all(isinstance(mode, str) and mode for mode in self.allowed_modes):
            raise ValueError(f"allowed_modes must be non-empty strings: {self.allowed_modes!r}")
        for name in (
            "min_width",
            "max_width",
            "min_height",
            "max_height",
            "min_images_per_domain",
            "max_images_per_domain",
            "max_bytes",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
        if self.label_nc is not None and (
            isinstance(self.label_nc, bool) or not isinstance(self.label_nc, int) or self.label_nc < 1
        ):
            raise ValueError(f"label_nc must be a positive integer or null, got {self.label_nc!r}")
        for name in ("check_pairs", "check_leakage", "contain_dontcare_label"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
        for low, high in (
            ("min_width", "max_width"),
            ("min_height", "max_height"),
            ("min_images_per_domain", "max_images_per_domain"),
        ):
            if getattr(self, low) > getattr(self, high):
                raise ValueError(f"{low} ({getattr(self, low)}) must not exceed {high} ({getattr(self, high)})")

    @classmethod
    def from_dict(cls, params: Mapping[str, Any] | None) -> ValidationConfig:
        """Build a config from a (Kedro parameters) mapping; missing keys keep defaults.

        Raises:
            ValueError: a key is not a field of this class, or a value is invalid.
        """
        if params is None:
            return cls()
        if not isinstance(params, Mapping):
            raise ValueError(f"validation parameters must be a mapping, got {type(params).__name__}")
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(str(key) for key in params if key not in known)
        if unknown:
            raise ValueError(f"unknown validation parameter(s): {', '.join(unknown)}; allowed: {', '.join(known)}")
        return cls(**dict(params))

    def to_dict(self) -> dict[str, Any]:
        """The config as a JSON-serialisable dict (modes as a list)."""
        data = dataclasses.asdict(self)
        data["allowed_modes"] = list(self.allowed_modes)
        return data


# --------------------------------------------------------------------------- report


@dataclass
class Failure:
    """One failed check.

    Attributes:
        expectation: the GX expectation type, e.g. ``expect_column_values_to_be_in_set``.
        column: the checked column, or None for table-level checks.
        message: what was expected and what was found.
        files: offending file paths (relative to the dataset root), in table order.
        check: short name of the check (``decodable``, ``pairs``, ``leakage``, ...).
        details: per-file explanation, keyed by path (e.g. the decode error).
    """

    expectation: str
    column: str | None
    message: str
    files: list[str] = field(default_factory=list)
    check: str = ""
    details: dict[str, str] = field(default_factory=dict)


@dataclass
class ValidationReport:
    """Outcome of :func:`run_validation`.

    Attributes:
        success: True when every check passed.
        failures: the failed checks, each naming its offending files.
        summary: JSON-serialisable counts (per split/domain, images, bad files, bytes, ...).
        gx_result: the GX suite validation result, ``to_json_dict()`` form.
    """

    success: bool
    failures: list[Failure] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    gx_result: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict of the whole report (GX result included)."""
        return _json_safe(
            {
                "success": self.success,
                "summary": self.summary,
                "failures": [dataclasses.asdict(failure) for failure in self.failures],
                "gx_result": self.gx_result,
            }
        )

    def format(self, max_files: int = _FILES_SHOWN) -> str:
        """A readable multi-line report: one entry per failed check with its files."""
        summary = self.summary
        fmt = summary.get("format", "?")
        checks = summary.get("checks", 0)
        status = "PASSED" if self.success else "FAILED"
        lines = [
            f"Data validation {status} for {fmt!r} dataset: {len(self.failures)} of {checks} check(s) failed",
            f"  {summary.get('images', 0)} image file(s), "
            f"{summary.get('bad_files', 0)} not decodable, "
            f"{_human_bytes(int(summary.get('total_bytes', 0)))}",
        ]
        per_split = summary.get("per_split_domain", {})
        for split, domains in per_split.items():
            counts = ", ".join(f"{domain}={count}" for domain, count in domains.items())
            lines.append(f"  {split}: {counts or 'no images'}")
        ignored = summary.get("ignored_files", 0)
        if ignored:
            lines.append(f"  {ignored} non-image file(s) ignored")
        for failure in self.failures:
            target = f"({failure.column})" if failure.column else ""
            name = f"[{failure.check}] " if failure.check else ""
            lines.append(f"FAILED {name}{failure.expectation}{target}: {failure.message}")
            for path in failure.files[:max_files]:
                detail = failure.details.get(path, "")
                lines.append(f"    - {path}" + (f": {detail}" if detail else ""))
            hidden = len(failure.files) - max_files
            if hidden > 0:
                lines.append(f"    ... and {hidden} more")
        return "\n".join(lines)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ValidationReport:
        """Rebuild a report from :meth:`to_dict` output (e.g. a saved ``validation_report.json``)."""
        return cls(
            success=bool(data["success"]),
            failures=[Failure(**f) for f in data.get("failures", [])],
            summary=dict(data.get("summary", {})),
            gx_result=dict(data.get("gx_result", {})),
        )

    def raise_if_failed(self) -> None:
        """Raise :class:`DataValidationError` unless the validation succeeded."""
        if not self.success:
            raise DataValidationError(self)


class DataValidationError(RuntimeError):
    """The dataset failed validation; ``.report`` holds the full :class:`ValidationReport`."""

    def __init__(self, report: ValidationReport) -> None:
        super().__init__(report.format())
        self.report = report


def save_report(report: ValidationReport, directory: str | Path) -> dict[str, Path]:
    """Write ``validation_report.json`` (``to_dict()``) and ``validation_report.txt``.

    Returns:
        ``{"json": path, "txt": path}``.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    json_path = directory / _REPORT_JSON
    txt_path = directory / _REPORT_TXT
    json_path.write_text(json.dumps(report.to_dict(), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    txt_path.write_text(report.format() + "\n", encoding="utf-8")
    logger.info("validation report written to %s and %s", json_path, txt_path)
    return {"json": json_path, "txt": txt_path}


# --------------------------------------------------------------------------- derived columns


def _as_bool(series: pd.Series) -> pd.Series:
    """Booleans from a column that may have gone through CSV (``"True"``/``"False"``)."""
    if series.dtype == bool:
        return series
    text = series.astype(str).str.strip().str.lower()
    return text.isin(["true", "1", "yes"])


def _is_missing(value: Any) -> bool:
    """True for None, NaN/NA and the empty string."""
    if value is None or (isinstance(value, str) and not value):
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _prepare_table(metadata: pd.DataFrame) -> pd.DataFrame:
    """Copy the metadata with normalised dtypes and a fresh index."""
    missing = [c for c in METADATA_COLUMNS if c not in metadata.columns and c not in LABEL_COLUMNS]
    if missing:
        raise ValueError(f"metadata table lacks column(s): {', '.join(missing)}")
    metadata = metadata.copy()
    if "label_max" not in metadata.columns:  # a table from before label ids were recorded
        metadata["label_max"] = -1
    if "label_ids" not in metadata.columns:
        metadata["label_ids"] = ""
    table = metadata.loc[:, METADATA_COLUMNS].copy().reset_index(drop=True)
    table["label_max"] = pd.to_numeric(table["label_max"], errors="coerce").fillna(-1).astype("int64")
    table["label_ids"] = [" ".join(map(str, parse_label_ids(v))) for v in table["label_ids"]]
    for column in ("path", "split", "domain", "mode", "error", "content_hash"):
        values = table[column].astype(object)
        table[column] = values.where(values.notna(), "").astype(str)
    for column in ("width", "height", "bytes"):
        table[column] = pd.to_numeric(table[column], errors="coerce").fillna(0).astype("int64")
    table["decodable"] = _as_bool(table["decodable"])
    table["pair_id"] = pd.Series(
        [None if _is_missing(value) else str(value) for value in table["pair_id"]],
        index=table.index,
        dtype=object,
    )
    return table


def _add_pair_columns(table: pd.DataFrame, fmt: str) -> None:
    """Add ``pair_complete`` (bool) and ``pair_problem`` (reason or "")."""
    problems = [""] * len(table)
    if fmt == "aligned":
        for row, (width, decodable) in enumerate(zip(table["width"], table["decodable"], strict=True)):
            if not decodable:
                problems[row] = "not decodable, so the A|B halves cannot be read"
            elif width % 2:
                problems[row] = f"odd width {width}: cannot split into equal A|B halves"
    elif fmt in ("paired", "labelmap"):
        _pair_problems_by_id(table, fmt, problems)
    table["pair_problem"] = problems
    table["pair_complete"] = [not problem for problem in problems]


def _pair_problems_by_id(table: pd.DataFrame, fmt: str, problems: list[str]) -> None:
    """Fill ``problems`` for formats whose pairs are files matched by stem.

    A pair (split, pair_id) is complete when each wanted domain holds exactly one
    file and every member decodes. Instance maps (labelmap) are optional, but
    once a split has any, every pair of that split needs one.
    """
    required = set(_REQUIRED_DOMAINS[fmt])
    with_instances = set(table.loc[table["domain"] == "instance", "split"])
    keys = list(zip(table["split"], table["pair_id"].fillna(""), strict=True))
    paths = table["path"].tolist()
    decodable = table["decodable"].tolist()
    members: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    broken: dict[tuple[str, str], list[str]] = defaultdict(list)
    for key, domain, path, ok in zip(keys, table["domain"], paths, decodable, strict=True):
        members[key][domain] += 1
        if not ok:
            broken[key].append(path)
    for index, (key, path) in enumerate(zip(keys, paths, strict=True)):
        split, pair_id = key
        counts = members[key]
        wanted = required | {"instance"} if split in with_instances else required
        reasons = []
        if not pair_id:
            reasons.append("no pair id")
        missing = [domain for domain in DOMAINS[fmt] if domain in wanted and not counts[domain]]
        if missing:
            reasons.append(f"no {'/'.join(missing)} file for {pair_id!r} in split {split!r}")
        duplicated = sorted(domain for domain, count in counts.items() if count > 1)
        if duplicated:
            reasons.append(f"pair id {pair_id!r} occurs more than once in domain {'/'.join(duplicated)}")
        others = [other for other in broken.get(key, ()) if other != path]
        if others:
            reasons.append(f"partner not decodable: {', '.join(others)}")
        if not decodable[index]:
            reasons.append("not decodable")
        problems[index] = "; ".join(reasons)


def _add_size_match_column(table: pd.DataFrame) -> None:
    """labelmap: ``pair_sizes_match`` is False when a pair's members differ in size."""
    problems = [""] * len(table)
    usable = table[table["decodable"] & table["pair_id"].notna()]
    if not usable.empty:
        groups = usable.groupby(["split", "pair_id"], sort=False)
        distinct = groups[["width", "height"]].transform("nunique")
        mismatched = usable[(distinct["width"] > 1) | (distinct["height"] > 1)]
        for _, rows in mismatched.groupby(["split", "pair_id"], sort=False):
            described = ", ".join(
                f"{d}={w}x{h}" for d, w, h in zip(rows["domain"], rows["width"], rows["height"], strict=True)
            )
            for index in rows.index:
                problems[index] = f"pair members differ in size ({described})"
    table["size_problem"] = problems
    table["pair_sizes_match"] = [not problem for problem in problems]


def _add_label_id_columns(table: pd.DataFrame, config: ValidationConfig) -> None:
    """labelmap: ``label_ids_valid`` is False for label maps holding ids >= ``label_nc``
    (255 allowed with ``contain_dontcare_label``); ``label_id_problem`` names those ids."""
    label_nc, dontcare = config.label_nc, config.contain_dontcare_label
    valid, problems = [True] * len(table), [""] * len(table)
    if label_nc is not None:
        allowed = rules.allowed_ids(label_nc, dontcare)
        for row, (domain, ids) in enumerate(zip(table["domain"], table["label_ids"], strict=True)):
            if domain != "label":
                continue
            bad = rules.bad_label_ids(parse_label_ids(ids), label_nc, dontcare)
            if bad:
                shown = ", ".join(map(str, bad[:20])) + (" ..." if len(bad) > 20 else "")
                valid[row] = False
                problems[row] = f"class ids [{shown}] outside {allowed} (label_nc={label_nc})"
    table["label_ids_valid"] = valid
    table["label_id_problem"] = problems


def _add_leakage_columns(table: pd.DataFrame) -> None:
    """Add ``leaks_across_splits`` (same decoded pixels in two splits) and ``leak_partners``."""
    leaks = [False] * len(table)
    partners = [""] * len(table)
    usable = table[table["decodable"] & (table["content_hash"] != "")]
    if not usable.empty:
        splits_per_hash = usable.groupby("content_hash")["split"].transform("nunique")
        leaking = usable[splits_per_hash > 1]
        for _, rows in leaking.groupby("content_hash", sort=False):
            for index, split in zip(rows.index, rows["split"], strict=True):
                others = rows.loc[rows["split"] != split, "path"].tolist()
                leaks[index] = True
                more = f" (+{len(others) - 3} more)" if len(others) > 3 else ""
                partners[index] = f"same pixels as {', '.join(others[:3])}{more}"
    table["leaks_across_splits"] = leaks
    table["leak_partners"] = partners


# --------------------------------------------------------------------------- checks


@dataclass
class _Check:
    """One expectation plus how to explain its offending rows."""

    name: str
    expectation: Expectation
    column: str | None
    detail: Callable[[Mapping[str, Any]], str] | None = None


def _build_checks(table: pd.DataFrame, fmt: str, config: ValidationConfig) -> list[_Check]:
    """The expectations of the suite, each tagged with a check name in ``meta``."""
    import great_expectations.expectations as gxe
    from great_expectations.expectations.row_conditions import Column

    decodable = Column("decodable") == True  # noqa: E712 - a GX condition, not a comparison
    checks: list[_Check] = []

    def add(
        name: str,
        expectation_type: type[Expectation],
        target: str | None,
        description: str,
        detail: Callable[[Mapping[str, Any]], str] | None = None,
        **kwargs: Any,
    ) -> None:
        """Add one expectation; ``target`` is the column reported (None: table level)."""
        expectation = expectation_type(description=description, meta={"check": name}, **kwargs)
        checks.append(_Check(name, expectation, target, detail))

    add(
        "decodable",
        gxe.ExpectColumnValuesToBeInSet,
        "decodable",
        "every image file opens and fully decodes",
        lambda row: row["error"] or "not decodable",
        column="decodable",
        value_set=[True],
    )
    add(
        "mode",
        gxe.ExpectColumnValuesToBeInSet,
        "mode",
        f"image mode in {{{', '.join(config.allowed_modes)}}}",
        lambda row: f"mode {row['mode']}",
        column="mode",
        value_set=list(config.allowed_modes),
        row_condition=decodable,
    )
    width_factor = 2 if fmt == "aligned" else 1
    width_note = " (aligned: two halves side by side)" if width_factor == 2 else ""
    add(
        "width",
        gxe.ExpectColumnValuesToBeBetween,
        "width",
        f"width between {config.min_width * width_factor} and {config.max_width * width_factor} px{width_note}",
        lambda row: f"width {row['width']} px",
        column="width",
        min_value=config.min_width * width_factor,
        max_value=config.max_width * width_factor,
        row_condition=decodable,
    )
    add(
        "height",
        gxe.ExpectColumnValuesToBeBetween,
        "height",
        f"height between {config.min_height} and {config.max_height} px",
        lambda row: f"height {row['height']} px",
        column="height",
        min_value=config.min_height,
        max_value=config.max_height,
        row_condition=decodable,
    )
    add(
        "file_size",
        gxe.ExpectColumnValuesToBeBetween,
        "bytes",
        f"file size at most {config.max_bytes} bytes",
        lambda row: f"{row['bytes']} bytes",
        column="bytes",
        min_value=0,
        max_value=config.max_bytes,
    )
    if fmt == "labelmap":
        add(
            "label_mode",
            gxe.ExpectColumnValuesToBeInSet,
            "mode",
            f"label/instance maps are single-channel ids, mode in {{{', '.join(rules.LABEL_MODES)}}}",
            lambda row: f"mode {row['mode']}",
            column="mode",
            value_set=list(rules.LABEL_MODES),
            row_condition=Column("domain").is_in(["label", "instance"]) & decodable,
        )
    if fmt == "labelmap" and config.label_nc is not None:
        add(
            "label_ids",
            gxe.ExpectColumnValuesToBeInSet,
            "label_ids_valid",
            f"label maps hold only class ids {rules.allowed_ids(config.label_nc, config.contain_dontcare_label)} "
            f"(label_nc={config.label_nc})",
            lambda row: row["label_id_problem"],
            column="label_ids_valid",
            value_set=[True],
            row_condition=(Column("domain") == "label") & decodable,
        )
    if config.check_pairs and fmt != "unaligned":
        add(
            "pairs",
            gxe.ExpectColumnValuesToBeInSet,
            "pair_complete",
            _pair_description(fmt),
            lambda row: row["pair_problem"],
            column="pair_complete",
            value_set=[True],
        )
        if fmt == "labelmap":
            add(
                "pair_sizes",
                gxe.ExpectColumnValuesToBeInSet,
                "pair_sizes_match",
                "label map, photo and instance map of a pair have the same size",
                lambda row: row["size_problem"],
                column="pair_sizes_match",
                value_set=[True],
            )
    if config.check_leakage:
        add(
            "leakage",
            gxe.ExpectColumnValuesToBeInSet,
            "leaks_across_splits",
            "no image (same decoded pixels) appears in more than one split",
            lambda row: row["leak_partners"],
            column="leaks_across_splits",
            value_set=[False],
        )

    splits_present = [split for split in dict.fromkeys(table["split"]) if split]
    splits = ["train", *sorted(split for split in splits_present if split != "train")]
    for split in splits:
        split_domains = set(table.loc[table["split"] == split, "domain"])
        for domain in _REQUIRED_DOMAINS[fmt]:
            add(
                f"count:{split}/{domain}",
                gxe.ExpectTableRowCountToBeBetween,
                None,
                f"split {split!r}, domain {domain!r}: between {config.min_images_per_domain} "
                f"and {config.max_images_per_domain} decodable images",
                min_value=config.min_images_per_domain,
                max_value=config.max_images_per_domain,
                row_condition=(Column("split") == split) & (Column("domain") == domain) & decodable,
            )
        if fmt == "labelmap" and "instance" in split_domains:
            add(
                f"count:{split}/instance",
                gxe.ExpectTableRowCountToBeBetween,
                None,
                f"split {split!r}, domain 'instance': at most {config.max_images_per_domain} decodable images",
                max_value=config.max_images_per_domain,
                row_condition=(Column("split") == split) & (Column("domain") == "instance") & decodable,
            )
    return checks


def _pair_description(fmt: str) -> str:
    """What a complete pair means for ``fmt``."""
    if fmt == "aligned":
        return "every side-by-side image decodes and has an even width (A|B halves)"
    if fmt == "paired":
        return "every A file has exactly one decodable B file with the same stem, and vice versa"
    return (
        "every label map has exactly one decodable photo with the same stem (and an "
        "instance map where the split has any), and vice versa"
    )


# --------------------------------------------------------------------------- GX plumbing


def _prepare_gx() -> None:
    """Switch GX analytics off and quieten its import chatter; call before importing GX."""
    disable_telemetry()  # GX reads GX_ANALYTICS_ENABLED when imported
    gx_logger = logging.getLogger("great_expectations")
    if gx_logger.level == logging.NOTSET:
        # GX logs hundreds of INFO lines about its own docs registry on import.
        gx_logger.setLevel(logging.WARNING)
    with warnings.catch_warnings():
        # GX's file path data connector imports the deprecated ``sre_constants``/``sre_parse``.
        warnings.filterwarnings("ignore", message=r"module 'sre_\w+' is deprecated", category=DeprecationWarning)
        import great_expectations  # noqa: F401 - imported once, quietly


def _offline_context() -> AbstractDataContext:
    """An in-memory GX context: no analytics, no data docs site, no progress bars."""
    _prepare_gx()
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    project_config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
    )
    return gx.get_context(mode="ephemeral", project_config=project_config)


def _run_gx(table: pd.DataFrame, checks: Sequence[_Check]) -> dict[str, Any]:
    """Run the checks as one GX suite through a checkpoint; return the JSON result."""
    import great_expectations as gx

    context = _offline_context()
    batch_definition = (
        context.data_sources.add_pandas(name="transfigure_images")
        .add_dataframe_asset(name="image_metadata")
        .add_batch_definition_whole_dataframe(name="all_files")
    )
    suite = context.suites.add(gx.ExpectationSuite(name="transfigure_dataset"))
    for check in checks:
        suite.add_expectation(check.expectation)
    validation = context.validation_definitions.add(
        gx.ValidationDefinition(name="transfigure_dataset", data=batch_definition, suite=suite)
    )
    checkpoint = context.checkpoints.add(
        gx.Checkpoint(
            name="transfigure_dataset",
            validation_definitions=[validation],
            actions=[],
            result_format={"result_format": "COMPLETE", "unexpected_index_column_names": ["path"]},
        )
    )
    result = checkpoint.run(batch_parameters={"dataframe": table})
    suite_results = list(result.run_results.values())
    if len(suite_results) != 1:
        raise RuntimeError(f"expected one GX suite result, got {len(suite_results)}")
    return _without_volatile_fields(_json_safe(suite_results[0].to_json_dict()))


def _failure_from_result(
    result: Mapping[str, Any], check: _Check, table: pd.DataFrame, row_of_path: Mapping[str, int]
) -> Failure:
    """Turn one failed GX expectation result into a :class:`Failure`."""
    config = result.get("expectation_config", {})
    expectation = str(config.get("type", type(check.expectation).__name__))
    description = check.expectation.description or check.name
    details = result.get("result", {}) or {}
    exception = result.get("exception_info", {}) or {}
    files: list[str] = []
    file_details: dict[str, str] = {}
    if exception.get("raised_exception"):
        message = f"expected {description}; the check raised: {exception.get('exception_message')}"
    elif check.column is None:
        message = f"expected {description}; found {details.get('observed_value')}"
    else:
        for entry in details.get("unexpected_index_list") or []:
            path = entry.get("path") if isinstance(entry, Mapping) else None
            if path is not None and path not in file_details:
                files.append(str(path))
                file_details[str(path)] = ""
        if check.detail is not None:
            positions = [row_of_path[path] for path in files if path in row_of_path]
            for record in table.iloc[positions].to_dict("records"):
                file_details[str(record["path"])] = check.detail(record)
        unexpected = details.get("unexpected_count", len(files))
        total = details.get("element_count", "?")
        message = f"expected {description}; {unexpected} of {total} file(s) fail"
    return Failure(
        expectation=expectation,
        column=check.column,
        message=message,
        files=files,
        check=check.name,
        details={path: text for path, text in file_details.items() if text},
    )


def _summary(table: pd.DataFrame, metadata: pd.DataFrame, fmt: str) -> dict[str, Any]:
    """JSON-serialisable counts describing the dataset."""
    per_split: dict[str, dict[str, int]] = {}
    for (split, domain), count in table.groupby(["split", "domain"], sort=False).size().items():
        per_split.setdefault(str(split), {})[str(domain)] = int(count)
    hashes = table[table["decodable"] & (table["content_hash"] != "")]
    duplicates = int(hashes.duplicated(["split", "content_hash"]).sum())
    summary: dict[str, Any] = {
        "format": fmt,
        "images": len(table),
        "decodable": int(table["decodable"].sum()),
        "bad_files": int((~table["decodable"]).sum()),
        "total_bytes": int(table["bytes"].sum()),
        "per_split_domain": per_split,
        "incomplete_pairs": int((~table["pair_complete"]).sum()),
        "leaking_files": int(table["leaks_across_splits"].sum()),
        "duplicates_within_split": duplicates,
        "ignored_files": int(metadata.attrs.get("ignored_files", 0)),
    }
    if fmt == "labelmap":
        labels = table[table["domain"] == "label"]
        summary["label_max"] = int(labels["label_max"].max()) if len(labels) else -1
        if "label_ids_valid" in table:
            summary["bad_label_files"] = int((~table["label_ids_valid"]).sum())
    examples = metadata.attrs.get("ignored_examples")
    if examples:
        summary["ignored_examples"] = [str(path) for path in examples]
    return summary


# --------------------------------------------------------------------------- entry point


def run_validation(metadata: pd.DataFrame, fmt: str, config: ValidationConfig | None = None) -> ValidationReport:
    """Validate a dataset's metadata table with a Great Expectations suite.

    Args:
        metadata: the table of :func:`~transfigure.validation.metadata.build_image_metadata`
            (columns :data:`~transfigure.validation.metadata.METADATA_COLUMNS`).
        fmt: the dataset format the table was built with.
        config: thresholds; defaults to ``ValidationConfig()``.

    Returns:
        A :class:`ValidationReport`; it does not raise for a failed validation
        (call :meth:`ValidationReport.raise_if_failed` for that).

    Raises:
        ValueError: unknown ``fmt`` or a table lacking metadata columns.
    """
    check_format(fmt)
    config = config or ValidationConfig()
    started = time.perf_counter()
    table = _prepare_table(metadata)
    _add_pair_columns(table, fmt)
    _add_leakage_columns(table)
    if fmt == "labelmap":
        _add_size_match_column(table)
        _add_label_id_columns(table, config)

    _prepare_gx()
    checks = _build_checks(table, fmt, config)
    gx_result = _run_gx(table, checks)

    checks_by_name = {check.name: check for check in checks}
    row_of_path: dict[str, int] = {}
    for position, path in enumerate(table["path"]):
        row_of_path.setdefault(path, position)
    failures: list[Failure] = []
    for result in gx_result.get("results", []):
        if result.get("success"):
            continue
        meta = (result.get("expectation_config") or {}).get("meta") or {}
        check = checks_by_name.get(str(meta.get("check")))
        if check is None:  # should not happen: every expectation is tagged
            logger.warning("GX result without a known check: %s", result.get("expectation_config"))
            continue
        failures.append(_failure_from_result(result, check, table, row_of_path))

    summary = _summary(table, metadata, fmt)
    summary["checks"] = len(checks)
    summary["failed_checks"] = len(failures)
    summary["config"] = config.to_dict()
    success = bool(gx_result.get("success")) and not failures
    report = ValidationReport(success=success, failures=failures, summary=_json_safe(summary), gx_result=gx_result)
    log = logger.info if success else logger.warning
    log(
        "validation of %d %r image file(s) %s: %d of %d check(s) failed (%.2fs)",
        len(table),
        fmt,
        "passed" if success else "FAILED",
        len(failures),
        len(checks),
        time.perf_counter() - started,
    )
    return report


# --------------------------------------------------------------------------- helpers


#: GX result fields that differ between two validations of the same data (random ids, clock times)
_VOLATILE_META = ("validation_id", "checkpoint_id", "validation_time", "run_id", "batch_markers")


def _without_volatile_fields(result: dict[str, Any]) -> dict[str, Any]:
    """The GX result without its random ids and clock times: the same data and checks give a
    byte-identical report, so DVC does not retrain after a re-validation that found the same."""
    meta = result.get("meta")
    if isinstance(meta, dict):
        result["meta"] = {k: v for k, v in meta.items() if k not in _VOLATILE_META}
    for item in result.get("results", []):
        config = item.get("expectation_config") if isinstance(item, dict) else None
        if isinstance(config, dict):
            config.pop("id", None)
    return result


def _json_safe(value: Any) -> Any:
    """A copy of ``value`` that ``json.dumps(allow_nan=False)`` accepts."""
    if isinstance(value, Mapping):
        return {str(key): _json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_json_safe(item) for item in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Path):
        return value.as_posix()
    if hasattr(value, "item"):  # numpy scalars
        try:
            return _json_safe(value.item())
        except (TypeError, ValueError):
            pass
    return str(value)


def _human_bytes(count: int) -> str:
    """``1234567`` -> ``'1.2 MB'``."""
    size = float(count)
    for unit in ("bytes", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{int(size)} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{count} bytes"
