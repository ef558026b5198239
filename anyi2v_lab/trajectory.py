"""User trajectories: objects with a start box, a path, an optional target box and query points.

Coordinates are (x, y) pixels of ``Trajectory.image_size``; boxes are (x0, y0, x1, y1). Two file formats:

* ours, versioned: ``{"schema": "anyi2v-lab/trajectory", "version": 1, "image_size": [W, H],
  "num_frames": 16 (optional), "timing": "first-frames" (optional), "objects": [{"name", "box",
  "target_box", "path", "query_points"}]}``;
* the reference's (``bounding_box``, ``target_box``, ``center_traj``, ``query_point``: parallel lists, one
  entry per object, in a 512x512 image). It is read here and written by :mod:`anyi2v_lab.interop.reference`.

Per-frame boxes follow the reference rule (docs/method.md §3): the box moves by ``path[i] - path[0]`` and its size
goes linearly from ``box`` to ``target_box``, symmetrically. Which path point belongs to which frame is the
trajectory's ``timing``: ``"resample"`` (ours, the default) spreads the whole path over the frames;
``"first-frames"`` (the reference's command line, the default for its files) makes point i frame i.
numpy only (the widgets use this module).
"""
from __future__ import annotations

import json
import math
import numbers
import os
import reprlib
import warnings
from dataclasses import dataclass

import numpy as np

from .io import atomic_path

SCHEMA = "anyi2v-lab/trajectory"
VERSION = 1
REFERENCE_IMAGE_SIZE = (512, 512)
MAX_COORD = 1e6  # |coordinate| bound in pixels: rejects garbage early and keeps box arithmetic finite
MAX_IMAGE_SIDE = 1 << 16
_OBJECT_KEYS = {"name", "box", "target_box", "path", "query_points"}
_TOP_KEYS = {"schema", "version", "image_size", "num_frames", "timing", "objects"}
TIMINGS = ("resample", "first-frames")
_REF_KEYS = ("bounding_box", "target_box", "center_traj", "query_point")
_short = reprlib.Repr()
_short.maxstring, _short.maxother, _short.maxlist = 40, 40, 4


class TrajectoryError(ValueError):
    """Malformed trajectory input. The message names the object, the field, the value and the fix."""


class TrajectoryWarning(UserWarning):
    """A trajectory is usable but something was adjusted (e.g. boxes clipped to the image)."""


def _num(v, where: str) -> float:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
        raise TrajectoryError(f"{where} = {_short.repr(v)} is not a number; give a number of pixels")
    try:
        f = float(v)
    except (OverflowError, ValueError, TypeError):
        f = math.inf
    if not math.isfinite(f) or abs(f) > MAX_COORD:
        raise TrajectoryError(f"{where} = {_short.repr(v)} is not a finite pixel coordinate within "
                              f"±{MAX_COORD:g}; give a finite number")
    return f


def _vec(v, n: int, where: str, what: str) -> tuple[float, ...]:
    if isinstance(v, np.ndarray):
        v = v.tolist()
    if not isinstance(v, (list, tuple)) or len(v) != n:
        raise TrajectoryError(f"{where} = {_short.repr(v)} must be a list of {n} numbers {what}")
    return tuple(_num(x, f"{where}[{i}]") for i, x in enumerate(v))


def _points(v, where: str, min_len: int) -> tuple[tuple[float, float], ...]:
    if isinstance(v, np.ndarray):
        v = v.tolist()
    if not isinstance(v, (list, tuple)) or len(v) < min_len:
        raise TrajectoryError(f"{where} = {_short.repr(v)} must be a list of at least {min_len} [x, y] point(s)")
    return tuple(_vec(p, 2, f"{where}[{i}]", "[x, y]") for i, p in enumerate(v))


def _box(v, where: str) -> tuple[float, float, float, float]:
    b = _vec(v, 4, where, "[x0, y0, x1, y1]")
    if not (b[2] > b[0] and b[3] > b[1]):
        raise TrajectoryError(f"{where} = {list(b)} needs x1 > x0 and y1 > y0 (left, top, right, bottom); "
                              "swap the corners or use geometry.box_from_corners")
    return b


def _image_size(v, where: str = "image_size") -> tuple[int, int]:
    if isinstance(v, np.ndarray):
        v = v.tolist()
    ok = isinstance(v, (list, tuple)) and len(v) == 2 and all(
        isinstance(s, numbers.Integral) and not isinstance(s, (bool, np.bool_)) and 0 < s <= MAX_IMAGE_SIDE
        for s in v)
    if not ok:
        raise TrajectoryError(f"{where} = {_short.repr(v)} must be [width, height], positive integers "
                              f"<= {MAX_IMAGE_SIDE}, e.g. [512, 512]")
    return int(v[0]), int(v[1])


def _timing(v, where: str = "timing") -> str:
    if v not in TIMINGS:
        raise TrajectoryError(f"{where} = {_short.repr(v)} is unknown; use 'resample' (the whole path spread over "
                              "the frames) or 'first-frames' (point i is frame i, the reference's rule)")
    return v


def _num_frames(v, where: str = "num_frames") -> int | None:
    if v is None:
        return None
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral) or not 1 <= v <= 10_000:
        raise TrajectoryError(f"{where} = {_short.repr(v)} must be a positive integer (e.g. 16) or null")
    return int(v)


@dataclass(frozen=True)
class ObjectTrack:
    """One object: frame-0 ``box``, a ``path`` (>= 1 point; only displacements from path[0] matter),
    an optional ``target_box`` (only its size is used: the box size goes linearly to it over the frames)
    and ``query_points`` (salient points on the object in frame 0, seeds of the semantic mask)."""

    box: tuple[float, float, float, float]
    path: tuple[tuple[float, float], ...]
    target_box: tuple[float, float, float, float] | None = None
    query_points: tuple[tuple[float, float], ...] = ()
    name: str = ""

    def __post_init__(self):
        if not isinstance(self.name, str):
            raise TrajectoryError(f"name = {_short.repr(self.name)} must be a string")
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731
        set_("box", _box(self.box, "box"))
        set_("path", _points(self.path, "path", 1))
        set_("target_box", None if self.target_box is None else _box(self.target_box, "target_box"))
        set_("query_points", _points(self.query_points, "query_points", 0))

    @classmethod
    def static(cls, box, query_points=(), name: str = "") -> "ObjectTrack":
        """An object that stays put: its path is the single point at the box centre."""
        b = _box(box, "box")
        return cls(b, (((b[0] + b[2]) / 2, (b[1] + b[3]) / 2),), None, query_points, name)

    @property
    def end_box(self) -> tuple[float, float, float, float]:
        """``target_box`` if given, else ``box`` (constant size)."""
        return self.box if self.target_box is None else self.target_box

    def to_dict(self) -> dict:
        return {"name": self.name, "box": list(self.box),
                "target_box": None if self.target_box is None else list(self.target_box),
                "path": [list(p) for p in self.path], "query_points": [list(p) for p in self.query_points]}


def _in_image(box, size) -> bool:
    x0, y0, x1, y1 = box
    return min(x1, size[0]) > max(x0, 0.0) and min(y1, size[1]) > max(y0, 0.0)


@dataclass(frozen=True)
class Trajectory:
    """The objects of one video, in pixels of ``image_size`` = (W, H). ``num_frames`` (optional) is the
    default frame count for :func:`frame_boxes`; ``timing`` says which path point is which frame
    (:func:`frame_paths`). Every frame-0 box must overlap the image."""

    objects: tuple[ObjectTrack, ...]
    image_size: tuple[int, int]
    num_frames: int | None = None
    timing: str = "resample"

    def __post_init__(self):
        objs = self.objects
        if not isinstance(objs, (list, tuple)) or len(objs) == 0:
            raise TrajectoryError(f"objects = {_short.repr(objs)} must be a non-empty list of ObjectTrack; "
                                  "add at least one object")
        for i, o in enumerate(objs):
            if not isinstance(o, ObjectTrack):
                raise TrajectoryError(f"objects[{i}] = {_short.repr(o)} is not an ObjectTrack")
        size = _image_size(self.image_size)
        object.__setattr__(self, "objects", tuple(objs))
        object.__setattr__(self, "image_size", size)
        object.__setattr__(self, "num_frames", _num_frames(self.num_frames))
        _timing(self.timing)
        for i, o in enumerate(objs):
            if not _in_image(o.box, size):
                raise TrajectoryError(f"objects[{i}] {o.name!r}: box = {list(o.box)} lies entirely outside the "
                                      f"{size[0]}x{size[1]} image; draw the frame-0 box on the image")

    @classmethod
    def single(cls, box, path, image_size=REFERENCE_IMAGE_SIZE, *, target_box=None, query_points=(),
               name: str = "", num_frames: int | None = None) -> "Trajectory":
        track = ObjectTrack(box=box, path=path, target_box=target_box, query_points=query_points, name=name)
        return cls((track,), image_size, num_frames)

    @classmethod
    def static(cls, box, image_size=REFERENCE_IMAGE_SIZE, *, query_points=(), name: str = "",
               num_frames: int | None = None) -> "Trajectory":
        return cls((ObjectTrack.static(box, query_points, name),), image_size, num_frames)

    def rescaled(self, resize_map) -> "Trajectory":
        """Map boxes, paths and query points through a :class:`~anyi2v_lab.geometry.ResizeMap` whose
        ``src_size`` is this trajectory's ``image_size``; the result is in ``dst_size`` pixels."""
        if tuple(resize_map.src_size) != self.image_size:
            raise TrajectoryError(f"resize_map.src_size = {resize_map.src_size} differs from image_size = "
                                  f"{self.image_size}; build the map from the image the trajectory was drawn on")
        objs = []
        for o in self.objects:
            tb = None if o.target_box is None else resize_map.boxes(o.target_box)
            qp = resize_map.points(np.reshape(o.query_points, (-1, 2)))
            objs.append(ObjectTrack(box=resize_map.boxes(o.box), path=resize_map.points(o.path), target_box=tb,
                                    query_points=qp, name=o.name))
        return Trajectory(tuple(objs), resize_map.dst_size, self.num_frames, self.timing)

    def with_timing(self, timing: str) -> "Trajectory":
        """The same trajectory with another ``timing`` ('resample' or 'first-frames')."""
        return Trajectory(self.objects, self.image_size, self.num_frames, _timing(timing))

    # --- JSON -------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        d = {"schema": SCHEMA, "version": VERSION, "image_size": list(self.image_size)}
        if self.num_frames is not None:
            d["num_frames"] = self.num_frames
        if self.timing != "resample":  # files of the default timing stay as they were
            d["timing"] = self.timing
        d["objects"] = [o.to_dict() for o in self.objects]
        return d

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_json(cls, obj_or_str, image_size=None, *, timing: str | None = None) -> "Trajectory":
        """Parse our schema or the reference format (auto-detected) from a dict or a JSON string.
        ``image_size`` sets the reference format's image size (default 512x512); for our schema it must
        match the file's or be None. ``timing`` overrides the file's: ours says it (default
        'resample'), the reference format is 'first-frames' (its command line keeps the first F points)."""
        obj = obj_or_str
        if isinstance(obj, (str, bytes, bytearray)):
            try:
                obj = json.loads(obj)
            except (ValueError, RecursionError) as e:  # JSONDecodeError and bad UTF-8 are ValueErrors
                raise TrajectoryError(f"not valid JSON: {e}") from None
        if not isinstance(obj, dict):
            raise TrajectoryError(f"a trajectory must be a JSON object, got {type(obj).__name__}")
        if timing is not None:
            _timing(timing, "timing argument")
        if "schema" in obj:
            traj = _from_ours(obj, image_size)
        elif "bounding_box" in obj:
            traj = _from_reference(obj, REFERENCE_IMAGE_SIZE if image_size is None else image_size)
        else:
            traj = None
        if traj is not None:
            return traj if timing is None else traj.with_timing(timing)
        raise TrajectoryError(f"unrecognised trajectory with keys {sorted(map(str, obj))[:8]}; expected "
                              f'"schema": "{SCHEMA}" or the reference keys {list(_REF_KEYS)}')

    @classmethod
    def load(cls, path, image_size=None, *, timing: str | None = None) -> "Trajectory":
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except FileNotFoundError:
            raise TrajectoryError(f"trajectory file not found: {os.fspath(path)!r}") from None
        except (OSError, UnicodeDecodeError) as e:
            raise TrajectoryError(f"cannot read trajectory file {os.fspath(path)!r}: {e}") from None
        try:
            return cls.from_json(text, image_size, timing=timing)
        except TrajectoryError as e:
            raise TrajectoryError(f"{os.fspath(path)}: {e}") from None

    def save(self, path, overwrite: bool = False) -> None:
        """Write our schema atomically (temp file in the same folder, then ``os.replace``); an existing
        file is an error unless ``overwrite=True``."""
        with atomic_path(path, overwrite=overwrite) as tmp:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(self.to_json() + "\n")


def _from_ours(d: dict, image_size) -> Trajectory:
    if d["schema"] != SCHEMA:
        raise TrajectoryError(f"schema = {_short.repr(d['schema'])} is not {SCHEMA!r}")
    if d.get("version") != VERSION or isinstance(d.get("version"), bool):
        raise TrajectoryError(f"version = {_short.repr(d.get('version'))} is unknown; this anyi2v-lab reads "
                              f"version {VERSION} (upgrade anyi2v-lab for newer files)")
    extra = set(d) - _TOP_KEYS
    if extra:
        raise TrajectoryError(f"unknown key(s) {sorted(map(str, extra))}; allowed: {sorted(_TOP_KEYS)}")
    size = _image_size(d.get("image_size"))
    if image_size is not None and _image_size(image_size, "image_size argument") != size:
        raise TrajectoryError(f"image_size argument {image_size} differs from the file's {list(size)}; "
                              "use Trajectory.rescaled to change the image size")
    objs = d.get("objects")
    if not isinstance(objs, list) or not objs:
        raise TrajectoryError(f"objects = {_short.repr(objs)} must be a non-empty list")
    tracks = []
    for i, o in enumerate(objs):
        if not isinstance(o, dict):
            raise TrajectoryError(f"objects[{i}] = {_short.repr(o)} must be an object with keys box, path, ...")
        extra = set(o) - _OBJECT_KEYS
        missing = {"box", "path"} - set(o)
        if extra or missing:
            raise TrajectoryError(f"objects[{i}]: unknown keys {sorted(map(str, extra))}, missing "
                                  f"{sorted(missing)}; allowed: {sorted(_OBJECT_KEYS)}")
        try:
            tracks.append(ObjectTrack(box=o["box"], path=o["path"], target_box=o.get("target_box"),
                                      query_points=o.get("query_points", []), name=o.get("name", "")))
        except TrajectoryError as e:
            raise TrajectoryError(f"objects[{i}]: {e}") from None
    return Trajectory(tuple(tracks), size, _num_frames(d.get("num_frames")), _timing(d.get("timing", "resample")))


def _from_reference(d: dict, image_size) -> Trajectory:
    size = _image_size(image_size, "image_size argument")
    extra = set(d) - set(_REF_KEYS)
    if extra:
        warnings.warn(f"reference trajectory: ignoring unknown key(s) {sorted(map(str, extra))}",
                      TrajectoryWarning, stacklevel=4)
    boxes = d["bounding_box"]
    if not isinstance(boxes, list) or not boxes:
        raise TrajectoryError(f"bounding_box = {_short.repr(boxes)} must be a non-empty list of [x1, y1, x2, y2]")
    n = len(boxes)
    cols = {}
    for k in _REF_KEYS[1:]:  # the reference zips these; a length mismatch silently dropped objects there
        v = d.get(k, [[] for _ in range(n)] if k == "query_point" else None)
        if k == "target_box" and v is None:
            v = [None] * n
        if not isinstance(v, list) or len(v) != n:
            raise TrajectoryError(f"{k} = {_short.repr(v)} must be a list with one entry per object "
                                  f"({n}, like bounding_box)")
        cols[k] = v
    tracks = []
    for i in range(n):
        box = _box(boxes[i], f"bounding_box[{i}]")
        tb = cols["target_box"][i]
        tb = None if tb is None else _box(tb, f"target_box[{i}]")
        path = _points(cols["center_traj"][i], f"center_traj[{i}]", 0)
        if not path:  # the app's rule: no path = static at the box centre
            path = (((box[0] + box[2]) / 2, (box[1] + box[3]) / 2),)
        tracks.append(ObjectTrack(box, path, tb, _points(cols["query_point"][i], f"query_point[{i}]", 0)))
    return Trajectory(tuple(tracks), size, timing="first-frames")


# --- per-frame geometry ---------------------------------------------------------------------------
def _frames(num_frames, where: str = "num_frames") -> int:
    n = _num_frames(num_frames, where)
    if n is None:
        raise TrajectoryError(f"{where} is not set; pass num_frames=16 or set Trajectory.num_frames")
    return n


def resample_path(points, num_frames: int) -> np.ndarray:
    """Resample a path: (N, 2) points -> (num_frames, 2) float64.

    Monotone cubic (PCHIP) per coordinate over a uniform parameter, point k at t = k / (N - 1), sampled at
    ``linspace(0, 1, num_frames)``: the reference app's rule. One point gives a static path, two points a
    linear one; repeated points are fine because the parameter is the index, not the arc length. The
    first and last samples are exactly the first and last points, and with N == num_frames the points
    come back unchanged.
    """
    pts = np.asarray(_points(points, "points", 1), dtype=np.float64)
    n, f = len(pts), _frames(num_frames)
    if n == f:
        return pts.copy()
    if n == 1:
        return np.repeat(pts, f, axis=0)
    from scipy.interpolate import PchipInterpolator

    out = PchipInterpolator(np.linspace(0.0, 1.0, n), pts, axis=0)(np.linspace(0.0, 1.0, f))
    out[-1] = pts[-1]  # an evaluation at t = 1 may land in the last interval, off by rounding
    out[0] = pts[0]
    return out


def frame_paths(traj: Trajectory, num_frames: int | None = None, timing: str | None = None) -> np.ndarray:
    """Per-frame path points (O, F, 2), by ``timing`` (default: the trajectory's own).

    * ``"resample"``: :func:`resample_path` spreads each whole path over the F frames.
    * ``"first-frames"``: point i is frame i, as the reference's command line reads its files
      (``scripts/AnyI2V_fp16.py`` indexes ``center_traj[i]`` for i < F): a longer path keeps its first F
      points (the rest is never reached), a one-point path stands still (the reference app's rule for an
      empty path), and a path of 2..F-1 points is an error (the reference fails on it with an IndexError).
    """
    f = _frames(traj.num_frames if num_frames is None else num_frames)
    timing = traj.timing if timing is None else _timing(timing)
    out = np.empty((len(traj.objects), f, 2))
    for i, o in enumerate(traj.objects):
        n = len(o.path)
        if timing == "resample" or n == 1:
            out[i] = resample_path(o.path, f)
        elif n >= f:
            out[i] = np.asarray(o.path[:f])
        else:
            raise TrajectoryError(
                f"objects[{i}] {o.name!r}: path has {n} points but {f} frames need {f} under timing "
                f"'first-frames' (point i is frame i, the reference's rule); use timing 'resample' "
                f"(--trajectory-timing resample) to spread the path over the {f} frames, or at most {n} frames")
    return out


def frame_boxes(traj: Trajectory, num_frames: int | None = None, timing: str | None = None) -> np.ndarray:
    """Unclipped per-frame boxes (O, F, 4) float64, (x0, y0, x1, y1), by the reference rule (docs/method.md §3):
    ``box_i = box + (d, d) + (-s_i, s_i)`` with ``d = path[i] - path[0]`` and
    ``s_i = (end_size - start_size) * i / (F - 1) / 2`` (the size changes symmetrically)."""
    f = _frames(traj.num_frames if num_frames is None else num_frames)
    paths = frame_paths(traj, f, timing)
    frac = np.arange(f) / (f - 1) if f > 1 else np.zeros(1)
    out = np.empty((len(traj.objects), f, 4))
    for i, o in enumerate(traj.objects):
        b, e = np.asarray(o.box), np.asarray(o.end_box)
        dw, dh = (e[2] - e[0]) - (b[2] - b[0]), (e[3] - e[1]) - (b[3] - b[1])
        grow = np.array([-dw, -dh, dw, dh]) * frac[:, None] / 2
        disp = paths[i] - paths[i][0]
        out[i] = b + np.concatenate([disp, disp], axis=-1) + grow
    return out


def _ranges(frames) -> str:
    parts, start = [], None
    for k, fr in enumerate(frames):
        if start is None:
            start = fr
        if k + 1 == len(frames) or frames[k + 1] != fr + 1:
            parts.append(str(start) if start == fr else f"{start}-{fr}")
            start = None
    return ",".join(parts)


def clip_frame_boxes(boxes, image_size, names=None) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Clip per-frame boxes (O, F, 4) to the image. Returns the clipped boxes and the (object, frame)
    pairs that changed, and warns once (:class:`TrajectoryWarning`) when any did. A frame wholly outside
    comes back with zero area (the loss skips it, as the reference does); a frame-0 box wholly outside is
    a :class:`TrajectoryError` (the reference called ``exit(1)`` mid-run)."""
    b = np.asarray(boxes, dtype=np.float64)
    if b.ndim != 3 or b.shape[-1] != 4 or not np.all(np.isfinite(b)):
        raise TrajectoryError(f"boxes must be a finite array (objects, frames, 4), got shape {b.shape}")
    w, h = _image_size(image_size)
    c = np.clip(b, 0.0, np.array([w, h, w, h], dtype=np.float64))
    outside = (c[..., 2] <= c[..., 0]) | (c[..., 3] <= c[..., 1])
    label = lambda o: f"object {o}" + (f" {names[o]!r}" if names is not None and names[o] else "")  # noqa: E731
    for o in range(b.shape[0]):
        if b.shape[1] and outside[o, 0]:
            raise TrajectoryError(f"{label(o)}: frame-0 box {b[o, 0].tolist()} lies entirely outside the {w}x{h} "
                                  "image; move the box onto the image")
    changed = np.any(c != b, axis=-1)
    clipped = [(int(o), int(f)) for o, f in zip(*np.nonzero(changed))]
    if clipped:
        lines = []
        for o in sorted({o for o, _ in clipped}):
            line = f"{label(o)} frames {_ranges([f for oo, f in clipped if oo == o])}"
            gone = np.nonzero(outside[o])[0].tolist()
            lines.append(line + (f" (wholly outside, skipped: {_ranges(gone)})" if gone else ""))
        warnings.warn(f"{len(clipped)} box(es) leave the {w}x{h} image and were clipped: " + "; ".join(lines),
                      TrajectoryWarning, stacklevel=2)
    return c, clipped


def query_offsets(obj: ObjectTrack, frame_box=None) -> np.ndarray:
    """Query points as (dx, dy) offsets from a box's top-left corner: (K, 2) float64.

    * A point strictly inside the frame-0 box keeps its offset; a point on or outside its border is
      replaced by the box centre (the reference's rule, strict inequalities included).
    * No query points gives one point at the box centre (the reference fails on an empty list).
    * ``frame_box`` (default: the frame-0 box) scales the offsets by its size over the frame-0 size, so a
      point keeps its relative place in a resized box. The reference kept frame-0 offsets (a bug of the reference).
    """
    x0, y0, x1, y1 = obj.box
    w, h = x1 - x0, y1 - y0
    pts = obj.query_points or (((x0 + x1) / 2, (y0 + y1) / 2),)
    off = np.array([(x - x0, y - y0) if (x0 < x < x1 and y0 < y < y1) else (w / 2, h / 2) for x, y in pts])
    if frame_box is not None:
        fb = _box(frame_box, "frame_box")
        off = off * np.array([(fb[2] - fb[0]) / w, (fb[3] - fb[1]) / h])
    return off


def query_points_at(obj: ObjectTrack, frame_box=None) -> np.ndarray:
    """Query points placed in ``frame_box`` (default: the frame-0 box), image coordinates (K, 2)."""
    fb = obj.box if frame_box is None else _box(frame_box, "frame_box")
    return np.asarray(fb[:2]) + query_offsets(obj, fb)
