"""run_validation / ValidationReport on real (broken) datasets built in tmp_path."""

from __future__ import annotations

import json
import shutil
import socket
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from transfigure.validation import (
    FORMATS,
    DataValidationError,
    Failure,
    ValidationConfig,
    ValidationReport,
    build_image_metadata,
    run_validation,
    save_report,
    validate_dataset,
)


def _failure(report: ValidationReport, check: str) -> Failure:
    matches = [failure for failure in report.failures if failure.check == check]
    assert matches, f"no {check!r} failure in:\n{report.format()}"
    return matches[0]


def _checks(report: ValidationReport) -> set[str]:
    return {failure.check for failure in report.failures}


@pytest.mark.parametrize("fmt", FORMATS)
def test_clean_dataset_passes(fmt: str, make_dataset: Callable[..., Path]) -> None:
    report = validate_dataset(make_dataset(fmt), fmt)

    assert report.success, report.format()
    assert report.failures == []
    assert report.gx_result["success"] is True
    assert report.gx_result["statistics"]["unsuccessful_expectations"] == 0
    assert report.summary["per_split_domain"]["train"]
    assert report.summary["bad_files"] == 0
    assert "PASSED" in report.format()
    json.dumps(report.to_dict(), allow_nan=False)
    report.raise_if_failed()


def test_the_same_data_gives_a_byte_identical_report(make_dataset: Callable[..., Path]) -> None:
    """No random GX ids or clock times: DVC sees an unchanged report after a re-validation."""
    root = make_dataset("unaligned")
    first, second = (json.dumps(validate_dataset(root, "unaligned").to_dict(), sort_keys=True) for _ in range(2))
    assert first == second
    assert "validation_time" not in first and "checkpoint_id" not in first


def test_undecodable_files_are_named(make_dataset: Callable[..., Path], image_writer: Callable[..., Path]) -> None:
    root = make_dataset("unaligned")
    data = image_writer(root / "trainA" / "cut.jpg", (48, 48), seed=5).read_bytes()
    (root / "trainA" / "cut.jpg").write_bytes(data[: len(data) // 2])
    (root / "trainB" / "zero.png").write_bytes(b"")
    (root / "testB" / "text.png").write_text("hello, I am text")

    report = validate_dataset(root, "unaligned")

    assert not report.success
    failure = _failure(report, "decodable")
    assert failure.expectation == "expect_column_values_to_be_in_set"
    assert failure.column == "decodable"
    assert sorted(failure.files) == ["testB/text.png", "trainA/cut.jpg", "trainB/zero.png"]
    assert "empty" in failure.details["trainB/zero.png"]
    text = report.format()
    for name in ("trainA/cut.jpg", "trainB/zero.png", "testB/text.png"):
        assert name in text
    assert report.summary["bad_files"] == 3
    # broken files are not also reported as wrong mode/size
    assert _checks(report) == {"decodable"}


def test_paired_half_missing_pair(make_dataset: Callable[..., Path]) -> None:
    root = make_dataset("paired")
    (root / "trainB" / "train_01.png").unlink()
    (root / "testA" / "test_00.jpg").unlink()

    report = validate_dataset(root, "paired")

    failure = _failure(report, "pairs")
    assert failure.column == "pair_complete"
    assert sorted(failure.files) == ["testB/test_00.png", "trainA/train_01.jpg"]
    assert "no B file" in failure.details["trainA/train_01.jpg"]
    assert "no A file" in failure.details["testB/test_00.png"]
    assert "trainA/train_01.jpg" in report.format()


def test_paired_pair_with_broken_partner(make_dataset: Callable[..., Path]) -> None:
    root = make_dataset("paired")
    (root / "trainB" / "train_02.png").write_bytes(b"\x89PNG broken")

    report = validate_dataset(root, "paired")

    assert _checks(report) == {"decodable", "pairs"}
    pairs = _failure(report, "pairs")
    assert sorted(pairs.files) == ["trainA/train_02.jpg", "trainB/train_02.png"]
    assert "partner not decodable" in pairs.details["trainA/train_02.jpg"]


def test_labelmap_half_missing_pairs(make_dataset: Callable[..., Path], image_writer) -> None:
    root = make_dataset("labelmap")
    (root / "train_img" / "train_00.jpg").unlink()  # label without photo
    image_writer(root / "test_img" / "orphan.jpg", (32, 40), seed=99)  # photo without label

    report = validate_dataset(root, "labelmap")

    failure = _failure(report, "pairs")
    assert "train_label/train_00.png" in failure.files
    assert "test_img/orphan.jpg" in failure.files
    assert "no image file" in failure.details["train_label/train_00.png"]
    assert "label" in failure.details["test_img/orphan.jpg"]
    text = report.format()
    assert "train_label/train_00.png" in text and "test_img/orphan.jpg" in text


def test_labelmap_rgb_label_and_size_mismatch(
    make_dataset: Callable[..., Path], image_writer: Callable[..., Path]
) -> None:
    root = make_dataset("labelmap")
    image_writer(root / "train_label" / "train_01.png", (40, 40), "RGB", seed=3)
    image_writer(root / "train_img" / "train_02.jpg", (64, 64), seed=4)

    report = validate_dataset(root, "labelmap")

    assert _failure(report, "label_mode").files == ["train_label/train_01.png"]
    sizes = _failure(report, "pair_sizes")
    assert "train_img/train_02.jpg" in sizes.files
    assert "train_label/train_02.png" in sizes.files


def test_aligned_odd_width(make_dataset: Callable[..., Path], image_writer) -> None:
    root = make_dataset("aligned")
    image_writer(root / "train" / "odd.jpg", (65, 40), seed=42)

    report = validate_dataset(root, "aligned")

    failure = _failure(report, "pairs")
    assert failure.files == ["train/odd.jpg"]
    assert "odd width 65" in failure.details["train/odd.jpg"]
    assert "train/odd.jpg" in report.format()


def test_leakage_copied_file_names_both_paths(make_dataset: Callable[..., Path]) -> None:
    root = make_dataset("unaligned")
    shutil.copy(root / "testA" / "test_01.jpg", root / "trainA" / "sneaky.jpg")

    report = validate_dataset(root, "unaligned")

    failure = _failure(report, "leakage")
    assert failure.column == "leaks_across_splits"
    assert sorted(failure.files) == ["testA/test_01.jpg", "trainA/sneaky.jpg"]
    assert "testA/test_01.jpg" in failure.details["trainA/sneaky.jpg"]
    assert report.summary["leaking_files"] == 2


def test_leakage_by_pixels_resaved_as_png(make_dataset: Callable[..., Path]) -> None:
    root = make_dataset("paired")
    with Image.open(root / "trainA" / "train_00.jpg") as decoded:
        decoded.save(root / "testB" / "looks_new.png")

    report = validate_dataset(root, "paired", ValidationConfig(check_pairs=False))

    failure = _failure(report, "leakage")
    assert sorted(failure.files) == ["testB/looks_new.png", "trainA/train_00.jpg"]
    text = report.format()
    assert "testB/looks_new.png" in text and "trainA/train_00.jpg" in text
    assert _checks(report) == {"leakage"}


def test_too_small_images(make_dataset: Callable[..., Path], image_writer) -> None:
    root = make_dataset("unaligned")
    image_writer(root / "trainA" / "tiny.png", (8, 40), seed=1)
    image_writer(root / "testB" / "flat.png", (40, 10), seed=2)

    report = validate_dataset(root, "unaligned")

    assert _failure(report, "width").files == ["trainA/tiny.png"]
    assert _failure(report, "height").files == ["testB/flat.png"]
    assert "width 8 px" in report.format()


def test_domain_without_train_images(make_dataset: Callable[..., Path]) -> None:
    root = make_dataset("unaligned")
    shutil.rmtree(root / "trainB")

    report = validate_dataset(root, "unaligned")

    failure = _failure(report, "count:train/B")
    assert failure.expectation == "expect_table_row_count_to_be_between"
    assert failure.column is None
    assert "found 0" in failure.message
    assert "count:train/B" in report.format()


def test_no_train_split_at_all(make_dataset: Callable[..., Path]) -> None:
    root = make_dataset("aligned", counts={"test": 2})

    report = validate_dataset(root, "aligned")

    assert not report.success
    assert _checks(report) == {"count:train/AB"}


def test_empty_dataset_fails(tmp_path: Path) -> None:
    report = validate_dataset(tmp_path, "labelmap")
    assert not report.success
    assert {"count:train/label", "count:train/image"} <= _checks(report)


def test_only_broken_train_images_fail_count(make_dataset: Callable[..., Path]) -> None:
    root = make_dataset("aligned", counts={"train": 1})
    (root / "train" / "train_00.jpg").write_bytes(b"garbage")

    report = validate_dataset(root, "aligned")

    assert {"decodable", "count:train/AB"} <= _checks(report)


def test_disallowed_float_mode(make_dataset: Callable[..., Path], image_writer) -> None:
    root = make_dataset("unaligned")
    image_writer(root / "trainB" / "depth.tif", (40, 40), "F", seed=3)

    report = validate_dataset(root, "unaligned")

    failure = _failure(report, "mode")
    assert failure.files == ["trainB/depth.tif"]
    assert failure.details["trainB/depth.tif"] == "mode F"
    assert "trainB/depth.tif" in report.format()
    assert validate_dataset(root, "unaligned", ValidationConfig(allowed_modes=("RGB", "F"))).success


def test_max_bytes_and_disabled_checks(make_dataset: Callable[..., Path]) -> None:
    root = make_dataset("paired")
    shutil.copy(root / "testA" / "test_00.jpg", root / "trainA" / "dup.jpg")
    metadata = build_image_metadata(root, "paired")

    strict = run_validation(metadata, "paired", ValidationConfig(max_bytes=100))
    assert {"file_size", "pairs", "leakage"} <= _checks(strict)
    assert len(_failure(strict, "file_size").files) == len(metadata)

    relaxed = run_validation(metadata, "paired", ValidationConfig(check_pairs=False, check_leakage=False))
    assert relaxed.success, relaxed.format()


def test_format_caps_file_list(make_dataset: Callable[..., Path]) -> None:
    root = make_dataset("unaligned")
    for index in range(25):
        (root / "trainA" / f"bad_{index:02d}.png").write_text("nope")

    report = validate_dataset(root, "unaligned")

    text = report.format()
    assert "bad_00.png" in text and "bad_19.png" in text
    assert "bad_20.png" not in text
    assert "... and 5 more" in text
    assert len(_failure(report, "decodable").files) == 25


def test_summary_counts_ignored_files(make_dataset: Callable[..., Path]) -> None:
    root = make_dataset("unaligned")
    (root / "trainA" / "notes.txt").write_text("ignored")

    report = validate_dataset(root, "unaligned")

    assert report.success
    assert report.summary["ignored_files"] == 1
    assert report.summary["images"] == 10
    assert report.summary["per_split_domain"] == {
        "train": {"A": 3, "B": 3},
        "test": {"A": 2, "B": 2},
    }
    assert "1 non-image file(s) ignored" in report.format()


def test_save_report_and_error(make_dataset: Callable[..., Path], tmp_path: Path) -> None:
    root = make_dataset("aligned")
    (root / "train" / "zero.jpg").write_bytes(b"")
    report = validate_dataset(root, "aligned")

    paths = save_report(report, tmp_path / "reports" / "nested")

    assert set(paths) == {"json", "txt"}
    data = json.loads(paths["json"].read_text(encoding="utf-8"))
    assert data["success"] is False
    assert data["failures"][0]["files"] == ["train/zero.jpg"]
    assert data["gx_result"]["results"]
    assert data["summary"]["bad_files"] == 1
    assert paths["txt"].read_text(encoding="utf-8").strip() == report.format()

    with pytest.raises(DataValidationError) as caught:
        report.raise_if_failed()
    assert caught.value.report is report
    assert str(caught.value) == report.format()
    assert isinstance(caught.value, RuntimeError)


def test_metadata_survives_csv_round_trip(make_dataset: Callable[..., Path], tmp_path: Path) -> None:
    root = make_dataset("paired")
    (root / "trainB" / "train_00.png").unlink()
    metadata = build_image_metadata(root, "paired")
    csv = tmp_path / "metadata.csv"
    metadata.to_csv(csv, index=False)

    direct = run_validation(metadata, "paired", ValidationConfig())
    reloaded = run_validation(pd.read_csv(csv), "paired", ValidationConfig())

    assert _checks(direct) == _checks(reloaded) == {"pairs"}
    assert _failure(reloaded, "pairs").files == ["trainA/train_00.jpg"]


def test_run_validation_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="unknown dataset format"):
        run_validation(pd.DataFrame(), "pix2pix", ValidationConfig())
    with pytest.raises(ValueError, match="lacks column"):
        run_validation(pd.DataFrame({"path": []}), "aligned", ValidationConfig())


def test_gx_stays_offline_and_writes_nothing(
    make_dataset: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_dataset("unaligned")
    attempts: list[object] = []

    def refuse(self: socket.socket, address: object) -> None:
        attempts.append(address)
        raise OSError(f"network disabled in tests: {address}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    monkeypatch.chdir(workdir)

    report = validate_dataset(root, "unaligned")

    assert report.success
    assert attempts == []
    assert list(workdir.iterdir()) == []


class TestValidationConfig:
    def test_defaults(self) -> None:
        config = ValidationConfig()
        assert (config.min_width, config.max_width, config.min_height, config.max_height) == (
            16,
            8192,
            16,
            8192,
        )
        assert "RGB" in config.allowed_modes and "F" not in config.allowed_modes
        assert config.min_images_per_domain == 1
        assert config.max_images_per_domain == 1_000_000
        assert config.check_pairs and config.check_leakage
        assert config.max_bytes == 50_000_000

    def test_from_dict(self) -> None:
        config = ValidationConfig.from_dict({"min_width": 32, "allowed_modes": ["RGB", "L"]})
        assert config.min_width == 32
        assert config.allowed_modes == ("RGB", "L")
        assert ValidationConfig.from_dict({}) == ValidationConfig()
        assert ValidationConfig.from_dict(None) == ValidationConfig()
        assert config.to_dict()["allowed_modes"] == ["RGB", "L"]

    def test_from_dict_rejects_unknown_keys(self) -> None:
        with pytest.raises(ValueError, match=r"unknown validation parameter\(s\): min_widht") as err:
            ValidationConfig.from_dict({"min_widht": 32})
        assert "min_width" in str(err.value)  # lists the allowed keys

    @pytest.mark.parametrize(
        "params",
        [
            {"min_width": 100, "max_width": 50},
            {"min_images_per_domain": -1},
            {"max_bytes": "big"},
            {"check_pairs": "yes"},
            {"allowed_modes": "RGB"},
        ],
    )
    def test_from_dict_rejects_bad_values(self, params: dict) -> None:
        with pytest.raises(ValueError):
            ValidationConfig.from_dict(params)
