"""The watermark package's parts, each against what it must guarantee: the read is tied to the pixels
(a crop at a whole-pixel offset, a flip or a quarter turn is the same read at other lattice points), the
translation screen's orientations and windowed planes equal their direct computation, the cues find the
edit they name, and the nearest-neighbour undo restores the pixels a rotation copied."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from PIL import Image

from transfigure.provenance.attacks import crop, inner_rectangle, jpeg, rotate
from transfigure.provenance.watermark import cues, decode, embed_watermark, nearest, sync
from transfigure.provenance.watermark import planes as pl
from transfigure.provenance.watermark.layout import CHIPS, cell_size, layout
from transfigure.provenance.watermark.read import Geometry, block_channels, block_means, read

KEY = b"watermark parts key"


@pytest.fixture(scope="module")
def marked(photo):
    return embed_watermark(photo("coffee", 256), bytes(range(8)), KEY)


def _source(image: Image.Image) -> sync.Source:
    return sync.Source.of(pl.read_channels(image))


def test_a_crop_at_a_whole_pixel_offset_reads_the_same_blocks(marked):
    c0 = cell_size(*marked.size)
    left, top = 3 * c0, 5 * c0  # a whole number of cells: lattice point (5, 3) becomes the crop's (0, 0)
    cropped = marked.crop((left, top, left + 160, top + 144))
    whole, part = _source(marked), _source(cropped)
    ref = read(whole.planes(c0, c0), Geometry.identity(c0, 256, 256))
    geometry = Geometry((float(c0), 0.0, 0.0, float(c0)), (0.0, 0.0), (5, 3), (144 // c0, 160 // c0))
    got = read(part.planes(c0, c0), geometry)
    # same tile slots, and away from the crop's edges (the band-pass's reach) the same values
    rows, cols = got.values.shape[:2]
    assert np.array_equal(got.rows, ref.rows[3 : 3 + rows]) and np.array_equal(got.cols, ref.cols[2 : 2 + cols])
    inner = np.s_[2:-2, 2:-2]
    expected = ref.values[3 : 3 + rows, 2 : 2 + cols][inner]
    assert np.allclose(got.values[inner], expected, atol=0.05 * np.abs(expected).max())


def test_a_flip_is_the_same_read_along_a_mirrored_lattice(marked):
    c0 = cell_size(*marked.size)
    flipped = marked.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    rows, cols = Geometry.identity(c0, 256, 256).cells
    ref = read(_source(marked).planes(c0, c0), Geometry.identity(c0, 256, 256))
    mirrored = Geometry((-float(c0), 0.0, 0.0, float(c0)), (255.0, 0.0), (0, 0), (rows, cols))
    got = read(_source(flipped).planes(c0, c0), mirrored)
    assert np.allclose(got.values, ref.values, atol=1e-3 * np.abs(ref.values).max())


def test_the_eight_orientations_of_the_translation_screen_equal_the_flipped_grids():
    rng = np.random.default_rng(1)
    period = 40
    folded = (rng.normal(size=(3, period, period)) + 1j * rng.normal(size=(3, period, period))).astype(np.complex64)
    spectrum = np.fft.fft2(folded)
    for shape in ((123, 77), (80, 81)):
        rows, cols = shape
        for transpose, flip_rows, flip_cols in sync._ORIENTATIONS:
            # the fold read the other way round, directly: reversed, rolled by the grid's length, H/V
            # swapped by a transpose, the channels a flip reverses conjugated
            h, v, d = folded
            r, c = rows, cols
            if transpose:
                h, v, d, r, c = v.T, h.T, d.T, c, r
            if flip_rows:
                h, v, d = (np.roll(x[::-1], r % period, axis=0) for x in (h, np.conj(v), np.conj(d)))
            if flip_cols:
                h, v, d = (np.roll(x[:, ::-1], c % period, axis=1) for x in (np.conj(h), v, np.conj(d)))
            direct = np.fft.fft2(np.stack([h, v, d]))
            derived = np.stack(sync._oriented_spectrum(spectrum, shape, transpose, flip_rows, flip_cols))
            assert np.allclose(derived, direct, atol=1e-3), (shape, transpose, flip_rows, flip_cols)


def test_flipped_and_turned_copies_are_screened_in_their_orientation(marked):
    lay = layout(KEY)
    c0 = cell_size(*marked.size)
    for transpose in (Image.Transpose.FLIP_LEFT_RIGHT, Image.Transpose.ROTATE_90, Image.Transpose.TRANSPOSE):
        best = sync.dense_screen(_source(marked.transpose(transpose)), lay, np.eye(2) * c0, c0, (1.0,), "crop")[0]
        assert best.z > 10, transpose
        a, b, c, d = best.geometry.matrix
        # the lattice's column step, mapped back through the transpose, is the original's +x step
        if transpose == Image.Transpose.FLIP_LEFT_RIGHT:
            assert (a, c) == (-c0, 0)
        elif transpose == Image.Transpose.ROTATE_90:  # counter-clockwise: +x runs up the image
            assert (a, c) == (0, -c0)
        else:
            assert (a, c) == (0, c0)


@pytest.mark.parametrize("offset", [(0, 0), (1, 0), (0, 1), (1, 1)])
def test_a_blocks_channels_are_its_cells_weighted_by_the_chips(offset):
    # block_channels writes the chips' sums out: the same values as the CHIPS patterns applied, to the bit
    cells = (np.random.default_rng(sum(offset)).standard_normal((3, 13, 11)) * 50).astype(np.float32)
    c = cells[:, offset[0] :, offset[1] :]
    rows, cols = c.shape[1] // 2, c.shape[2] // 2
    quads = c[:, : 2 * rows, : 2 * cols].reshape(3, rows, 2, cols, 2)
    expected = np.einsum("niajb,kab->nijk", quads, CHIPS) / np.float32(4.0)
    assert np.array_equal(block_channels(cells, offset), expected)
    assert np.array_equal(block_means(cells, offset), quads.mean(axis=(2, 4)))


@pytest.mark.parametrize(
    ("width", "size", "height"),
    [
        (768, (253, 169), 512),  # 768 x 512 at 0.33: the aspect gives 513
        (768, (253, 168), 512),  # ... its sides truncated
        (256, (115, 173), 384),  # 256 x 384 at 0.45: the aspect gives 385
        (1920, (710, 400), 1080),  # 1920 x 1080 at 0.37: the aspect gives 1082
        (800, (560, 373), 533),  # 800 x 533 at 0.7: no multiple of 8 fits, the aspect's
        (512, (410, 410), 512),  # a square: itself
    ],
)
def test_a_resized_pictures_original_height_is_the_common_one_its_rounded_sides_fit(width, size, height):
    assert sync._other_side(width, *size) == height


def test_screening_central_regions_band_passes_only_their_window(marked):
    lay = layout(KEY)
    source = _source(marked.resize((384, 384), Image.Resampling.BICUBIC))
    geometries = [
        sync._central(Geometry((6.0 * s, 0.0, 0.0, 6.0 * s), (0.25, 0.25), (0, 0), (64, 64)), 20)
        for s in (0.98, 1.0, 1.02)
    ]
    windowed = sync.screen_geometries(source, lay, geometries)
    whole = sync.Source(source.luma, source.taper, source.channels, source.mean)
    whole.planes_around = lambda cx, cy, xs, ys, windows=None: (whole.planes(cx, cy, coarse=True), (0, 0))
    full = sync.screen_geometries(whole, lay, geometries)
    assert np.allclose(windowed[0], full[0], atol=1e-4)
    assert windowed[0][1] > 0.5 and max(windowed[0][0], windowed[0][2]) < 0.2  # the true scale stands out
    # a smaller region inside a window already band-passed reads the same from it, without a band-pass
    windows: sync.Windows = {}
    sync.screen_geometries(source, lay, geometries, windows=windows)
    band_passed = sum(len(v) for v in windows.values())
    assert band_passed > 0
    smaller = [sync._central(g, 12) for g in geometries]
    reused = sync.screen_geometries(source, lay, smaller, windows=windows)
    assert sum(len(v) for v in windows.values()) == band_passed
    assert np.allclose(reused[0], sync.screen_geometries(source, lay, smaller)[0], atol=1e-3)


def test_the_upscale_cue_reads_the_enlargement(photo):
    image = photo("astronaut", 256)
    for factor in (1.25, 4 / 3, 1.6):
        enlarged = image.resize((round(256 * factor),) * 2, Image.Resampling.BICUBIC)
        found = cues.upscale_factors(_source(enlarged).luma)
        assert found and abs(found[0].factor - factor) < 0.01 * factor, (factor, found[:3])


def test_the_upscale_cue_reads_an_enlargement_a_photos_own_structure_outranks(photo):
    # the page's lines of text raise the spectrum's low frequencies above the whole spectrum's median: their
    # broad bump (a "factor" of 1.06) outranks the 5/3 enlargement's narrow line, which stands out from its
    # own neighbourhood of the spectrum
    enlarged = crop(photo("page", 256), 0.6, "top-left", (256, 256))
    found = [r.factor for r in cues.upscale_factors(_source(enlarged).luma)]
    assert abs(found[0] - 5 / 3) > 0.05  # the text's bump first
    assert any(abs(factor - 256 / 154) < 0.003 * factor for factor in found), found


def test_the_rotation_cue_reads_the_angle_and_the_original_size(photo):
    image = photo("chelsea", 240)
    for angle in (-12.0, 7.0):
        found = cues.rotation_fill(pl.read_channels(rotate(image, angle, expand=True)))
        assert found is not None and abs(found.angle - angle) < 0.3
        assert abs(found.width - 240) < 4 and abs(found.height - 240) < 4
    assert cues.rotation_fill(pl.read_channels(image)) is None


def test_the_nearest_rotation_cue_reads_the_angle_and_its_sign_from_the_copied_pixels(photo):
    image = photo("grass", 256)
    for angle in (-15.0, 12.3, 9.0):
        found = cues.nearest_rotation(pl.read_channels(inner_rectangle(image, angle)))
        assert found and abs(found[0][0] - angle) <= 0.1, (angle, found)
        assert found[0][1] > 3.0
    # nothing turned (or turned with interpolation): no angle stands out
    for unturned in (image, inner_rectangle(image, 12.0, Image.Resampling.BICUBIC)):
        assert all(strength < 3.0 for _, strength in cues.nearest_rotation(pl.read_channels(unturned)))


def test_the_content_box_finds_a_picture_in_its_border(photo):
    picture = photo("coffee", 150)
    framed = Image.new("RGB", (220, 200), (238, 238, 236))
    framed.paste(picture, (31, 17))
    boxes = cues.content_boxes(pl.read_channels(framed))
    assert boxes and np.allclose(boxes[0], (31, 17, 181, 167), atol=1.0)
    assert cues.content_boxes(pl.read_channels(picture)) == []


def test_the_content_box_of_bars_on_two_sides_and_of_a_picture_with_a_dark_edge(photo):
    picture = photo("coffee", 150)
    pillarbox = Image.new("RGB", (250, 150), (0, 0, 0))
    pillarbox.paste(picture, (50, 0))
    assert np.allclose(cues.content_boxes(pl.read_channels(pillarbox))[0], (50, 0, 200, 150), atol=0.5)
    # the picture's top rows as black as the bars: the box also reaches the top and bottom
    dark_top = picture.copy()
    dark_top.paste((0, 0, 0), (0, 0, 150, 9))
    pillarbox.paste(dark_top, (50, 0))
    boxes = cues.content_boxes(pl.read_channels(pillarbox))
    assert any(np.allclose(box, (50, 0, 200, 150), atol=0.5) for box in boxes), boxes
    # ... or its left columns: the bars are as wide as each other (a fitted picture is centred)
    dark_left = picture.copy()
    dark_left.paste((0, 0, 0), (0, 0, 7, 150))
    pillarbox.paste(dark_left, (50, 0))
    boxes = cues.content_boxes(pl.read_channels(pillarbox))
    assert any(np.allclose(box, (50, 0, 200, 150), atol=0.5) for box in boxes), boxes


def test_an_edge_is_read_inside_its_profile():
    # a spike, then a picture darker than the border's first pixel: the level is crossed before the first
    # pixel the sub-pixel search looks at (once read a million pixels outside the image)
    profile = np.array([5.0, 4, 4, 4, 50, 3, 3, 3, 3] + [30.0] * 55)
    assert 0.0 <= cues._edge(profile) <= 5.0


def test_the_content_box_finds_a_product_shot_on_white_in_a_light_page(photo):
    # the picture's own white is close to the page's grey: its edges start where its pixels leave that grey
    product = Image.new("RGB", (150, 150), (255, 255, 255))
    product.paste(photo("coffee", 144), (3, 3))  # a few white pixels, then the subject
    framed = Image.new("RGB", (220, 200), (238, 238, 236))
    framed.paste(product, (31, 17))
    boxes = cues.content_boxes(pl.read_channels(jpeg(framed, 80)))
    assert any(np.allclose(box, (31, 17, 181, 167), atol=0.5) for box in boxes), boxes


@pytest.mark.parametrize("angle", [9.5, -4.0])
def test_undoing_a_nearest_rotation_restores_the_pixels_it_copied(photo, angle):
    image = photo("camera", 128).convert("L")
    luma = np.asarray(image, dtype=np.float32)
    turned = np.asarray(image.rotate(angle, resample=Image.Resampling.NEAREST), dtype=np.float32)
    taper = np.ones_like(turned)
    restored, restored_taper = nearest.unrotate(turned, taper, angle, (128, 128))
    # the centre (never rotated out) comes back pixel for pixel, but the few pixels no output copied
    centre = np.s_[32:96, 32:96]
    exact = np.isclose(restored[centre], luma[centre])
    assert exact.mean() > 0.97
    assert restored_taper[0, 0] == 0 and restored_taper[64, 64] > 0
    assert nearest.unrotate(turned, taper, angle, (100, 90)) is None  # sizes no rotation gives


def test_the_expanded_canvas_is_pillows_and_gives_back_the_whole_original_size():
    rng = np.random.default_rng(3)
    for _ in range(40):
        size = (int(rng.integers(40, 700)), int(rng.integers(40, 700)))
        angle = float(rng.uniform(-40, 40))
        canvas = Image.new("L", size).rotate(angle, expand=True).size
        assert nearest.expanded_size(size, angle) == canvas, (size, angle)
        # the fill's edges put the original's sides a pixel or two off: the whole size that gives this canvas
        guess = (size[0] + rng.uniform(-1.6, 1.6), size[1] + rng.uniform(-1.6, 1.6))
        assert size in nearest.original_sizes(canvas, angle, guess)
    assert nearest.original_sizes((594, 594), 10.0, (513.4, 513.3))[0] == (512, 512)


def test_the_undo_plan_cache_stays_within_its_budget():
    for angle in np.arange(0.5, 12.0, 0.5):
        nearest._plan((256, 256), (256, 256), float(angle))
    assert sum(p.nbytes for p in nearest._plans.values()) <= nearest.UNDO_CACHE_BYTES
    assert nearest._plan((256, 256), (256, 256), 3.0) is not None


def test_rotated_lattice_matrices_turn_counter_clockwise():
    geometry = Geometry(
        (math.cos(0.2) * 4, math.sin(0.2) * 4, -math.sin(0.2) * 4, math.cos(0.2) * 4), (0, 0), (0, 0), (1, 1)
    )
    assert math.isclose(sync._angle(geometry), math.degrees(0.2))
    assert geometry.cell_sizes == pytest.approx((4.0, 4.0))


def test_the_decoder_weighs_each_block_by_how_well_its_neighbourhoods_pilots_agree(photo, monkeypatch):
    # three quarters of the blocks carry no mark (a crop's edges, a product's white background): their soft
    # values are noise, and weighted like the rest they drown the quarter that carries it
    key, payload = b"decoder test key", bytes.fromhex("0123456789abcdef")
    lay = layout(key)
    marked = embed_watermark(photo("astronaut", 256), payload, key)
    reading = _source(marked).read(Geometry.identity(4, 256, 256))
    values = reading.values.copy()
    values[:, 8:] = np.random.default_rng(1).uniform(-60, 60, values[:, 8:].shape)
    reading = dataclasses.replace(reading, values=values)
    found = decode.decode(lay, reading, 1.0)
    assert found.ok and bytes(np.packbits(found.payload_bits)) == payload
    monkeypatch.setattr(decode, "_local_agreement", lambda soft, weights, sign: np.ones((*soft.shape[:2], 1)))
    assert not decode.decode(lay, reading, 1.0).ok  # every block weighted alike
