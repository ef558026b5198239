"""The notebooks, executed by nbmake, are checked for what makes them read anywhere
(``check_outputs.py``: a picture for every widget and interactive plot, no progress bars, under
5 MiB with the widget state nbclient saves) in the same run, without executing them again."""
from __future__ import annotations

import importlib.util
from pathlib import Path
from unittest import mock

import pytest


def _checks():
    spec = importlib.util.spec_from_file_location("check_outputs", Path(__file__).with_name("check_outputs.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    if not getattr(item, "nbmake", False):
        return (yield)
    from nbmake.nb_run import NotebookRun

    executed = []
    run = NotebookRun.execute

    def execute_and_keep(self):
        result = run(self)
        executed.append(result.nb)
        return result

    with mock.patch.object(NotebookRun, "execute", execute_and_keep):
        outcome = yield  # a failing cell fails the test here, before the checks
    found = _checks().problems(executed[-1]) if executed else ["nbmake executed nothing"]
    if found:
        # nbmake reports its own exception as the notebook's failure (anything else as an internal error)
        from nbmake.nb_result import NotebookError, NotebookResult
        from nbmake.pytest_items import NotebookFailedException

        summary = f"{Path(item.path).name} does not read without a kernel"
        raise NotebookFailedException(NotebookResult(executed[-1], NotebookError(
            summary=summary, trace=summary + ":\n" + "\n".join(found), failing_cell_index=-1)))
    return outcome
