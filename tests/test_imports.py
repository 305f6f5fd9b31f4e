"""Packages import downwards only: no import cycle between the subpackages of ``transfigure``.

The layers, top to bottom; a module may import from its own subpackage and from any layer
below its own, never from above, and the subpackages sharing a layer do not import each other:

1. ``__main__``, ``cli``, ``pipeline_registry``, ``settings``: entry points (Kedro, the
   ``transfigure`` command), and ``inference.pyfunc_model``: the MLflow "models from code" file, which
   MLflow runs and no transfigure module imports (it finds the registered version through
   ``tracking.client``);
2. ``pipelines`` (Kedro nodes), ``serving`` (the BentoML service), ``export`` (ONNX/TorchScript);
3. ``evaluation``: metrics, reports, recording an evaluation in MLflow;
4. ``tracking``: MLflow client, tracked training runs, registry (logging the pyfunc model,
   ``load_translator``), promotion gate (the champion re-evaluation comes in as a callable);
5. ``training`` (the engine), ``inference`` (``Translator``, translate + watermark, batch translation);
6. ``models``, ``provenance``, ``validation``, ``runtime`` (device, torchrun);
7. ``data``: dataset layouts and image rules every layer above checks against, loading, transforms;
8. ``untrusted`` (decoding untrusted image bytes), ``_env`` (telemetry switches).

Function-local imports count (grimp sees them): a cycle hidden inside a function is a cycle.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp
import pytest

PACKAGE = "transfigure"
LAYERS: list[set[str]] = [
    {"__main__", "cli", "pipeline_registry", "settings", "inference.pyfunc_model"},
    {"pipelines", "serving", "export"},
    {"evaluation"},
    {"tracking"},
    {"training", "inference"},
    {"models", "provenance", "validation", "runtime"},
    {"data"},
    {"untrusted", "_env"},
]
SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph(PACKAGE, include_external_packages=False)


#: modules that are entry points of their own (run by another program, imported by no transfigure module)
ENTRY_MODULES = {"transfigure.inference.pyfunc_model": "inference.pyfunc_model"}


def _top(module: str) -> str | None:
    if module in ENTRY_MODULES:
        return ENTRY_MODULES[module]
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def _edges(graph: grimp.ImportGraph) -> dict[tuple[str, str], tuple[str, str]]:
    """(importer subpackage, imported subpackage) -> one module-level import that makes the edge."""
    edges: dict[tuple[str, str], tuple[str, str]] = {}
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            a, b = _top(importer), _top(imported)
            if a and b and a != b:
                edges.setdefault((a, b), (importer, imported))
    return edges


def _explain(graph: grimp.ImportGraph, example: tuple[str, str]) -> str:
    importer, imported = example
    details = graph.get_import_details(importer=importer, imported=imported)
    where = f" (line {details[0]['line_number']}: {details[0]['line_contents']})" if details else ""
    return f"{importer} -> {imported}{where}"


def _find_cycle(edges: dict[tuple[str, str], tuple[str, str]]) -> list[str] | None:
    """A cycle of subpackages (first == last), or None; depth-first search over the edges."""
    succ: dict[str, list[str]] = {}
    for a, b in sorted(edges):
        succ.setdefault(a, []).append(b)
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in succ.get(node, []):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(succ):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_no_import_cycle_between_subpackages(graph):
    edges = _edges(graph)
    cycle = _find_cycle(edges)
    if cycle:
        chain = "\n  ".join(_explain(graph, edges[(a, b)]) for a, b in zip(cycle, cycle[1:]))
        pytest.fail(f"import cycle {' -> '.join(cycle)}:\n  {chain}")


def test_subpackages_import_only_lower_layers(graph):
    rank = {name: i for i, layer in enumerate(LAYERS) for name in layer}
    tops = {_top(m) for m in graph.modules} - {None}
    assert tops <= set(rank), f"place the new subpackages in LAYERS (and the docstring): {sorted(tops - set(rank))}"
    upward = [_explain(graph, example) for (a, b), example in sorted(_edges(graph).items()) if rank[a] >= rank[b]]
    assert not upward, "imports that go up or sideways in the layering:\n  " + "\n  ".join(upward)


#: run in one fresh interpreter: for each subpackage, forget every transfigure module (third-party ones stay
#: loaded, they cannot take part in a cycle of ours), then import that subpackage first and every module under it
_IMPORT_EACH_FIRST = r"""
import importlib, pkgutil, sys, traceback
failed = []
for package in sys.argv[1:]:
    for name in [m for m in sys.modules if m == "transfigure" or m.startswith("transfigure.")]:
        del sys.modules[name]
    try:
        pkg = importlib.import_module(package)
        for info in pkgutil.walk_packages(getattr(pkg, "__path__", []), prefix=package + "."):
            importlib.import_module(info.name)
    except Exception:
        failed.append(package + ":\n" + traceback.format_exc()[-3000:])
print("\n\n".join(failed), file=sys.stderr)
sys.exit(1 if failed else 0)
"""


@pytest.mark.slow
def test_each_subpackage_imports_first_in_a_fresh_interpreter():
    """An import cycle shows as an ImportError only when one of its packages is imported first."""
    names = sorted(f"{PACKAGE}.{name}" for layer in LAYERS for name in layer if name != "__main__")
    proc = subprocess.run(
        [sys.executable, "-c", _IMPORT_EACH_FIRST, *names], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-6000:]
