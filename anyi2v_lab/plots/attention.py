"""Where one pixel looks: self-attention maps of a query position, frame by frame."""
from __future__ import annotations

from matplotlib.patches import Rectangle

from ..hooks import short_name
from ._figure import image_row, new_figure, pick_frames, show_image
from .data import attention_of_pixel


def plot_attention(source, name: str | None = None, *, pixel, image_size=None, head: int | None = None,
                   frames=None, images=None, branch: str | None = "cond", hw=None, title: str | None = None,
                   **select):
    """The self-attention weights of the token at ``pixel`` over the keys of its layer, per frame.

    ``source``: a cache holding ``<layer>.attn1.probs`` (capture it, e.g. ``generate(...,
    capture=Capture([name], steps=0, branch="cond"))``) with its ``name``, or probabilities ``(F, heads,
    N, N)``. ``pixel``: ``(x, y)`` in pixels of ``image_size`` = (W, H), or in grid cells without it.
    Heads are averaged unless ``head`` is given. The query cell is outlined; ``images`` ``(F, H, W, 3)``
    adds the frames as a top row with the pixel marked.
    """
    maps, (row, col) = attention_of_pixel(source, name, pixel=pixel, image_size=image_size, head=head,
                                          branch=branch, hw=hw, **select)
    frames = pick_frames(maps.shape[0], frames)
    extra = images is not None
    fig, axes = new_figure(1 + extra, len(frames))
    if extra:
        image_row(axes[0], images, frames)
        for ax in axes[0]:
            ax.plot([pixel[0]], [pixel[1]], "c+", markersize=9, markeredgewidth=2)
    vmax = float(maps[frames].max()) or 1.0
    for ax, j in zip(axes[-1], frames):
        show_image(ax, maps[j], cmap="viridis", vmin=0, vmax=vmax)
        ax.add_patch(Rectangle((col - 0.5, row - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=1))
    for ax, j in zip(axes[0], frames):
        ax.set_title(f"frame {j}", fontsize=8)
    axes[-1, 0].set_ylabel("attention" + ("" if head is None else f" (head {head})"), fontsize=8)
    label = short_name(name) if name else "self-attention"
    fig.suptitle(title or f"{label}: where the query at cell (row {row}, col {col}) looks", fontsize=10)
    return fig
