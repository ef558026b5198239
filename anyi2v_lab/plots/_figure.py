"""Matplotlib figures built without pyplot: nothing is registered globally and nothing is shown.

A returned :class:`~matplotlib.figure.Figure` displays in Jupyter as the cell's value (it renders
itself as PNG) and can be saved with ``fig.savefig``; no ``plt.close`` is needed.
"""
from __future__ import annotations

import io

import numpy as np
from matplotlib.figure import Figure


class LabFigure(Figure):
    """A Figure that renders itself as a notebook cell's value whatever the backend: without pyplot,
    IPython only knows how to show a Figure once the inline backend has been activated."""

    def _repr_png_(self) -> bytes:
        buf = io.BytesIO()
        self.savefig(buf, format="png", bbox_inches="tight")
        return buf.getvalue()


def new_figure(rows: int, cols: int, cell: tuple[float, float] = (1.6, 1.6), **kw) -> tuple[Figure, np.ndarray]:
    """A constrained-layout figure and its ``(rows, cols)`` array of axes."""
    fig = LabFigure(figsize=(max(cols * cell[0], 3.0), max(rows * cell[1], 2.0)), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False, **kw)
    return fig, axes


def show_image(ax, image, title: str | None = None, **kw):
    """``imshow`` without ticks; returns the AxesImage."""
    im = ax.imshow(image, interpolation="nearest", **kw)
    ax.set_xticks([])
    ax.set_yticks([])
    if title is not None:
        ax.set_title(title, fontsize=8)
    return im


def pick_frames(num_frames: int, frames) -> list[int]:
    """All frames, or the requested indices (checked)."""
    if frames is None:
        return list(range(num_frames))
    frames = [int(f) for f in frames]
    bad = [f for f in frames if not 0 <= f < num_frames]
    if bad:
        raise ValueError(f"frames {bad} do not exist; there are {num_frames} frames")
    return frames


def image_row(axes_row, images, frames: list[int], label: str = "frames") -> None:
    """Draw uint8 ``(F, H, W, 3)`` images along one row of axes."""
    images = np.asarray(images)
    for ax, j in zip(axes_row, frames):
        show_image(ax, images[j])
    axes_row[0].set_ylabel(label, fontsize=8)
