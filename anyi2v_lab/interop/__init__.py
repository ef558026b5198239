"""Trajectories that travel: read and write the trajectory files of other trajectory-controlled
video methods, mapped to and from :class:`~anyi2v_lab.trajectory.Trajectory`.

>>> traj = read_trajectory("examples/111/traj.npy", image_size=(1024, 576))   # format detected: sgi2v
>>> write_trajectory(traj, "for_ati.pth", "ati")                              # -> [Path('for_ati.pth')]

Formats (one module each; its docstring says where the format is defined, its fields and units, and
what is lost on writing; ``docs/trajectory-formats.md`` has the table):

* ``anyi2v``: ours (``Trajectory.save``), lossless;
* ``reference``: the AnyI2V reference's JSON (boxes, target boxes, centre paths, query points, 512x512);
* ``sgi2v``: SG-I2V's ``traj.npy`` (box corners + per-frame centres);
* ``draganything``: DragAnything's ``demo.json`` (per-frame entity centres + mask images);
* ``mofa``: MOFA-Video's drag tracks (its Gradio state as JSON: lists of clicked points);
* ``ati``: ATI's ``.pth`` point tracks with visibility (121 frames, quantised by 8);
* ``wanmove``: Wan-Move's ``tracks.npy`` + ``visibility.npy``.

The peers store pixels of the input image; where the file does not say the image's size, pass
``image_size=(W, H)`` (the condition image's size), or keep the peer's image beside the file under the
name its code reads (``img.png``, ``demo.jpg``, ``input_image.jpg``).
"""
from __future__ import annotations

import inspect
import os
from pathlib import Path

from ..trajectory import Trajectory, TrajectoryError
from ..validate import check_choice
from . import ati, draganything, mofa, reference, sgi2v, wanmove
from ._common import format_hint, read_json, read_npy


class _Ours:
    """Our own versioned JSON (:meth:`Trajectory.save` / :meth:`Trajectory.load`)."""

    NAME = "anyi2v"
    SUFFIXES = (".json",)

    @staticmethod
    def read(path, *, image_size=None) -> Trajectory:
        return Trajectory.load(path, image_size)

    @staticmethod
    def write(traj: Trajectory, path, *, overwrite: bool = False) -> list:
        traj.save(path, overwrite=overwrite)
        return [path]


FORMATS = {m.NAME: m for m in (_Ours, reference, sgi2v, draganything, mofa, ati, wanmove)}


def _format(name):
    return FORMATS[check_choice(name, "format", sorted(FORMATS), error=TrajectoryError)]


def detect_format(path) -> str:
    """The format of a trajectory file, from its suffix and, where that is ambiguous, its content."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix in ati.SUFFIXES:
        return "ati"
    if suffix == ".json":
        d = read_json(p)
        if isinstance(d, dict) and "schema" in d:
            return "anyi2v"
        if isinstance(d, dict) and "bounding_box" in d:
            return "reference"
        if draganything.is_draganything(d):
            return "draganything"
        if mofa.is_mofa(d):
            return "mofa"
        if isinstance(d, list):  # no key names the format: refuse to guess
            raise TrajectoryError(f"trajectory file {os.fspath(p)} is a bare JSON list, which does not say its "
                                  f"format; MOFA-Video's drag list [[[x, y], ...], ...] is one: if it is that, "
                                  f"give {format_hint(['mofa'])}")
        keys = sorted(map(str, d))[:6] if isinstance(d, dict) else type(d).__name__
        raise TrajectoryError(f"trajectory file {os.fspath(p)}: cannot tell its format from its content ({keys}); "
                              f"give {format_hint(k for k, m in FORMATS.items() if '.json' in m.SUFFIXES)}")
    if suffix == ".npy":
        if "visibility" in p.stem:
            raise TrajectoryError(f"trajectory file {os.fspath(p)} looks like a Wan-Move visibility file; give the "
                                  "tracks file (its visibility is found beside it)")
        if p.name == "traj.npy":
            return "sgi2v"
        if "tracks" in p.stem or wanmove.visibility_path(p).is_file() or read_npy(p).ndim == 4:
            return "wanmove"
        raise TrajectoryError(f"trajectory file {os.fspath(p)}: a 3-D .npy can be SG-I2V's traj.npy or Wan-Move's "
                              f"tracks; give {format_hint(['sgi2v', 'wanmove'])}")
    raise TrajectoryError(f"trajectory file {os.fspath(p)}: unknown suffix {p.suffix!r}; expected .json, .npy or "
                          f".pth, or give {format_hint(FORMATS)}")


def _check_options(fmt, func, options: dict) -> None:
    allowed = [k for k, v in inspect.signature(func).parameters.items() if v.kind is v.KEYWORD_ONLY]
    extra = sorted(set(options) - set(allowed))
    if extra:
        raise TrajectoryError(f"option(s) {extra} do not apply to format {fmt.NAME!r}; its options: {allowed}")


def read_trajectory(path, format: str | None = None, *, default_image_size=None, **options) -> Trajectory:
    """Read a trajectory file of any supported format (detected when ``format`` is None).

    Options, where the format takes them: ``image_size=(W, H)`` of the image the file's pixels refer to;
    ``box_size`` (pixels) of the box made around a point track; ``groups`` (None: one object per track,
    ``"all"``, or lists of track indices) to gather point tracks into objects; ``visibility`` (Wan-Move)
    path of the visibility file. ``default_image_size`` (any format) is the size to assume when the
    format does not record one and no peer image lies beside the file, e.g. the condition image's size
    in the CLI; ours and the reference's format ignore it. ``timing`` (reference format): ``"first-frames"``
    (the default: point i is frame i, as the reference's script reads it) or ``"resample"``. Errors are
    :class:`TrajectoryError` naming the file, the field, its value and the fix.
    """
    fmt = _format(detect_format(path) if format is None else format)
    _check_options(fmt, fmt.read, options)
    beside = [Path(path).parent / n for n in getattr(fmt, "IMAGE_NAMES", ())]
    if (default_image_size is not None and hasattr(fmt, "IMAGE_NAMES") and options.get("image_size") is None
            and not any(p.is_file() for p in beside)):
        options["image_size"] = default_image_size
    return fmt.read(path, **options)


def write_trajectory(traj: Trajectory, path, format: str, **options) -> list[Path]:
    """Write ``traj`` for another method's code; returns the files written (some formats write two).

    Options, where the format takes them: ``num_frames`` (points per track; each format's own length
    by default), ``masks`` (DragAnything: write the mask images), ``overwrite`` (default False: an
    existing file is an error raised before anything is written). Each file is written atomically.
    """
    if not isinstance(traj, Trajectory):
        raise TrajectoryError(f"traj = {type(traj).__name__} must be a Trajectory")
    fmt = _format(format)
    _check_options(fmt, fmt.write, options)
    return [Path(p) for p in fmt.write(traj, path, **options)]


__all__ = ["FORMATS", "detect_format", "read_trajectory", "write_trajectory"]
