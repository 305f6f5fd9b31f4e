"""FID/KID arithmetic against scipy and torchmetrics; L1/PSNR/SSIM on cases with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

from transfigure.evaluation import (
    METRIC_DIRECTIONS,
    PSNR_CAP,
    frechet_distance,
    kernel_inception_distance,
    l1_distance,
    psnr,
    ssim,
)
from transfigure.evaluation.metrics import _trace_sqrt_product

pytestmark = pytest.mark.filterwarnings("ignore:Metric `Kernel Inception Distance` will save")


class Features(torch.nn.Module):
    """torchmetrics' feature extractor slot filled with the identity: the 'images' are features."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.num_features = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def scipy_fid(f1: np.ndarray, f2: np.ndarray) -> float:
    """pytorch-fid's formula: sqrtm of the covariance product."""
    mu1, mu2 = f1.mean(0), f2.mean(0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean.real))


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.mark.parametrize(("n1", "n2", "dim"), [(60, 50, 8), (6, 9, 8), (3, 3, 16)])
def test_fid_matches_the_sqrtm_formula_and_torchmetrics(rng, n1, n2, dim):
    f1 = rng.normal(size=(n1, dim))
    f2 = rng.normal(size=(n2, dim)) * 1.5 + 0.3
    ours = frechet_distance(f1, f2)
    fid = FrechetInceptionDistance(feature=Features(dim), input_img_size=(dim,))
    fid.update(torch.tensor(f1), real=True)
    fid.update(torch.tensor(f2), real=False)
    assert ours == pytest.approx(float(fid.compute()), rel=1e-6)
    if n1 > dim and n2 > dim:  # full-rank covariances: scipy's sqrtm is reliable
        assert ours == pytest.approx(scipy_fid(f1, f2), rel=1e-9)


def test_both_trace_formulas_agree(rng):
    """Few images: nuclear norm of X1 X2^T; many: eigendecomposition in feature space. Same number."""
    for n1, n2, dim in [(5, 7, 8), (40, 30, 4)]:
        x1 = rng.normal(size=(n1, dim))
        x2 = rng.normal(size=(n2, dim))
        x1, x2 = x1 - x1.mean(0), x2 - x2.mean(0)
        s1, s2 = x1.T @ x1 / (n1 - 1), x2.T @ x2 / (n2 - 1)
        w, v = np.linalg.eigh(s1)
        root = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
        feature_space = np.sqrt(np.clip(np.linalg.eigvalsh(root @ s2 @ root), 0, None)).sum()
        # (rank-deficient S1: sqrt of near-zero eigenvalues costs the feature-space route ~1e-8)
        assert _trace_sqrt_product(x1, x2) == pytest.approx(feature_space, rel=1e-6)


def test_fid_of_identical_sets_is_zero_even_with_fewer_images_than_dimensions(rng):
    f = rng.normal(size=(8, 2048))  # rank-7 covariance: where sqrtm needs an epsilon fudge
    assert frechet_distance(f, f) == pytest.approx(0.0, abs=1e-8)
    assert frechet_distance(f, f + 1.0) == pytest.approx(2048.0, rel=1e-9)  # a pure mean shift


def test_kid_matches_torchmetrics_and_is_deterministic(rng):
    f1 = rng.normal(size=(10, 16))
    f2 = rng.normal(size=(10, 16)) + 0.5
    kid = KernelInceptionDistance(feature=Features(16), subset_size=10, subsets=3)
    kid.update(torch.tensor(f1), real=True)
    kid.update(torch.tensor(f2), real=False)
    # subset_size = n: every subset is the whole set whatever the draw, so the estimators must agree
    assert kernel_inception_distance(f1, f2, subset_size=10, subsets=3)[0] == pytest.approx(
        float(kid.compute()[0]), rel=1e-9
    )
    small = kernel_inception_distance(f1, f2, subset_size=4, subsets=20, seed=3)
    assert small == kernel_inception_distance(f1, f2, subset_size=4, subsets=20, seed=3)
    assert small != kernel_inception_distance(f1, f2, subset_size=4, subsets=20, seed=4)
    assert small[1] > 0  # subsets differ


def test_fid_and_kid_refuse_sets_they_cannot_measure(rng):
    with pytest.raises(ValueError, match="at least 2"):
        frechet_distance(rng.normal(size=(1, 8)), rng.normal(size=(4, 8)))
    with pytest.raises(ValueError, match="feature sizes differ"):
        frechet_distance(rng.normal(size=(4, 8)), rng.normal(size=(4, 9)))
    with pytest.raises(ValueError, match="non-finite"):
        frechet_distance(np.full((4, 8), np.nan), rng.normal(size=(4, 8)))
    with pytest.raises(ValueError, match="subset_size >= 2"):
        kernel_inception_distance(rng.normal(size=(4, 8)), rng.normal(size=(4, 8)), subset_size=1)


def test_paired_metrics_on_known_cases():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 3, 32, 32, generator=g, dtype=torch.float64) * 0.8 + 0.1
    # identical: L1 0, PSNR capped (not inf: JSON and MLflow cannot hold it), SSIM 1
    assert l1_distance(x, x) == 0.0
    assert psnr(x, x) == PSNR_CAP
    assert ssim(x, x) == pytest.approx(1.0, abs=1e-9)
    # a constant offset of 0.1: L1 = 0.1, MSE = 0.01 -> PSNR = 20 dB
    assert l1_distance(x + 0.1, x) == pytest.approx(0.1, abs=1e-7)
    assert psnr(x + 0.1, x) == pytest.approx(20.0, abs=1e-6)
    # the mean over images of each image's PSNR (not the PSNR of the pooled MSE)
    y = x.clone()
    y[0] += 0.1
    assert psnr(y, x) == pytest.approx((20.0 + 2 * PSNR_CAP) / 3)
    # half grey vs white: L1 0.5, PSNR 10 log10(1 / 0.25)
    assert l1_distance(torch.full((1, 3, 16, 16), 0.5), torch.ones(1, 3, 16, 16)) == pytest.approx(0.5)
    assert psnr(torch.full((1, 3, 16, 16), 0.5), torch.ones(1, 3, 16, 16)) == pytest.approx(10 * math.log10(4))
    assert ssim(x, torch.rand(x.shape, generator=g, dtype=torch.float64)) < 0.2  # unrelated noise


def test_paired_metrics_name_bad_input():
    with pytest.raises(ValueError, match="one shape"):
        l1_distance(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 9))
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8))


def test_every_metric_has_a_direction():
    assert {k for k, v in METRIC_DIRECTIONS.items() if v == "max"} == {"psnr", "ssim"}
    assert set(METRIC_DIRECTIONS.values()) == {"min", "max"}
    assert {"fid", "kid", "fid_AtoB", "fid_BtoA", "kid_AtoB", "kid_BtoA", "cycle_l1_A", "cycle_l1_B", "l1"} <= {
        k for k, v in METRIC_DIRECTIONS.items() if v == "min"
    }
