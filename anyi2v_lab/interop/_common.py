"""What the format modules share: file errors that name the field, loading, atomic writing, the image
size rule, and the mapping between point tracks and our boxed objects.

Point tracks (ATI, Wan-Move, MOFA-Video, DragAnything's centre paths) carry no box. Reading them, each
group of tracks (by default one track per group) becomes one object:

* path: the mean of the group's tracks per frame; frames where a track is hidden are filled linearly
  from its visible neighbours (held at the ends);
* box: the box around the group's frame-0 points, widened by ``box_size / 2`` on each side, so one
  point gives a square of side ``box_size`` (default: an eighth of the image's shorter side);
* target_box: for two or more points, the box scaled about its centre by how much the points spread
  apart by the last frame, x and y separately (an axis without frame-0 spread takes the other axis's
  ratio); otherwise none (constant size);
* query_points: the group's frame-0 points.

Writing point tracks, each object gives one track per query point (the box centre if it has none),
moved with the object's per-frame box (so the points follow both the path and the size change), and
a point is visible while it lies inside the image.
"""
from __future__ import annotations

import io
import json
import os
import warnings
from pathlib import Path

import numpy as np

from ..io import atomic_path
from ..trajectory import (ObjectTrack, Trajectory, TrajectoryError, TrajectoryWarning, _image_size, frame_boxes,
                          query_offsets, resample_path)


def format_hint(names) -> str:
    """How to name the format, on the command line and in Python."""
    names = sorted(names)
    one = names[0] if len(names) == 1 else "NAME"
    choice = "" if len(names) == 1 else f", NAME one of {names}"
    return f"--trajectory-format {one} on the command line, format={one!r} in Python{choice}".replace("'NAME'", "NAME")


def fail(path, field: str, msg: str):
    """Raise the one error shape for a malformed file: ``trajectory file P: field 'F' msg``."""
    where = f"field '{field}' " if field else ""
    raise TrajectoryError(f"trajectory file {os.fspath(path)}: {where}{msg}") from None


def read_json(path):
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TrajectoryError(f"trajectory file not found: {os.fspath(path)!r}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise TrajectoryError(f"cannot read trajectory file {os.fspath(path)!r}: {e}") from None
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as e:
        fail(path, "", f"is not valid JSON: {e}")


_NPY_MAGIC = b"\x93NUMPY"


def _not_npy(head: bytes) -> str:
    """What a file that lacks the .npy magic is, from its first bytes."""
    if head.startswith(b"PK"):
        return "a zip archive (an .npz?); give the .npy inside it"
    if head[:1] == b"\x80":
        return "a Python pickle, which is never loaded; save the array with np.save"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return "binary data of another kind; save the array with np.save"
    return f"a text file beginning {text[:40]!r}; save the array with np.save (np.loadtxt reads text)"


def read_npy(path, field: str = "array") -> np.ndarray:
    if not Path(path).is_file():
        raise TrajectoryError(f"trajectory file not found: {os.fspath(path)!r}")
    with open(path, "rb") as f:
        head = f.read(64)
    if not head.startswith(_NPY_MAGIC):  # np.load would call anything else "pickled data"
        fail(path, "", f"is not a NumPy .npy file (np.save writes those): it is {_not_npy(head)}")
    try:
        a = np.load(path, allow_pickle=False)
    except ValueError as e:
        if "allow_pickle" in str(e):
            fail(path, "", "holds Python objects (a pickled object array), which are never loaded; save a "
                           "numeric array with np.save")
        fail(path, "", f"is not a readable NumPy .npy array (np.save): {e}")
    except (OSError, EOFError) as e:
        fail(path, "", f"is not a readable NumPy .npy array (np.save): {e}")
    return numeric(a, path, field)


def numeric(a, path, field: str) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype.kind not in "biuf":
        fail(path, field, f"has dtype {a.dtype}; expected numbers")
    a = a.astype(np.float64)
    if not np.all(np.isfinite(a)):
        fail(path, field, "holds NaN or infinite values; give finite pixel coordinates")
    return a


def points(v, path, field: str, min_len: int = 1) -> np.ndarray:
    """A JSON list of [x, y] points -> (N, 2) float64, or a file error naming ``field``."""
    try:
        a = np.asarray(v, dtype=np.float64)
    except (ValueError, TypeError):
        a = None
    if a is None or a.ndim != 2 or a.shape[1] != 2 or len(a) < min_len or not isinstance(v, list):
        fail(path, field, f"must be a list of at least {min_len} [x, y] pixel point(s), got {str(v)[:60]}")
    if not np.all(np.isfinite(a)):
        fail(path, field, "holds NaN or infinite values; give finite pixel coordinates")
    return a


def image_size_for(path, image_size, siblings: tuple[str, ...] = ()) -> tuple[int, int]:
    """The size, in pixels, of the image the file's coordinates refer to: the ``image_size`` argument,
    else the size of a sibling image the peer's code reads (e.g. SG-I2V's ``img.png``)."""
    if image_size is not None:
        return _image_size(tuple(image_size), "image_size argument")
    for name in siblings:
        p = Path(path).parent / name
        if p.is_file():
            from ..conditions import ConditionError, image_file_size
            try:
                return image_file_size(p, "image")
            except ConditionError as e:
                fail(path, "", f"gives its image size by {name} beside it, but {e}")
    beside = f" (or put {' / '.join(siblings)} beside it)" if siblings else ""
    raise TrajectoryError(f"trajectory file {os.fspath(path)}: the format stores pixels of the input image but "
                          f"not its size; pass image_size=(width, height) of that image{beside}")


def check_free(paths, overwrite: bool) -> None:
    for p in paths:
        if Path(p).exists() and not overwrite:
            raise FileExistsError(f"{p} exists; pass overwrite=True or choose another path")


def write_bytes(path, data: bytes, overwrite: bool) -> None:
    with atomic_path(path, overwrite=overwrite) as tmp:
        Path(tmp).write_bytes(data)


def write_json(path, obj, overwrite: bool) -> None:
    write_bytes(path, (json.dumps(obj, indent=1) + "\n").encode("utf-8"), overwrite)


def write_npy(path, array: np.ndarray, overwrite: bool) -> None:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    write_bytes(path, buf.getvalue(), overwrite)


# --- point tracks <-> objects ---------------------------------------------------------------------
def default_box_size(image_size) -> float:
    return float(max(4, round(min(image_size) / 8)))


def fill_hidden(track: np.ndarray, visible: np.ndarray) -> np.ndarray | None:
    """Positions of hidden frames filled linearly from the visible ones (held at the ends); None if the
    track is never visible."""
    idx = np.nonzero(visible)[0]
    if len(idx) == 0:
        return None
    if len(idx) == len(track):
        return track
    f = np.arange(len(track))
    return np.stack([np.interp(f, idx, track[idx, k]) for k in range(2)], axis=-1)


def _groups(groups, n: int, path) -> list[list[int]]:
    if groups is None:
        return [[i] for i in range(n)]
    if groups == "all":
        return [list(range(n))]
    ok = isinstance(groups, (list, tuple)) and all(
        isinstance(g, (list, tuple)) and g and all(isinstance(i, int) and 0 <= i < n for i in g) for g in groups)
    if not ok:
        raise TrajectoryError(f"groups = {str(groups)[:60]} must be None (one object per track), 'all', or a "
                              f"list of non-empty lists of track indices 0..{n - 1} (file {os.fspath(path)})")
    return [list(g) for g in groups]


def _spread_ratio(first: np.ndarray, last: np.ndarray) -> tuple[float, float] | None:
    s0, s1 = np.ptp(first, axis=0), np.ptp(last, axis=0)
    r = [s1[k] / s0[k] if s0[k] > 1e-6 else None for k in range(2)]
    if r[0] is None and r[1] is None:
        return None
    r = [r[1] if r[0] is None else r[0], r[0] if r[1] is None else r[1]]
    return (r[0], r[1]) if max(abs(r[0] - 1), abs(r[1] - 1)) > 1e-9 else None


def tracks_to_trajectory(tracks, visible, image_size, path, *, box_size=None, groups=None,
                         names=None, boxes=None) -> Trajectory:
    """``tracks``: list of (F_i, 2) pixel positions; ``visible``: list of (F_i,) bools or None (all
    visible). ``boxes`` (optional, per track) replaces the made-up box of a one-track group."""
    size = _image_size(tuple(image_size), "image_size")
    s = default_box_size(size) if box_size is None else float(box_size)
    if not s > 0:
        raise TrajectoryError(f"box_size = {box_size!r} must be a positive number of pixels")
    filled, skipped = [], []
    for i, t in enumerate(tracks):
        f = fill_hidden(t, np.ones(len(t), bool) if visible is None else visible[i])
        filled.append(f)
        if f is None:
            skipped.append(i)
    objects = []
    for g in _groups(groups, len(tracks), path):
        g = [i for i in g if filled[i] is not None]
        if not g:
            continue
        if len(g) == 1:
            pts = filled[g[0]][None]
        else:
            n = max(len(filled[i]) for i in g)
            pts = np.stack([resample_path(filled[i], n) for i in g])
        first = pts[:, 0]
        box = (*(first.min(0) - s / 2), *(first.max(0) + s / 2))
        if boxes is not None and len(g) == 1 and boxes[g[0]] is not None:
            box = tuple(boxes[g[0]])
        ratio = _spread_ratio(first, pts[:, -1]) if len(g) > 1 else None
        target = None
        if ratio is not None:
            c, half = (np.add(box[:2], box[2:]) / 2), (np.subtract(box[2:], box[:2]) / 2 * ratio)
            target = (*(c - half), *(c + half))
        name = names[g[0]] if names is not None and len(g) == 1 else ""
        x0, y0, x1, y1 = box
        if min(x1, size[0]) <= max(x0, 0) or min(y1, size[1]) <= max(y0, 0):
            skipped.append(g[0] if len(g) == 1 else tuple(g))
            continue
        try:
            objects.append(ObjectTrack(box=box, path=pts.mean(0), target_box=target, query_points=first, name=name))
        except TrajectoryError as e:
            fail(path, f"track {g[0]}", f"gives an invalid object: {e}")
    if not objects:
        fail(path, "tracks", f"has no track that is visible and starts inside the {size[0]}x{size[1]} image; "
                             "check image_size")
    if skipped:
        warnings.warn(f"{os.fspath(path)}: track(s) {skipped} never visible or starting outside the "
                      f"{size[0]}x{size[1]} image were skipped", TrajectoryWarning, stacklevel=4)
    return Trajectory(tuple(objects), size)


def trajectory_to_tracks(traj: Trajectory, num_frames: int) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Per-frame point tracks of ``traj``: positions (F, N, 2), visibility (F, N) bool (inside the image),
    and the object index of each track."""
    boxes = frame_boxes(traj, num_frames)
    cols, owner = [], []
    for i, o in enumerate(traj.objects):
        off = query_offsets(o)  # (K, 2) from the frame-0 box's top-left corner
        b0 = np.asarray(o.box)
        scale = (boxes[i, :, 2:] - boxes[i, :, :2]) / (b0[2:] - b0[:2])  # (F, 2)
        for k in range(len(off)):
            cols.append(boxes[i, :, :2] + off[k] * scale)
            owner.append(i)
    tracks = np.stack(cols, axis=1)
    w, h = traj.image_size
    visible = (tracks[..., 0] >= 0) & (tracks[..., 0] < w) & (tracks[..., 1] >= 0) & (tracks[..., 1] < h)
    return tracks, visible, owner
