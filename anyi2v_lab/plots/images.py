"""A labelled grid of images: frame 0 of several variants, a video's frames, condition images, maps."""
from __future__ import annotations

import math
from typing import Mapping

import numpy as np

from ._figure import FRAME_CELL, colorbar, new_figure, scale_label, shared_scale, show_image


def plot_images(images, *, cols: int | None = None, titles=None, title: str | None = None,
                cell: float = FRAME_CELL[0], cmap: str = "gray", vmin: float | None = None,
                vmax: float | None = None, label: str | None = None):
    """``images`` is a mapping ``label -> (H, W, 3)`` (or ``(H, W)``) array, a sequence of them, or a
    video ``(N, H, W, 3)``; one panel each, ``cols`` per row (all in one row by default), ``cell``
    inches a panel (a 64 px frame is drawn at least 3x), pixels and cells drawn as flat squares.

    2-D arrays are maps of values (a difference, a norm): they share one colour scale, ``vmin`` to
    ``vmax`` (default 0, or the minimum when negative, to the largest value of all maps), in ``cmap``,
    with one colour bar titled ``label`` (default "value") that says the scale, so panels compare.
    """
    if isinstance(images, Mapping):
        titles, arrays = list(images), [np.asarray(v) for v in images.values()]
    else:
        arrays = [np.asarray(v) for v in images]
        titles = list(titles) if titles is not None else [str(i) for i in range(len(arrays))]
    if not arrays:
        raise ValueError("plot_images needs at least one image")
    if len(titles) != len(arrays):
        raise ValueError(f"{len(titles)} titles for {len(arrays)} images")
    cols = cols or len(arrays)
    rows = math.ceil(len(arrays) / cols)
    fig, axes = new_figure(rows, cols, (cell, cell))
    maps = [a for a in arrays if a.ndim == 2]
    lo, hi = shared_scale(np.concatenate([m.ravel() for m in maps]), vmin, vmax) if maps else (None, None)
    for k, ax in enumerate(axes.ravel()):
        if k < len(arrays):
            scale = dict(cmap=cmap, vmin=lo, vmax=hi) if arrays[k].ndim == 2 else {}
            show_image(ax, arrays[k], titles[k], **scale)
        else:
            ax.set_axis_off()
    if maps:
        shared = "one scale for every map" if len(maps) > 1 else "this map"
        colorbar(fig, axes, vmin=lo, vmax=hi, cmap=cmap, label=scale_label(label or "value", lo, hi, shared))
    if title:
        fig.suptitle(title, fontsize=10)
    return fig
