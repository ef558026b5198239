"""VideoPlayer: a frame scrubber with box, path and mask overlays.

>>> VideoPlayer(frames, boxes=boxes, fps=8)      # frames (F, H, W, 3); boxes (O, F, 4) in frame pixels
>>> VideoPlayer.from_result(result)              # a GenerationResult: its frames, boxes and masks
"""
from __future__ import annotations

import hashlib

import anywidget
import numpy as np
import traitlets as t

from anyi2v_lab.overlay import masks_from_record
from anyi2v_lab.palette import object_colour

from .bundle import css, esm
from .images import mask_tints, png_bytes, video_frames
from .live import follow
from .mapping import view_size
from .static import StaticPicture, decode, framed, panels, plural, polyline


def _per_frame(a, name: str, num_frames: int, last: int) -> list:
    x = np.asarray(a, dtype=np.float64)
    if x.ndim != 3 or x.shape[1] != num_frames or x.shape[2] != last or not np.all(np.isfinite(x)):
        raise ValueError(f"{name} has shape {x.shape}; give finite (objects, {num_frames} frames, {last}) "
                         "in frame pixels")
    return x.tolist()


class VideoPlayer(StaticPicture, anywidget.AnyWidget):
    """Plays ``frames`` (F, H, W, 3) uint8 (or floats in [0, 1]) with optional overlays, all in frame
    pixels: ``boxes`` (O, F, 4), ``paths`` (O, F, 2) (default: the box centres), ``masks`` (O, F, H, W) in
    [0, 1] (tinted in the overlay colours). ``caption`` is shown under the frame. ``frame`` and ``playing``
    are synced both ways."""

    _esm = esm("player.js")
    _css = css("style.css")

    frames = t.List(t.Bytes()).tag(sync=True)
    masks = t.List(t.Bytes()).tag(sync=True)
    frame_size = t.List(t.Int(), [1, 1]).tag(sync=True)
    display_size = t.List(t.Int(), [1, 1]).tag(sync=True)
    boxes = t.List().tag(sync=True)
    paths = t.List().tag(sync=True)
    frame = t.Int(0).tag(sync=True)
    playing = t.Bool(False).tag(sync=True)
    fps = t.Float(8.0).tag(sync=True)
    loop = t.Bool(True).tag(sync=True)
    caption = t.Unicode("").tag(sync=True)  # shown under the frame, e.g. which run this is

    def __init__(self, frames, boxes=None, paths=None, masks=None, fps: float = 8, display_width: int | None = None,
                 key: str | None = None, **kwargs):
        if not fps > 0:
            raise ValueError(f"fps = {fps!r} must be > 0")
        super().__init__(**_video_traits(frames, boxes, paths, masks, display_width), fps=float(fps), **kwargs)
        self._display_width = display_width
        follow(key, self)

    def show(self, result, masks: bool = True) -> None:
        """Show another :class:`~anyi2v_lab.method.generation.GenerationResult` in this player, in place
        (what :func:`~anyi2v_lab.widgets.show_run` calls): its frames, boxes, masks and caption."""
        frames, boxes, m = _result_parts(result, masks)
        traits = _video_traits(frames, boxes, None, m, self._display_width)
        with self.hold_sync():
            self.frame = min(self.frame, len(traits["frames"]) - 1)
            for name, value in {**traits, "caption": run_caption(result)}.items():
                setattr(self, name, value)

    @t.validate("frame")
    def _clamp_frame(self, proposal):
        return int(min(max(proposal["value"], 0), max(len(self.frames) - 1, 0)))

    def snapshot(self, max_frames: int = 8):
        """Up to ``max_frames`` frames (evenly spread, first and last included) side by side, with the
        masks, each box and the path up to that frame, as the player draws them."""
        from anyi2v_lab.plots.microscope import spread

        W, H = self.frame_size
        size = self.display_size if len(self.frames) == 1 else (min(self.display_size[0], 192),
                                                                 round(min(self.display_size[0], 192) * H / W))
        scale = (size[0] / W, size[1] / H)
        items = []
        for j in spread(range(len(self.frames)), max_frames):
            frame, draw = framed(decode(self.frames[j]), self.masks[j] if j < len(self.masks) else None, size,
                                 [boxes[j] for boxes in self.boxes], scale)
            for o, path in enumerate(self.paths):
                polyline(draw, path[: j + 1], object_colour(o), scale)
            items.append((f"frame {j + 1} / {len(self.frames)}", frame))
        return panels(items, self.describe())

    def describe(self) -> str:
        W, H = self.frame_size
        what = [plural(len(self.boxes), "box", "boxes")] if self.boxes else []
        what += ["masks"] if self.masks else []
        return (f"VideoPlayer: {len(self.frames)} frames of {W}x{H} at {self.fps:g} fps"
                + (f" with {' and '.join(what)}" if what else "") + (f"; {self.caption}" if self.caption else ""))

    @classmethod
    def from_result(cls, result, masks: bool = True, **kwargs) -> "VideoPlayer":
        """A player for a :class:`~anyi2v_lab.method.generation.GenerationResult`: its frames, the target boxes
        of its record (model pixels = frame pixels) and, when the run kept them (``keep_masks=True``), the
        semantic masks of the last optimisation iteration."""
        frames, boxes, m = _result_parts(result, masks)
        kwargs.setdefault("caption", run_caption(result))
        return cls(frames, boxes=boxes, masks=m, **kwargs)


def _result_parts(result, masks: bool):
    """A result's frames, the target boxes of its record (model pixels = frame pixels) and its masks."""
    frames, boxes = result.frames, result.record.boxes
    m = None
    if masks and boxes is not None:
        m = masks_from_record(result.record, boxes.shape[0], frames.shape[0], frames.shape[1:3])
    return frames, boxes, m


def _video_traits(frames, boxes, paths, masks, display_width) -> dict:
    """The synced traits of a video with its overlays (checked: shapes name the field and the fix)."""
    video = video_frames(frames)
    F, H, W = video.shape[:3]
    box_list = [] if boxes is None else _per_frame(boxes, "boxes", F, 4)
    if paths is None and boxes is not None:
        b = np.asarray(boxes, dtype=np.float64)
        paths = (b[..., :2] + b[..., 2:]) / 2
    path_list = [] if paths is None else _per_frame(paths, "paths", F, 2)
    mask_list = []
    if masks is not None:
        m = np.asarray(masks)
        if m.ndim != 4 or m.shape[1:] != (F, H, W):
            raise ValueError(f"masks has shape {m.shape}; give (objects, {F}, {H}, {W}) in [0, 1]")
        mask_list = [png_bytes(tint) for tint in mask_tints(m)]
    width = display_width or max(256, min(512, 4 * W))  # small model frames: enlarge (pixelated)
    return {"frames": [png_bytes(f) for f in video], "masks": mask_list, "frame_size": [W, H],
            "display_size": list(view_size((W, H), width)), "boxes": box_list, "paths": path_list}


def run_caption(result) -> str:
    """One line that tells runs apart: the seed, the trajectory's end points and a digest of the frames."""
    digest = hashlib.sha1(np.ascontiguousarray(result.frames).tobytes()).hexdigest()[:8]
    boxes = result.record.boxes
    if boxes is None:
        where = "no trajectory"
    else:
        ends = (boxes[:, -1, :2] + boxes[:, -1, 2:]) / 2
        where = "path ends at " + ", ".join(f"({x:.0f}, {y:.0f})" for x, y in ends)
    seed = getattr(result, "seed", None)
    return f"run {digest}: " + ("" if seed is None else f"seed {seed}, ") + where
