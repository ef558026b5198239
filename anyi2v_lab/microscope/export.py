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


def _step_json(step: Step) -> dict:
    return {"phase": step.phase, "index": step.index, "timestep": step.timestep, "label": step.label}


def _nearest(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``(F, h, w, 3)`` -> about ``size`` (H, W) by whole-factor nearest-neighbour repeats."""
    k = (max(1, size[0] // frames.shape[1]), max(1, size[1] // frames.shape[2]))
    return frames.repeat(k[0], axis=1).repeat(k[1], axis=2)


def export_figures(data, out_dir: str | os.PathLike, *, steps: list[Step] | None = None, point: str | None = None,
                   frames: list[int] | None = None, frame: int = 0, xy: tuple[float, float] | None = None,
                   words: list | None = None, fps: int = 8, overwrite: bool = False) -> dict[str, Path]:
    """Write the figure set of ``data`` (:class:`~anyi2v_lab.microscope.MicroscopeData`) into ``out_dir``.

    ``steps``: the rows of the step figures (default: five steps spread over the run); ``point``: the
    hook point of the feature and attention figures (default the first); ``frames``: the columns
    (default up to four spread over the video); ``frame`` and ``xy`` (frame pixels, default the
    centre): where the self-attention query sits; ``words``: the cross-attention rows (default every
    prompt token). Returns ``{file name: path}``; ``provenance.json`` lists each file's view, steps,
    frames, hook point, query cell and words.
    """
    from ..outputs import atomic_folder, check_output_folder, versions
    from ..plots import microscope as figs

    try:  # refuse a taken folder before drawing anything
        check_output_folder(out_dir, overwrite)
    except FileExistsError as err:
        if not Path(out_dir).is_dir() or overwrite:  # with overwrite, the folder holds what this tool never replaces
            raise
        raise FileExistsError(f"out_dir={str(out_dir)!r} exists and is not empty; choose another folder or pass "
                              f"overwrite=True") from err
    frames = figs._frames(data, frames)
    figs._frames(data, [frame])
    if point is None and data.points:
        point = data.points[0]
    if point is not None and point not in data.points:
        raise ValueError(f"point={point!r} is not a hook point of this data; use one of {data.points}")
    W, H = data.frame_size
    xy = (W / 2, H / 2) if xy is None else tuple(float(v) for v in xy)
    with atomic_folder(out_dir, overwrite) as tmp:
        writer = _Writer(tmp, fps)
        _write_x0(writer, data, steps, frames, frame)
        if point is not None:
            _write_features(writer, data, point, steps, frames, frame, xy)
        _write_attention_and_masks(writer, data, words, frames)
        if data.frames is not None:
            writer.video(data.frames, "video", {"view": "the generated video", "frames": list(range(data.num_frames))})
        provenance = {**data.meta, "versions": versions(),
                      "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "files": writer.files}
        (tmp / PROVENANCE).write_text(json.dumps(provenance, indent=2))
    out = Path(out_dir)
    return {name: out / name for name in [*writer.files, PROVENANCE]}


class _Writer:
    """Figures and videos written into ``folder``, each file's provenance kept in :attr:`files`."""

    def __init__(self, folder: Path, fps: int):
        self.folder, self.fps, self.files = folder, fps, {}

    def save(self, fig, name: str, about: dict) -> None:
        for ext in ("png", "svg"):
            fig.savefig(self.folder / f"{name}.{ext}", dpi=150 if ext == "png" else None, bbox_inches="tight")
            self.files[f"{name}.{ext}"] = about

    def video(self, film: np.ndarray, name: str, about: dict, rate: int | None = None) -> None:
        from ..video import upscale, write_gif, write_mp4

        for ext, write in (("mp4", write_mp4), ("gif", write_gif)):
            write(upscale(film), self.folder / f"{name}.{ext}", self.fps if rate is None else rate)
            self.files[f"{name}.{ext}"] = about


def _write_x0(writer: _Writer, data, steps, frames: list[int], frame: int) -> None:
    """x0 at the chosen sampling steps, and one frame's x0 over every sampling step as a video."""
    from ..plots import microscope as figs

    sampled = [s for s in data.x0_steps if s.phase == "sampling"]
    if not sampled:
        return
    chosen = [s for s in steps if s in set(sampled)] if steps else figs.spread(sampled, 5)
    writer.save(figs.plot_x0_steps(data, chosen, frames), "x0",
                {"view": "x0", "steps": [_step_json(s) for s in chosen], "frames": frames})
    writer.video(np.stack([data.x0(s)[frame] for s in sampled]), "x0_steps",
                 {"view": "x0 of one frame over the sampling steps", "steps": [_step_json(s) for s in sampled],
                  "frames": [frame]}, max(1, writer.fps // 2))


def _write_features(writer: _Writer, data, point: str, steps, frames: list[int], frame: int, xy) -> None:
    """PCA-RGB and clusters of ``point`` over the steps, PCA-RGB over the frames, and self-attention from ``xy``."""
    from ..plots import microscope as figs

    W, H = data.frame_size
    own = data.feature_steps(point)
    chosen = ([s for s in steps if s in set(own)] if steps else []) or figs.spread(own, 5)
    for view in ("pca", "clusters"):
        writer.save(figs.plot_feature_steps(data, point, chosen, frames, view), view,
                    {"view": view, "hook_point": point, "steps": [_step_json(s) for s in chosen], "frames": frames})
    writer.video(_nearest(data.pca_rgb(point, own[-1]), (H, W)), "pca_frames",
                 {"view": "pca over the frames", "hook_point": point, "steps": [_step_json(own[-1])],
                  "frames": list(range(data.num_frames))})
    if point in data.attention_points:
        writer.save(figs.plot_point_attention(data, point, own[-1], frame, xy, frames), "self_attention",
                    {"view": "self-attention from a point", "hook_point": point, "steps": [_step_json(own[-1])],
                     "frames": frames, "query_frame": frame, "query_xy": list(xy),
                     "query_cell": list(data.cell_of(point, xy)), "heads": "mean"})


def _write_attention_and_masks(writer: _Writer, data, words, frames: list[int]) -> None:
    """Cross-attention per word (mean of steps, heads and layers) and the last optimisation step's loss masks."""
    from ..plots import microscope as figs

    if data.words and data.cross_steps:
        chosen_words = list(range(len(data.words))) if words is None else list(words)
        writer.save(figs.plot_word_attention(data, chosen_words, frames), "cross_attention",
                    {"view": "cross-attention per word", "hook_points": data.cross_points,
                     "words": [data.words[w] if isinstance(w, int) else str(w) for w in chosen_words],
                     "steps": [_step_json(s) for s in data.cross_steps], "frames": frames, "heads": "mean",
                     "layers": "mean"})
    if data.mask_steps:
        last = data.mask_steps[-1]
        writer.save(figs.plot_loss_masks(data, last, frames), "loss_masks",
                    {"view": "loss masks", "steps": [_step_json(last)], "frames": frames})
