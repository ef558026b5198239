"""Figures of the denoising microscope: rows of steps (or heads, or words) by columns of frames, drawn
from a :class:`~anyi2v_lab.microscope.MicroscopeData`.

>>> plots.plot_x0_steps(data)                      # what the model thinks the video is, step by step
>>> plots.plot_feature_steps(data, view="pca")     # one PCA basis for every step and frame
>>> plots.plot_point_attention(data, xy=(30, 40))  # where a point looks, in every frame
>>> plots.plot_word_attention(data, ["square"])    # where the cells look at one word
"""
from __future__ import annotations

import numpy as np

from ..hooks import short_name
from ._figure import new_figure, show_image


def spread(items: list, n: int) -> list:
    """At most ``n`` items, evenly spread, first and last included."""
    items = list(items)
    if len(items) <= n:
        return items
    return [items[int(round(k))] for k in np.linspace(0, len(items) - 1, n)]


def _frames(data, frames) -> list[int]:
    frames = spread(range(data.num_frames), 4) if frames is None else [int(f) for f in frames]
    bad = [f for f in frames if not 0 <= f < data.num_frames]
    if bad:
        raise ValueError(f"frames {bad} are out of range: the video has {data.num_frames} frames "
                         f"(0..{data.num_frames - 1})")
    return frames


def grid_figure(rows: list[tuple[str, list]], col_titles: list[str], title: str, marks=(), cell: float = 1.6):
    """Rows ``(label, images)`` of a grid; ``marks`` ``[(row, col, x, y)]`` put a cross on a panel."""
    cols = max(len(images) for _, images in rows)
    fig, axes = new_figure(len(rows), cols, (cell, cell))
    for r, (label, images) in enumerate(rows):
        for c in range(cols):
            if c < len(images):
                show_image(axes[r, c], images[c], col_titles[c] if r == 0 and c < len(col_titles) else None)
            else:
                axes[r, c].set_axis_off()
        axes[r, 0].set_ylabel(label, fontsize=8)
    for r, c, x, y in marks:
        axes[r, c].plot([x], [y], marker="+", color="cyan", markersize=10, mew=2)
    fig.suptitle(title, fontsize=9)
    return fig


def plot_x0_steps(data, steps=None, frames=None, phase: str = "sampling"):
    """The predicted clean video x0 at ``steps`` (default five of ``phase``'s steps) in ``frames``."""
    frames = _frames(data, frames)
    kept = [s for s in data.x0_steps if s.phase == phase]
    steps = spread(kept, 5) if steps is None else list(steps)
    rows = [(s.label, [data.x0(s)[min(f, data.x0(s).shape[0] - 1)] for f in frames]) for s in steps]
    return grid_figure(rows, [f"frame {f}" for f in frames], "predicted clean video x0 at each step")


def plot_feature_steps(data, point: str | None = None, steps=None, frames=None, view: str = "pca"):
    """PCA-RGB (``view="pca"``: one basis for every step and frame) or cluster labels (``"clusters"``:
    one set of centroids) of ``point`` at ``steps`` (default five of its steps) in ``frames``."""
    point = point or data.points[0]
    frames = _frames(data, frames)
    steps = spread(data.feature_steps(point), 5) if steps is None else list(steps)
    get = {"pca": data.pca_rgb, "clusters": data.cluster_rgb}.get(view)
    if get is None:
        raise ValueError(f"view={view!r}: use 'pca' or 'clusters'")
    rows = [(s.label, [get(point, s)[f] for f in frames]) for s in steps]
    what = "PCA-RGB, one basis for every step and frame" if view == "pca" else "clusters, one set of centroids"
    return grid_figure(rows, [f"frame {f}" for f in frames], f"{short_name(point)}: {what}")


def plot_point_attention(data, point: str | None = None, step=None, frame: int = 0, xy=None, frames=None,
                         heads: bool = False):
    """Self-attention of the query at pixel ``xy`` of ``frame`` against the keys of every frame, at
    ``step`` (default the point's last), averaged over heads (and one row per head with ``heads``),
    above the x0 frames of that step when kept."""
    point = point or data.attention_points[0]
    frames = _frames(data, frames)
    step = step or data.feature_steps(point)[-1]
    W, H = data.frame_size
    xy = (W / 2, H / 2) if xy is None else xy
    cell = data.cell_of(point, xy)
    rows = [("mean of heads", data.self_attention(point, step, frame, cell))]
    if heads:
        rows += [(f"head {j}", data.self_attention(point, step, frame, cell, head=j)) for j in range(data.heads(point))]
    images = [(label, [data.heat_rgb(m)[f] for f in frames]) for label, m in rows]
    if step in set(data.x0_steps):
        images.append(("x0", [data.x0(step)[f] for f in frames]))
    marks = [(0, frames.index(frame), cell[1], cell[0])] if frame in frames else []
    return grid_figure(images, [f"frame {f}" for f in frames],
                       f"{short_name(point)} at {step.label}: where cell {cell} of frame {frame} looks", marks)


def plot_word_attention(data, words=None, frames=None, step=None, head: int | None = None):
    """Cross-attention to each of ``words`` (default every prompt token), averaged over the layers, the
    heads (or one ``head``) and every step (or one ``step``), as DAAM does."""
    frames = _frames(data, frames)
    words = list(range(len(data.words))) if words is None else list(words)
    rows = [(data.words[w] if isinstance(w, int) else str(w), data.heat_rgb(data.cross_attention(w, step, head)))
            for w in words]
    where = "every step" if step is None else step.label
    return grid_figure([(label, [m[f] for f in frames]) for label, m in rows], [f"frame {f}" for f in frames],
                       f"cross-attention per word (mean over layers, {'heads' if head is None else f'head {head}'}, "
                       f"{where})")


def plot_loss_masks(data, step=None, frames=None):
    """The method's loss weights of each object at an optimisation ``step`` (default the last kept)."""
    frames = _frames(data, frames)
    step = step or data.mask_steps[-1]
    masks = data.loss_masks(step)
    rows = [(f"object {o}", [masks[o, f] for f in frames]) for o in range(masks.shape[0])]
    return grid_figure(rows, [f"frame {f}" for f in frames], f"loss masks at {step.label} (mean over aligned layers)")
