"""DragAnything's ``demo.json`` (showlab/DragAnything, ``demo.py: get_condition``;
``validation_demo/Demo/<name>/demo.json``).

A JSON object keyed by entity id (``"1"``, ``"2"``, ...); each entity has ``"mask_name"`` (a mask
image, white = the entity; relative to the file's folder unless absolute, and it may lead out of that
folder, as paths in jobs files and manifests do: :func:`anyi2v_lab.io.listed_path`), ``"trajectory"``
(``[[x, y], ...]`` integer pixels of the folder's ``demo.jpg``, one point per frame; the demo uses the
first 20) and an optional ``"comment"``. DragAnything draws a Gaussian at each trajectory point over a
circle of the mask's largest inscribed radius (at most 50 px at 576x320), so the first point is meant
to be the entity's centre.

Reading: path = the trajectory; box = the bounding box of the mask's white pixels (>= 128), scaled from
the mask's size to the image's, or a ``box_size`` square around the first point when the mask file is
missing; query point = the first trajectory point; name = the comment. Image size: the
``image_size`` argument or ``demo.jpg``'s. Writing: each object's first query point (the box centre if
it has none) moved with its per-frame boxes, ``num_frames`` points rounded to whole pixels, and
(``masks=True``) one PNG mask per object, the frame-0 box in white, named ``<file stem>_mask_<id>.png``.
Lost: ``target_box`` (the entity keeps its size), query points but the first, sub-pixel positions and
the image size.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ..geometry import clip_box
from ..io import listed_path
from ..trajectory import Trajectory, TrajectoryWarning
from ._common import (
    check_free,
    fail,
    image_size_for,
    points,
    read_json,
    tracks_to_trajectory,
    trajectory_to_tracks,
    write_bytes,
    write_json,
)

NAME = "draganything"
SUFFIXES = (".json",)
DEFAULT_FRAMES = 20
IMAGE_NAMES = ("demo.jpg",)


def is_draganything(d) -> bool:
    return isinstance(d, dict) and bool(d) and all(isinstance(v, dict) and "trajectory" in v for v in d.values())


def _mask_box(mask_path: Path, size, path, field):
    from ..conditions import ConditionError, open_image

    try:
        im = open_image(mask_path, "mask")
        m = np.asarray(im.convert("L")) >= 128
    except ConditionError as e:
        fail(path, field, f"names a mask that cannot be used: {e}; give a readable black-and-white mask image")
    mw, mh = im.size
    ys, xs = np.nonzero(m)
    if len(xs) == 0:
        fail(path, field, f"names the mask {mask_path.name!r}, which has no white pixel")
    sx, sy = size[0] / mw, size[1] / mh
    return xs.min() * sx, ys.min() * sy, (xs.max() + 1) * sx, (ys.max() + 1) * sy


def read(path, *, image_size=None, box_size=None) -> Trajectory:
    d = read_json(path)
    if not is_draganything(d):
        fail(path, "", "must be a JSON object of entities, e.g. {\"1\": {\"mask_name\": \"1_car.jpg\", "
                       "\"trajectory\": [[x, y], ...]}}")
    size = image_size_for(path, image_size, IMAGE_NAMES)
    tracks, boxes, names = [], [], []
    for key, ent in d.items():
        tracks.append(points(ent["trajectory"], path, f"{key}.trajectory"))
        mask = ent.get("mask_name")
        if mask is not None and not isinstance(mask, str):
            fail(path, f"{key}.mask_name", f"= {mask!r} must be a file name; give the mask image's name, "
                                           "e.g. \"1_car.jpg\"")
        mp = listed_path(mask, Path(path).parent) if mask else None
        if mp is not None and mp.exists():  # a folder or an unreadable file there is an error, not "no mask"
            boxes.append(_mask_box(mp, size, path, f"{key}.mask_name"))
        else:
            boxes.append(None)
            warnings.warn(f"{path}: entity {key!r} has no mask file {mask!r} (looked for {mp}); its box is a "
                          "square around the first trajectory point (DragAnything itself needs the mask)",
                          TrajectoryWarning, stacklevel=3)
        comment = ent.get("comment", "")
        names.append(comment if isinstance(comment, str) else str(comment))
    return tracks_to_trajectory(tracks, None, size, path, box_size=box_size, names=names, boxes=boxes)


def write(traj: Trajectory, path, *, num_frames: int = DEFAULT_FRAMES, masks: bool = True,
          overwrite: bool = False) -> list:
    path = Path(path)
    keys = [str(i + 1) for i in range(len(traj.objects))]
    mask_paths = [path.with_name(f"{path.stem}_mask_{k}.png") for k in keys]
    check_free([path] + (mask_paths if masks else []), overwrite)
    tracks, _, owner = trajectory_to_tracks(traj, num_frames)
    first = [owner.index(i) for i in range(len(traj.objects))]  # each object's first query point
    centres = np.rint(tracks[:, first]).astype(int).transpose(1, 0, 2)
    doc = {k: {"comment": o.name, "mask_name": mp.name, "trajectory": centres[i].tolist()}
           for i, (k, o, mp) in enumerate(zip(keys, traj.objects, mask_paths))}
    written = []
    if masks:
        import io

        from PIL import Image
        w, h = traj.image_size
        for o, mp in zip(traj.objects, mask_paths):
            m = np.zeros((h, w), np.uint8)
            x0, y0, x1, y1 = (int(v) for v in clip_box(np.rint(o.box), (w, h)))
            m[y0:y1, x0:x1] = 255
            buf = io.BytesIO()
            Image.fromarray(m).save(buf, format="PNG")
            write_bytes(mp, buf.getvalue(), overwrite)
            written.append(mp)
    write_json(path, doc, overwrite)
    return [path] + written
