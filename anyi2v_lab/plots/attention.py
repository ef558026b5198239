"""Where one pixel looks: self-attention maps of a query position, frame by frame."""
from __future__ import annotations

import numpy as np

from ..hooks import short_name
from ._figure import (
    HEAT_CMAP,
    add_notes,
    cell_rectangle,
    colorbar,
    heat_panel,
    image_row,
    name_key,
    new_figure,
    pick_frames,
    scale_label,
    shared_scale,
)
from .data import attention_of_pixel


def plot_attention(source, name: str | None = None, *, pixel, image_size=None, head: int | None = None,
                   frames=None, images=None, branch: str | None = "cond", hw=None, title: str | None = None,
                   key_frame: int | None = None, cmap: str = HEAT_CMAP, vmax: float | None = None, overlay: bool = True,
                   **select):
    """The self-attention weights of the token at ``pixel`` over the keys of its layer, per frame.

    ``source``: a cache holding ``<layer>.attn1.probs`` (capture it, e.g. ``generate(...,
    capture=Capture([name], steps=0, branch="cond"))``) with its ``name``, or probabilities ``(F, heads,
    N, N)``. ``pixel``: ``(x, y)`` in pixels of ``image_size`` = (W, H), or in grid cells without it.
    Heads are averaged unless ``head`` is given. The query cell is outlined in cyan.

    ``images`` ``(F, H, W, 3)`` adds the frames as a top row with the pixel marked, and (unless
    ``overlay=False``) draws each map over the frame whose keys it weighs: its own frame, or frame
    ``key_frame`` for every map when the keys of all frames are one frame's (K/V consistency:
    ``key_frame=0`` at the steps up to ``load_feature_step``). Every panel shares one colour scale, 0
    to ``vmax`` (default the largest weight shown), so a diffuse map stays dim; the colour bar says
    the scale.
    """
    maps, (row, col) = attention_of_pixel(source, name, pixel=pixel, image_size=image_size, head=head,
                                          branch=branch, hw=hw, **select)
    frames = pick_frames(maps.shape[0], frames)
    extra = images is not None
    fig, axes = new_figure(1 + extra, len(frames))
    if extra:
        images = np.asarray(images)
        image_row(axes[0], images, frames)
        (H, W), (h, w) = images.shape[1:3], maps.shape[1:]
        # the pixel in the frames' own pixels (pixel is in cells without image_size)
        x, y = ((col + 0.5) * W / w - 0.5, (row + 0.5) * H / h - 0.5) if image_size is None else \
            (pixel[0] * W / image_size[0], pixel[1] * H / image_size[1])
        for ax in axes[0]:
            ax.plot([x], [y], "c+", markersize=9, markeredgewidth=2)
    vmin, vmax = shared_scale(maps[frames], 0.0, vmax)
    over = extra and overlay
    frame_hw = images.shape[1:3] if over else None
    for ax, j in zip(axes[-1], frames):
        under = images[j if key_frame is None else key_frame] if over else None
        heat_panel(ax, maps[j], under, vmin=vmin, vmax=vmax, cmap=cmap)
        ax.add_patch(cell_rectangle((col, row, col + 1, row + 1), maps.shape[1:], frame_hw, edgecolor="cyan",
                                    linewidth=1))
    for ax, j in zip(axes[0], frames):
        ax.set_title(f"frame {j}", fontsize=8)
    where = "" if not over else (" over each frame" if key_frame is None else f" over frame {key_frame}")
    axes[-1, 0].set_ylabel("attention" + ("" if head is None else f" (head {head})") + where, fontsize=8)
    colorbar(fig, axes, vmin=vmin, vmax=vmax, cmap=cmap,
             label=scale_label("attention weight" + ("" if head is None else f", head {head}"), vmin, vmax))
    label = short_name(name) if name else "self-attention"
    fig.suptitle(title or f"{label}: where the query at cell (row {row}, col {col}) looks", fontsize=10)
    add_notes(fig, name_key([name]) if name else "")
    return fig
