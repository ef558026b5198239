"""Jupyter widgets (anywidget, no build step): draw trajectories, play results, inspect features.

* :class:`TrajectoryCanvas`: draw boxes, paths and query points on a condition image; ``.trajectory``.
* :class:`VideoPlayer`: frames with box, path and mask overlays; ``VideoPlayer.from_result(result)``.
* :class:`FeatureViewer`: PCA-RGB features, attention of a clicked pixel and semantic masks over one
  frame slider; ``FeatureViewer.from_result(result)`` / ``.from_cache(cache)``.
* :func:`show_run`: ``show_run(result, key)`` shows a new run in place in the player and the viewer made
  with ``key=`` (a ``TrajectoryCanvas(..., key=...)`` keeps its drawing when its cell runs again).
* :class:`Microscope`: one linked view over step x hook point x head x frame of a generation: x0, cluster
  masks, PCA-RGB, self-attention from a clicked point, cross-attention per word;
  ``Microscope.from_result(result)`` / ``.from_cache(cache)`` / ``Microscope(MicroscopeData)``.

Displayed, each widget also carries a static picture of its state and a sentence (``static.py``): what
GitHub, nbviewer or an HTML export show, where no kernel runs the widget.

The front ends are plain ES modules in ``js/`` (``bundle.esm`` inlines the modules they share:
``logic.js``, ``draw.js``, and for the two feature views ``features.js`` and ``panels.js``); every view
colours with ``palette.js``, the twin of :mod:`anyi2v_lab.palette`. FeatureViewer and Microscope share
their Python helpers in ``features.py``; the logic that changes a drawing lives in ``editing.py``.
"""
from .canvas import TrajectoryCanvas
from .editing import Draft, EditorState, EventError, apply_event
from .live import show_run
from .microscope import Microscope
from .player import VideoPlayer
from .viewer import FeatureViewer

__all__ = ["TrajectoryCanvas", "VideoPlayer", "FeatureViewer", "Microscope", "Draft", "EditorState", "EventError",
           "apply_event", "show_run"]
