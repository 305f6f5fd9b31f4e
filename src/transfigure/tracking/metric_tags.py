"""The metric vocabulary evaluation and the registry share.

Evaluation writes each metric of a registered version as the version tag
``METRIC_TAG_PREFIX + key`` (``metric.fid``); the promotion gate and the service read them
back, and :data:`METRIC_DIRECTIONS` says which way each key is better. Both live here, below
evaluation and tracking alike, so the gate can judge metrics without importing evaluation.
Imports nothing.
"""

from __future__ import annotations

from typing import Final

#: prefix of the registered-version tags holding metric values (``metric.fid``)
METRIC_TAG_PREFIX: Final = "metric."

#: "min" (lower is better) or "max" for every metric key an evaluation can produce
METRIC_DIRECTIONS: Final[dict[str, str]] = {
    "fid": "min",
    "kid": "min",
    "fid_AtoB": "min",
    "fid_BtoA": "min",
    "kid_AtoB": "min",
    "kid_BtoA": "min",
    "cycle_l1_A": "min",
    "cycle_l1_B": "min",
    "l1": "min",
    "psnr": "max",
    "ssim": "max",
}

__all__ = ["METRIC_DIRECTIONS", "METRIC_TAG_PREFIX"]
