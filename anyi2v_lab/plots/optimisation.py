"""Views of the trajectory optimisation: loss curves, semantic masks, target versus tracked paths."""
from __future__ import annotations

import numpy as np

from ..hooks import short_name
from ..method.record import InspectionRecord
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
)
from .data import box_centres, mask_grid

COLOURS = ["tab:orange", "tab:blue", "tab:green", "tab:red", "tab:purple"]


def plot_losses(record: InspectionRecord, *, title: str | None = None):
    """The alignment loss of every optimisation iteration (left) and its number of active mask cells
    (right), one line per optimised denoising step; skipped iterations (no update) are crossed.

    Reads ``record.losses()`` ``(steps, iterations)`` and ``record.iterations``.
    """
    losses = record.losses()
    if losses.size == 0:
        raise ValueError("the record has no optimisation iterations: generate with a trajectory and optimisation=true")
    steps = sorted({it.step_index for it in record.iterations})
    n_it = losses.shape[1]
    counts = np.full(losses.shape, np.nan)
    skipped = np.zeros(losses.shape, bool)
    for it in record.iterations:
        counts[steps.index(it.step_index), it.iteration] = it.count
        skipped[steps.index(it.step_index), it.iteration] = bool(it.skipped)
    fig, axes = new_figure(1, 2, (4.2, 3.0))
    ax_loss, ax_count = axes[0]
    for s, step in enumerate(steps):
        x = s * n_it + np.arange(n_it)
        t = record.timesteps[step] if step < len(record.timesteps) else None
        label = f"step {step}" + (f" (t={t})" if t is not None else "")
        ax_loss.plot(x, losses[s], marker="o", markersize=3, label=label)
        ax_count.plot(x, counts[s], marker="o", markersize=3, label=label)
        if skipped[s].any():
            ax_loss.plot(x[skipped[s]], losses[s][skipped[s]], "kx", markersize=7, label="_skipped")
    ax_loss.set_xlabel("iteration (all optimised steps)")
    ax_loss.set_ylabel("alignment loss")
    ax_count.set_xlabel("iteration (all optimised steps)")
    ax_count.set_ylabel("active mask cells (loss weight sum)")
    ax_loss.legend(fontsize=7)
    fig.suptitle(title or "Trajectory optimisation", fontsize=10)
    return fig


def plot_masks(record: InspectionRecord, *, iteration: int = -1, obj: int = 0, frames=None, images=None,
               title: str | None = None, cmap: str = HEAT_CMAP, overlay: bool = True):
    """One iteration's semantic masks of object ``obj`` on the alignment grid, frames side by side,
    one row per aligned layer, with the frame's grid box outlined in cyan.

    Frame 0 shows the object's frame-0 mask; frame j >= 1 the loss weight (frame-0 mask moved with the
    box, times frame j's own mask). Needs ``generate(..., keep_masks=True)``. ``images`` ``(F, H, W,
    3)`` adds the frames as a top row and (unless ``overlay=False``) draws each mask over its frame (a
    weight's colour over the pixels its cell covers, transparent where the weight is 0). Weights lie in
    [0, 1]: one scale, with a colour bar.
    """
    grid = mask_grid(record, iteration, obj)  # (F, L, Hg, Wg)
    it = record.iterations[iteration]
    layer_names = list(it.pca) if it.pca is not None and len(it.pca) == grid.shape[1] else \
        [f"layer {i}" for i in range(grid.shape[1])]
    frames = pick_frames(grid.shape[0], frames)
    extra = images is not None
    fig, axes = new_figure(grid.shape[1] + extra, len(frames))
    if extra:
        images = np.asarray(images)
        image_row(axes[0], images, frames)
    over = extra and overlay
    for li in range(grid.shape[1]):
        row = axes[li + extra]
        for ax, j in zip(row, frames):
            heat_panel(ax, grid[j, li], images[j] if over else None, vmin=0, vmax=1, cmap=cmap)
            ax.add_patch(cell_rectangle(record.grid_boxes[obj, j], grid.shape[2:], images.shape[1:3] if over
                                        else None, edgecolor="cyan", linewidth=1))
        row[0].set_ylabel(short_name(layer_names[li]), fontsize=7)
    for ax, j in zip(axes[0], frames):
        ax.set_title(f"frame {j}", fontsize=8)
    colorbar(fig, axes, vmin=0, vmax=1, cmap=cmap, label="mask weight (0 to 1, every panel)")
    step = f"step {it.step_index}, iteration {it.iteration}"
    fig.suptitle(title or f"Semantic masks of object {obj} ({step}; loss {float(it.loss):.4g})", fontsize=10)
    add_notes(fig, name_key(layer_names))
    return fig


def plot_paths(target, tracked=None, *, image=None, image_size=None, names=None, title: str | None = None):
    """Target path (box centres) against a tracked path, per object: the image plane (left) and the
    distance per frame (right, when ``tracked`` is given).

    ``target``: an :class:`InspectionRecord` (its per-frame ``boxes``, model pixels), boxes ``(O, F, 4)``
    or centres ``(O, F, 2)``; ``tracked`` ``(O, F, 2)`` (x, y) in the same pixels, NaN where the object
    was not found; ``image`` (H, W, 3) is drawn underneath; ``image_size`` (W, H) sets the limits otherwise.
    """
    target = target.boxes if isinstance(target, InspectionRecord) else target
    if target is None:
        raise ValueError("the record has no boxes: generate with a trajectory")
    target = np.asarray(target, dtype=np.float64)
    if target.ndim != 3 or target.shape[-1] not in (2, 4):
        raise ValueError(f"target must be boxes (O, F, 4) or centres (O, F, 2), got shape {target.shape}")
    centres = box_centres(target) if target.shape[-1] == 4 else target
    n_obj, nf = centres.shape[:2]
    if tracked is not None:
        tracked = np.asarray(tracked, dtype=np.float64)
        if tracked.shape != centres.shape:
            raise ValueError(f"tracked has shape {tracked.shape}; the target paths are {centres.shape}")
    names = list(names) if names is not None else [f"object {o}" for o in range(n_obj)]
    fig, axes = new_figure(1, 1 + (tracked is not None), (3.6, 3.4))
    plane = axes[0, 0]
    if image is not None:
        image = np.asarray(image)
        plane.imshow(image, extent=(0, image.shape[1], image.shape[0], 0))
        image_size = (image.shape[1], image.shape[0])
    for o in range(n_obj):
        c = COLOURS[o % len(COLOURS)]
        plane.plot(centres[o, :, 0], centres[o, :, 1], "-o", color=c, markersize=3, label=f"{names[o]} target")
        plane.plot(*centres[o, 0], "s", color=c, markersize=7, label="_start")
        if tracked is not None:
            plane.plot(tracked[o, :, 0], tracked[o, :, 1], "--x", color=c, markersize=4,
                       label=f"{names[o]} tracked")
    if image_size is not None:
        plane.set_xlim(0, image_size[0])
        plane.set_ylim(image_size[1], 0)
    else:
        plane.invert_yaxis()  # image convention: y grows downwards
    plane.set_aspect("equal")
    plane.set_xlabel("x (px)")
    plane.set_ylabel("y (px)")
    plane.legend(fontsize=6)
    if tracked is not None:
        dist = np.linalg.norm(tracked - centres, axis=-1)  # (O, F)
        ax = axes[0, 1]
        for o in range(n_obj):
            ax.plot(np.arange(nf), dist[o], "-o", color=COLOURS[o % len(COLOURS)], markersize=3, label=names[o])
        ax.set_xlabel("frame")
        ax.set_ylabel("distance to target (px)")
        found = np.isfinite(dist)
        ax.set_title(f"mean {dist[found].mean():.2f} px over {found.sum()} found object-frames" if found.any()
                     else "tracked object found in no frame", fontsize=8)
        ax.legend(fontsize=7)
    fig.suptitle(title or "Target versus tracked path", fontsize=10)
    return fig
