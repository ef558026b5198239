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

from dataclasses import dataclass, field, replace
from functools import partial

from anyi2v_lab.geometry import clip_box
from anyi2v_lab.trajectory import ObjectTrack, Trajectory
from anyi2v_lab.validate import InputError, check_box, check_choice, check_point, check_points, reject

from .mapping import clamp_point

EVENT_TYPES = ("add", "select", "delete", "box", "target_box", "path", "path_point", "query_point", "clear")
MAX_PATH_POINTS = 10_000


class EventError(InputError):
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
            _reject("object", d, "must be a dict", "give a dict with name/box/target_box/path/query_points",
                   error=EventError)
        box, target = d.get("box"), d.get("target_box")
        return cls(name=str(d.get("name", "")), box=None if box is None else _box(box, "box"),
                   target_box=None if target is None else _box(target, "target_box"),
                   path=_points(d.get("path", ()), "path"),
                   query_points=_points(d.get("query_points", ()), "query_points"))

    def to_track(self) -> ObjectTrack | None:
        """The finished object, or None while it has no box."""
        if self.box is None:
            return None
        if not self.path:
            return ObjectTrack.static(self.box, self.query_points, self.name)
        return ObjectTrack(box=self.box, path=self.path, target_box=self.target_box, query_points=self.query_points,
                           name=self.name)

    @classmethod
    def from_track(cls, t: ObjectTrack) -> "Draft":
        return cls(name=t.name, box=t.box, target_box=t.target_box, path=t.path, query_points=t.query_points)


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
_point = partial(check_point, error=EventError)
_box = partial(check_box, error=EventError)
_points = partial(check_points, max_len=MAX_PATH_POINTS, error=EventError)
_reject = partial(reject, error=EventError)


def _index(event: dict, state: EditorState, allow_new: bool = False) -> int:
    i = event.get("index")
    lo = -1 if allow_new else 0
    if isinstance(i, bool) or not isinstance(i, int) or not lo <= i < len(state.objects):
        have = f"{len(state.objects)} object(s)"
        _reject("index", i, f"is not an object index ({have})", "select or add an object first")
    return i


def _clamp_box(b: Box, size) -> Box:
    return _box(clip_box(b, size), f"box (clipped to the {size[0]}x{size[1]} image)")


# --- the reducer ----------------------------------------------------------------------------------
def apply_event(state: EditorState, event: dict, image_size) -> EditorState:
    """The state after ``event`` (module docstring). Points and boxes are clamped to the image
    ``image_size`` = (W, H). Raises :class:`EventError` (and changes nothing) on a malformed event."""
    if not isinstance(event, dict):
        _reject("event", event, "is not an event dict", 'give a dict with a "type", e.g. {"type": "add"}')
    kind = check_choice(event.get("type"), "event.type", EVENT_TYPES, error=EventError)
    objs = list(state.objects)
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
        pts = _points(event.get("points"), "points", min_len=1)
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
