"""Image-translation metrics: FID and KID on Inception features, L1 / PSNR / SSIM on pairs.

Conventions (also in the README):

* images are ``NxCxHxW`` floats in **[0, 1]** (8-bit images / 255);
* ``l1`` and ``cycle_l1_*`` are mean absolute differences in [0, 1] (multiply by 2 for the
  [-1, 1] scale the models train on);
* ``psnr`` is the mean over images of ``10 log10(1 / MSE)`` in dB, each image capped at
  :data:`PSNR_CAP` dB (identical images would otherwise give infinity, which neither JSON
  nor MLflow can hold);
* ``ssim`` is the mean SSIM (Gaussian window 11, sigma 1.5, data range 1: torchmetrics'
  defaults, as Wang et al. 2004); identical images give 1;
* ``fid`` is computed in float64 from the features' means and covariances (below), ``kid``
  is the unbiased polynomial-kernel MMD^2 (Binkowski et al. 2018) averaged over random
  subsets drawn from a seeded generator, so both are deterministic.
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
import torch
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

#: PSNR of one image is capped here (dB); identical images score exactly this
PSNR_CAP: Final = 100.0
SSIM_WINDOW: Final = 11


def _features(f: np.ndarray, name: str) -> np.ndarray:
    f = np.asarray(f, dtype=np.float64)
    if f.ndim != 2:
        raise ValueError(f"{name} must be an N x D feature matrix, got shape {f.shape}")
    if f.shape[0] < 2:
        raise ValueError(
            f"{name} holds {f.shape[0]} image(s); FID and KID need at least 2 per set (set evaluation.max_images >= 2)"
        )
    if not np.isfinite(f).all():
        raise ValueError(f"{name} holds non-finite features")
    return f


def _trace_sqrt_product(x1: np.ndarray, x2: np.ndarray) -> float:
    """``tr sqrt(S1 S2)`` for the covariances ``S = Xc^T Xc / (n - 1)`` of centred features.

    With few images (``n1 * n2 <= D^2``) the non-zero eigenvalues of ``S1 S2`` are the squared
    singular values of ``X1c X2c^T / sqrt((n1-1)(n2-1))``, so the trace is that matrix's nuclear
    norm: exact for the rank-deficient covariances of small sets, where ``scipy.linalg.sqrtm``
    needs an epsilon fudge. Otherwise, in feature space: ``tr sqrt(A^1/2 S2 A^1/2)`` with
    ``A^1/2`` from a symmetric eigendecomposition (same value as ``tr sqrtm(S1 S2)``).
    """
    n1, n2, d = x1.shape[0], x2.shape[0], x1.shape[1]
    if n1 * n2 <= d * d:
        cross = x1 @ x2.T
        return float(np.linalg.svd(cross, compute_uv=False).sum() / math.sqrt((n1 - 1) * (n2 - 1)))
    s1 = x1.T @ x1 / (n1 - 1)
    s2 = x2.T @ x2 / (n2 - 1)
    w, v = np.linalg.eigh(s1)
    root = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
    m = root @ s2 @ root
    return float(np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0.0, None)).sum())


def frechet_distance(features_1: np.ndarray, features_2: np.ndarray) -> float:
    """FID between two feature sets: ``|mu1 - mu2|^2 + tr S1 + tr S2 - 2 tr sqrt(S1 S2)``, in float64.

    Identical sets give 0 (up to rounding; tiny negative values are clipped to 0).
    """
    f1, f2 = _features(features_1, "features_1"), _features(features_2, "features_2")
    if f1.shape[1] != f2.shape[1]:
        raise ValueError(f"feature sizes differ: {f1.shape[1]} vs {f2.shape[1]}")
    mu1, mu2 = f1.mean(axis=0), f2.mean(axis=0)
    x1, x2 = f1 - mu1, f2 - mu2
    trace_1 = float((x1 * x1).sum() / (f1.shape[0] - 1))
    trace_2 = float((x2 * x2).sum() / (f2.shape[0] - 1))
    fid = float(((mu1 - mu2) ** 2).sum()) + trace_1 + trace_2 - 2.0 * _trace_sqrt_product(x1, x2)
    return max(fid, 0.0)


def kernel_inception_distance(
    features_real: np.ndarray,
    features_fake: np.ndarray,
    *,
    subset_size: int = 50,
    subsets: int = 100,
    seed: int = 0,
) -> tuple[float, float]:
    """KID (mean, std over subsets): unbiased MMD^2 with the kernel ``(x.y / D + 1)^3``.

    Each of ``subsets`` draws ``m = min(subset_size, n_real, n_fake)`` images of each set without
    replacement from ``numpy.random.default_rng(seed)`` (torchmetrics' estimator, deterministic).
    """
    fr, ff = _features(features_real, "features_real"), _features(features_fake, "features_fake")
    if subset_size < 2 or subsets < 1:
        raise ValueError(f"KID needs subset_size >= 2 and subsets >= 1, got {subset_size} and {subsets}")
    m = min(subset_size, fr.shape[0], ff.shape[0])
    d = fr.shape[1]
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(subsets):
        x = fr[rng.choice(fr.shape[0], m, replace=False)]
        y = ff[rng.choice(ff.shape[0], m, replace=False)]
        k_xx = (x @ x.T / d + 1.0) ** 3
        k_yy = (y @ y.T / d + 1.0) ** 3
        k_xy = (x @ y.T / d + 1.0) ** 3
        within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
        values.append(within - 2.0 * k_xy.mean())
    arr = np.asarray(values)
    return float(arr.mean()), float(arr.std())


def _pair(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if pred.shape != target.shape or pred.ndim != 4:
        raise ValueError(
            f"paired metrics need two NxCxHxW batches of one shape, got {tuple(pred.shape)} and {tuple(target.shape)}"
        )
    return pred.to(torch.float64), target.to(torch.float64)


def l1_distance(pred: torch.Tensor, target: torch.Tensor) -> float:
    """Mean absolute difference of images in [0, 1]."""
    p, t = _pair(pred, target)
    return float((p - t).abs().mean())


def psnr(pred: torch.Tensor, target: torch.Tensor, cap: float = PSNR_CAP) -> float:
    """Mean per-image PSNR (dB, data range 1), each image capped at ``cap``."""
    p, t = _pair(pred, target)
    per_image = peak_signal_noise_ratio(p, t, data_range=1.0, reduction="none", dim=(1, 2, 3))
    return float(per_image.clamp(max=cap).mean())


def ssim(pred: torch.Tensor, target: torch.Tensor) -> float:
    """Mean SSIM (Gaussian window 11, sigma 1.5, data range 1)."""
    p, t = _pair(pred, target)
    if min(p.shape[-2:]) < SSIM_WINDOW:
        raise ValueError(
            f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW} px, got {p.shape[-1]}x{p.shape[-2]}; raise evaluation.size"
        )
    return float(structural_similarity_index_measure(p, t, data_range=1.0))
