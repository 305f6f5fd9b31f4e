"""notebooks/champion_vs_challenger.ipynb runs in a real Jupyter kernel (nbclient) against a temporary project
state: with one registered version (right after the quickstart: shown alone) and with two (compared)."""

from __future__ import annotations

import json

import nbformat
import pytest

from _support import PROJECT, default_dataset, tiny_variant_params, train_and_register

NOTEBOOK = PROJECT / "notebooks" / "champion_vs_challenger.ipynb"

#: appended to the executed copy only: what the notebook computed, as one JSON line
PROBE = """
import json
print("PROBE " + json.dumps({
    "champion": champion["version"], "other": other, "titles": titles,
    "rows": [[im.size for im in row] for row in rows],
    "compare_axes": len(fig_compare.axes),
    "history_titles": [ax.get_title() for ax in fig_history.axes],
    "curves": [len(ax.get_lines()) for ax in fig_history.axes[:-1]],
    "bars": len(fig_history.axes[-1].patches),
    "table_versions": sorted(table.index), "table_columns": list(table.columns),
}))
"""


def test_notebook_is_valid_and_stored_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.outputs == [] and c.execution_count is None for c in code)


def execute(cwd) -> tuple[dict, list]:
    """Run the notebook (plus :data:`PROBE`) in a fresh python3 kernel in ``cwd``; returns (probe, code cells)."""
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOK, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(PROBE))
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}).execute()
    code = [c for c in nb.cells if c.cell_type == "code"]
    text = "".join(o.get("text", "") for o in code[-1].outputs if o.output_type == "stream")
    return json.loads(text.split("PROBE ", 1)[1]), code


def images(cell) -> int:
    return sum("image/png" in o.get("data", {}) for o in cell.outputs if o.output_type == "display_data")


def registered_versions(tmp_path, n: int) -> list[str]:
    from transfigure.evaluation import evaluate_registered, record_evaluation
    from transfigure.tracking.promotion import promote

    dataset = default_dataset(tmp_path / "data")
    params = [
        tiny_variant_params("cyclegan", tmp_path / "m1"),
        tiny_variant_params("cyclegan", tmp_path / "m2", max_steps=3, ngf=8, ndf=8),
    ][:n]
    versions = [train_and_register(p, dataset)["version"] for p in params]
    for version in versions:
        record_evaluation(evaluate_registered("cyclegan", version, dataset, params[0]["data"], params[0]["evaluation"]))
        promote("cyclegan", version)  # the first becomes champion; the second wins or becomes challenger
    return versions


@pytest.mark.slow
def test_notebook_shows_the_only_version_alone(mlflow_uri, tmp_path):
    (version,) = registered_versions(tmp_path, 1)
    probe, code = execute(tmp_path)
    assert probe["champion"] == version and probe["other"] is None
    assert probe["titles"] == ["input", f"champion v{version}"] and probe["compare_axes"] == 8  # 4 rows x 2
    assert len(probe["rows"]) == 4 and all(out == inp for inp, *outs in probe["rows"] for out in outs)
    assert probe["history_titles"][:-1] == ["loss_G"] and probe["curves"] == [1] and probe["bars"] == 1
    assert probe["table_versions"] == [version] and "fid" in probe["table_columns"]
    assert "the only version" in "".join(o.get("text", "") for o in code[1].outputs)
    assert images(code[2]) == 1 and images(code[4]) == 1  # the translations, the history


@pytest.mark.slow
def test_notebook_compares_champion_with_another_version(mlflow_uri, tmp_path):
    versions = registered_versions(tmp_path, 2)
    probe, code = execute(tmp_path)
    assert {probe["champion"], probe["other"]} == set(versions)
    assert len(probe["titles"]) == 3 and probe["compare_axes"] == 12  # 4 rows x (input, champion, other)
    assert len(probe["rows"]) == 4 and all(out == inp for inp, *outs in probe["rows"] for out in outs)
    assert probe["history_titles"][:-1] == ["loss_G"] and probe["curves"] == [2]  # one curve per training run
    assert probe["bars"] == 2 and "fid per version" in probe["history_titles"][-1]
    assert probe["table_versions"] == sorted(versions) and "fid" in probe["table_columns"]
    assert images(code[2]) == 1 and images(code[4]) == 1
