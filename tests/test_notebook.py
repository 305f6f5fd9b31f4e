"""notebooks/champion_vs_challenger.ipynb runs: its code cells are executed in a fresh namespace against
a temporary project holding two tiny registered, evaluated versions (so the notebook cannot rot)."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import nbformat
import pytest

from _support import PROJECT, default_dataset, tiny_variant_params, train_and_register

NOTEBOOK = PROJECT / "notebooks" / "champion_vs_challenger.ipynb"


def test_notebook_is_valid_and_stored_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.outputs == [] and c.execution_count is None for c in code)


@pytest.mark.slow
def test_notebook_compares_champion_with_another_version(mlflow_uri, tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    from transfigure.evaluation import evaluate_registered, record_evaluation
    from transfigure.tracking.promotion import promote

    matplotlib.use("Agg")
    dataset = default_dataset(tmp_path / "data")
    first = tiny_variant_params("cyclegan", tmp_path / "m1")
    second = tiny_variant_params("cyclegan", tmp_path / "m2", max_steps=3, ngf=8, ndf=8)
    versions = [train_and_register(p, dataset)["version"] for p in (first, second)]
    for version in versions:
        record_evaluation(evaluate_registered("cyclegan", version, dataset, first["data"], first["evaluation"]))
        promote("cyclegan", version)  # the first becomes champion; the second wins or becomes challenger

    nb = nbformat.read(NOTEBOOK, as_version=4)
    namespace: dict = {"__name__": "__notebook__"}
    for i, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
        exec(compile(cell.source, f"{NOTEBOOK.name}[code cell {i}]", "exec"), namespace)  # noqa: S102

    champion = namespace["champion"]["version"]
    assert {champion, namespace["other"]} == set(versions)
    rows = namespace["rows"]
    assert len(rows) == 4 and all(out.size == inp.size for inp, *outs in rows for out in outs)
    assert len(namespace["fig_compare"].axes) == 12
    history_axes = namespace["fig_history"].axes
    assert [ax.get_title() for ax in history_axes[:-1]] == ["loss_G"]
    assert len(history_axes[0].get_lines()) == 2  # one curve per training run
    assert len(history_axes[-1].patches) == 2 and "fid per version" in history_axes[-1].get_title()
    assert set(namespace["table"].index) == set(versions) and "fid" in namespace["table"].columns
    for name in ("fig_compare", "fig_history"):
        namespace[name].savefig(Path(tmp_path) / f"{name}.png")
    plt.close("all")
