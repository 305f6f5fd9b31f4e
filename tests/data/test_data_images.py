"""load_image / load_label_map: mode conversions, EXIF orientation, every failure case."""

from __future__ import annotations

import io
import pickle
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from transfigure.data import ImageLoadError, convert_image, load_image, load_label_map
from transfigure.data.rules import MAX_PIXELS


def _png_with_header(path: Path, width: int, height: int) -> Path:
    """A tiny PNG whose IHDR declares width x height greyscale pixels (data is a stub)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    body = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)
    return path


def _rgb(img: Image.Image) -> tuple[int, ...]:
    assert img.mode == "RGB"
    return tuple(int(v) for v in np.asarray(img)[0, 0])


# ------------------------------------------------------------------ conversions


def test_mode_1_to_rgb(tmp_path: Path) -> None:
    img = Image.new("1", (4, 2), 0)
    img.putpixel((1, 0), 1)
    img.save(tmp_path / "a.png")
    out = np.asarray(load_image(tmp_path / "a.png"))
    assert out.shape == (2, 4, 3)
    assert out[0, 0].tolist() == [0, 0, 0]
    assert out[0, 1].tolist() == [255, 255, 255]


def test_mode_l_to_rgb_and_rgb_to_l(tmp_path: Path) -> None:
    Image.new("L", (3, 3), 100).save(tmp_path / "l.png")
    assert _rgb(load_image(tmp_path / "l.png")) == (100, 100, 100)
    Image.new("RGB", (3, 3), (255, 0, 0)).save(tmp_path / "red.png")
    grey = load_image(tmp_path / "red.png", mode="L")
    assert grey.mode == "L"
    assert np.asarray(grey)[0, 0] == 76  # ITU-R 601-2 luma of pure red


@pytest.mark.parametrize(
    ("alpha", "expected"),
    [(0, 255), (255, 100), (128, round(100 * 128 / 255 + 255 * 127 / 255))],
)
def test_mode_la_composited_over_white(tmp_path: Path, alpha: int, expected: int) -> None:
    Image.new("LA", (2, 2), (100, alpha)).save(tmp_path / "la.png")
    r, g, b = _rgb(load_image(tmp_path / "la.png"))
    assert r == g == b
    assert abs(r - expected) <= 1


def test_mode_rgba_composited_over_white(tmp_path: Path) -> None:
    arr = np.zeros((1, 2, 4), np.uint8)
    arr[0, 0] = (255, 0, 0, 0)  # fully transparent red -> white
    arr[0, 1] = (0, 0, 255, 255)  # opaque blue stays blue
    Image.fromarray(arr, mode="RGBA").save(tmp_path / "rgba.png")
    out = np.asarray(load_image(tmp_path / "rgba.png"))
    assert out[0, 0].tolist() == [255, 255, 255]
    assert out[0, 1].tolist() == [0, 0, 255]


def test_mode_p_without_transparency(tmp_path: Path) -> None:
    img = Image.new("P", (2, 1))
    img.putpalette([10, 20, 30, 200, 100, 50] + [0] * (256 * 3 - 6))
    img.putpixel((1, 0), 1)
    img.save(tmp_path / "p.png")
    out = np.asarray(load_image(tmp_path / "p.png"))
    assert out[0, 0].tolist() == [10, 20, 30]
    assert out[0, 1].tolist() == [200, 100, 50]


def test_mode_p_with_transparency(tmp_path: Path) -> None:
    img = Image.new("P", (2, 1))
    img.putpalette([0, 0, 0, 255, 0, 0] + [0] * (256 * 3 - 6))
    img.putpixel((1, 0), 1)
    img.info["transparency"] = 0
    img.save(tmp_path / "pt.png", transparency=0)
    assert Image.open(tmp_path / "pt.png").info.get("transparency") == 0
    out = np.asarray(load_image(tmp_path / "pt.png"))
    assert out[0, 0].tolist() == [255, 255, 255]  # transparent black -> white, not black
    assert out[0, 1].tolist() == [255, 0, 0]


def test_mode_cmyk_tiff(tmp_path: Path) -> None:
    Image.new("CMYK", (2, 2), (0, 255, 255, 0)).save(tmp_path / "c.tif")
    assert Image.open(tmp_path / "c.tif").mode == "CMYK"
    assert _rgb(load_image(tmp_path / "c.tif")) == (255, 0, 0)


def test_mode_ycbcr_tiff(tmp_path: Path) -> None:
    Image.new("RGB", (2, 2), (30, 160, 220)).convert("YCbCr").save(tmp_path / "y.tif")
    assert Image.open(tmp_path / "y.tif").mode == "YCbCr"
    r, g, b = _rgb(load_image(tmp_path / "y.tif"))
    assert abs(r - 30) <= 3 and abs(g - 160) <= 3 and abs(b - 220) <= 3


_SIXTEEN = np.array([[0, 1000, 32768, 65535]], np.uint16)
_SIXTEEN_8BIT = [0, 4, 128, 255]  # scaled by 255/65535 (clipping would give 0, 255, 255, 255)


def test_mode_i16_png_scaled_not_clipped(tmp_path: Path) -> None:
    Image.frombytes("I;16", (4, 1), _SIXTEEN.tobytes()).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode == "I;16"
    assert np.asarray(load_image(tmp_path / "g16.png", "L"))[0].tolist() == _SIXTEEN_8BIT
    assert np.asarray(load_image(tmp_path / "g16.png"))[0, :, 1].tolist() == _SIXTEEN_8BIT


def test_mode_i16b_tiff(tmp_path: Path) -> None:
    Image.frombytes("I;16B", (4, 1), _SIXTEEN.astype(">u2").tobytes()).save(tmp_path / "b.tif")
    assert Image.open(tmp_path / "b.tif").mode == "I;16B"
    assert np.asarray(load_image(tmp_path / "b.tif", "L"))[0].tolist() == _SIXTEEN_8BIT


def test_mode_i16l_in_memory() -> None:
    img = Image.frombytes("I;16L", (4, 1), _SIXTEEN.astype("<u2").tobytes())
    assert np.asarray(convert_image(img, "L"))[0].tolist() == _SIXTEEN_8BIT


def test_mode_i_tiff(tmp_path: Path) -> None:
    Image.fromarray(_SIXTEEN.astype(np.int32)).save(tmp_path / "i.tif")
    assert Image.open(tmp_path / "i.tif").mode == "I"
    assert np.asarray(load_image(tmp_path / "i.tif", "L"))[0].tolist() == _SIXTEEN_8BIT
    Image.fromarray(np.array([[0, 70000]], np.int32)).save(tmp_path / "big.tif")
    with pytest.raises(ImageLoadError, match=r"outside 0\.\.65535") as err:
        load_image(tmp_path / "big.tif")
    assert err.value.path == str(tmp_path / "big.tif")


def test_mode_f(tmp_path: Path) -> None:
    Image.fromarray(np.array([[0.0, 0.5, 1.0]], np.float32)).save(tmp_path / "f.tif")
    assert Image.open(tmp_path / "f.tif").mode == "F"
    assert np.asarray(load_image(tmp_path / "f.tif", "L"))[0].tolist() == [0, 128, 255]
    Image.fromarray(np.array([[0.0, 2.5]], np.float32)).save(tmp_path / "f2.tif")
    with pytest.raises(ImageLoadError, match=r"mode F.*0\.\.2\.5"):
        load_image(tmp_path / "f2.tif")


def test_unsupported_mode_refused(tmp_path: Path) -> None:
    Image.new("LAB", (2, 2)).save(tmp_path / "lab.tif")
    with pytest.raises(ImageLoadError, match="unsupported image mode 'LAB'"):
        load_image(tmp_path / "lab.tif")


def test_bad_target_mode(tmp_path: Path) -> None:
    Image.new("L", (2, 2)).save(tmp_path / "l.png")
    with pytest.raises(ValueError, match="RGB"):
        load_image(tmp_path / "l.png", mode="RGBA")


@pytest.mark.parametrize(("orientation", "top_dark"), [(6, True), (8, False), (1, None)])
def test_exif_orientation_applied(tmp_path: Path, orientation: int, top_dark: bool | None) -> None:
    arr = np.full((20, 40, 3), 255, np.uint8)
    arr[:, :20] = 0  # left half black, right half white
    img = Image.fromarray(arr)
    exif = img.getexif()
    exif[0x0112] = orientation
    img.save(tmp_path / "o.jpg", exif=exif.tobytes(), quality=95)
    out = np.asarray(load_image(tmp_path / "o.jpg", "L")).astype(float)
    if top_dark is None:
        assert out.shape == (20, 40)
        return
    # 6 = rotate 90 degrees clockwise to display: the left (black) half ends on top; 8 the reverse
    assert out.shape == (40, 20)
    top, bottom = out[:18].mean(), out[22:].mean()
    assert (top < 40 and bottom > 215) if top_dark else (top > 215 and bottom < 40)


# ------------------------------------------------------------------ failures


def test_zero_byte_file(tmp_path: Path) -> None:
    path = tmp_path / "x.png"
    path.write_bytes(b"")
    with pytest.raises(ImageLoadError) as err:
        load_image(path)
    assert str(err.value) == f"cannot load image '{path}': file is empty (0 bytes)"
    assert err.value.reason == "file is empty (0 bytes)"
    assert isinstance(err.value, ValueError)


def test_text_named_png(tmp_path: Path) -> None:
    path = tmp_path / "notes.png"
    path.write_text("these are not pixels\n")
    with pytest.raises(ImageLoadError, match="not a recognised image format") as err:
        load_image(path)
    assert str(path) in str(err.value)
    assert "these are not" in err.value.reason


def test_truncated_jpeg(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf, "JPEG", quality=90)
    data = buf.getvalue()
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    with Image.open(path) as lazy:  # the lazy open the reference uses does not notice
        assert lazy.size == (64, 64)
    with pytest.raises(ImageLoadError, match="truncated") as err:
        load_image(path)
    assert err.value.path == str(path)


def test_truncated_png(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf, "PNG")
    path = tmp_path / "cut.png"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(ImageLoadError, match="truncated"):
        load_image(path)


def test_decompression_bomb_header(tmp_path: Path) -> None:
    path = _png_with_header(tmp_path / "bomb.png", 50000, 50000)
    with pytest.raises(ImageLoadError, match="decompression bomb") as err:
        load_image(path)
    assert "2,500,000,000 pixels" in err.value.reason
    assert f"max_pixels={MAX_PIXELS:,}" in err.value.reason
    assert str(path) in str(err.value)


def test_max_pixels_checked_before_decoding_without_pil_warning(tmp_path: Path) -> None:
    # 10000x10000 lies between Pillow's warning and error thresholds
    path = _png_with_header(tmp_path / "big.png", 10000, 10000)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ImageLoadError, match="100,000,000 pixels"):
            load_image(path)
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]


def test_max_pixels_small_limit(tmp_path: Path) -> None:
    Image.new("RGB", (20, 20)).save(tmp_path / "a.png")
    with pytest.raises(ImageLoadError, match="max_pixels=100"):
        load_image(tmp_path / "a.png", max_pixels=100)
    assert load_image(tmp_path / "a.png", max_pixels=400).size == (20, 20)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope\.png"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(ImageLoadError, match="not a regular file"):
        load_image(tmp_path)


def test_image_load_error_pickles() -> None:
    err = pickle.loads(pickle.dumps(ImageLoadError("a/b.png", "file is empty (0 bytes)")))
    assert (err.path, err.reason) == ("a/b.png", "file is empty (0 bytes)")
    assert str(err) == "cannot load image 'a/b.png': file is empty (0 bytes)"


def test_loaded_image_is_detached(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    Image.new("RGB", (5, 5), (1, 2, 3)).save(path)
    img = load_image(path)
    path.unlink()
    assert _rgb(img) == (1, 2, 3)


# ------------------------------------------------------------------ label maps


def test_label_map_mode_l(tmp_path: Path) -> None:
    ids = np.array([[0, 3], [7, 255]], np.uint8)
    Image.fromarray(ids).save(tmp_path / "l.png")
    out = load_label_map(tmp_path / "l.png")
    assert out.dtype == np.int64 and out.tolist() == ids.tolist()


def test_label_map_palette_uses_indices(tmp_path: Path) -> None:
    img = Image.fromarray(np.array([[0, 1], [2, 5]], np.uint8), mode="P")
    img.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [9] * (256 * 3 - 9))
    img.save(tmp_path / "p.png")
    assert Image.open(tmp_path / "p.png").mode == "P"
    assert load_label_map(tmp_path / "p.png").tolist() == [[0, 1], [2, 5]]


def test_label_map_16_and_32_bit_kept_exact(tmp_path: Path) -> None:
    ids = np.array([[0, 300], [1000, 65535]], np.uint16)
    Image.frombytes("I;16", (2, 2), ids.tobytes()).save(tmp_path / "i16.png")
    assert load_label_map(tmp_path / "i16.png").tolist() == ids.tolist()
    Image.fromarray(ids.astype(np.int32) * 2).save(tmp_path / "i.tif")
    assert load_label_map(tmp_path / "i.tif").tolist() == (ids.astype(np.int64) * 2).tolist()


@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
def test_label_map_colour_refused(tmp_path: Path, mode: str) -> None:
    Image.new(mode, (2, 2)).save(tmp_path / "c.png")
    with pytest.raises(ImageLoadError, match="must hold class ids, not colours") as err:
        load_label_map(tmp_path / "c.png")
    assert str(tmp_path / "c.png") in str(err.value)


def test_label_map_empty_file(tmp_path: Path) -> None:
    (tmp_path / "e.png").write_bytes(b"")
    with pytest.raises(ImageLoadError, match="empty"):
        load_label_map(tmp_path / "e.png")
