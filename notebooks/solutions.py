"""The notebooks' exercises, found by their cell tags, and a notebook that runs every solution.

An exercise is three cells after its ``### Exercise N.k`` heading: a code cell tagged ``exercise``
(the learner's answer, left as ``...``), a code cell tagged ``check`` (``anyi2v_lab.exercises.check``)
and a markdown cell tagged ``solution`` that hides the solution in ``<details>``, so it is not shown
until asked for, in JupyterLab as on GitHub.

``with_solutions(nb)`` adds, after each solution, a cell that runs it and then its check inside
``strict()``: the committed cells all run as a learner meets them (exercises open), and every
solution must pass its check. CI executes notebooks this way (``notebooks/conftest.py``).
"""
from __future__ import annotations

import copy
import re
import textwrap
from typing import NamedTuple

import nbformat

SOLUTION_CODE = re.compile(r"```python\n(.*?)```", re.S)


class Exercise(NamedTuple):
    heading: str  # the markdown cell's "### Exercise N.k: ..." line
    exercise_cell: int
    check_cell: int
    solution_cell: int
    solution: str  # the solution's code


def tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def exercises(nb) -> list[Exercise]:
    """Every exercise of ``nb``, in order; ValueError naming the cell where the pattern breaks."""
    found, cells = [], nb.cells
    for i, cell in enumerate(cells):
        if "exercise" not in tags(cell):
            continue
        heading = next((c.source for c in reversed(cells[:i]) if c.cell_type == "markdown"), "")
        title = next((line for line in heading.splitlines() if line.startswith("#") and "Exercise" in line), None)
        if title is None:
            raise ValueError(f"cell {i}: an exercise cell must follow a markdown heading '### Exercise N.k: ...'")
        if i + 2 >= len(cells) or "check" not in tags(cells[i + 1]) or "solution" not in tags(cells[i + 2]):
            raise ValueError(f"cell {i} ({title}): must be followed by a code cell tagged 'check' and a "
                             "markdown cell tagged 'solution'")
        code = SOLUTION_CODE.findall(cells[i + 2].source)
        if cells[i + 2].cell_type != "markdown" or "<details>" not in cells[i + 2].source or not code:
            raise ValueError(f"cell {i + 2} ({title}): a solution is a markdown cell holding "
                             "<details><summary>Solution</summary> and a ```python block")
        found.append(Exercise(heading=title, exercise_cell=i, check_cell=i + 1, solution_cell=i + 2,
                              solution="\n".join(code).strip()))
    return found


def with_solutions(nb):
    """A copy of ``nb`` in which each solution runs, followed by its check inside ``strict()``."""
    out = copy.deepcopy(nb)
    for ex in reversed(exercises(nb)):
        check = nb.cells[ex.check_cell].source
        source = (f"{ex.solution.rstrip()}\n\nfrom anyi2v_lab.exercises import strict as _strict\n\n"
                  f"with _strict():\n{textwrap.indent(check, '    ')}\n")
        cell = nbformat.v4.new_code_cell(source, metadata={"tags": ["solution-run"]})
        out.cells.insert(ex.solution_cell + 1, cell)
    return out
