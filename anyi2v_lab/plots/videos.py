"""Videos side by side: one row per variant, the same frames in each column, target boxes drawn."""
from __future__ import annotations

from typing import Mapping

import numpy as np
from matplotlib.patches import Rectangle

from ._figure import FRAME_CELL, new_figure, pick_frames, show_image

BOX_COLOURS = ["gold", "deepskyblue", "magenta", "lime", "darkorange"]


def plot_videos(videos: Mapping[str, np.ndarray], *, boxes=None, tracked=None, frames=None, title: str | None = None,
                cell: float = FRAME_CELL[0]):
    """Rows of frames, one row per labelled video (``label -> (F, H, W, 3)``), so variants of one scene
    (e.g. with and without a trajectory) compare column by column.

    ``boxes`` ``(O, F, 4)`` target boxes in frame pixels, drawn on every row; ``tracked`` ``label -> (O, F,
    2)`` centres found in that video (white dots; NaN: not found). ``frames``: which frames (default: 6
    spread over the video).
    """
    if not videos:
        raise ValueError("plot_videos needs at least one video")
    arrays = {k: np.asarray(v) for k, v in videos.items()}
    counts = {k: v.shape[0] for k, v in arrays.items()}
    if len(set(counts.values())) != 1:
        raise ValueError(f"the videos have different frame counts: {counts}")
    nf = next(iter(counts.values()))
    frames = pick_frames(nf, np.unique(np.linspace(0, nf - 1, min(6, nf)).round().astype(int)) if frames is None
                         else frames)
    boxes = None if boxes is None else np.asarray(boxes, dtype=np.float64)
    if boxes is not None and (boxes.ndim != 3 or boxes.shape[1:] != (nf, 4)):
        raise ValueError(f"boxes has shape {boxes.shape}; give (objects, {nf}, 4) in frame pixels")
    tracked = dict(tracked or {})
    fig, axes = new_figure(len(arrays), len(frames), (cell, cell))
    for r, (label, video) in enumerate(arrays.items()):
        for ax, j in zip(axes[r], frames):
            show_image(ax, video[j])
            for o in range(0 if boxes is None else boxes.shape[0]):
                x0, y0, x1, y1 = boxes[o, j]
                ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, linewidth=1,
                                       edgecolor=BOX_COLOURS[o % len(BOX_COLOURS)]))
            if label in tracked:
                for o, xy in enumerate(np.asarray(tracked[label], dtype=np.float64)[:, j]):
                    if np.isfinite(xy).all():
                        ax.plot(*xy, "o", markersize=4, markerfacecolor="white",
                                markeredgecolor=BOX_COLOURS[o % len(BOX_COLOURS)])
            if r == 0:
                ax.set_title(f"frame {j}", fontsize=8)
        axes[r, 0].set_ylabel(label, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig
