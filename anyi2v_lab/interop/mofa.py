"""MOFA-Video's drag tracks (MyNiuuu/MOFA-Video, ``MOFA-Video-Traj/run_gradio.py``: ``tracking_points``).

MOFA-Video writes no trajectory file: its Gradio demo keeps the drags in the state
``tracking_points.constructor_args['value']``, a list of tracks, each a list of clicked ``[x, y]``
points in pixels of the preprocessed first frame (shorter side resized to 512, both sides cropped to
multiples of 64), and interpolates each track to the 25 frames of SVD-XT by monotone cubic (PCHIP)
interpolation over a uniform parameter, the same rule as ours. A motion-brush mask (which pixels
move with the drags) rides beside it. We store that state as JSON: the bare list (what
``json.dumps`` of the state gives), or ``{"tracking_points": [...]}``. Only the second names its
format: a bare list is read when the format is given, never detected.

Reading: each track becomes an object by the point-track rule in :mod:`._common` (clicks kept as the
path, a ``box_size`` square around the first click, the first click as query point); ``image_size``
is required. Writing: one track per query point (or box centre) with ``num_frames`` per-frame points.
Lost: boxes (made up again on reading), names, the grouping of tracks into objects, the motion brush.
"""
from __future__ import annotations

from ..trajectory import Trajectory
from ._common import (
    check_free,
    fail,
    image_size_for,
    points,
    read_json,
    tracks_to_trajectory,
    trajectory_to_tracks,
    write_json,
)

NAME = "mofa"
SUFFIXES = (".json",)
DEFAULT_FRAMES = 25
IMAGE_NAMES = ()  # no image beside the file: the size comes from the caller


def is_mofa(d) -> bool:
    """Whether ``d`` names itself MOFA-Video's (``{"tracking_points": ...}``); a bare list names no format,
    so detection leaves it to the caller (``read`` takes one)."""
    return isinstance(d, dict) and set(d) == {"tracking_points"}


def read(path, *, image_size=None, box_size=None, groups=None) -> Trajectory:
    d = read_json(path)
    if not (is_mofa(d) or isinstance(d, list)):
        fail(path, "tracking_points", "is missing; MOFA-Video tracks are a JSON list of tracks "
                                      "[[[x, y], ...], ...] or {\"tracking_points\": [...]}")
    tracks = d["tracking_points"] if isinstance(d, dict) else d
    if not isinstance(tracks, list) or not tracks:
        fail(path, "tracking_points", f"must be a non-empty list of tracks [[x, y], ...], got {str(tracks)[:60]}")
    size = image_size_for(path, image_size)
    tracks = [points(t, path, f"tracking_points[{i}]") for i, t in enumerate(tracks)]
    return tracks_to_trajectory(tracks, None, size, path, box_size=box_size, groups=groups)


def write(traj: Trajectory, path, *, num_frames: int = DEFAULT_FRAMES, overwrite: bool = False) -> list:
    check_free([path], overwrite)
    tracks, _, _ = trajectory_to_tracks(traj, num_frames)
    write_json(path, [tracks[:, n].tolist() for n in range(tracks.shape[1])], overwrite)
    return [path]
