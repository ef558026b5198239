"""Everything a generation writes, into one folder, atomically, with what is needed to redo it.

The folder is assembled under a temporary name beside the target and renamed into place at the end,
so a crash or Ctrl-C leaves no half-written run, and an existing folder is never replaced unless asked.
The folder gets the permissions any new folder would (0777 less the umask), not mkdtemp's private 0700.
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .io import _umask
from .overlay import draw_overlay, masks_from_record
from .video import upscale, write_gif, write_mp4

RUN_FILE = "run.json"


def versions() -> dict[str, str]:
    import diffusers
    import torch
    import transformers

    from . import __version__
    return {"anyi2v_lab": __version__, "torch": torch.__version__, "diffusers": diffusers.__version__,
            "transformers": transformers.__version__, "numpy": np.__version__, "python": platform.python_version()}


def check_output_folder(path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Refuse an output folder that cannot be written (an existing non-empty one unless ``overwrite``, a
    file, a file on the way) before any work is done; returns it as a Path."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise FileExistsError(f"output folder {str(path)!r} is a file; choose another --out")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise FileExistsError(f"output folder {str(path)!r} exists and is not empty; choose another --out or pass "
                              f"--overwrite")
    parent = next((p for p in path.absolute().parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise FileExistsError(f"output folder {str(path)!r}: {str(parent)!r} is a file, not a folder")
    if parent is not None and not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(f"output folder {str(path)!r}: {str(parent)!r} is not writable; choose another --out")
    return path


@contextmanager
def atomic_folder(path: str | os.PathLike, overwrite: bool = False):
    """Yield a temporary folder that becomes ``path`` on success."""
    path = check_output_folder(path, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            path.rename(old)
            tmp.rename(path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_run(result, out: str | os.PathLike, model: dict | None = None, overwrite: bool = False,
              fps: int = 8, extra_files: dict | None = None) -> Path:
    """Write the video (mp4, gif), frames, overlay video, condition, trajectory and ``run.json``."""
    frames = result.frames
    with atomic_folder(out, overwrite) as tmp:
        big = upscale(frames)
        scale = big.shape[1] // frames.shape[1]
        write_mp4(big, tmp / "video.mp4", fps)
        write_gif(big, tmp / "video.gif", fps)
        (tmp / "frames").mkdir()
        from PIL import Image
        for i, f in enumerate(frames):
            Image.fromarray(f).save(tmp / "frames" / f"{i:03d}.png")
        result.condition.image.save(tmp / "condition.png")
        traj = result.trajectory
        if traj is not None:
            traj.save(tmp / "trajectory.json")
        boxes = result.record.boxes
        masks = None
        if traj is not None:
            masks = masks_from_record(result.record, len(traj.objects), frames.shape[0], frames.shape[1:3])
        achieved = result.extra.get("achieved")
        over = draw_overlay(frames, boxes, masks, achieved, scale=scale)
        write_mp4(over, tmp / "overlay.mp4", fps)
        write_gif(over, tmp / "overlay.gif", fps)
        for name, writer in (extra_files or {}).items():
            writer(tmp / name)
        run = {
            "prompt": result.prompt, "negative_prompt": result.negative_prompt, "seed": result.seed,
            "config": result.config.to_dict(), "model": model or {}, "condition": "condition.png",
            "trajectory": "trajectory.json" if traj is not None else None,
            "trajectory_timing": traj.timing if traj is not None else None, "versions": versions(),
            "timings": result.record.timings, "losses": result.record.losses().tolist(),
        }
        (tmp / RUN_FILE).write_text(json.dumps(run, indent=2))
    return Path(out)
