"""Use a trained generator: :class:`Translator` (PIL in, PIL out) and the one translate + watermark path.

``translator`` holds the runtime; ``pyfunc_model`` is the MLflow "models from code" file that
:mod:`transfigure.tracking.registry` logs with every generator, so the registered MLflow model
translates through the same :class:`Translator`. This package knows nothing of the registry:
``transfigure.load_translator`` (in :mod:`transfigure.tracking.registry`) fetches a registered
folder and hands it to :meth:`Translator.from_folder`.
"""

from pathlib import Path

from transfigure.inference.translator import Translator, label_ids_from_image, translate_and_stamp


def pyfunc_model_path() -> Path:
    """The pyfunc definition MLflow copies into a logged model (not imported here: it registers the
    model with ``mlflow.models.set_model`` when it runs)."""
    return Path(__file__).with_name("pyfunc_model.py")


__all__ = ["Translator", "label_ids_from_image", "pyfunc_model_path", "translate_and_stamp"]
