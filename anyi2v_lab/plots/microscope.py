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
from ._figure import (
    BORDER_NOTE,
    FRAME_CELL,
    HEAT_CMAP,
    add_notes,
    colorbar,
    heat_panel,
    name_key,
    new_figure,
    scale_label,
    shared_scale,
    show_image,
)


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


def grid_figure(rows: list[tuple[str, list]], col_titles: list[str], title: str, marks=(),
                cell: float = FRAME_CELL[0], *, heat: dict | None = None, notes=()):
    """Rows ``(label, panels)`` of a grid; ``marks`` ``[(row, col, x, y)]`` put a cross on a panel.

    A panel is an image; with ``heat`` = ``dict(vmin=, vmax=, cmap=, label=)`` a panel may also be a pair
    ``(map, frame or None)``, drawn by :func:`~._figure.heat_panel` on that one scale, with one colour bar
    for all such panels. ``notes``: footnote lines."""
    cols = max(len(images) for _, images in rows)
    fig, axes = new_figure(len(rows), cols, (cell, cell))
    heated = []
    for r, (label, images) in enumerate(rows):
        for c in range(cols):
            ax, name = axes[r, c], col_titles[c] if r == 0 and c < len(col_titles) else None
            if c >= len(images):
                ax.set_axis_off()
            elif isinstance(images[c], tuple):
                heat_panel(ax, *images[c], vmin=heat["vmin"], vmax=heat["vmax"], cmap=heat["cmap"], title=name)
                heated.append(ax)
            else:
                show_image(ax, images[c], name)
        axes[r, 0].set_ylabel(label, fontsize=8)
    for r, c, x, y in marks:
        axes[r, c].plot([x], [y], marker="+", color="cyan", markersize=10, mew=2)
    if heated:
        colorbar(fig, axes, vmin=heat["vmin"], vmax=heat["vmax"], cmap=heat["cmap"], label=heat["label"])
    fig.suptitle(title, fontsize=9)
    add_notes(fig, *notes)
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
    one set of centroids) of ``point`` at ``steps`` (default five of its steps) in ``frames``.

    A one-cell ring at the border is in the features (the UNet's convolutions pad with zeros), not in
    the drawing; the footnote says so and gives the point's full name."""
    point = point or data.points[0]
    frames = _frames(data, frames)
    steps = spread(data.feature_steps(point), 5) if steps is None else list(steps)
    get = {"pca": data.pca_rgb, "clusters": data.cluster_rgb}.get(view)
    if get is None:
        raise ValueError(f"view={view!r}: use 'pca' or 'clusters'")
    rows = [(s.label, [get(point, s)[f] for f in frames]) for s in steps]
    what = "PCA-RGB, one basis for every step and frame" if view == "pca" else "clusters, one set of centroids"
    return grid_figure(rows, [f"frame {f}" for f in frames], f"{short_name(point)}: {what}",
                       notes=(name_key([point]), BORDER_NOTE))


def _backdrop(data, step, overlay: bool = True) -> tuple[np.ndarray | None, str]:
    """The frames a map of ``step`` is drawn over: that step's x0 when kept, else the generated video
    (none with ``overlay=False``)."""
    if not overlay:
        return None, ""
    if step is not None and step in set(data.x0_steps) and data.x0(step).shape[0] == data.num_frames:
        return data.x0(step), "over that step's x0"
    if data.frames is not None:
        return data.frames, "over the generated video"
    return None, ""


def _over(maps, under, frames) -> list[tuple]:
    """The ``(map, frame)`` panels of ``frames``: each frame's map over its frame of ``under`` (or alone)."""
    return [(maps[f], None if under is None else under[f]) for f in frames]


def plot_point_attention(data, point: str | None = None, step=None, frame: int = 0, xy=None, frames=None,
                         heads: bool = False, cmap: str = HEAT_CMAP, overlay: bool = True):
    """Self-attention of the query at pixel ``xy`` of ``frame`` against the keys of every frame, at
    ``step`` (default the point's last), averaged over heads (and one row per head with ``heads``),
    drawn over the x0 frames of that step when kept (else over the generated video), above the x0
    frames themselves. The weights of all frames sum to 1; every panel shares one colour scale (0 to
    the largest weight shown), with a colour bar."""
    point = point or data.attention_points[0]
    frames = _frames(data, frames)
    step = step or data.feature_steps(point)[-1]
    W, H = data.frame_size
    xy = (W / 2, H / 2) if xy is None else xy
    cell = data.cell_of(point, xy)
    rows = [("mean of heads", data.self_attention(point, step, frame, cell))]
    if heads:
        rows += [(f"head {j}", data.self_attention(point, step, frame, cell, head=j)) for j in range(data.heads(point))]
    under, where = _backdrop(data, step, overlay)
    vmin, vmax = shared_scale(np.stack([m[frames] for _, m in rows]), 0.0)
    images = [(label, _over(m, under, frames)) for label, m in rows]
    if step in set(data.x0_steps):
        images.append(("x0", [data.x0(step)[f] for f in frames]))
    mark = (xy[0], xy[1]) if under is not None else (cell[1], cell[0])
    marks = [(0, frames.index(frame), *mark)] if frame in frames else []
    heat = dict(vmin=vmin, vmax=vmax, cmap=cmap, label=scale_label("attention weight", vmin, vmax))
    return grid_figure(images, [f"frame {f}" for f in frames],
                       f"{short_name(point)} at {step.label}: where cell {cell} of frame {frame} looks {where}", marks,
                       heat=heat, notes=(name_key([point]),))


def plot_word_attention(data, words=None, frames=None, step=None, head: int | None = None, cmap: str = HEAT_CMAP,
                        overlay: bool = True):
    """Cross-attention to each of ``words`` (default every prompt token), averaged over the layers, the
    heads (or one ``head``) and every step (or one ``step``), as DAAM does, drawn over the generated
    video when kept. Every word and frame shares one colour scale (0 to the largest weight shown), so
    a word that draws little attention everywhere stays dim; the colour bar says the scale."""
    frames = _frames(data, frames)
    words = list(range(len(data.words))) if words is None else list(words)
    maps = [(data.words[w] if isinstance(w, int) else str(w), data.cross_attention(w, step, head)) for w in words]
    vmin, vmax = shared_scale(np.stack([m[frames] for _, m in maps]), 0.0)
    under, drawn = _backdrop(data, None, overlay)  # the generated video: a word's map spans the steps
    rows = [(label, _over(m, under, frames)) for label, m in maps]
    where = "every step" if step is None else step.label
    heat = dict(vmin=vmin, vmax=vmax, cmap=cmap, label=scale_label("attention to the word", vmin, vmax))
    return grid_figure(rows, [f"frame {f}" for f in frames],
                       f"cross-attention per word (mean over layers, {'heads' if head is None else f'head {head}'}, "
                       f"{where}){', ' + drawn if drawn else ''}", heat=heat)


def plot_loss_masks(data, step=None, frames=None, cmap: str = HEAT_CMAP, overlay: bool = True):
    """The method's loss weights of each object at an optimisation ``step`` (default the last kept),
    the mean over the aligned layers (0.5: one of two layers' masks covers the cell), drawn over the
    x0 of that step when kept (else the generated video), on one scale 0 to 1 with a colour bar."""
    frames = _frames(data, frames)
    step = step or data.mask_steps[-1]
    masks = data.loss_masks(step)
    under, where = _backdrop(data, step, overlay)
    rows = [(f"object {o}", _over(masks[o], under, frames)) for o in range(masks.shape[0])]
    heat = dict(vmin=0.0, vmax=1.0, cmap=cmap, label="loss weight\n(0 to 1, every panel)")
    return grid_figure(rows, [f"frame {f}" for f in frames],
                       f"loss masks at {step.label} (mean over aligned layers) {where}", heat=heat)
