"""Registered generator models load and translate through transfigure's Translator; the current file stamps.

MLflow keeps a copy of the "models from code" file in every logged model and runs that copy on
load. Models registered by earlier releases carry the copy of ``transfigure/tracking/pyfunc_model.py``
(below, verbatim): it must keep loading now that the file lives in ``transfigure.inference``. The
current file returns stamped images (watermark, signed manifest, ledger row) and a per-row error.
"""

from __future__ import annotations

import io
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from _support import register_generator_version
from transfigure.inference import Translator, pyfunc_model_path
from transfigure.models import VARIANTS
from transfigure.models.io import save_generators
from transfigure.provenance import Ledger, detect_watermark, verify_image_bytes

#: the pyfunc file as models logged before the move to transfigure.inference stored it
PREVIOUS_RELEASE_PYFUNC = '"""MLflow "models from code" definition of a transfigure generator.\n\nMLflow stores this file (not a pickle) next to the safetensors weights; loading the\nmodel runs this file and reads weights + JSON. Input: a pandas DataFrame with a column\n``image`` (encoded image bytes) and optionally ``direction``; output: a DataFrame with\n``image`` (PNG bytes).\n"""\n\nfrom __future__ import annotations\n\nimport io\n\nimport mlflow\nimport pandas as pd\nfrom PIL import Image\n\n\nclass GeneratorModel(mlflow.pyfunc.PythonModel):\n    def load_context(self, context) -> None:  # type: ignore[no-untyped-def]\n        from transfigure.inference import Translator\n\n        self.translator = Translator.from_folder(context.artifacts["generator"])\n\n    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:  # type: ignore[no-untyped-def]\n        default_direction = (params or {}).get("direction", "AtoB")\n        out = []\n        for _, row in model_input.iterrows():\n            image = Image.open(io.BytesIO(row["image"]))\n            direction = row.get("direction", default_direction) or default_direction\n            result = self.translator.translate(image, direction=direction)\n            buf = io.BytesIO()\n            result.save(buf, format="PNG")\n            out.append(buf.getvalue())\n        return pd.DataFrame({"image": out})\n\n\nmlflow.models.set_model(GeneratorModel())\n'


@pytest.fixture(scope="module")
def generator_folder(tmp_path_factory):
    torch.manual_seed(0)
    config = VARIANTS["cyclegan"].config_class(ngf=4, ndf=4)
    model = VARIANTS["cyclegan"](config)
    return save_generators(
        tmp_path_factory.mktemp("gen") / "generator",
        model.generators(),
        variant="cyclegan",
        model_config=config.model_dump(),
    )


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def provenance(tmp_path, monkeypatch) -> Path:
    """A private ledger and watermark key; the working directory (development signing key) in tmp."""
    monkeypatch.setenv("TRANSFIGURE_LEDGER", str(tmp_path / "ledger.sqlite"))
    monkeypatch.setenv("TRANSFIGURE_WATERMARK_KEY", "pyfunc-tests")
    monkeypatch.chdir(tmp_path)
    return tmp_path / "ledger.sqlite"


def save(code_file: Path, generator: Path, model_dir: Path, **kwargs) -> Path:
    # pip_requirements given: MLflow would otherwise infer them by loading the model in a subprocess
    mlflow.pyfunc.save_model(
        str(model_dir),
        python_model=str(code_file),
        artifacts={"generator": str(generator)},
        pip_requirements=["transfigure"],
        **kwargs,
    )
    return model_dir


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def test_a_copy_stored_by_an_earlier_release_still_translates_like_the_translator(generator_folder, tmp_path):
    code_file = tmp_path / "pyfunc_model.py"
    code_file.write_text(PREVIOUS_RELEASE_PYFUNC)
    model = mlflow.pyfunc.load_model(str(save(code_file, generator_folder, tmp_path / "model")))
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 40, 3), dtype=np.uint8))
    out = model.predict(pd.DataFrame({"image": [_png(image)], "direction": ["BtoA"]}))
    expected = Translator.from_folder(generator_folder, device="cpu").translate(image, direction="BtoA")
    got = Image.open(io.BytesIO(out["image"][0]))
    assert got.size == (40, 32)
    assert np.array_equal(np.asarray(got), np.asarray(expected))


def test_outputs_are_stamped_and_a_bad_row_gets_an_error_not_an_exception(generator_folder, provenance, tmp_path):
    model = mlflow.pyfunc.load_model(str(save(pyfunc_model_path(), generator_folder, tmp_path / "model")))
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 80, 3), dtype=np.uint8))
    frame = pd.DataFrame(
        {
            "image": [_png(image), b"not an image", _png(image), _png(image.resize((16, 16)))],
            "direction": ["BtoA", "AtoB", "AtoB", "AtoB"],
            "format": ["png", "png", "jpeg", "png"],
        }
    )
    out = model.predict(frame)
    assert list(out.columns) == ["image", "provenance_id", "media_type", "error"] and len(out) == 4
    assert "not a recognised image format" in out["error"][1] and out["image"][1] is None
    assert "16x16" in out["error"][3]  # too small for a watermark: refused, never returned unmarked
    assert list(out["media_type"][[0, 2]]) == ["image/png", "image/jpeg"] and out["error"][[0, 2]].isna().all()
    expected = np.asarray(Translator.from_folder(generator_folder, device="cpu").translate(image, direction="BtoA"))
    for i in (0, 2):
        data = out["image"][i]
        got = Image.open(io.BytesIO(data))
        assert got.size == (80, 64)
        if i == 0:  # lossless: the watermark reads back exactly (JPEG at 80x64 is below its robustness spec)
            detection = detect_watermark(got)
            assert detection.detected and detection.payload.hex() == out["provenance_id"][i]
        assert verify_image_bytes(data)["manifest"]["provenance_id"] == out["provenance_id"][i]
        record = Ledger(provenance).get(out["provenance_id"][i])
        assert record is not None and record.model_name == "cyclegan" and record.model_version == "unregistered"
    assert psnr(np.asarray(Image.open(io.BytesIO(out["image"][0]))), expected) > 30  # BtoA, watermarked
    assert verify_image_bytes(out["image"][0])["verdict"] == "verified"
    # output size, keeping the aspect ratio when one side is given
    sized = model.predict(pd.DataFrame({"image": [_png(image)], "width": [160]}))
    assert Image.open(io.BytesIO(sized["image"][0])).size == (160, 128)


@pytest.mark.slow
def test_the_registered_model_stamps_its_name_version_and_run(mlflow_uri, provenance, tmp_path, monkeypatch):
    """The name given at log time, the version looked up by run id; "run:<id>" where no registry holds it."""
    registered = register_generator_version("cyclegan", tmp_path / "models", name="day2night")
    model = mlflow.pyfunc.load_model("models:/day2night@champion")
    image = _png(Image.fromarray(np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)))
    out = model.predict(pd.DataFrame({"image": [image]}))
    report = verify_image_bytes(out["image"][0])
    assert report["verdict"] == "verified"
    assert report["ledger"]["model_name"] == "day2night" and report["ledger"]["model_version"] == registered["version"]
    assert report["ledger"]["run_id"] == registered["run_id"] and report["ledger"]["model_variant"] == "cyclegan"

    # a copy of the model served where no registry is reachable: the run id stands in for the version
    local = Path(mlflow.artifacts.download_artifacts("models:/day2night@champion", dst_path=str(tmp_path / "copy")))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    out = mlflow.pyfunc.load_model(str(local)).predict(pd.DataFrame({"image": [image]}))
    assert out["error"].isna().all()
    assert Ledger(provenance).get(out["provenance_id"][0]).model_version == f"run:{registered['run_id']}"
    assert not (elsewhere / "mlruns.db").exists()  # the lookup created no store
