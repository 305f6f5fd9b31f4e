"""Registered generator models load and translate through transfigure's Translator.

MLflow keeps a copy of the "models from code" file in every logged model and runs that copy on
load. Models registered by earlier releases carry the copy of ``transfigure/tracking/pyfunc_model.py``
(below, verbatim): it must keep loading now that the file lives in ``transfigure.inference``.
"""

from __future__ import annotations

import io

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from transfigure.inference import Translator, pyfunc_model_path
from transfigure.models import VARIANTS
from transfigure.models.io import save_generators

#: the pyfunc file as models logged before the move to transfigure.inference stored it
PREVIOUS_RELEASE_PYFUNC = '"""MLflow "models from code" definition of a transfigure generator.\n\nMLflow stores this file (not a pickle) next to the safetensors weights; loading the\nmodel runs this file and reads weights + JSON. Input: a pandas DataFrame with a column\n``image`` (encoded image bytes) and optionally ``direction``; output: a DataFrame with\n``image`` (PNG bytes).\n"""\n\nfrom __future__ import annotations\n\nimport io\n\nimport mlflow\nimport pandas as pd\nfrom PIL import Image\n\n\nclass GeneratorModel(mlflow.pyfunc.PythonModel):\n    def load_context(self, context) -> None:  # type: ignore[no-untyped-def]\n        from transfigure.inference import Translator\n\n        self.translator = Translator.from_folder(context.artifacts["generator"])\n\n    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:  # type: ignore[no-untyped-def]\n        default_direction = (params or {}).get("direction", "AtoB")\n        out = []\n        for _, row in model_input.iterrows():\n            image = Image.open(io.BytesIO(row["image"]))\n            direction = row.get("direction", default_direction) or default_direction\n            result = self.translator.translate(image, direction=direction)\n            buf = io.BytesIO()\n            result.save(buf, format="PNG")\n            out.append(buf.getvalue())\n        return pd.DataFrame({"image": out})\n\n\nmlflow.models.set_model(GeneratorModel())\n'


@pytest.fixture(scope="module")
def generator_folder(tmp_path_factory):
    torch.manual_seed(0)
    config = VARIANTS["cyclegan"].config_class(ngf=4, ndf=4, netG="resnet_6blocks")
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


@pytest.mark.parametrize("code", ["current", "previous release"])
def test_logged_pyfunc_translates_like_the_translator(code, generator_folder, tmp_path):
    if code == "current":
        code_file = pyfunc_model_path()
    else:
        code_file = tmp_path / "pyfunc_model.py"
        code_file.write_text(PREVIOUS_RELEASE_PYFUNC)
    model_dir = tmp_path / "model"
    # pip_requirements given: MLflow would otherwise infer them by loading the model in a subprocess
    mlflow.pyfunc.save_model(
        str(model_dir),
        python_model=str(code_file),
        artifacts={"generator": str(generator_folder)},
        pip_requirements=["transfigure"],
    )
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 40, 3), dtype=np.uint8))
    out = mlflow.pyfunc.load_model(str(model_dir)).predict(
        pd.DataFrame({"image": [_png(image)], "direction": ["BtoA"]})
    )
    expected = Translator.from_folder(generator_folder, device="cpu").translate(image, direction="BtoA")
    got = Image.open(io.BytesIO(out["image"][0]))
    assert got.size == (40, 32)
    assert np.array_equal(np.asarray(got), np.asarray(expected))
