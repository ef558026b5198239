"""Views that follow the latest run: one draw -> generate -> look loop without re-running view cells.

>>> player = VideoPlayer.from_result(result, key="quickstart")   # one of the views of "quickstart"
>>> show_run(new_result, key="quickstart")                       # every view of "quickstart" shows it, in place

A view made again with the same key (its cell run again) takes the place of the one before, so each key
holds at most one view of each class. Views are held weakly: a closed, forgotten view is dropped.
"""
from __future__ import annotations

import weakref

_VIEWS: dict[str, dict[type, weakref.ref]] = {}


def follow(key: str | None, view) -> None:
    """Make ``view`` (a widget with ``show(result)``) the view of its class under ``key`` (None: none)."""
    if key is None:
        return
    if not isinstance(key, str) or not key:
        raise ValueError(f"key = {key!r}: give a non-empty string naming the views that follow one run, "
                         "e.g. key='quickstart'")
    _VIEWS.setdefault(key, {})[type(view)] = weakref.ref(view)


def views(key: str) -> list:
    """The live views following ``key``, in the order their classes joined."""
    alive = [(cls, ref()) for cls, ref in _VIEWS.get(key, {}).items()]
    return [v for _, v in alive if v is not None and getattr(v, "comm", True) is not None]


def show_run(result, key: str) -> int:
    """Show ``result`` in every view following ``key`` (its player, its feature viewer), in place; returns
    how many views changed (0 before any view cell has run: nothing to update)."""
    shown = views(key)
    for view in shown:
        view.show(result)
    return len(shown)
