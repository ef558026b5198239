"""CoTracker (Karaev et al., facebookresearch/co-tracker) from a local checkpoint: optional, never downloaded.

DragAnything's ObjMC tracks with CoTracker2. Install the package from its repository
(``pip install git+https://github.com/facebookresearch/co-tracker``) and give the path of a checkpoint you
have (``cotracker2.pth`` for DragAnything's numbers, or a CoTracker3 ``scaled_offline.pth``). The
predictor is called as its README documents: ``model(video (B, T, 3, H, W) float 0..255, queries=(B, N, 3)
rows (t, x, y))`` -> ``pred_tracks (B, T, N, 2)``, ``pred_visibility (B, T, N)``, in pixel-index
coordinates (pixel centres at integers), which we shift by +0.5.
"""
from __future__ import annotations

import inspect
import os
from pathlib import Path

import numpy as np

from .tracker import TrackerUnavailable, check_tracks, check_video_points

INSTALL = "pip install git+https://github.com/facebookresearch/co-tracker"


def _predictor_class():
    try:
        from cotracker.predictor import CoTrackerPredictor
    except ImportError as e:
        raise TrackerUnavailable(f"the CoTracker tracker needs the cotracker package: {INSTALL}") from e
    return CoTrackerPredictor


class CoTrackerTracker:
    """``checkpoint``: path of CoTracker weights on this machine. ``v2``: the checkpoint is CoTracker2
    (default: guessed from a file name containing 'cotracker2'); ignored by packages before CoTracker3.
    The model loads on the first :meth:`track`; the path and the package are checked here."""

    def __init__(self, checkpoint: str | os.PathLike, device: str = "cpu", v2: bool | None = None):
        if checkpoint is None or not str(checkpoint):
            raise TrackerUnavailable("checkpoint is required for CoTracker: the path of its weights on this "
                                     "machine (nothing is downloaded); or use the default LucasKanadeTracker")
        path = Path(checkpoint)
        if not path.is_file():
            raise TrackerUnavailable(f"checkpoint = {os.fspath(checkpoint)!r} is not a file; pass the path of a "
                                     f"CoTracker checkpoint you have (e.g. cotracker2.pth)")
        self.checkpoint, self.device = path, device
        self.v2 = "cotracker2" in path.name.lower() if v2 is None else bool(v2)
        self._cls = _predictor_class()
        self._model = None

    @property
    def name(self) -> str:
        return f"cotracker({self.checkpoint.name})"

    def preflight(self) -> None:
        """Load the weights now, so that a bad checkpoint fails before any generation."""
        self._load()

    def _load(self):
        if self._model is None:
            kw = {"checkpoint": str(self.checkpoint)}
            if "v2" in inspect.signature(self._cls.__init__).parameters:
                kw["v2"] = self.v2
            try:
                self._model = self._cls(**kw).to(self.device)
            except Exception as e:  # noqa: BLE001 - any loading failure is the checkpoint's
                raise TrackerUnavailable(f"checkpoint = {os.fspath(self.checkpoint)!r} could not be loaded by "
                                         f"CoTracker ({type(e).__name__}: {e}); is it a CoTracker checkpoint "
                                         f"matching the installed package (v2={self.v2})?") from e
        return self._model

    def track(self, video, points) -> tuple[np.ndarray, np.ndarray]:
        import torch

        v, p = check_video_points(video, points)
        model = self._load()
        clip = torch.from_numpy(v).permute(0, 3, 1, 2)[None].float().to(self.device)
        q = np.concatenate([np.zeros((len(p), 1)), p - 0.5], axis=1)
        queries = torch.from_numpy(q).float()[None].to(self.device)
        with torch.no_grad():
            tracks, vis = model(clip, queries=queries)
        tracks = tracks[0].permute(1, 0, 2).cpu().numpy().astype(np.float64) + 0.5
        tracks, visible = check_tracks(tracks, vis[0].permute(1, 0).cpu().numpy(), len(p), len(v), self.name)
        tracks[:, 0] = p
        return tracks, visible
