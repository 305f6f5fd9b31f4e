"""TransformConfig validation, reference geometry per preprocess mode, tensors, label maps."""

from __future__ import annotations

import random
from collections.abc import Callable

import numpy as np
import pytest
import torch
from PIL import Image

from transfigure.data import (
    TransformConfig,
    TransformParams,
    apply_transform,
    sample_params,
    tensor_to_pil,
    to_tensor,
    transform_image,
    transform_label,
)
from transfigure.data.transforms import output_size

# ------------------------------------------------------------------ config


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"preprocess": "resize"}, "unknown preprocess 'resize'"),
        ({"load_size": 200, "crop_size": 256}, "set load_size >= crop_size"),
        (
            {"preprocess": "scale_width_and_crop", "load_size": 64, "crop_size": 128},
            "load_size >= crop_size",
        ),
        ({"load_size": 3, "crop_size": 2}, "at least 4"),
        ({"crop_size": 2}, "crop_size=2 is too small"),
        ({"load_size": 64.0}, "load_size must be an int"),
    ],
)
def test_config_validation(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TransformConfig(**kwargs)  # type: ignore[arg-type]


def test_config_defaults_and_crop_mode_ignores_load_size() -> None:
    cfg = TransformConfig()
    assert (cfg.preprocess, cfg.load_size, cfg.crop_size, cfg.flip) == (
        "resize_and_crop",
        286,
        256,
        True,
    )
    assert TransformConfig(preprocess="crop", load_size=8, crop_size=32).crop_size == 32
    with pytest.raises(AttributeError):
        cfg.flip = False  # type: ignore[misc]


# ------------------------------------------------------------------ geometry


@pytest.mark.parametrize(
    ("preprocess", "load", "crop", "size", "expected"),
    [
        ("resize_and_crop", 64, 48, (100, 60), (48, 48)),
        ("resize_and_crop", 64, 64, (101, 63), (64, 64)),
        ("crop", 64, 32, (100, 60), (32, 32)),
        ("crop", 64, 32, (33, 61), (32, 32)),
        ("scale_width", 50, 32, (100, 60), (50, 32)),  # height 30 raised to crop_size
        ("scale_width", 50, 16, (100, 60), (50, 30)),
        ("scale_width", 64, 32, (101, 63), (64, 39)),
        ("scale_width_and_crop", 64, 32, (100, 60), (32, 32)),
        ("scale_width_and_crop", 40, 32, (100, 60), (32, 32)),  # 40x24 -> height raised to 32
        ("none", 64, 32, (100, 60), (100, 60)),
        ("none", 64, 32, (101, 63), (100, 64)),
        ("none", 64, 32, (3, 1), (4, 4)),
    ],
)
def test_output_sizes(preprocess: str, load: int, crop: int, size: tuple[int, int], expected: tuple[int, int]) -> None:
    cfg = TransformConfig(preprocess=preprocess, load_size=load, crop_size=crop)  # type: ignore[arg-type]
    assert output_size(size, cfg) == expected
    img = Image.new("RGB", size, (10, 20, 30))
    for seed in range(5):
        params = sample_params(size, cfg, random.Random(seed))
        out = apply_transform(img, cfg, params)
        assert out.size == expected
        assert transform_image(img, cfg, params).shape == (3, expected[1], expected[0])


def test_crop_mode_smaller_than_crop_size_is_an_error() -> None:
    cfg = TransformConfig(preprocess="crop", crop_size=64)
    with pytest.raises(ValueError, match=r"100x60.*smaller than crop_size=64"):
        sample_params((100, 60), cfg, random.Random(0))
    with pytest.raises(ValueError, match="smaller than crop_size"):
        apply_transform(Image.new("RGB", (100, 60)), cfg, TransformParams((0, 0), False))


def test_sample_params_in_range_deterministic_and_varied() -> None:
    cfg = TransformConfig(preprocess="resize_and_crop", load_size=70, crop_size=64)
    drawn = [sample_params((100, 60), cfg, random.Random(s)) for s in range(200)]
    assert all(0 <= p.crop_pos[0] <= 6 and 0 <= p.crop_pos[1] <= 6 for p in drawn)
    assert {p.crop_pos[0] for p in drawn} == set(range(7))
    assert {p.flip for p in drawn} == {True, False}
    assert sample_params((100, 60), cfg, random.Random(7)) == sample_params((100, 60), cfg, random.Random(7))


def test_sample_params_no_crop_no_flip() -> None:
    cfg = TransformConfig(preprocess="scale_width", load_size=64, crop_size=32, flip=False)
    drawn = {sample_params((100, 60), cfg, random.Random(s)) for s in range(50)}
    assert drawn == {TransformParams(crop_pos=(0, 0), flip=False)}


def test_crop_takes_the_window_at_crop_pos_and_flip_mirrors(
    pattern: Callable[..., np.ndarray],
) -> None:
    arr = pattern(100, 60)
    img = Image.fromarray(arr)
    cfg = TransformConfig(preprocess="crop", crop_size=32)
    out = np.asarray(apply_transform(img, cfg, TransformParams((10, 5), False)))
    np.testing.assert_array_equal(out, arr[5:37, 10:42])
    flipped = np.asarray(apply_transform(img, cfg, TransformParams((10, 5), True)))
    np.testing.assert_array_equal(flipped, arr[5:37, 10:42][:, ::-1])
    # flip=False in the config wins over params.flip
    off = TransformConfig(preprocess="crop", crop_size=32, flip=False)
    np.testing.assert_array_equal(np.asarray(apply_transform(img, off, TransformParams((10, 5), True))), out)


def test_bad_crop_pos_rejected() -> None:
    cfg = TransformConfig(preprocess="crop", crop_size=32)
    with pytest.raises(ValueError, match="does not fit"):
        apply_transform(Image.new("L", (40, 40)), cfg, TransformParams((20, 0), False))


def test_resize_and_crop_is_bicubic_resize_then_crop(pattern: Callable[..., np.ndarray]) -> None:
    img = Image.fromarray(pattern(100, 60))
    cfg = TransformConfig(preprocess="resize_and_crop", load_size=70, crop_size=64)
    out = apply_transform(img, cfg, TransformParams((3, 4), False))
    expected = img.resize((70, 70), Image.Resampling.BICUBIC).crop((3, 4, 67, 68))
    np.testing.assert_array_equal(np.asarray(out), np.asarray(expected))


# ------------------------------------------------------------------ tensors


def test_to_tensor_range_shape_dtype() -> None:
    rgb = Image.new("RGB", (5, 4), (255, 0, 128))
    t = to_tensor(rgb)
    assert t.dtype == torch.float32 and t.shape == (3, 4, 5)
    assert t[0].eq(1.0).all() and t[1].eq(-1.0).all()
    assert abs(float(t[2, 0, 0]) - (128 / 127.5 - 1)) < 1e-6
    grey = to_tensor(Image.new("L", (5, 4), 0))
    assert grey.shape == (1, 4, 5) and grey.eq(-1).all()
    with pytest.raises(ValueError, match="RGBA"):
        to_tensor(Image.new("RGBA", (2, 2)))


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_tensor_round_trip_is_exact(mode: str) -> None:
    rng = np.random.default_rng(0)
    shape = (9, 7, 3) if mode == "RGB" else (9, 7)
    arr = rng.integers(0, 256, shape, dtype=np.uint8)
    back = tensor_to_pil(to_tensor(Image.fromarray(arr)))
    assert back.mode == mode
    np.testing.assert_array_equal(np.asarray(back), arr)
    batched = tensor_to_pil(to_tensor(Image.fromarray(arr))[None])
    np.testing.assert_array_equal(np.asarray(batched), arr)


def test_tensor_to_pil_clamps_and_validates() -> None:
    t = torch.tensor([[[5.0, -7.0, 0.0]]])
    assert np.asarray(tensor_to_pil(t)).tolist() == [[255, 0, 128]]
    with pytest.raises(ValueError, match="C in"):
        tensor_to_pil(torch.zeros(2, 4, 4))
    with pytest.raises(ValueError, match="batch"):
        tensor_to_pil(torch.zeros(2, 3, 4, 4))


# ------------------------------------------------------------------ labels


def _blocky_labels(w: int, h: int, ids: list[int], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    coarse = rng.choice(ids, size=(h // 5 + 1, w // 5 + 1))
    return np.kron(coarse, np.ones((5, 5), np.int64))[:h, :w].astype(np.int64)


@pytest.mark.parametrize("preprocess", ["resize_and_crop", "scale_width_and_crop", "none", "scale_width"])
def test_transform_label_nearest_never_invents_ids(preprocess: str) -> None:
    label = _blocky_labels(101, 63, [0, 3, 7, 200])
    cfg = TransformConfig(preprocess=preprocess, load_size=70, crop_size=48)  # type: ignore[arg-type]
    for seed in range(4):
        params = sample_params((101, 63), cfg, random.Random(seed))
        out = transform_label(label, cfg, params)
        w, h = output_size((101, 63), cfg)
        assert out.dtype == torch.int64 and out.shape == (1, h, w)
        assert set(np.unique(out.numpy()).tolist()) <= {0, 3, 7, 200}
        # identical geometry to the image path, only the resampling differs
        ref = apply_transform(Image.fromarray(label.astype(np.uint8)), cfg, params, Image.Resampling.NEAREST)
        np.testing.assert_array_equal(out[0].numpy(), np.asarray(ref))
    # bicubic on the same map would create in-between ids: nearest matters
    bicubic = Image.fromarray(label.astype(np.uint8)).resize((70, 70), Image.Resampling.BICUBIC)
    assert not set(np.unique(np.asarray(bicubic)).tolist()) <= {0, 3, 7, 200}


def test_transform_label_rejects_non_integer() -> None:
    cfg = TransformConfig(load_size=8, crop_size=8)
    with pytest.raises(ValueError, match="integer"):
        transform_label(np.zeros((4, 4), np.float32), cfg, TransformParams((0, 0), False))
