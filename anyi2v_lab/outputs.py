"""Everything a generation writes, into one folder, atomically, with what is needed to redo it.

The output folder is claimed before any work (:func:`claim_output_folder`): one process at a time, a
second one refused at once. The run is assembled under a temporary name beside it and moved into place
at the end in one rename that replaces nothing that appeared meanwhile, so a crash, Ctrl-C or SIGTERM
leaves no half-written run. An existing folder is replaced only with ``overwrite`` and only where it
holds nothing but an earlier output of this tool (its ``run.json`` or ``provenance.json`` lists what it
wrote) or is empty; a folder holding anything else is never touched. ``/``, the home folder and the
working folder are refused. A symbolic link is followed: the run is written where it points. The folder
gets the permissions any new folder would (0777 less the umask), not mkdtemp's private 0700.
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .io import _umask, check_writable_place, exchange, exclusive_claim, followed, parents_made, rename_noreplace
from .overlay import draw_overlay, masks_from_record
from .video import upscale, write_gif, write_mp4

RUN_FILE = "run.json"
# the files in which an output folder of this tool lists what it wrote (write_run's, the microscope's)
RECORD_FILES = (RUN_FILE, "provenance.json")
# what write_run and the demo wrote before run.json listed its files
_RUN_NAMES = frozenset({"video.mp4", "video.gif", "frames", "condition.png", "trajectory.json", "overlay.mp4",
                        "overlay.gif", RUN_FILE, "example.yaml", "path.png", "compare.mp4", "compare.gif",
                        "demo.json"})


class OutputFolderRefused(FileExistsError):
    """An output folder this run may not write (taken, holding the user's files, being written by another
    process, or a folder such as ``/``); raised before any work, the command line's exit 2."""


def versions() -> dict[str, str]:
    import diffusers
    import torch
    import transformers

    from . import __version__
    return {"anyi2v_lab": __version__, "torch": torch.__version__, "diffusers": diffusers.__version__,
            "transformers": transformers.__version__, "numpy": np.__version__, "python": platform.python_version()}


def _record(folder: Path) -> tuple[str, set[str]] | None:
    """``(record file, names it accounts for)`` where ``folder`` holds an output of this tool, else None."""
    for name in RECORD_FILES:
        try:
            record = json.loads((folder / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not (isinstance(record, dict) and isinstance(record.get("versions"), dict)
                and "anyi2v_lab" in record["versions"]):
            continue
        files = record.get("files")
        listed = set(files) if isinstance(files, (list, dict)) else set(_RUN_NAMES) if name == RUN_FILE else set()
        return name, {str(f) for f in listed} | {name}
    return None


def foreign_entries(folder: str | os.PathLike) -> list[str]:
    """The names in ``folder`` that no earlier output of this tool accounts for (sorted): none for an
    empty folder or one holding only a run's files; every name where it holds no run."""
    folder = Path(folder)
    names = sorted(p.name for p in folder.iterdir())
    record = _record(folder) if names else None
    return names if record is None else [n for n in names if n not in record[1]]


def _refuse_special(path: Path, shown: str) -> None:
    """``/``, the home folder and the working folder (or one above it) are never an output folder."""
    what = ("the root folder" if path == Path(path.anchor) else "your home folder" if path == Path.home().resolve()
            else "the folder you are working in" if path == Path.cwd().resolve()
            else "a folder holding the one you are working in" if path in Path.cwd().resolve().parents else None)
    if what:
        raise OutputFolderRefused(f"output folder {shown!r} is {what}; a run is written as a folder of its own: "
                                  f"give --out a new folder's name, e.g. runs/a")


def check_output_folder(path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Refuse an output folder that cannot be written before any work is done: an existing non-empty one
    (unless ``overwrite`` and it holds only an earlier run), one holding the user's files, a file, a
    folder such as ``/``, an unwritable place. Returns where the run goes (a symbolic link followed)."""
    shown = os.fspath(path)
    path = followed(path)
    _refuse_special(path.resolve(), shown)
    if path.exists() and not path.is_dir():
        raise OutputFolderRefused(f"output folder {shown!r} is a file; choose another --out")
    if path.is_dir() and any(path.iterdir()):
        foreign = foreign_entries(path)
        if foreign:
            listed = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
            raise OutputFolderRefused(f"output folder {shown!r} exists and is not empty: it holds {listed}, which "
                                      f"anyi2v-lab did not write and never replaces; give --out a new folder")
        if not overwrite:
            raise OutputFolderRefused(f"output folder {shown!r} exists and is not empty (an earlier run); choose "
                                      f"another --out or pass --overwrite to replace that run")
    check_writable_place(path, f"output folder {shown!r}", OutputFolderRefused)
    return path


@dataclass(frozen=True)
class OutputFolder:
    """A claimed output folder (see :func:`claim_output_folder`); ``os.fspath`` gives where it goes."""

    path: Path        # where the run goes (a symbolic link followed)
    overwrite: bool   # an earlier run there may be replaced

    def __fspath__(self) -> str:
        return str(self.path)

    def __str__(self) -> str:
        return str(self.path)


@contextmanager
def claim_output_folder(path: str | os.PathLike, overwrite: bool = False):
    """Claim an output folder for the block's work: checked (:func:`check_output_folder`) and held
    against every other process (another asking is refused at once). Yields an :class:`OutputFolder`
    to give :func:`write_run` or :func:`atomic_folder`; the folders made above it go again if the run
    writes nothing."""
    named = f"output folder {os.fspath(path)!r}"
    target = check_output_folder(path, overwrite)
    with parents_made(target, named), exclusive_claim(target, named=named):
        check_output_folder(target, overwrite)  # again: no other process of ours can change it now
        yield OutputFolder(path=target, overwrite=overwrite)


def _move_into_place(staging: Path, target: Path, overwrite: bool) -> None:
    """``staging`` becomes ``target``; an earlier run there is replaced only with ``overwrite``, and
    anything else that appeared meanwhile is left alone (the new run is then not written)."""
    try:
        rename_noreplace(staging, target)  # nothing there, or (without renameat2) an empty folder
        return
    except FileExistsError:
        pass
    if target.is_dir() and not any(target.iterdir()):
        os.rename(staging, target)  # onto an empty folder only: the kernel refuses one that filled meanwhile
        return
    foreign = foreign_entries(target) if target.is_dir() else [target.name]
    if foreign or not overwrite:
        raise OutputFolderRefused(f"output folder {str(target)!r} was filled by another program while this run "
                                  f"was working ({', '.join(foreign[:5]) or 'an earlier run'}); it is left as it "
                                  f"is and this run was not written")
    if exchange(staging, target):  # the earlier run is now at ``staging``, removed by the caller
        return
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.replaced-", dir=target.parent))
    os.rename(target, old)  # onto mkdtemp's empty folder
    try:
        rename_noreplace(staging, target)
    finally:
        shutil.rmtree(old, ignore_errors=True)


@contextmanager
def atomic_folder(path: str | os.PathLike, overwrite: bool = False):
    """Yield a temporary folder that becomes ``path`` on success. ``path`` may be an
    :class:`OutputFolder` already claimed (its own ``overwrite`` applies), else it is claimed here."""
    if not isinstance(path, OutputFolder):
        with claim_output_folder(path, overwrite) as claimed, atomic_folder(claimed) as tmp:
            yield tmp
        return
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.path.name}.", dir=path.path.parent))
    try:
        os.chmod(tmp, 0o777 & ~_umask())
        yield tmp
        _move_into_place(tmp, path.path, path.overwrite)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_run(result, out: str | os.PathLike, model: dict | None = None, overwrite: bool = False,
              fps: int = 8, extra_files: dict | None = None) -> Path:
    """Write the video (mp4, gif), frames, overlay video, condition, trajectory and ``run.json`` into
    ``out`` (a path, or an :class:`OutputFolder` claimed before the work)."""
    from .startup import thread_settings

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
            "threads": thread_settings(), "timings": result.record.timings,
            "losses": result.record.losses().tolist(), "files": sorted([RUN_FILE, *(p.name for p in tmp.iterdir())]),
        }
        (tmp / RUN_FILE).write_text(json.dumps(run, indent=2))
    return Path(out)
