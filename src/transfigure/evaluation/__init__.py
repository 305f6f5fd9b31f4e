"""Evaluation: offline FID/KID, L1/PSNR/SSIM, cycle consistency, image reports, MLflow records.

``evaluate_registered("cyclegan", "champion", dataset, data, evaluation)`` evaluates a registered
version on the held-out split of ``dataset``; ``evaluate_translator`` does the same for a
:class:`~transfigure.inference.Translator` in hand. ``record_evaluation`` logs the result into
the model's training run and tags its registered version (``metric.<key>``,
``eval_split_fingerprint``, ``eval_n_images``).
"""

from transfigure.evaluation.evaluate import (
    EvaluationConfig,
    EvaluationResult,
    evaluate_held_out,
    evaluate_logged_model,
    evaluate_registered,
    evaluate_translator,
)
from transfigure.evaluation.inception import PROTOCOL, inception_features
from transfigure.evaluation.metrics import (
    PSNR_CAP,
    frechet_distance,
    kernel_inception_distance,
    l1_distance,
    psnr,
    ssim,
)
from transfigure.evaluation.recording import champion_reevaluator, record_evaluation, version_tags
from transfigure.tracking.metric_tags import METRIC_DIRECTIONS, METRIC_TAG_PREFIX

__all__ = [
    "METRIC_DIRECTIONS",
    "METRIC_TAG_PREFIX",
    "PROTOCOL",
    "PSNR_CAP",
    "EvaluationConfig",
    "EvaluationResult",
    "champion_reevaluator",
    "evaluate_held_out",
    "evaluate_logged_model",
    "evaluate_registered",
    "evaluate_translator",
    "frechet_distance",
    "inception_features",
    "kernel_inception_distance",
    "l1_distance",
    "psnr",
    "record_evaluation",
    "ssim",
    "version_tags",
]
