"""The model workers' side without a server: run_jobs answers typed results, keeps SPADE jobs with
different seeds or styles apart, refuses options a model cannot take, and drops jobs past their
deadline without recording anything."""

from __future__ import annotations

import hashlib
import io
import time
from pathlib import Path

import pytest
import torch
from PIL import Image

from _serving import LABEL_NC, encode, label_map, ledger_holds, noise_image, psnr
from transfigure.inference import Translator
from transfigure.models import SPADE, CycleGAN
from transfigure.models.io import save_generators
from transfigure.serving.jobs import TranslationJob, TranslationResult
from transfigure.serving.resolution import ResolvedModel
from transfigure.serving.runner import LoadedModel, run_jobs


def loaded(model, folder: Path, name: str) -> LoadedModel:
    save_generators(folder, model.generators(), variant=model.variant, model_config=model.config.model_dump())
    translator = Translator.from_folder(folder, device="cpu")
    resolved = ResolvedModel(name=name, ref="champion", version="3", folder=str(folder), source="bundle", run_id="r1")
    return LoadedModel(resolved, translator)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, LoadedModel]:
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("runner")
    spade = dict(label_nc=LABEL_NC, contain_dontcare_label=False, crop_size=32, ngf=4, ndf=4, spade_hidden=8)
    return {
        "cyclegan": loaded(CycleGAN(ngf=4, ndf=4, netG="resnet_6blocks"), root / "cyclegan", "cyclegan"),
        "spade": loaded(SPADE(**spade, use_vae=True, use_instance=True), root / "spade", "spade"),
        "spade-plain": loaded(SPADE(**spade, use_instance=False), root / "spade-plain", "spade-plain"),
    }


@pytest.fixture
def provenance(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFIGURE_LEDGER", str(tmp_path / "ledger.sqlite"))
    monkeypatch.setenv("TRANSFIGURE_WATERMARK_KEY", "runner-tests")
    monkeypatch.chdir(tmp_path)
    from transfigure.provenance import ProvenanceConfig

    return ProvenanceConfig.from_env(), tmp_path / "ledger.sqlite"


def job(image: Image.Image, **fields) -> TranslationJob:
    return TranslationJob(image=image, source="test", **fields)


def decode(result: TranslationResult) -> Image.Image:
    img = Image.open(io.BytesIO(result.data))
    img.load()
    return img


def test_results_are_typed_in_order_with_their_model(models, provenance):
    config, ledger = provenance
    jobs = [job(noise_image(64, 64, seed=1)), job(noise_image(64, 64), model="pix2pix"), job(noise_image(80, 64))]
    results = run_jobs(models, jobs, provenance=config, batch_size=4)
    assert all(isinstance(r, TranslationResult) for r in results)
    assert [r.status for r in results] == [200, 404, 200]
    assert (results[0].model, results[0].version, results[0].variant, results[0].run_id) == (
        "cyclegan",
        "3",
        "cyclegan",
        "r1",
    )
    assert decode(results[2]).size == (80, 64) and ledger_holds(ledger, results[2].provenance_id)
    assert "served: cyclegan, spade, spade-plain" in results[1].detail


def test_spade_seeds_and_styles_are_kept_apart_and_reproducible(models, provenance):
    config, _ = provenance
    translator = models["spade"].translator
    labels = label_map(64, 64)
    style = noise_image(64, 64, seed=5)
    jobs = [
        job(labels, model="spade", seed=1),
        job(labels, model="spade", seed=2),
        job(labels, model="spade", seed=1),
        job(labels, model="spade", style=style, style_key=hashlib.sha256(encode(style)).hexdigest()),
        job(labels, model="spade", instance=label_map(64, 64, (0, 1, 2, 3)), seed=1),
    ]
    results = run_jobs(models, jobs, provenance=config, batch_size=8)
    assert [r.status for r in results] == [200] * 5, [r.detail for r in results]
    out = [decode(r) for r in results]
    seed1, seed2 = translator.translate(labels, seed=1), translator.translate(labels, seed=2)
    assert psnr(out[0], seed1) > 30 and psnr(out[2], seed1) > 30  # same seed: same pixels up to the watermark
    assert psnr(out[1], seed2) > 30 and psnr(out[1], seed1) < psnr(out[1], seed2) - 3  # another seed: another image
    assert psnr(out[3], translator.translate(labels, style=style)) > 30


@pytest.mark.parametrize(
    ("model", "fields", "words"),
    [
        ("cyclegan", {"seed": 3}, "for SPADE models"),
        ("cyclegan", {"instance": label_map(64, 64)}, "model 'cyclegan' is a cyclegan model"),
        ("spade-plain", {"seed": 3}, "no style encoder"),
        ("spade-plain", {"style": noise_image(64, 64), "style_key": "s"}, "no style encoder"),
        ("spade-plain", {"instance": label_map(64, 64)}, "without instance maps"),
    ],
)
def test_options_a_model_cannot_take_are_400(models, provenance, model, fields, words):
    config, _ = provenance
    image = noise_image(64, 64) if model == "cyclegan" else label_map(64, 64)
    (result,) = run_jobs(models, [job(image, model=model, **fields)], provenance=config, batch_size=4)
    assert (result.status, result.error) == (400, "option not supported") and words in result.detail


def test_jobs_past_their_deadline_are_dropped_and_never_recorded(models, provenance):
    from transfigure.provenance import Ledger

    config, ledger = provenance
    now = time.time()
    late = job(noise_image(64, 64), deadline=now - 1)
    on_time = job(noise_image(64, 64, seed=2), deadline=now + 60)
    results = run_jobs(models, [late, on_time], provenance=config, batch_size=4)
    assert [r.status for r in results] == [504, 200]
    assert results[0].error == "timeout" and not results[0].data and not results[0].provenance_id
    # the deadline passes while the job runs (the runner's clock says "in time"): stamping records nothing
    (during,) = run_jobs(
        models, [job(noise_image(64, 64), deadline=now - 1)], provenance=config, batch_size=4, clock=lambda: 0.0
    )
    assert during.status == 504 and "before its output was recorded" in during.detail
    assert Ledger(ledger).count() == 1 and ledger_holds(ledger, results[1].provenance_id)
