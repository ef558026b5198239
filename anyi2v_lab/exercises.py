"""Checks for the notebooks' exercises: each tells a learner whether an answer is right, and why.

An exercise leaves its answer as ``...``. A notebook run top to bottom with its exercises still open
stops nowhere: the check says the exercise is open and what to do. Inside ``strict()`` (the tests
that run each solution through its check) an open or wrong answer raises instead.

    answer = ...          # the exercise cell: the learner replaces the ...
    check("3.1", answer, lambda a: a > 10, hint="the path is faster than ...", right="yes: ...")
"""
from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from typing import Any

_STRICT = [False]


class ExerciseNotSolved(AssertionError):
    """Raised inside ``strict()`` by a check whose answer is open or wrong."""


@contextmanager
def strict():
    """Make every ``check`` raise on an open or wrong answer (for the tests of the solutions)."""
    _STRICT.append(True)
    try:
        yield
    finally:
        _STRICT.pop()


def is_open(answer: Any) -> bool:
    """Whether an answer (or any part of a tuple, list or dict of answers) is still ``...``."""
    if answer is ...:
        return True
    if isinstance(answer, dict):
        return any(is_open(v) for v in answer.values())
    if isinstance(answer, (tuple, list)):
        return any(is_open(v) for v in answer)
    return False


def check(exercise: str, answer: Any, is_right: Callable[[Any], bool], *, hint: str, right: str = "") -> None:
    """Print whether ``answer`` to exercise ``exercise`` is right (nothing is returned, so a check cell
    shows only its verdict).

    ``is_right(answer)`` decides; an exception inside it counts as a wrong answer and is named. ``hint``
    is shown for a wrong answer, ``right`` (what the answer shows) for a right one.
    """
    if is_open(answer):
        _report(exercise, False, "open: replace the `...` in the cell above, run it, then run this cell.")
        return
    try:
        ok = bool(is_right(answer))
        why = right if ok else f"not yet. Hint: {hint}"
    except Exception as error:  # a learner's answer of the wrong kind must explain itself, not crash the check
        ok, why = False, f"not yet ({type(error).__name__}: {error}). Hint: {hint}"
    _report(exercise, ok, f"right. {why}".rstrip() if ok else why)


def _report(exercise: str, ok: bool, message: str) -> None:
    line = f"{'✓' if ok else '·'} Exercise {exercise}: {message}"
    print(line)
    if not ok and _STRICT[-1]:
        raise ExerciseNotSolved(line)
