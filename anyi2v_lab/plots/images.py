"""A labelled grid of images: frame 0 of several variants, a video's frames, condition images."""
from __future__ import annotations

import math
from typing import Mapping

import numpy as np

from ._figure import new_figure, show_image


def plot_images(images, *, cols: int | None = None, titles=None, title: str | None = None, cell: float = 2.0):
    """``images`` is a mapping ``label -> (H, W, 3)`` (or ``(H, W)``) array, a sequence of them, or a
    video ``(N, H, W, 3)``; one panel each, ``cols`` per row (all in one row by default)."""
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
    for k, ax in enumerate(axes.ravel()):
        if k < len(arrays):
            show_image(ax, arrays[k], titles[k], cmap="gray" if arrays[k].ndim == 2 else None)
        else:
            ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=10)
    return fig
