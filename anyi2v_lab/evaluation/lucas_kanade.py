"""The default offline tracker: OpenCV's pyramidal Lucas-Kanade with a forward-backward check.

Each point is followed frame to frame (Bouguet's pyramidal LK, ``cv2.calcOpticalFlowPyrLK``), then
tracked back one frame; a point whose backward track misses its start by more than ``fb_threshold``
pixels, or that LK reports lost, is invisible from then on (Kalal et al., "Forward-backward error",
ICPR 2010). An invisible point keeps moving with LK's estimate where LK has one, else stays put, so
every frame has a position (DragAnything's ObjMC counts every frame). No weights are downloaded.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .tracker import TrackerUnavailable, check_video_points


def import_cv2():
    try:
        import cv2
    except ImportError as e:
        raise TrackerUnavailable(
            "the Lucas-Kanade tracker needs OpenCV; install it with "
            "`pip install 'anyi2v-lab[eval]'` (or `pip install opencv-python-headless`)") from e
    return cv2


@dataclass(frozen=True)
class LucasKanadeTracker:
    """``win_size``: LK window side in pixels at full resolution; ``levels``: pyramid levels above it
    (each halves the size, so motions up to about ``win_size * 2**levels / 2`` px a frame are found);
    ``fb_threshold``: forward-backward error in pixels above which a point is lost."""

    win_size: int = 21
    levels: int = 3
    fb_threshold: float = 1.0
    iterations: int = 50
    epsilon: float = 1e-3

    def __post_init__(self):
        if not (isinstance(self.win_size, int) and self.win_size >= 3 and self.win_size % 2):
            raise ValueError(f"win_size = {self.win_size!r} must be an odd integer >= 3 (e.g. 21)")
        if not (isinstance(self.levels, int) and 0 <= self.levels <= 8):
            raise ValueError(f"levels = {self.levels!r} must be an integer in 0..8 (e.g. 3)")
        if not self.fb_threshold > 0:
            raise ValueError(f"fb_threshold = {self.fb_threshold!r} must be > 0 pixels (e.g. 1.0)")

    @property
    def name(self) -> str:
        return f"lucas-kanade(win={self.win_size}, levels={self.levels}, fb={self.fb_threshold})"

    def preflight(self) -> None:
        """Fail now, not after the first generation, when OpenCV is missing."""
        import_cv2()

    def track(self, video, points) -> tuple[np.ndarray, np.ndarray]:
        cv2 = import_cv2()
        v, p = check_video_points(video, points)
        F, N = v.shape[0], p.shape[0]
        tracks = np.empty((N, F, 2))
        visible = np.zeros((N, F), bool)
        tracks[:, 0], visible[:, 0] = p, True
        if N == 0:
            return tracks, visible
        lk = dict(winSize=(self.win_size, self.win_size), maxLevel=self.levels,
                  criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, self.iterations, self.epsilon))
        grey = [cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY) for f in v]
        # OpenCV puts pixel centres at integer coordinates, we at +0.5
        prev = (p - 0.5).astype(np.float32).reshape(-1, 1, 2)
        for f in range(1, F):
            nxt, st, _ = cv2.calcOpticalFlowPyrLK(grey[f - 1], grey[f], prev, None, **lk)
            back, st_b, _ = cv2.calcOpticalFlowPyrLK(grey[f], grey[f - 1], nxt, None, **lk)
            found = st.ravel() == 1
            fb = np.linalg.norm((back - prev).reshape(-1, 2), axis=1)
            ok = found & (st_b.ravel() == 1) & (fb <= self.fb_threshold)
            nxt = np.where(found[:, None, None], nxt, prev)
            visible[:, f] = visible[:, f - 1] & ok
            tracks[:, f] = nxt.reshape(-1, 2).astype(np.float64) + 0.5
            prev = nxt.astype(np.float32)
        return tracks, visible
