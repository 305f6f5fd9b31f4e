"""Exported generators (safetensors + config.json) are byte-reproducible: DVC sees a change only when there is one."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load

from transfigure.models.io import CONFIG_NAME, copy_with_metadata, load_generators, safetensors_bytes

METADATA = {"variant": "cyclegan", "direction": "AtoB", "z": "1", "q": "2", "a": "3"}


def _tensors() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "up.weight": torch.rand(4, 3, generator=g),
        "down.bias": torch.rand(5, generator=g).half(),
        "bn.num_batches_tracked": torch.tensor(7),
        "t.weight": torch.rand(3, 4, generator=g).t(),  # not contiguous
        "empty": torch.zeros(0),
    }


def _header(data: bytes) -> tuple[int, str]:
    (length,) = struct.unpack("<Q", data[:8])
    return length, data[8 : 8 + length].decode()


def test_safetensors_bytes_are_one_encoding_and_load_back():
    # safetensors' own header order changes from one save to the next (a Rust HashMap), even in one process
    encodings = {safetensors_bytes(_tensors(), METADATA) for _ in range(30)}
    assert len(encodings) == 1
    data = encodings.pop()
    length, header = _header(data)
    assert length % 8 == 0
    doc = json.loads(header)
    assert list(doc)[0] == "__metadata__" and list(doc["__metadata__"]) == sorted(METADATA)
    offsets = [doc[k]["data_offsets"] for k in list(doc)[1:]]
    assert offsets == sorted(offsets)
    loaded = load(data)
    assert loaded.keys() == _tensors().keys()
    assert all(torch.equal(loaded[k], v) and loaded[k].dtype == v.dtype for k, v in _tensors().items())
    assert safetensors_bytes(dict(reversed(_tensors().items())), dict(reversed(METADATA.items()))) == data


def test_safetensors_bytes_without_metadata_and_the_file_reads_with_safe_open(tmp_path):
    path = tmp_path / "w.safetensors"
    path.write_bytes(safetensors_bytes(_tensors()))
    assert "__metadata__" not in _header(path.read_bytes())[1]
    with safe_open(str(path), "pt") as f:
        assert sorted(f.keys()) == sorted(_tensors()) and f.metadata() is None
        assert torch.equal(f.get_tensor("t.weight"), _tensors()["t.weight"])


def test_copy_with_metadata_adds_run_facts_to_a_copy_only(tmp_path):
    from transfigure.models import CycleGAN
    from transfigure.models.io import save_generators

    model = CycleGAN(ngf=4, ndf=4)
    src = save_generators(tmp_path / "generator", model.generators(), variant="cyclegan", metadata={"step": 3})
    before = {p.name: p.read_bytes() for p in src.iterdir()}
    dst = copy_with_metadata(src, tmp_path / "logged" / "generator", {"mlflow_run_id": "r1", "git_commit": "abc"})
    assert {p.name: p.read_bytes() for p in src.iterdir()} == before
    doc, _ = load_generators(dst)
    assert doc["metadata"] == {"step": 3, "mlflow_run_id": "r1", "git_commit": "abc"}
    assert (dst / "AtoB.safetensors").read_bytes() == before["AtoB.safetensors"]
    assert json.loads(before[CONFIG_NAME])["metadata"] == {"step": 3}


SAVE = textwrap.dedent(
    """
    import sys, torch
    from transfigure.models import CycleGAN
    from transfigure.models.io import save_generators
    torch.manual_seed(0)
    model = CycleGAN(ngf=4, ndf=4)
    save_generators(sys.argv[1], model.generators(), variant="cyclegan", model_config=model.config.model_dump(),
                    metadata={"step": 3, "b": "x", "a": "y"})
    """
)


@pytest.mark.slow
def test_the_same_weights_saved_by_two_fresh_interpreters_are_byte_identical(tmp_path):
    folders = []
    for seed in ("1", "2"):
        out = tmp_path / f"seed{seed}"
        env = {**os.environ, "PYTHONHASHSEED": seed}
        subprocess.run([sys.executable, "-c", SAVE, str(out)], check=True, env=env, timeout=120)
        folders.append({p.name: p.read_bytes() for p in sorted(out.iterdir())})
    assert sorted(folders[0]) == ["AtoB.safetensors", "BtoA.safetensors", CONFIG_NAME]
    assert folders[0] == folders[1]
