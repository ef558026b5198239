"""The notebooks, executed by nbmake with every exercise's solution run through its check
(``solutions.py``), are checked for what makes them read anywhere (``check_outputs.py``: a picture
for every widget and interactive plot, no progress bars, under 5 MiB with the widget state nbclient
saves) in the same run, without executing them again."""
from __future__ import annotations

import importlib.util
from pathlib import Path
from unittest import mock

import pytest


def _tool(name: str):
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    if not getattr(item, "nbmake", False):
        return (yield)
    import nbformat
    from nbmake.nb_run import NotebookRun

    executed, read, with_solutions = [], nbformat.read, _tool("solutions").with_solutions
    run = NotebookRun.execute

    def execute_and_keep(self):
        result = run(self)
        executed.append(result.nb)
        return result

    def read_with_solutions(*args, **kwargs):
        return with_solutions(read(*args, **kwargs))

    with (mock.patch.object(NotebookRun, "execute", execute_and_keep),
          mock.patch.object(nbformat, "read", read_with_solutions)):
        outcome = yield  # a failing cell fails the test here, before the checks
    found = _tool("check_outputs").problems(executed[-1]) if executed else ["nbmake executed nothing"]
    if found:
        # nbmake reports its own exception as the notebook's failure (anything else as an internal error)
        from nbmake.nb_result import NotebookError, NotebookResult
        from nbmake.pytest_items import NotebookFailedException

        summary = f"{Path(item.path).name} does not read without a kernel"
        raise NotebookFailedException(NotebookResult(executed[-1], NotebookError(
            summary=summary, trace=summary + ":\n" + "\n".join(found), failing_cell_index=-1)))
    return outcome
