"""The training engine all variants share."""

from transfigure.training.config import TrainingConfig
from transfigure.training.engine import (
    EpochCallback,
    NullLogger,
    Trainer,
    TrainingInterrupted,
    TrainingLogger,
    TrainingResult,
)

__all__ = [
    "EpochCallback",
    "NullLogger",
    "Trainer",
    "TrainingConfig",
    "TrainingInterrupted",
    "TrainingLogger",
    "TrainingResult",
]
