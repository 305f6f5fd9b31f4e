"""transfigure.tracking.dvc_info against real DVC repositories: `dvc add`, `dvc repro` and their .dvc / dvc.lock files."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from _dvc_support import dvc, git
from _support import PROJECT
from transfigure.tracking.dvc_info import UNTRACKED, dvc_data_version, dvc_tags, find_dvc_root


@pytest.fixture
def repo(tmp_path, monkeypatch) -> Path:
    """A fresh git + DVC repository with the project's .gitignore as the working directory; no DVC variables
    from an outer `dvc repro`."""
    root = tmp_path / "repo"
    root.mkdir()
    (root / ".gitignore").write_text((PROJECT / ".gitignore").read_text())
    git(root, "init", "-q")
    dvc(root, "init", "-q")
    monkeypatch.chdir(root)
    for name in ("DVC_ROOT", "DVC_STAGE"):
        monkeypatch.delenv(name, raising=False)
    return root


def write_files(folder: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text)
    return folder


def test_outside_a_dvc_repository_the_data_is_untracked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    data = write_files(tmp_path / "data", {"a.txt": "a"})
    assert find_dvc_root() is None
    version = dvc_data_version(data)
    assert (version.status, version.md5, version.lock_md5, version.out) == (UNTRACKED, UNTRACKED, UNTRACKED, "")
    assert dvc_tags(data) == {
        "dvc_data_path": str(data),
        "dvc_data_status": UNTRACKED,
        "dvc_data_md5": UNTRACKED,
        "dvc_lock_md5": UNTRACKED,
    }
    assert dvc_tags(None) == {}


@pytest.mark.slow
def test_a_folder_added_with_dvc_add_is_traced_to_its_md5_and_a_later_change_is_flagged(repo):
    data = write_files(repo / "data" / "01_raw" / "mine", {"trainA/1.png": "x" * 10, "trainB/2.png": "y" * 20})
    dvc(repo, "add", "data/01_raw/mine")  # DVC refuses a .dvc file that git ignores: .gitignore lets it through
    git(repo, "add", "data/01_raw/mine.dvc")  # versioned by git; the data itself stays ignored
    assert "data/01_raw/mine/trainA/1.png" not in git(repo, "ls-files", "--others", "--exclude-standard")
    recorded = yaml.safe_load((repo / "data/01_raw/mine.dvc").read_text())["outs"][0]["md5"]

    version = dvc_data_version("data/01_raw/mine")  # relative to the working directory, as Kedro passes it
    assert (version.path, version.out, version.md5) == ("data/01_raw/mine", "data/01_raw/mine", recorded)
    assert version.source == "data/01_raw/mine.dvc" and version.status == "clean"
    assert version.lock_md5 == UNTRACKED  # no dvc.lock in this repository
    # a subfolder is traced to the added folder that holds it
    inner = dvc_data_version(data / "trainA")
    assert (inner.path, inner.out, inner.md5, inner.status) == (
        "data/01_raw/mine/trainA",
        "data/01_raw/mine",
        recorded,
        "clean",
    )

    (data / "trainA" / "1.png").write_text("x" * 11)  # changed after `dvc add`
    changed = dvc_data_version(data)
    assert changed.status == "modified" and changed.md5 == recorded  # the last version DVC knows, flagged


@pytest.mark.slow
def test_dvc_lock_outputs_and_dependencies_name_the_data_a_stage_used(repo, monkeypatch, tmp_path):
    (repo / "dvc.yaml").write_text(
        yaml.safe_dump(
            {
                "stages": {
                    "make": {
                        "cmd": "python -c \"import pathlib; p = pathlib.Path('out/sub'); p.mkdir(parents=True); "
                        "(p / 'a.txt').write_text('a'); (p.parent / 'b.txt').write_text('bb')\"",
                        "outs": ["out"],
                    },
                    "use": {
                        "cmd": "python -c \"open('used.txt', 'w').write('ok')\"",
                        "deps": ["out/sub"],
                        "outs": ["used.txt"],
                    },
                }
            }
        )
    )
    dvc(repo, "repro")
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    out_md5 = lock["make"]["outs"][0]["md5"]
    sub_md5 = lock["use"]["deps"][0]["md5"]
    monkeypatch.setenv("DVC_STAGE", "train_cyclegan")  # what `dvc repro` sets for a stage's command

    whole = dvc_data_version("out")  # a stage output
    assert (whole.md5, whole.out, whole.source, whole.status) == (out_md5, "out", "dvc.lock:make", "clean")
    assert whole.stage == "train_cyclegan" and len(whole.lock_md5) == 32
    sub = dvc_data_version("out/sub")  # the hash a stage recorded for exactly this folder
    assert (sub.md5, sub.out, sub.source, sub.status) == (sub_md5, "out/sub", "dvc.lock:use (dependency)", "clean")

    (repo / "out" / "sub" / "new.txt").write_text("new")  # no longer what either stage recorded
    stale = dvc_data_version("out/sub")
    assert (stale.md5, stale.out, stale.status) == (out_md5, "out", "modified")

    outside = write_files(tmp_path / "elsewhere", {"c.txt": "c"})
    assert dvc_data_version(outside).status == UNTRACKED
    assert dvc_tags(outside)["dvc_lock_md5"] == whole.lock_md5


@pytest.mark.slow
def test_a_broken_dvc_lock_means_untracked_not_a_failed_training(repo):
    write_files(repo / "data", {"a.txt": "a"})
    (repo / "dvc.lock").write_text("stages: [unclosed\n")
    version = dvc_data_version("data")
    assert version.status == UNTRACKED and version.md5 == UNTRACKED
