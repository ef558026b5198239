"""Notebooks are committed without outputs (they are run, not stored: CI executes them with nbmake).

A notebook with outputs would carry images, widget state and timings into every diff, and go stale as
the library changes. ``python notebooks/clear_outputs.py`` clears them.
"""
import importlib.util
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS_DIR = Path(__file__).resolve().parents[2] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))


def _clear_tool():
    spec = importlib.util.spec_from_file_location("clear_outputs", NOTEBOOKS_DIR / "clear_outputs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_notebooks_exist():
    names = {p.name for p in NOTEBOOKS}
    assert {"02_looking_inside.ipynb", "03_why_queries.ipynb", "04_feature_injection.ipynb",
            "05_trajectory_optimisation.ipynb", "06_real_weights.ipynb"} <= names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebook_is_valid_and_has_no_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3", "use the default python3 kernel"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, f"{path.name} has no code"
    stored = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not stored, f"{path.name}: cells {stored} hold outputs; run python notebooks/clear_outputs.py"
    assert "widgets" not in nb.metadata, f"{path.name} holds saved widget state; run notebooks/clear_outputs.py"
    assert not any("execution" in c.metadata for c in nb.cells), f"{path.name} holds execution timings"


def test_clear_tool_finds_and_clears_outputs(tmp_path):
    tool = _clear_tool()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# t"), nbformat.v4.new_code_cell("1 + 1")])
    nb.cells[1].outputs = [nbformat.v4.new_output("execute_result", {"text/plain": "2"}, execution_count=1)]
    nb.cells[1].execution_count = 1
    nb.cells[1].metadata["execution"] = {"iopub.status.busy": "2026-01-01T00:00:00Z"}
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {}}
    assert len(tool.dirty(nb)) == 3
    tool.clear(nb)
    assert tool.dirty(nb) == [] and nb.cells[1].source == "1 + 1" and nb.cells[0].source == "# t"
    nbformat.validate(nb)
