"""One call that writes a figure set for a paper or a slide: PNG and SVG figures, MP4 and GIF videos,
and ``provenance.json`` saying what each file shows (config, seed, model, versions, hook points, and
the steps and frames of each figure). The folder is written atomically; a taken folder is refused
unless ``overwrite``."""
from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .steps import Step

PROVENANCE = "provenance.json"


def _spread(items: list, n: int) -> list:
    """At most ``n`` items, evenly spread, first and last included."""
    if len(items) <= n:
        return list(items)
    return [items[int(round(k))] for k in np.linspace(0, len(items) - 1, n)]


def _step_json(step: Step) -> dict:
    return {"phase": step.phase, "index": step.index, "timestep": step.timestep, "label": step.label}


def _save(fig, folder: Path, name: str) -> list[str]:
    import matplotlib.pyplot as plt

    files = []
    for ext in ("png", "svg"):
        fig.savefig(folder / f"{name}.{ext}", dpi=150 if ext == "png" else None, bbox_inches="tight")
        files.append(f"{name}.{ext}")
    plt.close(fig)
    return files


def _grid_figure(rows: list[tuple[str, list[np.ndarray]]], col_titles: list[str], title: str, marks=None):
    """Rows of images with a label each; ``marks`` ``[(row, col, x, y)]`` draws a cross."""
    import matplotlib.pyplot as plt

    n_rows, n_cols = len(rows), max(len(images) for _, images in rows)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(1.8 * n_cols + 0.6, 1.8 * n_rows + 0.4), squeeze=False)
    for r, (label, images) in enumerate(rows):
        for c in range(n_cols):
            ax = axes[r, c]
            ax.set_xticks([]), ax.set_yticks([])
            if c < len(images):
                ax.imshow(images[c], interpolation="nearest")
            else:
                ax.axis("off")
            if r == 0 and c < len(col_titles):
                ax.set_title(col_titles[c], fontsize=8)
        axes[r, 0].set_ylabel(label, fontsize=8)
    for r, c, x, y in marks or ():
        axes[r, c].plot([x], [y], marker="+", color="cyan", markersize=10, mew=2)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def _upscale(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of ``(F, h, w, 3)`` to ``size`` (H, W) (whole factors)."""
    k = (max(1, size[0] // frames.shape[1]), max(1, size[1] // frames.shape[2]))
    return frames.repeat(k[0], axis=1).repeat(k[1], axis=2)


def export_figures(data, out_dir: str | os.PathLike, *, steps: list[Step] | None = None, point: str | None = None,
                   frames: list[int] | None = None, frame: int = 0, xy: tuple[float, float] | None = None,
                   words: list | None = None, fps: int = 8, overwrite: bool = False) -> dict[str, Path]:
    """Write the figure set of ``data`` (:class:`~anyi2v_lab.microscope.MicroscopeData`) into ``out_dir``.

    ``steps``: the rows of the step figures (default: five sampling steps spread over the run);
    ``point``: the hook point of the feature and attention figures (default the first);
    ``frames``: the columns (default up to four spread over the video); ``frame`` and ``xy`` (frame
    pixels, default the centre): where the self-attention query sits; ``words``: the cross-attention
    rows (default every prompt token). Returns ``{file name: path}``; ``provenance.json`` lists each
    figure's steps, frames, hook point, cell and word.
    """
    from ..outputs import atomic_folder, check_output_folder, versions
    from ..video import upscale, write_gif, write_mp4

    check_output_folder(out_dir, overwrite)  # refuse a taken folder before drawing anything
    frames = _spread(list(range(data.num_frames)), 4) if frames is None else list(frames)
    bad = [f for f in frames + [frame] if not 0 <= f < data.num_frames]
    if bad:
        raise ValueError(f"frames {bad} are out of range: the video has {data.num_frames} frames (0..{data.num_frames - 1})")
    if point is None and data.points:
        point = data.points[0]
    if point is not None and point not in data.points:
        raise ValueError(f"point={point!r} is not a hook point of this data; use one of {data.points}")
    W, H = data.frame_size
    xy = (W / 2, H / 2) if xy is None else tuple(xy)
    cols = [f"frame {f}" for f in frames]
    figures: dict[str, dict] = {}
    with atomic_folder(out_dir, overwrite) as tmp:
        x0_steps = [s for s in data.x0_steps if s.phase == "sampling"]
        if x0_steps:
            chosen = [s for s in (steps or _spread(x0_steps, 5)) if s in set(data.x0_steps)]
            fig = _grid_figure([(s.label, [data.x0(s)[f] for f in frames]) for s in chosen], cols,
                               "predicted clean video x0 at each step")
            for name in _save(fig, tmp, "x0"):
                figures[name] = {"view": "x0", "steps": [_step_json(s) for s in chosen], "frames": frames}
            film = np.stack([data.x0(s)[frame] for s in x0_steps])
            for ext, writer in (("mp4", write_mp4), ("gif", write_gif)):
                writer(upscale(film), tmp / f"x0_steps.{ext}", max(1, fps // 2))
                figures[f"x0_steps.{ext}"] = {"view": "x0 of one frame over the sampling steps",
                                              "steps": [_step_json(s) for s in x0_steps], "frames": [frame]}
        if point is not None:
            fsteps = data.feature_steps(point)
            chosen = [s for s in (steps or _spread(fsteps, 5)) if s in set(fsteps)] or _spread(fsteps, 5)
            (H_, W_) = (H, W)
            for view, getter in (("pca", data.pca_rgb), ("clusters", data.cluster_rgb)):
                fig = _grid_figure([(s.label, [getter(point, s)[f] for f in frames]) for s in chosen], cols,
                                   f"{view} of {point} (one basis for every step and frame)")
                for name in _save(fig, tmp, view):
                    figures[name] = {"view": view, "hook_point": point, "steps": [_step_json(s) for s in chosen],
                                     "frames": frames}
            last = fsteps[-1]
            pca_video = _upscale(data.pca_rgb(point, last), (H_, W_))
            for ext, writer in (("mp4", write_mp4), ("gif", write_gif)):
                writer(upscale(pca_video), tmp / f"pca_frames.{ext}", fps)
                figures[f"pca_frames.{ext}"] = {"view": "pca over the frames", "hook_point": point,
                                                "steps": [_step_json(last)], "frames": list(range(data.num_frames))}
            if point in data.attention_points:
                cell = data.cell_of(point, xy)
                h, w = data.grid(point)
                heat = data.heat_rgb(data.self_attention(point, last, frame, cell))
                images = [data.x0(last)[frame] if last in set(data.x0_steps) else None]
                row = [heat[f] for f in frames]
                marks = [(0, frames.index(frame), cell[1], cell[0])] if frame in frames else []
                fig = _grid_figure([(last.label, row)] + ([("x0", [data.x0(last)[f] for f in frames])]
                                                          if images[0] is not None else []),
                                   cols, f"self-attention from frame {frame}, cell {cell} of {point}", marks)
                for name in _save(fig, tmp, "self_attention"):
                    figures[name] = {"view": "self-attention from a point", "hook_point": point,
                                     "steps": [_step_json(last)], "frames": frames, "query_frame": frame,
                                     "query_cell": list(cell), "query_xy": list(xy), "heads": "mean"}
        if data.words and data.cross_steps:
            chosen_words = list(words) if words is not None else list(range(len(data.words)))
            rows = []
            for word in chosen_words:
                maps = data.heat_rgb(data.cross_attention(word))
                label = data.words[word] if isinstance(word, int) else str(word)
                rows.append((label, [maps[f] for f in frames]))
            fig = _grid_figure(rows, cols, "cross-attention per word (mean over layers, heads and steps)")
            for name in _save(fig, tmp, "cross_attention"):
                figures[name] = {"view": "cross-attention per word", "words": [r[0] for r in rows],
                                 "steps": [_step_json(s) for s in data.cross_steps], "frames": frames,
                                 "heads": "mean", "layers": "mean"}
        if data.mask_steps:
            s = data.mask_steps[-1]
            masks = data.loss_masks(s)
            rows = [(f"object {o}", [m for m in masks[o, frames]]) for o in range(masks.shape[0])]
            fig = _grid_figure(rows, cols, f"loss masks at {s.label} (mean over the aligned layers)")
            for name in _save(fig, tmp, "loss_masks"):
                figures[name] = {"view": "loss masks", "steps": [_step_json(s)], "frames": frames}
        if data.frames is not None:
            for ext, writer in (("mp4", write_mp4), ("gif", write_gif)):
                writer(upscale(data.frames), tmp / f"video.{ext}", fps)
                figures[f"video.{ext}"] = {"view": "the generated video", "frames": list(range(data.num_frames))}
        provenance = {**{k: v for k, v in data.meta.items() if k != "hook_points"},
                      "hook_points": data.meta.get("hook_points", []), "versions": versions(),
                      "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "figures": figures}
        (tmp / PROVENANCE).write_text(json.dumps(provenance, indent=2))
    out = Path(out_dir)
    return {name: out / name for name in [*figures, PROVENANCE]}
