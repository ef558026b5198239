"""Matplotlib figures built without pyplot: nothing is registered globally and nothing is shown.

A returned :class:`~matplotlib.figure.Figure` displays in Jupyter as the cell's value (it renders
itself as PNG) and can be saved with ``fig.savefig``; no ``plt.close`` is needed.

Conventions every image figure follows, so a learner reads them the same way everywhere:

- a frame or map panel is :data:`FRAME_CELL` inches at :data:`DPI`, about 200 screen pixels: a 64 px
  frame is drawn at least 3x, and grids of cells (feature maps, masks) are drawn nearest-neighbour, one
  flat square per cell;
- a map whose values matter (attention, mask weights, differences) has a colour bar, and panels that
  are compared share one scale, said in the colour bar's label (a diffuse map stays dim);
- on a frame, a map is an overlay: its colour over the frame, its opacity growing with its value (zero
  is transparent), the map's cells stretched over the frame's pixels;
- layers are named by their short hook names (``up2.a0.t0.q``); the figure's footnote gives the full
  name once (:func:`name_key`).
"""
from __future__ import annotations

import io

import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from ..hooks import full_name, short_name

DPI = 100
FRAME_CELL = (2.4, 2.4)  # inches a panel: ~200 px at DPI once titles and gaps are taken, 3x a 64 px frame
HEAT_CMAP = "hot"  # red to yellow: stands out on the toy's grey and blue frames
SMALL_IMAGE = 160  # px: frames and maps up to this size are enlarged, drawn nearest-neighbour
OVERLAY_ALPHA = 0.7  # opacity of a map at the top of its scale; zero is transparent
FRAME_UNDER_HEAT = 0.6  # a frame under a map is dimmed to this (over black): the map's white top stays visible
BORDER_NOTE = ("the outer ring of cells is real, not a display artefact: the UNet's 3x3 convolutions pad\n"
               "with zeros, so cells at the image border see zeros and compute different features")


class LabFigure(Figure):
    """A Figure that renders itself as a notebook cell's value whatever the backend: without pyplot,
    IPython only knows how to show a Figure once the inline backend has been activated."""

    def _repr_png_(self) -> bytes:
        buf = io.BytesIO()
        self.savefig(buf, format="png", bbox_inches="tight")
        return buf.getvalue()


def new_figure(rows: int, cols: int, cell: tuple[float, float] = FRAME_CELL, **kw) -> tuple[Figure, np.ndarray]:
    """A constrained-layout figure and its ``(rows, cols)`` array of axes, ``cell`` inches a panel."""
    fig = LabFigure(figsize=(max(cols * cell[0], 3.0), max(rows * cell[1], 2.0)), layout="constrained", dpi=DPI)
    axes = fig.subplots(rows, cols, squeeze=False, **kw)
    return fig, axes


def show_image(ax, image, title: str | None = None, **kw):
    """``imshow`` without ticks, nearest-neighbour (one flat square per pixel or cell) for images small
    enough to be enlarged; returns the AxesImage."""
    # a large image (an upscaled overlay) is shrunk into the panel, where nearest would drop thin lines
    big = max(np.shape(image)[:2]) > SMALL_IMAGE
    im = ax.imshow(image, interpolation="antialiased" if big else "nearest", **kw)
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


def shared_scale(maps, vmin: float | None = None, vmax: float | None = None) -> tuple[float, float]:
    """One ``(vmin, vmax)`` for every panel drawn from ``maps`` (any shape): 0 (or the minimum, when
    negative) to the maximum, unless given."""
    m = np.asarray(maps, dtype=np.float64)
    lo = min(0.0, float(np.nanmin(m))) if vmin is None else float(vmin)
    hi = float(np.nanmax(m)) if vmax is None else float(vmax)
    return lo, hi if hi > lo else lo + 1.0


def heat_panel(ax, heat, frame=None, *, vmin: float, vmax: float, cmap: str = HEAT_CMAP, title: str | None = None):
    """A map ``(h, w)`` on ``ax``: alone (opaque, nearest), or over ``frame`` ``(H, W, 3)`` as an overlay
    whose opacity grows from 0 at ``vmin`` to :data:`OVERLAY_ALPHA` at ``vmax``, each map cell covering
    its ``(H/h, W/w)`` block of pixels. The frame is dimmed (:data:`FRAME_UNDER_HEAT`), so the top of the
    scale stands out on a bright object too. Returns the map's AxesImage (its array is ``heat``)."""
    heat = np.asarray(heat, dtype=np.float32)
    if frame is None:
        return show_image(ax, heat, title, cmap=cmap, vmin=vmin, vmax=vmax)
    frame = np.asarray(frame)
    ax.set_facecolor("black")
    show_image(ax, frame, title).set_alpha(FRAME_UNDER_HEAT)
    alpha = OVERLAY_ALPHA * np.clip((heat - vmin) / (vmax - vmin), 0, 1)
    H, W = frame.shape[:2]
    return ax.imshow(heat, cmap=cmap, vmin=vmin, vmax=vmax, alpha=alpha, interpolation="nearest",
                     extent=(-0.5, W - 0.5, H - 0.5, -0.5))


def cell_rectangle(box, grid_hw: tuple[int, int], frame_hw: tuple[int, int] | None, **kw) -> Rectangle:
    """The outline of cells ``box`` = (x0, y0, x1, y1) (end exclusive) of a ``grid_hw`` grid: in cell
    coordinates, or in the pixels of a ``frame_hw`` frame it is drawn over."""
    x0, y0, x1, y1 = (float(v) for v in box)
    sy, sx = (1.0, 1.0) if frame_hw is None else (frame_hw[0] / grid_hw[0], frame_hw[1] / grid_hw[1])
    return Rectangle((x0 * sx - 0.5, y0 * sy - 0.5), (x1 - x0) * sx, (y1 - y0) * sy, fill=False, **kw)


def colorbar(fig, axes, *, vmin: float, vmax: float, cmap: str, label: str):
    """One colour bar for ``axes`` (the panels sharing the scale), opaque whatever the panels' opacity."""
    mappable = ScalarMappable(Normalize(vmin, vmax), cmap)
    bar = fig.colorbar(mappable, ax=np.asarray(axes).ravel().tolist(), shrink=0.9, pad=0.01, fraction=0.04)
    bar.set_label(label, fontsize=8)
    bar.ax.tick_params(labelsize=7)
    return bar


def scale_label(what: str, vmin: float, vmax: float, shared: str = "one scale for every panel") -> str:
    """A colour bar label that says the scale: ``what`` (``vmin`` to ``vmax``, ``shared``)."""
    return f"{what}\n({vmin:.3g} to {vmax:.3g}, {shared})"


def name_key(names) -> str:
    """``short = full`` for each name whose short hook name differs, for a figure's footnote."""
    pairs = dict.fromkeys((short_name(n), full_name(short_name(n))) for n in names)
    return "\n".join(f"{s} = {f}" for s, f in pairs if s != f)


def add_notes(fig, *lines: str) -> None:
    """Small grey footnotes under the figure (empty lines are dropped)."""
    text = "\n".join(line for line in lines if line)
    if text:
        fig.supxlabel(text, fontsize=7, color="0.35")
        width, height = fig.get_size_inches()  # room for the notes, so they do not shrink the panels
        fig.set_size_inches(width, height + 0.13 * (text.count("\n") + 1) + 0.05)
