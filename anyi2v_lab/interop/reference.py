"""The AnyI2V reference's trajectory JSON (FudanCVL/AnyI2V, ``__assets__/trajectory/*.json``).

``{"bounding_box": [[x0, y0, x1, y1], ...], "target_box": [...], "center_traj": [[[x, y], ...], ...],
"query_point": [[[x, y], ...], ...]}``: parallel lists, one entry per object, in pixels of the 512x512
image the reference resizes every input to. ``center_traj`` is a per-frame path: the reference's script
gives frame i the point ``center_traj[i]`` (only displacements from the first point matter), so a video of
F frames uses the first F points; its app stores drawn paths resampled to exactly 16 points.
``target_box`` sets the box size at the last frame.

Reading (:meth:`Trajectory.from_json`) keeps that timing: the trajectory comes back with
``timing="first-frames"`` (a path of 2..F-1 points is then an error at F frames, as in the reference);
``timing="resample"`` spreads each whole path over the frames instead, as our own format does. Writing
rescales to 512x512 (stretching, as the reference does), writes each path as ``num_frames`` per-frame
points under the trajectory's timing and puts the box centre in for an object without query points (the
reference fails on an empty list). Lost: names, path points beyond ``num_frames``, and the image size.
"""
from __future__ import annotations

from ..geometry import ResizeMap
from ..trajectory import REFERENCE_IMAGE_SIZE, Trajectory, TrajectoryError, frame_paths
from ._common import check_free, fail, file_label, read_json, write_json

NAME = "reference"
SUFFIXES = (".json",)
DEFAULT_FRAMES = 16


def read(path, *, image_size=None, timing: str = "first-frames") -> Trajectory:
    """``timing``: 'first-frames' (point i is frame i, the reference's rule) or 'resample' (the whole
    path spread over the frames)."""
    d = read_json(path)
    if not isinstance(d, dict) or "bounding_box" not in d:
        fail(path, "bounding_box", "is missing; the reference format is a JSON object with bounding_box, "
                                   "target_box, center_traj and query_point")
    try:
        return Trajectory.from_json(d, image_size, timing=timing)
    except TrajectoryError as e:
        raise e.located(file_label(path)) from None


def to_dict(traj: Trajectory, num_frames: int = DEFAULT_FRAMES) -> dict:
    if traj.image_size != REFERENCE_IMAGE_SIZE:
        traj = traj.rescaled(ResizeMap(traj.image_size, REFERENCE_IMAGE_SIZE, "stretch"))
    paths = frame_paths(traj, num_frames)
    objs = traj.objects
    return {
        "bounding_box": [list(o.box) for o in objs],
        "target_box": [list(o.end_box) for o in objs],
        "center_traj": [p.tolist() for p in paths],
        "query_point": [[list(q) for q in o.query_points] or [[(o.box[0] + o.box[2]) / 2, (o.box[1] + o.box[3]) / 2]]
                        for o in objs],
    }


def write(traj: Trajectory, path, *, num_frames: int = DEFAULT_FRAMES, overwrite: bool = False) -> list:
    check_free([path], overwrite)
    write_json(path, to_dict(traj, num_frames), overwrite)
    return [path]
