"""ObjMC on generated videos, offline: DragAnything's object motion-control metric with a pluggable tracker.

* :mod:`.tracker` the interface, :mod:`.lucas_kanade` the default tracker (OpenCV, no weights),
  :mod:`.cotracker` CoTracker from a local checkpoint;
* :mod:`.inscribed` the query point of a mask, :mod:`.objmc` ObjMC of one video;
* :mod:`.manifest` the cases, :mod:`.runner` the resumable evaluation over a manifest.
"""
from .cotracker import CoTrackerTracker
from .inscribed import inscribed_circle_centre
from .lucas_kanade import LucasKanadeTracker
from .manifest import EvalCase, ManifestError, load_case, read_manifest
from .objmc import VideoObjMC, objmc_on_video, target_points
from .runner import CaseInputs, main_evaluate, pipeline_generator, run_evaluation, summarise
from .tracker import PointTracker, TrackerUnavailable

__all__ = ["inscribed_circle_centre", "LucasKanadeTracker", "EvalCase", "ManifestError", "load_case",
           "read_manifest", "VideoObjMC", "objmc_on_video", "target_points", "CaseInputs", "main_evaluate",
           "pipeline_generator", "run_evaluation", "summarise", "PointTracker", "TrackerUnavailable",
           "CoTrackerTracker"]

