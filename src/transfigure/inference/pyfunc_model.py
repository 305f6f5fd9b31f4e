"""MLflow "models from code" definition of a transfigure generator.

MLflow stores a copy of this file (not a pickle) next to the safetensors weights; loading
the model runs that copy and reads weights + JSON. Copies stored by earlier releases (logged
from ``transfigure/tracking/pyfunc_model.py``) run the same way: they need only
``transfigure.inference.Translator``, which must therefore stay importable under that name
(tests/inference/test_pyfunc_model.py loads such a copy).

Input: a pandas DataFrame with a column ``image`` (encoded image bytes) and optionally
``direction``; output: a DataFrame with ``image`` (PNG bytes).
"""

from __future__ import annotations

import io

import mlflow
import pandas as pd
from PIL import Image


class GeneratorModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:  # type: ignore[no-untyped-def]
        from transfigure.inference import Translator

        self.translator = Translator.from_folder(context.artifacts["generator"])

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:  # type: ignore[no-untyped-def]
        default_direction = (params or {}).get("direction", "AtoB")
        out = []
        for _, row in model_input.iterrows():
            image = Image.open(io.BytesIO(row["image"]))
            direction = row.get("direction", default_direction) or default_direction
            result = self.translator.translate(image, direction=direction)
            buf = io.BytesIO()
            result.save(buf, format="PNG")
            out.append(buf.getvalue())
        return pd.DataFrame({"image": out})


mlflow.models.set_model(GeneratorModel())
