"""translate_and_stamp, the one translate + watermark path the service runs for each adaptive batch:
mixed sizes, order, per-image refusals, label maps, and stamps that trace back to the ledger."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch
from PIL import Image

from _serving import LABEL_NC, label_map, ledger_holds, noise_image, psnr
from transfigure.data.datasets import LabelIdError
from transfigure.data.transforms import to_tensor
from transfigure.inference import Translator, translate_and_stamp
from transfigure.models import SPADE, CycleGAN
from transfigure.models.io import save_generators


def export(model, folder: Path) -> Translator:
    save_generators(folder, model.generators(), variant=model.variant, model_config=model.config.model_dump())
    return Translator.from_folder(folder, device="cpu")


@pytest.fixture(scope="module")
def cyclegan(tmp_path_factory) -> Translator:
    torch.manual_seed(0)
    return export(CycleGAN(ngf=4, ndf=4, netG="resnet_6blocks"), tmp_path_factory.mktemp("cyclegan") / "generator")


@pytest.fixture(scope="module")
def spade(tmp_path_factory) -> Translator:
    model = SPADE(
        label_nc=LABEL_NC, contain_dontcare_label=False, use_instance=True, crop_size=32, ngf=4, ndf=4, spade_hidden=8
    )
    return export(model, tmp_path_factory.mktemp("spade") / "generator")


@pytest.fixture
def provenance(tmp_path, monkeypatch):
    """A private ledger and watermark key; the working directory (development signing key) in tmp."""
    monkeypatch.setenv("TRANSFIGURE_LEDGER", str(tmp_path / "ledger.sqlite"))
    monkeypatch.setenv("TRANSFIGURE_WATERMARK_KEY", "batching-tests")
    monkeypatch.chdir(tmp_path)
    from transfigure.provenance import ModelInfo, ProvenanceConfig

    return (
        ProvenanceConfig.from_env(),
        ModelInfo(name="cyclegan", version="7", run_id="run-1", variant="cyclegan"),
        tmp_path / "ledger.sqlite",
    )


def decode(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def test_mixed_sizes_come_back_in_order_each_translated_and_stamped(cyclegan, provenance):
    from transfigure.provenance import Stamped, detect_watermark, verify_image_bytes

    config, info, ledger = provenance
    sizes = [(64, 64), (96, 80), (64, 64), (80, 112), (96, 80), (80, 112)]  # watermarks need >= 64 px
    images: list[Image.Image] = [noise_image(w, h, seed=i) for i, (w, h) in enumerate(sizes)]
    images.insert(3, Image.new("LAB", (64, 64)))  # a mode no photo model takes: refused alone
    outputs = translate_and_stamp(cyclegan, images, model_info=info, direction="AtoB", config=config, batch_size=2)

    assert len(outputs) == len(images)
    assert isinstance(outputs[3], ValueError) and "LAB" in str(outputs[3])
    stamped = [(img, out) for img, out in zip(images, outputs) if not isinstance(out, ValueError)]
    assert len(stamped) == len(sizes)
    ids = set()
    for img, out in stamped:
        assert isinstance(out, Stamped) and out.media_type == "image/png"
        result = decode(out.data)
        assert result.size == img.size and result.mode == "RGB"
        assert psnr(result, cyclegan.translate(img)) > 30  # its own translation, not a neighbour's
        detection = detect_watermark(result)
        assert detection.detected and detection.payload.hex() == out.provenance_id
        assert verify_image_bytes(out.data)["manifest"]["status"] == "valid"
        assert ledger_holds(ledger, out.provenance_id)
        ids.add(out.provenance_id)
    assert len(ids) == len(sizes)


def test_a_batch_of_equal_sizes_gives_the_pixels_of_one_by_one(cyclegan):
    """Why equal sizes may share a batch (instance norm is per image) and different sizes are not padded together."""
    x = torch.stack([to_tensor(noise_image(40, 24, seed=s)) for s in range(3)])
    batched = cyclegan.translate_tensor(x)
    single = torch.cat([cyclegan.translate_tensor(x[i : i + 1]) for i in range(3)])
    assert torch.allclose(batched, single, atol=1e-5)
    padded = torch.nn.functional.pad(x[:1], (0, 16, 0, 16), mode="reflect")
    assert not torch.allclose(cyclegan.translate_tensor(padded)[..., :24, :40], single[:1], atol=1e-2)


def test_output_size_and_format(cyclegan, provenance):
    config, info, _ = provenance
    images = [
        noise_image(128, 64, seed=1),
        noise_image(20, 30, seed=2).convert("L"),
        noise_image(33, 33, seed=3).convert("RGBA"),
    ]
    outputs = translate_and_stamp(
        cyclegan, images, model_info=info, direction="BtoA", size=(80, 64), fmt="JPEG", quality=90, config=config
    )
    for out in outputs:
        assert out.media_type == "image/jpeg"
        img = decode(out.data)
        assert img.format == "JPEG" and img.size == (80, 64) and img.mode == "RGB"
    too_small = translate_and_stamp(
        cyclegan, [noise_image(64, 64), noise_image(16, 16)], model_info=info, config=config
    )
    assert decode(too_small[0].data).size == (64, 64)
    assert isinstance(too_small[1], ValueError) and "16x16" in str(too_small[1])  # refused, not returned unmarked


def test_label_maps_are_translated_and_bad_ones_refused_alone(spade, provenance):
    from transfigure.provenance import ModelInfo

    config, _, _ = provenance
    info = ModelInfo(name="spade", version="1", variant="spade")
    good = label_map(40, 48)
    bad_ids = label_map(40, 48, (0, 1, 9, 200))
    colour = noise_image(40, 48)
    outputs = translate_and_stamp(spade, [good, bad_ids, colour, good], model_info=info, size=(96, 64), config=config)
    assert isinstance(outputs[1], LabelIdError) and outputs[1].ids == [9, 200]
    assert isinstance(outputs[2], ValueError) and "mode 'RGB'" in str(outputs[2])
    for out in (outputs[0], outputs[3]):
        assert decode(out.data).size == (96, 64)
    assert outputs[0].provenance_id != outputs[3].provenance_id


def test_unknown_direction_is_an_error(spade, provenance):
    config, info, _ = provenance
    with pytest.raises(ValueError, match="unknown direction 'BtoA'.*'AtoB'"):
        translate_and_stamp(spade, [label_map(32, 32)], model_info=info, direction="BtoA", config=config)
