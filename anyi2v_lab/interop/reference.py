"""The AnyI2V reference's trajectory JSON (FudanCVL/AnyI2V, ``__assets__/trajectory/*.json``).

``{"bounding_box": [[x0, y0, x1, y1], ...], "target_box": [...], "center_traj": [[[x, y], ...], ...],
"query_point": [[[x, y], ...], ...]}``: parallel lists, one entry per object, in pixels of the 512x512
image the reference resizes every input to. Its script uses the first 16 ``center_traj`` points as the
per-frame path (only displacements from the first point matter); ``target_box`` sets the box size at the
last frame. Reading is :meth:`Trajectory.from_json`'s; writing rescales to 512x512 (stretching, as the
reference does), resamples each path to exactly ``num_frames`` points and puts the box centre in for an
object without query points (the reference fails on an empty list). Lost: names, sub-frame path detail
beyond ``num_frames`` points, and the image size.
"""
from __future__ import annotations

from ..geometry import ResizeMap
from ..trajectory import REFERENCE_IMAGE_SIZE, Trajectory, TrajectoryError, frame_paths
from ._common import check_free, fail, read_json, write_json

NAME = "reference"
SUFFIXES = (".json",)
DEFAULT_FRAMES = 16


def read(path, *, image_size=None) -> Trajectory:
    d = read_json(path)
    if not isinstance(d, dict) or "bounding_box" not in d:
        fail(path, "bounding_box", "is missing; the reference format is a JSON object with bounding_box, "
                                   "target_box, center_traj and query_point")
    try:
        return Trajectory.from_json(d, image_size)
    except TrajectoryError as e:
        fail(path, "", str(e))


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
