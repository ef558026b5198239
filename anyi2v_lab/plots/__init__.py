"""Figures for looking inside AnyI2V, built from inspection records and activation caches.

Static figures are matplotlib :class:`~matplotlib.figure.Figure` objects made without pyplot (nothing is
shown or registered; a figure displays as a notebook cell's value); the interactive token cloud is a
plotly figure (plotly and umap-learn, from the ``lab`` extra, are imported only when it is drawn), and
:func:`plot_cloud_views` draws it flat for viewers without JavaScript.

>>> from anyi2v_lab import plots
>>> res = generate(pipe, condition, prompt, trajectory, config, keep_masks=True, keep_pca=True)
>>> plots.plot_losses(res.record)
>>> plots.plot_masks(res.record, iteration=0, images=res.frames)
>>> plots.plot_pca_frames(res.record)
>>> plots.plot_videos({"with the trajectory": res.frames, "without": free.frames}, boxes=res.record.boxes)
"""
from ..hooks import short_name
from .attention import plot_attention
from .data import (
    attention_of_pixel,
    box_centres,
    frame_maps,
    mask_grid,
    normalise_rgb,
    pca_rgb,
    pixel_cell,
    temporal_consistency,
    token_index,
    tokens_of,
    variance_curve,
)
from .feature_views import embed_tokens, plot_cloud_views, plot_explained_variance, plot_pca_frames, plot_tokens_3d
from .images import plot_images
from .microscope import plot_feature_steps, plot_loss_masks, plot_point_attention, plot_word_attention, plot_x0_steps
from .optimisation import plot_losses, plot_masks, plot_paths
from .videos import plot_videos

__all__ = [
    "plot_attention", "plot_explained_variance", "plot_images", "plot_losses", "plot_masks", "plot_paths",
    "plot_pca_frames", "plot_tokens_3d", "plot_cloud_views", "plot_videos", "plot_x0_steps", "plot_feature_steps",
    "plot_point_attention", "plot_word_attention", "plot_loss_masks", "attention_of_pixel", "box_centres",
    "embed_tokens", "frame_maps", "mask_grid", "normalise_rgb", "pca_rgb", "pixel_cell", "short_name",
    "temporal_consistency", "token_index", "tokens_of", "variance_curve",
]
