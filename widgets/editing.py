"""The trajectory editor's state and the events that change it (pure; no widget, no browser).

The browser turns pointer gestures into small semantic events in image pixels (``js/logic.js``,
``gestureEvent``) and sends them to Python, where :func:`apply_event` is the one place that changes the
drawing. So the state has a single owner, the undo history lives beside it, and everything a user can do
is testable here with plain dicts (``tests/widgets/test_widgets.py`` drives it with hypothesis).

Events (``index`` is an object index; points and boxes are image pixels)::

    {"type": "add"}                                   new empty object, selected
    {"type": "select", "index": i}                    i = -1 deselects
    {"type": "delete", "index": i}
    {"type": "box", "index": i, "box": [x0, y0, x1, y1]}   i = -1 adds an object with that box
    {"type": "target_box", "index": i, "box": [...]}  needs a box (only the size is used)
    {"type": "path", "index": i, "points": [[x, y], ...]}  replaces the path
    {"type": "path_point", "index": i, "point": [x, y]}    appends to the path
    {"type": "query_point", "index": i, "point": [x, y]}
    {"type": "clear"}
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field, replace

from anyi2v_lab.trajectory import ObjectTrack, Trajectory

from .mapping import clamp_point

EVENT_TYPES = ("add", "select", "delete", "box", "target_box", "path", "path_point", "query_point", "clear")
MAX_PATH_POINTS = 10_000


class EventError(ValueError):
    """An event the editor cannot apply; the message names the field, the value and the fix."""


Point = tuple[float, float]
Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Draft:
    """One object while it is being drawn: like :class:`ObjectTrack`, but the box may still be missing
    and the path may be empty (an object with a box and no path stays at the box centre)."""

    name: str = ""
    box: Box | None = None
    target_box: Box | None = None
    path: tuple[Point, ...] = ()
    query_points: tuple[Point, ...] = ()

    def to_dict(self) -> dict:
        """The synced form (numbers, not strings, so floats cross JSON exactly)."""
        return {"name": self.name, "box": None if self.box is None else list(self.box),
                "target_box": None if self.target_box is None else list(self.target_box),
                "path": [list(p) for p in self.path], "query_points": [list(p) for p in self.query_points]}

    @classmethod
    def from_dict(cls, d: dict) -> "Draft":
        if not isinstance(d, dict):
            raise EventError(f"an object must be a dict with name/box/target_box/path/query_points, got {d!r:.60}")
        box, target = d.get("box"), d.get("target_box")
        return cls(str(d.get("name", "")), None if box is None else _box(box, "box"),
                   None if target is None else _box(target, "target_box"),
                   _points(d.get("path", ()), "path"), _points(d.get("query_points", ()), "query_points"))

    def to_track(self) -> ObjectTrack | None:
        """The finished object, or None while it has no box."""
        if self.box is None:
            return None
        if not self.path:
            return ObjectTrack.static(self.box, self.query_points, self.name)
        return ObjectTrack(self.box, self.path, self.target_box, self.query_points, self.name)

    @classmethod
    def from_track(cls, t: ObjectTrack) -> "Draft":
        return cls(t.name, t.box, t.target_box, t.path, t.query_points)


@dataclass(frozen=True)
class EditorState:
    objects: tuple[Draft, ...] = ()
    selected: int = -1  # -1: nothing selected

    def to_trajectory(self, image_size, num_frames: int | None) -> Trajectory | None:
        """The objects that have a box, as a :class:`Trajectory` (None when none has one yet)."""
        tracks = [t for t in (d.to_track() for d in self.objects) if t is not None]
        return Trajectory(tuple(tracks), image_size, num_frames) if tracks else None

    @classmethod
    def from_trajectory(cls, traj: Trajectory | None) -> "EditorState":
        if traj is None:
            return cls()
        return cls(tuple(Draft.from_track(o) for o in traj.objects), 0)


# --- validation -----------------------------------------------------------------------------------
def _num(v, where: str) -> float:
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(float(v)):
        raise EventError(f"{where} = {v!r:.40} must be a finite number of image pixels")
    return float(v)


def _point(v, where: str) -> Point:
    if not isinstance(v, (list, tuple)) or len(v) != 2:
        raise EventError(f"{where} = {v!r:.60} must be [x, y]")
    return (_num(v[0], f"{where}[0]"), _num(v[1], f"{where}[1]"))


def _points(v, where: str) -> tuple[Point, ...]:
    if not isinstance(v, (list, tuple)) or len(v) > MAX_PATH_POINTS:
        raise EventError(f"{where} = {v!r:.60} must be a list of at most {MAX_PATH_POINTS} [x, y] points")
    return tuple(_point(p, f"{where}[{i}]") for i, p in enumerate(v))


def _box(v, where: str) -> Box:
    if not isinstance(v, (list, tuple)) or len(v) != 4:
        raise EventError(f"{where} = {v!r:.60} must be [x0, y0, x1, y1]")
    b = tuple(_num(x, f"{where}[{i}]") for i, x in enumerate(v))
    if not (b[2] > b[0] and b[3] > b[1]):
        raise EventError(f"{where} = {list(b)} needs x1 > x0 and y1 > y0; drag a box with some area")
    return b


def _index(event: dict, state: EditorState, allow_new: bool = False) -> int:
    i = event.get("index")
    lo = -1 if allow_new else 0
    if isinstance(i, bool) or not isinstance(i, int) or not lo <= i < len(state.objects):
        have = f"{len(state.objects)} object(s)"
        raise EventError(f"index = {i!r} is not an object index ({have}); select or add an object first")
    return i


def _clamp_box(b: Box, size) -> Box:
    x0, y0 = clamp_point(b[:2], size)
    x1, y1 = clamp_point(b[2:], size)
    return _box((x0, y0, x1, y1), "box (clipped to the image)")


# --- the reducer ----------------------------------------------------------------------------------
def apply_event(state: EditorState, event: dict, image_size) -> EditorState:
    """The state after ``event`` (module docstring). Points and boxes are clamped to the image
    ``image_size`` = (W, H). Raises :class:`EventError` (and changes nothing) on a malformed event."""
    if not isinstance(event, dict) or event.get("type") not in EVENT_TYPES:
        kind = event.get("type") if isinstance(event, dict) else event
        raise EventError(f"event type {kind!r:.40} is unknown; use one of {', '.join(EVENT_TYPES)}")
    kind, objs = event["type"], list(state.objects)
    if kind == "add":
        objs.append(Draft(name=_new_name(objs)))
        return EditorState(tuple(objs), len(objs) - 1)
    if kind == "clear":
        return EditorState()
    if kind == "select":
        return replace(state, selected=_index(event, state, allow_new=True))
    if kind == "delete":
        i = _index(event, state)
        del objs[i]
        sel = state.selected
        sel = -1 if sel == i else (sel - 1 if sel > i else sel)
        return EditorState(tuple(objs), min(sel, len(objs) - 1))
    if kind in ("box", "target_box"):
        i = _index(event, state, allow_new=kind == "box")
        box = _clamp_box(_box(event.get("box"), "box"), image_size)
        if i == -1:
            objs.append(Draft(name=_new_name(objs), box=box))
            return EditorState(tuple(objs), len(objs) - 1)
        if kind == "target_box" and objs[i].box is None:
            raise EventError(f"object {i} has no box yet; draw its box before its target box")
        objs[i] = replace(objs[i], **{kind: box})
        return EditorState(tuple(objs), i)
    i = _index(event, state)
    if kind == "path":
        pts = _points(event.get("points"), "points")
        if not pts:
            raise EventError("points = [] must hold at least one [x, y] point")
        objs[i] = replace(objs[i], path=tuple(clamp_point(p, image_size) for p in pts))
    else:  # path_point, query_point: append one point
        p = clamp_point(_point(event.get("point"), "point"), image_size)
        key = "path" if kind == "path_point" else "query_points"
        if len(getattr(objs[i], key)) >= MAX_PATH_POINTS:
            raise EventError(f"object {i} already has {MAX_PATH_POINTS} {key}; clear some first")
        objs[i] = replace(objs[i], **{key: getattr(objs[i], key) + (p,)})
    return EditorState(tuple(objs), i)


def _new_name(objs) -> str:
    taken = {d.name for d in objs}
    k = len(objs) + 1
    while f"object {k}" in taken:
        k += 1
    return f"object {k}"


@dataclass
class History:
    """Undo stack of editor states (bounded: the oldest states drop off)."""

    limit: int = 200
    states: list[EditorState] = field(default_factory=list)

    def push(self, state: EditorState) -> None:
        self.states.append(state)
        del self.states[:-self.limit]

    def pop(self) -> EditorState | None:
        return self.states.pop() if self.states else None

    def __len__(self) -> int:
        return len(self.states)
