"""TrajectoryCanvas: draw boxes, paths and query points on a condition image, read them as a Trajectory.

>>> canvas = TrajectoryCanvas(image, num_frames=16)       # display it, then draw
>>> canvas.trajectory                                     # a Trajectory in image pixels (None: nothing drawn)
>>> canvas.trajectory = Trajectory.load("traj.json")      # shows up on the canvas
>>> canvas.save("traj.json")

The browser sends gestures as small events (``widgets/editing.py``); :meth:`TrajectoryCanvas.handle_event`
applies them here, so ``canvas.trajectory`` is current as soon as the kernel has read the event.
"""
from __future__ import annotations

import anywidget
import traitlets as t
from PIL import ImageDraw

from anyi2v_lab.palette import object_colour
from anyi2v_lab.toy.limits import MotionLimits
from anyi2v_lab.trajectory import Trajectory, TrajectoryError, frame_boxes
from anyi2v_lab.validate import check_count

from .bundle import css, esm
from .editing import Draft, EditorState, EventError, History, apply_event
from .images import as_rgb, png_bytes
from .mapping import view_size
from .static import StaticPicture, box, cross, decode, enlarged, panels, plural, polyline

MODES = ("select", "box", "path", "points", "target")
# key -> (image size, frame count, objects, selected) of the last canvas made with that key: a canvas
# made again (its cell run again, Run All) starts from the drawing, not from its initial trajectory
_KEPT: dict[str, tuple] = {}


class TrajectoryCanvas(StaticPicture, anywidget.AnyWidget):
    """An editable trajectory over ``image`` (PIL, array, path or Condition).

    ``trajectory``: an initial :class:`Trajectory` in pixels of this image. ``num_frames``: the frame count
    of the path preview (and of the trajectory read back). ``display_width``: canvas width in screen pixels;
    every synced number stays in image pixels. ``key``: a canvas made again with the same key on an image
    of the same size (its cell run again, Run All) starts from the last drawing, not from ``trajectory``.
    ``limits``: a :class:`~anyi2v_lab.toy.limits.MotionLimits`; the canvas then warns, while you draw, where a
    path is faster, longer or bends more than the model learnt, or leaves the frame.
    """

    _esm = esm("canvas.js")
    _css = css("style.css")

    image = t.Bytes(b"").tag(sync=True)
    image_size = t.List(t.Int(), [1, 1]).tag(sync=True)
    display_size = t.List(t.Int(), [1, 1]).tag(sync=True)
    num_frames = t.Int(16).tag(sync=True)
    objects = t.List(t.Dict()).tag(sync=True)
    selected = t.Int(-1).tag(sync=True)
    mode = t.Enum(MODES, "box").tag(sync=True)
    status = t.Unicode("").tag(sync=True)
    limits = t.Dict().tag(sync=True)  # MotionLimits as a dict ({}: no warnings): the browser checks each drawing live

    def __init__(self, image, trajectory: Trajectory | None = None, num_frames: int = 16,
                 display_width: int = 512, key: str | None = None, limits: MotionLimits | None = None, **kwargs):
        rgb = as_rgb(image)
        size = (rgb.shape[1], rgb.shape[0])
        check_count(num_frames, "num_frames")
        if limits is not None and not isinstance(limits, MotionLimits):
            raise TypeError(f"limits must be a MotionLimits (from anyi2v_lab.toy.limits) or None, "
                            f"got {type(limits).__name__}")
        super().__init__(image=png_bytes(rgb), image_size=list(size), limits={} if limits is None else limits.to_dict(),
                         display_size=list(view_size(size, display_width)), num_frames=num_frames, **kwargs)
        self._history = History()
        self.on_msg(self._on_custom_msg)
        if trajectory is not None:
            self.trajectory = trajectory
            self._history = History()  # the initial trajectory is not an edit to undo
        self._key = key
        self._restore()

    def _restore(self) -> None:
        """Take up the drawing of the last canvas of this key on the same image size, then keep ours there."""
        if self._key is None:
            return
        if not isinstance(self._key, str) or not self._key:
            raise ValueError(f"key = {self._key!r}: give a non-empty string, e.g. key='quickstart', so that the "
                             "canvas made again by its cell keeps the drawing")
        kept = _KEPT.get(self._key)
        if kept is not None and kept[0] == tuple(self.image_size):
            with self.hold_sync():
                self.num_frames, self.objects, self.selected = kept[1:]
        self.observe(self._keep, ["objects", "selected", "num_frames"])
        self._keep()

    def _keep(self, _change=None) -> None:
        _KEPT[self._key] = (tuple(self.image_size), self.num_frames, list(self.objects), self.selected)

    # --- state ------------------------------------------------------------------------------------
    @t.validate("objects")
    def _check_objects(self, proposal):
        try:
            return [Draft.from_dict(d).to_dict() for d in proposal["value"]]
        except EventError as e:
            raise t.TraitError(f"objects: {e}") from None

    @property
    def state(self) -> EditorState:
        return EditorState(tuple(Draft.from_dict(d) for d in self.objects), self.selected)

    def _set_state(self, state: EditorState) -> None:
        with self.hold_sync():
            self.objects = [d.to_dict() for d in state.objects]
            self.selected = state.selected

    @property
    def trajectory(self) -> Trajectory | None:
        """The drawn objects that have a box, in image pixels; None while no object has a box."""
        return self.state.to_trajectory(tuple(self.image_size), self.num_frames)

    @trajectory.setter
    def trajectory(self, traj: Trajectory | None) -> None:
        if traj is not None:
            if not isinstance(traj, Trajectory):
                raise TypeError(f"trajectory must be a Trajectory or None, got {type(traj).__name__}")
            if tuple(traj.image_size) != tuple(self.image_size):
                raise TrajectoryError(
                    f"trajectory.image_size = {traj.image_size} differs from the canvas image "
                    f"{tuple(self.image_size)}; map it first with traj.rescaled(ResizeMap.from_policy("
                    f"{traj.image_size}, {tuple(self.image_size)}))")
            if traj.num_frames is not None:
                self.num_frames = traj.num_frames
        self._history.push(self.state)
        self._set_state(EditorState.from_trajectory(traj))

    # --- editing ----------------------------------------------------------------------------------
    def handle_event(self, event: dict) -> None:
        """Apply one editor event (``widgets/editing.py``; plus ``{"type": "undo"}``). Raises
        :class:`EventError` on a malformed event, leaving the drawing unchanged."""
        if isinstance(event, dict) and event.get("type") == "undo":
            self.undo()
            return
        old = self.state
        new = apply_event(old, event, tuple(self.image_size))
        if new != old:
            self._history.push(old)
            self._set_state(new)

    def undo(self) -> bool:
        """Go back one edit; False when there is nothing to undo."""
        prev = self._history.pop()
        if prev is None:
            return False
        self._set_state(prev)
        return True

    def clear(self) -> None:
        self.handle_event({"type": "clear"})

    def _on_custom_msg(self, _widget, content, _buffers) -> None:
        if not isinstance(content, dict) or content.get("kind") != "event":
            return
        try:
            self.handle_event(content.get("event"))
            self.status = ""
        except (EventError, TrajectoryError) as e:
            self.status = f"ignored: {e}"
        self.send({"kind": "ack"})

    # --- without a kernel ---------------------------------------------------------------------------
    def snapshot(self):
        """The canvas as drawn: the image, each object's box, its box in the last frame (thin), its path
        with the drawn points, and its query points (crosses)."""
        W, H = self.image_size
        picture = enlarged(decode(self.image), self.display_size)
        scale = (picture.width / W, picture.height / H)
        draw = ImageDraw.Draw(picture)
        last = self._last_boxes()
        for i, o in enumerate(self.state.objects):
            c = object_colour(i)
            if o.box is not None:
                box(draw, o.box, c, scale)
                if i in last:
                    box(draw, last[i], c, scale, width=1)
            polyline(draw, o.path, c, scale, dots=4)
            for q in o.query_points:
                cross(draw, q, c, scale)
        return panels([("TrajectoryCanvas (a picture of it: run the notebook to draw)", picture)], self.describe())

    def describe(self) -> str:
        objects = self.state.objects
        if not objects:
            return f"TrajectoryCanvas: nothing drawn yet on the {self.image_size[0]}x{self.image_size[1]} image"
        parts = [f"{o.name or f'object {i + 1}'}: " + ("box, " if o.box else "no box, ")
                 + f"{plural(len(o.path), 'path point')}, {plural(len(o.query_points), 'query point')}"
                 for i, o in enumerate(objects)]
        return (f"TrajectoryCanvas, {self.num_frames} frames on the {self.image_size[0]}x{self.image_size[1]} "
                f"image: " + "; ".join(parts))

    def _last_boxes(self) -> dict[int, list[float]]:
        """Object index -> its box in the last frame, for objects that move or change size."""
        traj = self.trajectory
        if traj is None:
            return {}
        boxed = [i for i, o in enumerate(self.state.objects) if o.box is not None]
        moving = [len(o.path) > 1 or o.target_box is not None for o in self.state.objects]
        boxes = frame_boxes(traj, self.num_frames)[:, -1]
        return {i: b for i, b in zip(boxed, boxes, strict=True) if moving[i]}

    # --- files ------------------------------------------------------------------------------------
    def save(self, path, overwrite: bool = False) -> None:
        """Write the trajectory as JSON (our schema, :meth:`Trajectory.save`)."""
        traj = self.trajectory
        if traj is None:
            raise TrajectoryError("nothing to save: no object has a box yet; draw a box first")
        traj.save(path, overwrite=overwrite)

    def load(self, path) -> Trajectory:
        """Read a trajectory file (ours, or the reference format) drawn on this image and show it."""
        traj = Trajectory.load(path, image_size=tuple(self.image_size))
        self.trajectory = traj
        return traj
