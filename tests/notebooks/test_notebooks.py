"""Notebooks are committed without outputs (they are run, not stored: CI executes them with nbmake).

A notebook with outputs would carry images, widget state and timings into every diff, and go stale as
the library changes. ``python notebooks/clear_outputs.py`` clears them.
"""
import importlib.util
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS_DIR = Path(__file__).resolve().parents[2] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))


def test_the_notebooks_exist():
    names = {p.name for p in NOTEBOOKS}
    assert names == {"01_quickstart.ipynb", "02_feature_injection.ipynb", "03_trajectory_optimisation.ipynb",
                     "04_why_queries.ipynb", "05_denoising_microscope.ipynb", "06_looking_inside.ipynb",
                     "07_real_weights.ipynb"}


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
    tool = _tool("clear_outputs")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# t"), nbformat.v4.new_code_cell("1 + 1")])
    nb.cells[1].outputs = [nbformat.v4.new_output("execute_result", {"text/plain": "2"}, execution_count=1)]
    nb.cells[1].execution_count = 1
    nb.cells[1].metadata["execution"] = {"iopub.status.busy": "2026-01-01T00:00:00Z"}
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {}}
    assert len(tool.dirty(nb)) == 3
    tool.clear(nb)
    assert tool.dirty(nb) == [] and nb.cells[1].source == "1 + 1" and nb.cells[0].source == "# t"
    nbformat.validate(nb)


def _tool(name: str):
    spec = importlib.util.spec_from_file_location(name, NOTEBOOKS_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _executed(*outputs, widgets: dict | None = None):
    """A notebook with one code cell per output, as nbclient leaves it."""
    cells = []
    for i, o in enumerate(outputs):
        cell = nbformat.v4.new_code_cell(f"cell_{i}")
        cell.outputs, cell.execution_count = [o], i + 1
        cells.append(cell)
    nb = nbformat.v4.new_notebook(cells=cells)
    if widgets is not None:
        nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": widgets}
    return nb


def _display(data: dict):
    return nbformat.v4.new_output("display_data", data)


VIEW = {"application/vnd.jupyter.widget-view+json": {"version_major": 2, "version_minor": 0, "model_id": "ab"}}


def test_an_executed_notebook_that_reads_anywhere_passes():
    check = _tool("check_outputs")
    nb = _executed(_display({**VIEW, "image/png": "iVBORw0KGgo=", "text/plain": "VideoPlayer: 16 frames"}),
                   nbformat.v4.new_output("stream", name="stdout", text="generated 16 frames in 9 s\n"),
                   _display({"application/vnd.plotly.v1+json": {}, "text/html": "<div></div>"}))
    nb.cells[2].outputs.append(_display({"image/png": "iVBORw0KGgo=", "text/plain": "<LabFigure>"}))
    assert check.problems(nb) == []


def test_blank_widgets_progress_bars_and_big_files_are_named():
    check = _tool("check_outputs")
    nb = _executed(_display({**VIEW, "text/plain": "<anyi2v_lab.widgets.viewer.FeatureViewer object at 0x7f>"}),
                   nbformat.v4.new_output("stream", name="stderr",
                                          text="sampling:  40%|####      | 10/25 [00:03<00:05, 2.9it/s]"),
                   _display({"application/vnd.plotly.v1+json": {}, "text/plain": "Figure()"}),
                   widgets={"state": {"ab": {"state": {"layers": "A" * (6 * 2**20)}}}})
    found = check.problems(nb)
    assert len(found) == 4, found
    assert found[0].startswith("the file is 6.0 MiB (limit 5 MiB), 6.0 MiB of it saved widget state")
    assert found[1].startswith("cell 0 shows application/vnd.jupyter.widget-view+json without a static picture")
    assert found[2] == "cell 1 prints a progress bar; pass progress=False or drop the tqdm loop"
    assert found[3].startswith("cell 2 shows application/vnd.plotly.v1+json without a static picture")


def test_the_checker_runs_from_the_command_line(tmp_path):
    bad = tmp_path / "bad.ipynb"
    nbformat.write(_executed(_display({**VIEW, "text/plain": "Microscope"})), bad)
    out = subprocess.run([sys.executable, str(NOTEBOOKS_DIR / "check_outputs.py"), str(bad)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 1 and "bad.ipynb: cell 0 shows application/vnd.jupyter.widget-view+json" in out.stderr


@pytest.mark.slow  # starts three kernels
def test_nbmake_runs_fail_on_what_does_not_read_anywhere_and_on_a_wrong_solution(tmp_path):
    """notebooks/conftest.py runs each solution through its check and checks each notebook nbmake
    executes, in the same run: a notebook that prints a progress bar fails with the checker's message,
    one whose solution does not pass its check fails naming the exercise; a clean one passes."""
    import shutil

    for name in ("conftest.py", "check_outputs.py", "solutions.py"):
        shutil.copy(NOTEBOOKS_DIR / name, tmp_path / name)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    notebooks = {"bad": nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
                     "print('sampling:  40%|####      | 10/25')")]),
                 "good": _lesson_notebook("answer = 2 * x"), "wrong": _lesson_notebook("answer = x")}
    for name, nb in notebooks.items():
        if name != "bad":
            nb.cells.insert(0, nbformat.v4.new_code_cell("from anyi2v_lab.exercises import check"))
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, tmp_path / f"{name}.ipynb")
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider", "--nbmake",
                          str(tmp_path)],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert "2 failed, 1 passed" in out.stdout, out.stdout[-3000:]
    assert "bad.ipynb does not read without a kernel:\ncell 0 prints a progress bar" in out.stdout
    assert "ExerciseNotSolved" in out.stdout and "Exercise 1.1: not yet. Hint: twice" in out.stdout


def _lesson_notebook(solution: str):
    md, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell
    return nbformat.v4.new_notebook(cells=[
        code("x = 6"),
        md("### Exercise 1.1: double x"),
        code("answer = ...", metadata={"tags": ["exercise"]}),
        code('check("1.1", answer, lambda a: a == 2 * x, hint="twice")', metadata={"tags": ["check"]}),
        md(f"<details><summary>Solution</summary>\n\n```python\n{solution}\n```\n\n</details>",
           metadata={"tags": ["solution"]}),
        code("assert x == 6"),
    ])


def _run_cells(nb) -> dict:
    namespace = {}
    exec("from anyi2v_lab.exercises import check", namespace)
    for cell in nb.cells:
        if cell.cell_type == "code":
            exec(cell.source, namespace)
    return namespace


def test_with_solutions_runs_each_solution_through_its_check_strictly(capsys):
    from anyi2v_lab.exercises import ExerciseNotSolved

    solutions = _tool("solutions")
    nb = _lesson_notebook("answer = 2 * x")
    (ex,) = solutions.exercises(nb)
    assert (ex.heading, ex.exercise_cell, ex.solution) == ("### Exercise 1.1: double x", 2, "answer = 2 * x")
    done = solutions.with_solutions(nb)
    assert len(done.cells) == len(nb.cells) + 1 and "solution-run" in done.cells[5].metadata["tags"]
    assert _run_cells(done)["answer"] == 12
    out = capsys.readouterr().out
    assert "Exercise 1.1: open" in out and "✓ Exercise 1.1: right" in out  # as committed, then solved
    with pytest.raises(ExerciseNotSolved):
        _run_cells(solutions.with_solutions(_lesson_notebook("answer = x")))


def test_a_broken_exercise_pattern_is_named():
    nb = _lesson_notebook("answer = 2 * x")
    del nb.cells[4]
    with pytest.raises(ValueError, match="cell 2 .*tagged 'check'"):
        _tool("solutions").exercises(nb)


LESSONS = [p for p in NOTEBOOKS if "real_weights" not in p.name]


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.stem)
def test_each_lesson_has_two_exercises_with_checks_and_hidden_solutions(path):
    nb = nbformat.read(path, as_version=4)
    found = _tool("solutions").exercises(nb)
    assert len(found) >= 2, f"{path.name} has {len(found)} exercises; a lesson has at least two"
    for ex in found:
        compile(ex.solution, f"{path.name} {ex.heading}", "exec")
        assert "check(" in nb.cells[ex.check_cell].source, f"{path.name} {ex.heading}: the check cell calls check()"


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.stem)
def test_each_lesson_ends_by_checking_its_claim_with_asserts(path):
    nb = nbformat.read(path, as_version=4)
    last_code = [c for c in nb.cells if c.cell_type == "code"][-1]
    assert "assert " in last_code.source, f"{path.name}: the last code cell checks the headline claim with assert"


def test_the_learning_path_lists_every_notebook_in_order():
    table = [line for line in (NOTEBOOKS_DIR / "README.md").read_text().splitlines() if line.startswith("| 0")]
    assert [line.split("`")[1] for line in table] == [p.stem for p in NOTEBOOKS]
