"""Dataset layouts: format detection, held-out split lookup (and the held-out part of train), the shared listing."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from transfigure.data.layout import (
    Holdout,
    detect_format,
    evaluation_split,
    held_out_split,
    holdout_score,
    list_images,
    resolve_format,
    scan_folder,
    train_holdout,
)


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


# -- the held-out part of train (datasets without test/ or val/) -------------------------------------------
KEYS = [f"img_{i:04d}" for i in range(200)]


def test_holdout_score_is_a_fixed_function_of_the_name():
    # pinned: changing the rule would move users' held-out files between training and evaluation
    assert holdout_score("train/000") == pytest.approx(0.5605388162889878, abs=0)
    assert holdout_score("cmp_b0001") == pytest.approx(0.041457652104293856, abs=0)
    assert all(0 <= holdout_score(k) < 1 for k in KEYS)


def test_held_out_keys_depend_on_the_names_only():
    rule = Holdout(0.1, 8)
    held = rule.held_out_keys(KEYS)
    assert held == rule.held_out_keys(list(reversed(KEYS))) == rule.held_out_keys(random.Random(1).sample(KEYS, 200))
    assert held == {k for k in KEYS if holdout_score(k) < 0.1}  # about 10 %: the hash decides, not a count
    assert 10 <= len(held) <= 30


def test_adding_files_never_moves_existing_ones():
    rule = Holdout(0.1, 8)
    before = rule.held_out_keys(KEYS)
    after = rule.held_out_keys(KEYS + [f"new_{i}" for i in range(100)])
    assert after & set(KEYS) == before  # held-out files stay held out, trained ones stay trained
    assert after - before and all(k.startswith("new_") for k in after - before)


def test_small_sets_hold_out_a_minimum_but_keep_files_to_train_on():
    rule = Holdout(0.1, 8)
    assert len(rule.held_out_keys(KEYS[:10])) == 5  # min(min_count, n // 2)
    assert len(rule.held_out_keys(KEYS[:40])) == 8
    assert len(rule.held_out_keys(KEYS[:2])) == 1
    assert len(Holdout(0.5, 1).held_out_keys(["a", "b", "c"])) <= 2  # never all of them
    assert rule.held_out_keys(["only"]) == frozenset()  # one file cannot be split


def test_the_two_sides_are_disjoint_and_cover_the_split():
    items = [(k, i) for i, k in enumerate(KEYS)]
    rule = Holdout(0.2, 4)
    train = rule.select(items, key=lambda item: item[0])
    held = rule.held_out().select(items, key=lambda item: item[0])
    assert not set(train) & set(held) and sorted(train + held) == sorted(items)
    assert train == sorted(train, key=lambda item: item[1]) and held == sorted(held, key=lambda item: item[1])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fraction": 0.0}, "fraction"),
        ({"fraction": 0.6}, "fraction"),
        ({"fraction": 0.1, "min_count": 0}, "min_count"),
    ],
)
def test_holdout_refuses_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Holdout(**kwargs)


def test_train_holdout_only_without_a_test_or_val_split(tmp_path: Path) -> None:
    _dirs(tmp_path, "train")
    rule = train_holdout(tmp_path, "aligned", 0.1)
    assert rule == Holdout(0.1, 8, "train")
    assert evaluation_split(tmp_path, "aligned", None, rule) == ("train", Holdout(0.1, 8, "held_out"))
    assert train_holdout(tmp_path, "aligned", None) is None
    with pytest.raises(FileNotFoundError, match="holdout_fraction"):
        evaluation_split(tmp_path, "aligned", None, None)
    with pytest.raises(FileNotFoundError, match="'val/'"):  # a split asked for by name must exist
        evaluation_split(tmp_path, "aligned", "val", rule)
    _dirs(tmp_path, "val")
    assert train_holdout(tmp_path, "aligned", 0.1) is None  # a real held-out split: nothing changes
    assert evaluation_split(tmp_path, "aligned", None, rule) == ("val", None)
