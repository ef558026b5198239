"""The trajectory a command line gives (``--trajectory``, ``--trajectory-format``, ``--trajectory-timing``, or an
example's), read and checked against the condition image and the canvas before any model loads."""
from __future__ import annotations

import sys

from .arguments import UsageError


def read_trajectory_argument(path, args, conditions, example):
    """The trajectory of ``path`` (our file, the reference's or a peer method's), else the example's, at
    ``--trajectory-timing``; None: injection only."""
    timing = args.trajectory_timing
    if path or example is None:
        if timing and not path:
            raise UsageError("--trajectory-timing says how to read --trajectory; give --trajectory (or --example)")
        return trajectory_file(path, args.trajectory_format, conditions, timing)
    return example.trajectory if timing is None else example.trajectory.with_timing(timing)


def trajectory_file(path, fmt=None, conditions=(), timing=None):
    """Our trajectory file, the reference's or a peer method's (``fmt``, else detected); a peer's pixel
    coordinates are read against the first condition image's size unless the file brings its own.
    ``timing`` (None: the format's own) says which path point is which frame."""
    if not path:
        return None
    from ..conditions import image_file_size
    from ..interop import read_trajectory
    size = image_file_size(conditions[0]) if conditions else None
    traj = read_trajectory(path, format=fmt, default_image_size=size)
    return traj if timing is None else traj.with_timing(timing)


def reference_source(path, fmt, example) -> str | None:
    """What gave a trajectory in the reference format's 512x512 pixels (said in a note), or None."""
    if path:
        from ..interop import detect_format
        return f"--trajectory {path}" if (fmt or detect_format(path)) == "reference" else None
    return f"--example {example.name}'s trajectory" if example is not None else None


def check_trajectory(trajectory, cfg, conditions, reference: str | None):
    """The trajectory, checked before any model is loaded: it gives every frame a point and is drawn on
    the condition image (or on the canvas --set width/height name). One in the reference format
    (``reference`` says what gave it) is stretched onto the condition image, with a note: the reference
    stretches any input image to 512x512 before it reads the trajectory."""
    if trajectory is None:
        return None
    from ..conditions import image_file_size
    from ..geometry import ResizeMap
    from ..trajectory import frame_paths
    frame_paths(trajectory, cfg.num_frames)
    size = image_file_size(conditions[0])
    (w, h), (cw, ch) = trajectory.image_size, size
    if reference and trajectory.image_size != size:
        print(f"note: {reference} is in the reference format's {w}x{h} pixels (the reference stretches its input "
              f"to that size); mapped onto the {cw}x{ch} condition image", file=sys.stderr)
        return trajectory.rescaled(ResizeMap(trajectory.image_size, size, "stretch"))
    canvas = (cfg.width, cfg.height) if cfg.width and cfg.height else None
    if trajectory.image_size in (size, canvas):
        return trajectory
    raise UsageError(f"the trajectory's image_size is {w}x{h} but the condition image {conditions[0]!r} is {cw}x{ch}"
                     + (f" and the canvas (--set width/height) {canvas[0]}x{canvas[1]}" if canvas else "")
                     + f"; draw the trajectory on the condition image, rescale it to {cw}x{ch} (in Python: "
                     f"Trajectory.rescaled(ResizeMap(({w}, {h}), ({cw}, {ch}), 'stretch'))), or, if it is drawn on "
                     f"the model canvas, give --set width={w} --set height={h}")
