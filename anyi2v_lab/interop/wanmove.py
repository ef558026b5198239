"""Wan-Move's point tracks (ali-vilab/Wan-Move, ``generate.py`` ``--track`` / ``--track_visibility``,
``wan/wan_move.py: generate``; ``examples/example_tracks.npy`` and ``example_visibility.npy``).

Two ``.npy`` files: tracks, float32 ``(1, F, N, 2)`` (or ``(F, N, 2)``), ``(x, y)`` pixels of the input
image (Wan-Move scales them to the video size), and visibility, bool ``(1, F, N)`` (or ``(F, N)``);
F = 81 frames (4n + 1) at 16 fps. Its Gradio demo saves them as ``tracks.npy`` and ``visibility.npy``
beside ``input_image.jpg``; MoveBench names them ``<id>_tracks.npy`` and ``<id>_visibility.npy``.

Reading: the visibility file is the ``visibility`` argument, else the tracks file's name with
``tracks`` replaced by ``visibility``; each track becomes an object by the point-track rule in
:mod:`._common`. Image size: the ``image_size`` argument or ``input_image.jpg``'s. Writing: both files
(visibility named by the same rule), one track per query point (or box centre) over ``num_frames``
frames, visible while inside the image. Lost: boxes, names, grouping, hidden-frame positions.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..trajectory import Trajectory
from ._common import check_free, fail, image_size_for, read_npy, tracks_to_trajectory, trajectory_to_tracks, write_npy

NAME = "wanmove"
SUFFIXES = (".npy",)
DEFAULT_FRAMES = 81
IMAGE_NAMES = ("input_image.jpg",)


def visibility_path(tracks_path) -> Path:
    p = Path(tracks_path)
    stem = p.stem
    i = stem.rfind("tracks")
    name = stem[:i] + "visibility" + stem[i + 6:] if i >= 0 else stem + "_visibility"
    return p.with_name(name + p.suffix)


def read(path, *, image_size=None, visibility=None, box_size=None, groups=None) -> Trajectory:
    t = read_npy(path, "tracks")
    if t.ndim == 4 and t.shape[0] == 1:
        t = t[0]
    if t.ndim != 3 or t.shape[2] != 2 or t.shape[0] < 1 or t.shape[1] < 1:
        fail(path, "tracks", f"has shape {t.shape}; Wan-Move tracks are (1, frames, points, 2) (x, y) pixels")
    vpath = Path(visibility) if visibility is not None else visibility_path(path)
    v = read_npy(vpath, "visibility")
    if v.ndim == 3 and v.shape[0] == 1:
        v = v[0]
    if v.shape != t.shape[:2]:
        fail(vpath, "visibility", f"has shape {v.shape}; it must match the tracks' (frames, points) = "
                                  f"{t.shape[:2]} (with a leading 1 allowed)")
    size = image_size_for(path, image_size, IMAGE_NAMES)
    return tracks_to_trajectory(list(t.transpose(1, 0, 2)), list(v.T > 0.5), size, path, box_size=box_size,
                                groups=groups)


def write(traj: Trajectory, path, *, num_frames: int = DEFAULT_FRAMES, overwrite: bool = False) -> list:
    vpath = visibility_path(path)
    check_free([path, vpath], overwrite)
    tracks, visible, _ = trajectory_to_tracks(traj, num_frames)
    write_npy(path, tracks[None].astype(np.float32), overwrite)
    write_npy(vpath, visible[None], overwrite)
    return [path, vpath]
