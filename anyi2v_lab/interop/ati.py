"""ATI's track file (bytedance/ATI, ``wan/utils/motion.py: get_tracks_inference``;
``tools/trajectory_editor/app.py`` writes them; ``examples/tracks/*.pth``).

A ``.pth`` file holding, through ``torch.save``, the bytes of an ``.npz`` archive (``np.savez``) with one
float32 array ``"array"`` of shape ``(N, 121, 1, 3)`` (or ``(121, N, 1, 3)``): for N points at 121 frames
(24 fps), ``8 * (x, y, visible)``, with x, y pixels of the input image and visible 0 or 1 (the editor
pads short tracks with invisible zeros). ATI divides by 8, normalises by the shorter side and takes 81
frames of the 121.

Reading: each track becomes an object by the point-track rule in :mod:`._common` (hidden frames
filled, a ``box_size`` square, the frame-0 point as query point); ``image_size`` is required (ATI
pairs the file with an image in its YAML). The whole 121-frame span maps onto our video, so motion is
time-compressed, not cut. Writing: one track per query point (or box centre) over ``num_frames``
frames, visible while inside the image. Lost: boxes, names, grouping, and hidden-frame positions.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from ..trajectory import Trajectory, TrajectoryError
from ._common import check_free, fail, image_size_for, numeric, tracks_to_trajectory, trajectory_to_tracks, write_bytes

NAME = "ati"
SUFFIXES = (".pth", ".pt")
DEFAULT_FRAMES = 121
QUANT = 8.0
IMAGE_NAMES = ()  # no image beside the file: the size comes from the caller


def _load_array(path) -> np.ndarray:
    import torch

    if not Path(path).is_file():
        raise TrajectoryError(f"trajectory file not found: {str(path)!r}")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many types for a bad file
        fail(path, "", f"cannot be loaded with torch.load(weights_only=True): {str(e)[:200]}")
    if not isinstance(raw, (bytes, bytearray)):
        fail(path, "", f"holds a {type(raw).__name__}; ATI's track file holds the bytes of an .npz archive")
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as z:
            if "array" not in z.files:
                fail(path, "array", f"is missing from the archive (keys: {z.files})")
            return z["array"]
    except (OSError, ValueError, EOFError) as e:
        fail(path, "", f"holds bytes that are not an .npz archive: {e}")


def read(path, *, image_size=None, box_size=None, groups=None) -> Trajectory:
    a = numeric(_load_array(path), path, "array")
    if a.ndim == 4 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim != 3 or a.shape[2] != 3:
        fail(path, "array", f"has shape {a.shape}; ATI tracks are (points, frames, 1, 3) of 8 * (x, y, visible)")
    if a.shape[0] == DEFAULT_FRAMES and a.shape[1] != DEFAULT_FRAMES:
        a = a.transpose(1, 0, 2)  # (121, N, 3), the other layout ATI accepts
    a = a / QUANT
    size = image_size_for(path, image_size)
    return tracks_to_trajectory(list(a[..., :2]), list(a[..., 2] > 0.5), size, path, box_size=box_size,
                                groups=groups)


def to_array(traj: Trajectory, num_frames: int = DEFAULT_FRAMES) -> np.ndarray:
    tracks, visible, _ = trajectory_to_tracks(traj, num_frames)
    a = np.concatenate([tracks, visible[..., None]], axis=-1).transpose(1, 0, 2)[:, :, None]  # (N, F, 1, 3)
    return (QUANT * a).astype(np.float32)


def write(traj: Trajectory, path, *, num_frames: int = DEFAULT_FRAMES, overwrite: bool = False) -> list:
    import torch

    check_free([path], overwrite)
    npz = io.BytesIO()
    np.savez_compressed(npz, array=to_array(traj, num_frames))
    pth = io.BytesIO()
    torch.save(npz.getvalue(), pth)
    write_bytes(path, pth.getvalue(), overwrite)
    return [path]
