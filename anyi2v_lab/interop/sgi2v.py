"""SG-I2V's ``traj.npy`` (Kmcode1/SG-I2V, ``inference.py: read_condition``; ``examples/<id>/traj.npy``).

One float array of shape ``(N, 2 + F, 2)`` per example folder, beside the first frame ``img.png``: for
each of N boxes, rows 0 and 1 are its top-left and bottom-right corners ``(x, y)``, rows 2.. are the
box centre at each of the F frames (F = 14, Stable Video Diffusion's length). Pixels of ``img.png``
(SG-I2V rescales both to 1024x576). The box moves by ``centre[i] - centre[0]`` with a constant size:
the same rule as ours without a target box.

Reading: box = the two corners, path = the F centres, no query points; the image size is the
``image_size`` argument or ``img.png``'s. Writing: the box and the path resampled to ``num_frames``
points. Lost: ``target_box`` (SG-I2V boxes keep their size), query points, names and the image size.
"""
from __future__ import annotations

import numpy as np

from ..trajectory import ObjectTrack, Trajectory, TrajectoryError, frame_paths
from ._common import check_free, fail, file_label, image_size_for, read_npy, write_npy

NAME = "sgi2v"
SUFFIXES = (".npy",)
DEFAULT_FRAMES = 14
IMAGE_NAMES = ("img.png",)


def read(path, *, image_size=None) -> Trajectory:
    a = read_npy(path, "traj")
    if a.ndim != 3 or a.shape[2] != 2 or a.shape[1] < 3 or a.shape[0] < 1:
        fail(path, "traj", f"has shape {a.shape}; SG-I2V's traj.npy is (boxes, 2 + frames, 2): two box "
                           "corners then one centre per frame, (x, y) pixels")
    size = image_size_for(path, image_size, IMAGE_NAMES)
    objs = []
    for i, t in enumerate(a):
        try:
            objs.append(ObjectTrack((*t[0], *t[1]), t[2:]))
        except TrajectoryError as e:
            raise e.within(f"traj[{i}]").located(file_label(path)) from None
    try:
        return Trajectory(tuple(objs), size)
    except TrajectoryError as e:
        raise e.located(file_label(path)) from None


def to_array(traj: Trajectory, num_frames: int = DEFAULT_FRAMES) -> np.ndarray:
    paths = frame_paths(traj, num_frames)
    corners = np.array([[o.box[:2], o.box[2:]] for o in traj.objects], dtype=np.float64)
    return np.concatenate([corners, paths], axis=1)


def write(traj: Trajectory, path, *, num_frames: int = DEFAULT_FRAMES, overwrite: bool = False) -> list:
    check_free([path], overwrite)
    write_npy(path, to_array(traj, num_frames), overwrite)
    return [path]
