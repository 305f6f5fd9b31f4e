"""Dataset layouts: format detection, held-out split lookup and the listing every reader shares."""

from __future__ import annotations

from pathlib import Path

import pytest

from transfigure.data.layout import detect_format, held_out_split, list_images, resolve_format, scan_folder


def _dirs(root: Path, *names: str) -> Path:
    for name in names:
        (root / name).mkdir(parents=True)
    return root


@pytest.mark.parametrize(
    ("folders", "fmt"),
    [
        (("train_label", "train_img"), "labelmap"),
        (("trainA", "trainB", "testA"), "unaligned"),
        (("train", "test"), "aligned"),
    ],
)
def test_detect_format(tmp_path: Path, folders: tuple[str, ...], fmt: str) -> None:
    assert detect_format(_dirs(tmp_path, *folders)) == fmt
    assert resolve_format(tmp_path, "auto") == fmt
    assert resolve_format(tmp_path, "paired") == "paired"  # an explicit format is not second-guessed


def test_detect_format_explains_an_unknown_layout(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"cannot tell the format.*'trainA', 'train_label'"):
        detect_format(_dirs(tmp_path, "trainA", "train_label"))
    with pytest.raises(ValueError, match="unknown data.format 'pairs'"):
        resolve_format(tmp_path, "pairs")


def test_held_out_split_prefers_test_then_val(tmp_path: Path) -> None:
    _dirs(tmp_path, "train_label", "val_label")
    assert held_out_split(tmp_path, "labelmap") == "val"
    _dirs(tmp_path, "test_label")
    assert held_out_split(tmp_path, "labelmap") == "test"
    assert held_out_split(tmp_path, "labelmap", "val") == "val"
    with pytest.raises(ValueError, match="held-out"):
        held_out_split(tmp_path, "labelmap", "train")
    with pytest.raises(FileNotFoundError, match=r"'testA/' or 'valA/'"):
        held_out_split(tmp_path, "unaligned")


def test_scan_folder_splits_images_from_other_files(tmp_path: Path) -> None:
    for rel in ["a.PGM", "b.pbm", "sub/c.Png", "notes.txt", "._a.png", ".cache/d.png"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    (tmp_path / "gone.png").symlink_to(tmp_path / "missing.png")  # the trainer would try to read it

    images, others = scan_folder(tmp_path)

    rel = [p.relative_to(tmp_path).as_posix() for p in images]
    assert rel == ["a.PGM", "b.pbm", "gone.png", "sub/c.Png"]
    assert [p.name for p in others] == ["._a.png", "notes.txt"]  # hidden folders are not entered
    assert list_images(tmp_path) == images
