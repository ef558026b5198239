"""The point-tracker interface: any object with ``track(video, points) -> (tracks, visible)``.

Coordinates are the package's: (x, y) pixels with pixel (row i, column j) centred at (j + 0.5, i + 0.5),
as in :mod:`anyi2v_lab.toy.world` and :mod:`anyi2v_lab.trajectory`. Trackers that work in pixel-index
coordinates (OpenCV, CoTracker: pixel centres at integers) convert at their boundary.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


class TrackerUnavailable(ImportError):
    """A tracker's optional dependency or weights are missing; the message names what to install or pass."""


@runtime_checkable
class PointTracker(Protocol):
    """Tracks points given at frame 0 through a video.

    ``track(video, points)``: ``video`` (F, H, W, 3) uint8 RGB, ``points`` (N, 2) float (x, y) at frame 0.
    Returns ``tracks`` (N, F, 2) float64 with ``tracks[:, 0] == points``, and ``visible`` (N, F) bool.
    ``name`` says which tracker and settings made the tracks (it goes into reports). A tracker may also
    have ``preflight()``, which the runner calls before any generation to fail early (missing package,
    unreadable weights).
    """

    name: str

    def track(self, video: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


def check_video_points(video, points) -> tuple[np.ndarray, np.ndarray]:
    """Validate a tracker's inputs before any work; returns them as (uint8 video, float64 points)."""
    v = np.asarray(video)
    if v.ndim != 4 or v.shape[-1] != 3 or v.dtype != np.uint8 or v.shape[0] < 1:
        raise ValueError(f"video must be (F, H, W, 3) uint8 RGB, got shape {v.shape} dtype {v.dtype}")
    p = np.asarray(points, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 2 or not np.isfinite(p).all():
        raise ValueError(f"points must be a finite (N, 2) array of (x, y) pixels, got shape {p.shape}")
    return v, p


def check_tracks(tracks, visible, n: int, f: int, who: str = "tracker") -> tuple[np.ndarray, np.ndarray]:
    """Validate a tracker's outputs (a third-party tracker may return anything)."""
    t, vis = np.asarray(tracks, dtype=np.float64), np.asarray(visible, dtype=bool)
    if t.shape != (n, f, 2) or vis.shape != (n, f):
        raise ValueError(f"{who} returned tracks {t.shape} and visible {vis.shape}; expected ({n}, {f}, 2) "
                         f"and ({n}, {f})")
    return t, vis
