"""ObjMC of one generated video: track each object's query point and measure how far it is from its target.

DragAnything (``utils/Eval_ObjMC/ObjMC.py``): ObjMC is the mean Euclidean distance, in pixels of the video
at its original size, between each object's target trajectory and the point tracked in the generated
video, pooled over every frame (frame 0 included, visibility ignored) and object. The query point of an
object is its mask's inscribed-circle centre at frame 0 (:mod:`.inscribed`); its target at frame f is
that point carried along the object's trajectory: the frame-0 box mapped onto the frame-f box
(:func:`anyi2v_lab.trajectory.frame_boxes`), so a point keeps its place in a moving, resizing box.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..metrics import objmc
from ..trajectory import Trajectory, frame_boxes
from .inscribed import inscribed_circle_centre
from .tracker import PointTracker, check_tracks


def target_points(trajectory: Trajectory, starts, num_frames: int) -> np.ndarray:
    """(O, F, 2): each object's frame-0 point ``starts[o]`` carried by its per-frame boxes."""
    boxes = frame_boxes(trajectory, num_frames)
    p = np.asarray(starts, dtype=np.float64)
    if p.shape != (len(trajectory.objects), 2):
        raise ValueError(f"starts must be ({len(trajectory.objects)}, 2), one point per object, got {p.shape}")
    lo, size = boxes[..., :2], boxes[..., 2:] - boxes[..., :2]
    rel = (p[:, None] - lo[:, :1]) / size[:, :1]
    return lo + rel * size


@dataclass
class VideoObjMC:
    """ObjMC of one video. ``objmc``: DragAnything's (every frame); ``objmc_visible``: frames where the
    tracker still sees the point. Arrays: ``query_points`` (O, 2), ``targets``/``tracks`` (O, F, 2),
    ``visible``/``distances`` (O, F)."""

    objmc: float
    objmc_visible: float
    query_points: np.ndarray
    targets: np.ndarray
    tracks: np.ndarray
    visible: np.ndarray
    distances: np.ndarray
    tracker: str

    def to_dict(self) -> dict:
        r = lambda a: np.round(a, 3).tolist()  # noqa: E731
        return {"objmc": self.objmc, "objmc_visible": self.objmc_visible,
                "visible_fraction": float(self.visible.mean()) if self.visible.size else float("nan"),
                "per_object": r(self.distances.mean(1)), "tracker": self.tracker,
                "query_points": r(self.query_points), "targets": r(self.targets), "tracks": r(self.tracks),
                "visible": self.visible.tolist(), "distances": r(self.distances)}


def objmc_on_video(video, masks, trajectory: Trajectory, tracker: PointTracker | None = None, *,
                   bounded_by_frame: bool = False) -> VideoObjMC:
    """``video`` (F, H, W, 3) uint8 at the trajectory's image size; ``masks`` (O, H, W) bool, one frame-0
    mask per trajectory object (same order). ``tracker`` defaults to :class:`LucasKanadeTracker`."""
    from .lucas_kanade import LucasKanadeTracker

    v = np.asarray(video)
    if v.ndim != 4 or v.shape[-1] != 3 or v.dtype != np.uint8:
        raise ValueError(f"video must be (F, H, W, 3) uint8, got shape {v.shape} dtype {v.dtype}")
    F, H, W = v.shape[:3]
    m = np.asarray(masks).astype(bool)
    if m.ndim == 2:
        m = m[None]
    O = len(trajectory.objects)
    if m.shape != (O, H, W):
        raise ValueError(f"masks must be ({O}, {H}, {W}): one frame-0 mask per trajectory object at the video's "
                         f"size, got {m.shape}")
    if tuple(trajectory.image_size) != (W, H):
        raise ValueError(f"trajectory.image_size = {tuple(trajectory.image_size)} but the video is {W}x{H}; "
                         "resize the video to the trajectory's image or rescale the trajectory")
    tracker = tracker or LucasKanadeTracker()
    starts = np.array([inscribed_circle_centre(mo, bounded_by_frame=bounded_by_frame) for mo in m])
    targets = target_points(trajectory, starts, F)
    tracks, visible = tracker.track(v, starts)
    tracks, visible = check_tracks(tracks, visible, O, F, getattr(tracker, "name", "tracker"))
    distances = np.linalg.norm(tracks - targets, axis=-1)
    seen = np.where(visible[..., None], tracks, np.nan)
    return VideoObjMC(objmc=objmc(targets, tracks)["objmc"], objmc_visible=objmc(targets, seen)["objmc"],
                      query_points=starts, targets=targets, tracks=tracks, visible=visible, distances=distances,
                      tracker=getattr(tracker, "name", type(tracker).__name__))
