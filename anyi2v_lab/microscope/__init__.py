"""The denoising microscope: what the model thinks the video is, and what its layers see, at every step.

* :func:`microscope_capture`: what to capture during ``generate`` for it;
* :class:`MicroscopeData`: precomputed linked views over step x hook point x head x frame (x0 video,
  PCA-RGB in one basis per hook point, shared-centroid clusters, loss masks, self-attention from a point,
  cross-attention per word), from a generation or from a ``run_with_cache`` cache;
* :func:`export_figures`: a figure set for a paper or a slide, with its provenance;
* :func:`sequence_views`: a Wan transformer's capture as ``MicroscopeData``'s arguments (per latent frame).
"""
from .capture import microscope_capture, microscope_names
from .data import MicroscopeData
from .export import export_figures
from .sequence import sequence_views
from .steps import Step

__all__ = ["MicroscopeData", "Step", "export_figures", "microscope_capture", "microscope_names", "sequence_views"]
