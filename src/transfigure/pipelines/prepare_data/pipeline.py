"""``prepare_data``: build the embedded default dataset into ``data/01_raw/default`` (the DVC stage of the same name).

Parameters: ``prepare_data.root`` in ``conf/base/parameters_prepare_data.yml``; it must equal each
variant's ``<variant>.data.default_root`` (all ``data/01_raw/default``), whose validation then finds
the data already built.
"""

from __future__ import annotations

from kedro.pipeline import Pipeline, node

from transfigure.pipelines.prepare_data.nodes import build_default_data


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline([node(build_default_data, "params:prepare_data", "default_dataset", name="build_default_data")])
