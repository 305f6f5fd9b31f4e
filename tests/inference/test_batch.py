"""Batch translation (transfigure.inference.batch): stamped outputs, refusals with reasons, resume, SPADE options,
and the same pixels on every path (Translator, translate_and_stamp, batch, the MLflow model) for RGBA and 16-bit."""

from __future__ import annotations

import csv
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from _support import bomb_png, encode, export_generator, label_map, noise_image
from transfigure.inference import Translator, pyfunc_model_path, translate_and_stamp
from transfigure.inference.batch import STATE_FILE, BatchOptions, sample_grid, translate_folder
from transfigure.provenance import Ledger, ModelInfo, ProvenanceConfig, verify_image_bytes

LABEL_NC = 4


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    """Exported untrained generators: two CycleGANs (other weights = another model) and a SPADE with a style
    encoder and instance maps."""
    root = tmp_path_factory.mktemp("generators")
    spade = {"label_nc": LABEL_NC, "contain_dontcare_label": False, "use_instance": True, "use_vae": True}
    return {
        "cyclegan": export_generator("cyclegan", root / "cyclegan" / "generator"),
        "cyclegan_other": export_generator("cyclegan", root / "other" / "generator", seed=1),
        "spade": export_generator("spade", root / "spade" / "generator", **spade),
    }


@pytest.fixture(scope="module")
def translators(folders) -> dict[str, Translator]:
    return {name: Translator.from_folder(folder, device="cpu") for name, folder in folders.items()}


@pytest.fixture
def provenance(tmp_path, monkeypatch) -> ProvenanceConfig:
    """A private ledger and watermark key; the working directory (development signing key) in tmp."""
    monkeypatch.setenv("TRANSFIGURE_LEDGER", str(tmp_path / "ledger.sqlite"))
    monkeypatch.setenv("TRANSFIGURE_WATERMARK_KEY", "batch-tests")
    monkeypatch.chdir(tmp_path)
    return ProvenanceConfig.from_env()


@pytest.fixture
def unmarked(monkeypatch) -> list[Image.Image]:
    """Every image handed to stamp_output, before its watermark (translate_and_stamp looks it up per call)."""
    import transfigure.provenance as provenance

    seen: list[Image.Image] = []
    real = provenance.stamp_output

    def recording(image, **kwargs):
        seen.append(image.copy())
        return real(image, **kwargs)

    monkeypatch.setattr(provenance, "stamp_output", recording)
    return seen


CYCLEGAN = ModelInfo("cyclegan", "1", run_id="run-1", variant="cyclegan")


def table(result) -> list[dict[str, str]]:
    with open(result.table_path, newline="") as fh:
        return list(csv.DictReader(fh))


def statuses(result) -> dict[str, str]:
    return {row.input: row.status for row in result.rows}


def test_a_folder_with_bad_files_is_translated_stamped_reported_and_resumed(translators, provenance, tmp_path):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    noise_image(64, 64, 1).save(src / "a.png")
    noise_image(64, 80, 2).save(src / "b.jpg", quality=95)
    noise_image(96, 64, 3).convert("RGBA").save(src / "sub" / "c.png")
    (src / "corrupt.png").write_bytes(encode(noise_image(64, 64, 4))[:300])  # truncated pixel data
    (src / "bomb.png").write_bytes(bomb_png())  # declares 2.5 gigapixels
    noise_image(200, 200, 5).save(src / "large.png")  # over this run's max_pixels
    (src / "notes.txt").write_text("not an image")  # not listed
    (src / ".hidden.png").write_bytes(b"")  # hidden: not listed
    out = tmp_path / "out"
    options = BatchOptions(max_pixels=150 * 150, progress=False)
    ledger = Ledger(provenance.ledger_path)

    result = translate_folder(translators["cyclegan"], [src], out, model_info=CYCLEGAN, options=options)

    assert statuses(result) == {
        "a.png": "ok",
        "b.jpg": "ok",
        "bomb.png": "refused",
        "corrupt.png": "refused",
        "large.png": "refused",
        "sub/c.png": "ok",
    }
    reasons = {row.input: row.reason for row in result.refused}
    assert "2,500,000,000 pixels" in reasons["bomb.png"] and "refused without decoding" in reasons["bomb.png"]
    assert "truncated" in reasons["corrupt.png"]
    assert "200x200" in reasons["large.png"] and "max_pixels" in reasons["large.png"]
    assert len(result.refused) == 3 and result.translated == 3 and "refused large.png" in result.summary_text()
    # outputs keep the input's relative path, take the format's extension, carry a verified stamp
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == ["a.png", "b.png", "sub/c.png"]
    for row in result.rows:
        if row.status == "ok":
            report = verify_image_bytes((out / row.output).read_bytes(), config=provenance)
            assert report["verdict"] == "verified" and report["watermark"]["payload"] == row.provenance_id
            assert report["ledger"]["model_version"] == "1" and report["ledger"]["model_name"] == "cyclegan"
    assert Image.open(out / "b.png").size == (64, 80) and ledger.count() == 3
    # the table: every input, with its outcome
    rows = table(result)
    assert [r["input"] for r in rows] == ["a.png", "b.jpg", "bomb.png", "corrupt.png", "large.png", "sub/c.png"]
    assert rows[1]["output"] == "b.png" and rows[1]["input_size"] == "64x80" and rows[1]["status"] == "ok"
    assert rows[2]["status"] == "refused" and rows[2]["reason"] and not rows[2]["output"]
    assert not list(out.rglob("*.part"))

    # a re-run skips what is done: no new output, no new ledger row
    first_ids = {row.input: row.provenance_id for row in result.rows if row.status == "ok"}
    again = translate_folder(translators["cyclegan"], [src], out, model_info=CYCLEGAN, options=options)
    assert again.translated == 0 and again.skipped == 3 and len(again.refused) == 3
    assert {row.input: row.provenance_id for row in again.rows if row.status == "skipped"} == first_ids
    assert ledger.count() == 3

    # a changed input is translated again, the others not
    noise_image(64, 64, 9).save(src / "a.png")
    changed = translate_folder(translators["cyclegan"], [src], out, model_info=CYCLEGAN, options=options)
    assert statuses(changed)["a.png"] == "ok" and changed.translated == 1 and ledger.count() == 4

    # another model version redoes everything, and its outputs name it
    v2 = ModelInfo("cyclegan", "2", run_id="run-2", variant="cyclegan")
    redone = translate_folder(translators["cyclegan_other"], [src], out, model_info=v2, options=options)
    assert redone.translated == 3 and redone.skipped == 0 and ledger.count() == 7
    report = verify_image_bytes((out / "sub" / "c.png").read_bytes(), config=provenance)
    assert report["verdict"] == "verified" and report["ledger"]["model_version"] == "2"
    # another setting (the output format) too
    jpeg = translate_folder(
        translators["cyclegan_other"], [src], out, model_info=v2, options=options.model_copy(update={"format": "jpeg"})
    )
    assert jpeg.translated == 3 and Image.open(out / "sub" / "c.jpg").format == "JPEG"


def test_output_names_sizes_halves_and_the_sample_grid(translators, provenance, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    noise_image(64, 64, 1).save(src / "x.png")
    noise_image(64, 64, 2).save(src / "x.jpg")  # same stem: its output keeps the extension
    noise_image(128, 64, 3).save(src / "pair.png")
    noise_image(256, 64, 4).save(src / "wide.png")
    out = tmp_path / "out"
    result = translate_folder(
        translators["cyclegan"], [src], out, model_info=CYCLEGAN, options=BatchOptions(width=160, progress=False)
    )
    outputs = {row.input: row.output for row in result.rows}
    assert outputs == {"pair.png": "pair.png", "wide.png": "", "x.jpg": "x.png", "x.png": "x.png.png"}
    assert Image.open(out / "pair.png").size == (160, 80)  # width alone: aspect ratio kept
    assert Image.open(out / "x.png").size == (160, 160)
    # 160x40 is too small to carry a reliable watermark: refused, never written unmarked
    assert "at least 64 pixels" in result.refused[0].reason and result.refused[0].input == "wide.png"

    halves = translate_folder(
        translators["cyclegan"],
        [src / "pair.png"],
        tmp_path / "halves",
        model_info=CYCLEGAN,
        options=BatchOptions(pair_half="left", progress=False),
    )
    assert halves.rows[0].output_size == "64x64" and halves.rows[0].input_size == "128x64"

    grid = sample_grid(result, side=48)
    assert grid is not None and grid.size == (2 * 48 + 3 * 2, 3 * 48 + 4 * 2)  # input | output per row ok


def test_usage_errors_are_raised_before_any_image_is_read(translators, provenance, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    noise_image(64, 64).save(src / "a.png")
    with pytest.raises(ValueError, match="unknown direction 'CtoD'"):
        translate_folder(
            translators["cyclegan"], [src], tmp_path / "o", model_info=CYCLEGAN, options=BatchOptions(direction="CtoD")
        )
    with pytest.raises(ValueError, match="label-map models"):
        translate_folder(
            translators["cyclegan"], [src], tmp_path / "o", model_info=CYCLEGAN, options=BatchOptions(seed=1)
        )
    with pytest.raises(FileNotFoundError, match="missing"):
        translate_folder(translators["cyclegan"], [tmp_path / "missing"], tmp_path / "o", model_info=CYCLEGAN)
    with pytest.raises(ValueError, match="format"):
        BatchOptions(format="gif")
    with pytest.raises(ValueError, match="width"):
        BatchOptions(width=32)
    assert not (tmp_path / "o").exists()


def test_spade_label_maps_with_instances_seed_and_style(translators, provenance, unmarked, tmp_path):
    spade = translators["spade"]
    info = ModelInfo("spade", "1", variant="spade")
    labels, inst = tmp_path / "labels", tmp_path / "inst"
    labels.mkdir()
    inst.mkdir()
    label_map(64, 64).save(labels / "x.png")
    label_map(96, 64, (1, 0, 3, 2)).save(labels / "y.png")
    label_map(64, 64, (0, 1, 9, 200)).save(labels / "unknown_ids.png")
    noise_image(64, 64).save(labels / "colour.png")  # a colour image is no label map
    Image.fromarray(np.arange(64 * 64, dtype=np.uint8).reshape(64, 64) // 128, mode="L").save(inst / "x.png")
    noise_image(64, 64, 7).save(tmp_path / "style.png")

    def run(out: str, **options):
        unmarked.clear()
        result = translate_folder(
            spade, [labels], tmp_path / out, model_info=info, options=BatchOptions(progress=False, **options)
        )
        ok = [row.input for row in result.rows if row.status == "ok"]
        return result, dict(zip(ok, (np.asarray(img) for img in unmarked)))  # one label map at a time, in order

    result, seed1 = run("seed1", seed=1, instances=str(inst))
    assert statuses(result) == {"colour.png": "refused", "unknown_ids.png": "refused", "x.png": "ok", "y.png": "ok"}
    reasons = {row.input: row.reason for row in result.refused}
    assert "class ids [9, 200]" in reasons["unknown_ids.png"] and "mode 'RGB'" in reasons["colour.png"]
    state = (tmp_path / "seed1" / STATE_FILE).read_text()
    assert state.count('"instance_sha256": null') == 1  # x.png found its instance map, y.png has none
    assert Image.open(tmp_path / "seed1" / "y.png").size == (96, 64)
    for row in result.rows:
        if row.status == "ok":
            assert verify_image_bytes((tmp_path / "seed1" / row.output).read_bytes(), config=provenance)["found"]

    _, again = run("seed1_again", seed=1, instances=str(inst))
    _, seed2 = run("seed2", seed=2, instances=str(inst))
    _, styled = run("styled", style=str(tmp_path / "style.png"), instances=str(inst))
    _, styled_again = run("styled_again", style=str(tmp_path / "style.png"), instances=str(inst))
    for name in ("x.png", "y.png"):
        assert np.array_equal(seed1[name], again[name])  # same seed, same pixels (before the watermark)
        assert not np.array_equal(seed1[name], seed2[name])
        assert np.array_equal(styled[name], styled_again[name]) and not np.array_equal(styled[name], seed1[name])


def test_rgba_and_16bit_inputs_give_the_same_pixels_on_every_path(translators, folders, provenance, unmarked, tmp_path):
    """Translator.translate, translate_and_stamp, batch translation and the MLflow model convert inputs alike
    (Translator.prepare: alpha over white, 16 bit scaled): the images they stamp are the same pixels."""
    translator = translators["cyclegan"]
    rgba = np.asarray(noise_image(64, 64, 1).convert("RGBA")).copy()
    rgba[..., 3] = np.linspace(0, 255, 64, dtype=np.uint8)[None, :]  # alpha from clear to opaque
    deep = (np.linspace(0, 65535, 80 * 64).reshape(80, 64)).astype(np.uint16)
    images = {"rgba.png": Image.fromarray(rgba, mode="RGBA"), "deep.png": Image.fromarray(deep)}
    assert images["deep.png"].mode == "I;16"
    expected = {name: np.asarray(translator.translate(img, direction="BtoA")) for name, img in images.items()}

    unmarked.clear()
    outputs = translate_and_stamp(
        translator, list(images.values()), model_info=CYCLEGAN, direction="BtoA", config=provenance
    )
    assert all(not isinstance(o, Exception) for o in outputs)
    stamped = dict(zip(images, (np.asarray(img) for img in unmarked)))

    src = tmp_path / "in"
    src.mkdir()
    for name, img in images.items():
        img.save(src / name)
    assert Image.open(src / "deep.png").mode in ("I;16", "I")  # a 16-bit PNG
    unmarked.clear()
    result = translate_folder(
        translator, [src], tmp_path / "out", model_info=CYCLEGAN, options=BatchOptions(direction="BtoA", progress=False)
    )
    batch = dict(zip([row.input for row in result.rows if row.status == "ok"], (np.asarray(i) for i in unmarked)))

    model_dir = tmp_path / "model"
    mlflow.pyfunc.save_model(
        str(model_dir),
        python_model=str(pyfunc_model_path()),
        artifacts={"generator": str(folders["cyclegan"])},
        pip_requirements=["transfigure"],
    )
    unmarked.clear()
    frame = mlflow.pyfunc.load_model(str(model_dir)).predict(
        pd.DataFrame({"image": [(src / name).read_bytes() for name in images], "direction": ["BtoA", "BtoA"]})
    )
    assert frame["error"].isna().all()
    pyfunc = dict(zip(images, (np.asarray(img) for img in unmarked)))

    for name in images:
        for path, got in (("translate_and_stamp", stamped), ("batch", batch), ("pyfunc", pyfunc)):
            assert np.array_equal(got[name], expected[name]), f"{path} differs from Translator.translate on {name}"
