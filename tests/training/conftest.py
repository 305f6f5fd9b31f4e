from __future__ import annotations

import pytest
import torch
from torch.utils.data import Dataset


class TensorPairs(Dataset):
    """Six fixed random 32x32 A/B pairs: enough for the engine, no files needed."""

    def __init__(self, n: int = 6, size: int = 32) -> None:
        g = torch.Generator().manual_seed(0)
        self.a = torch.rand(n, 3, size, size, generator=g) * 2 - 1
        self.b = torch.rand(n, 3, size, size, generator=g) * 2 - 1
        self.epochs: list[int] = []

    def set_epoch(self, epoch: int) -> None:
        self.epochs.append(epoch)

    def __len__(self) -> int:
        return len(self.a)

    def __getitem__(self, i: int) -> dict:
        return {"A": self.a[i], "B": self.b[i], "A_paths": f"a{i}", "B_paths": f"b{i}"}


@pytest.fixture
def pairs():
    """The dataset class (tests build fresh instances, some with modified contents)."""
    return TensorPairs
