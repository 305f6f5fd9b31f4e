"""The training engine all variants share."""

from transfigure.training.config import TrainingConfig
from transfigure.training.engine import NullLogger, Trainer, TrainingInterrupted, TrainingLogger, TrainingResult

__all__ = ["NullLogger", "Trainer", "TrainingConfig", "TrainingInterrupted", "TrainingLogger", "TrainingResult"]
