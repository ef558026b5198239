"""The motions the toy model learnt, as limits a drawn trajectory is checked against.

The toy world's training videos move each object along one smooth path, 8 to 32 px long at 64 px, at most
2.6 px a frame over 16 frames, bending gently, inside the frame (``scene.MAX_SPEED``, ``scene.PATH_LENGTH``).
A path outside them is not an error: the method still pulls the object's features along it, but the model
may not draw it. These are rules of thumb from the training data, so they warn, with some slack, and never
refuse. The quickstart's advice and the live warnings of ``TrajectoryCanvas`` (its twin in ``js/logic.js``,
``motionChecks``) use these limits.

>>> motion_notes(trajectory, num_frames=8)            # sentences, empty for a path the model can follow
>>> motion_checks(trajectory, num_frames=8)           # the same as records: object, rule, value, limit
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..trajectory import Trajectory, frame_boxes
from .scene import MAX_SPEED, PATH_LENGTH

RULES = ("too fast", "too long", "leaves the frame", "sharp turn")


@dataclass(frozen=True)
class MotionLimits:
    """What the training videos did, in pixels of a ``frame_size`` frame over ``trained_frames`` frames;
    a path warns past ``speed_slack`` times the speed, ``length_slack`` times the length."""

    max_step: float = MAX_SPEED
    max_length: float = PATH_LENGTH[1]
    max_turn: float = 100.0  # degrees between the first and the last move; nine training paths in ten bend less
    trained_frames: int = 16
    frame_size: int = 64
    speed_slack: float = 1.25
    length_slack: float = 1.1

    def step_limit(self, num_frames: int) -> float:
        """Pixels a frame at ``num_frames``: the same motion in fewer frames moves further each frame."""
        return self.max_step * (self.trained_frames - 1) / max(num_frames - 1, 1)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class MotionCheck:
    """One broken limit: object index, its ``name``, the ``rule`` (one of :data:`RULES`), the measured
    ``value`` and the ``limit`` (px a frame, px, degrees; 0 for leaving the frame)."""

    object: int
    name: str
    rule: str
    value: float
    limit: float


def motion_checks(trajectory: Trajectory, num_frames: int, limits: MotionLimits = MotionLimits()) -> list[MotionCheck]:
    """Every limit each object's per-frame boxes break, measured in pixels of a ``limits.frame_size`` wide
    frame (the trajectory's image is scaled to it)."""
    boxes = frame_boxes(trajectory, num_frames) * limits.frame_size / trajectory.image_size[0]
    height = trajectory.image_size[1] * limits.frame_size / trajectory.image_size[0]
    step_limit = limits.step_limit(num_frames)
    out = []
    for i, (obj, b) in enumerate(zip(trajectory.objects, boxes, strict=True)):
        def check(rule, value, limit, broken, _i=i, _name=obj.name):
            if broken:
                out.append(MotionCheck(object=_i, name=_name, rule=rule, value=float(value), limit=float(limit)))

        steps = np.diff((b[:, :2] + b[:, 2:]) / 2, axis=0)
        speed = np.linalg.norm(steps, axis=1) if len(steps) else np.zeros(1)
        check("too fast", speed.max(), step_limit, speed.max() > limits.speed_slack * step_limit)
        check("too long", speed.sum(), limits.max_length, speed.sum() > limits.length_slack * limits.max_length)
        outside = (b[:, :2] < 0).any() or (b[:, 2] > limits.frame_size).any() or (b[:, 3] > height).any()
        check("leaves the frame", 0.0, 0.0, outside)
        moving = steps[speed > 0.2] if len(steps) else steps
        if len(moving) > 1:
            cos = moving[0] @ moving[-1] / np.linalg.norm(moving[0]) / np.linalg.norm(moving[-1])
            turn = float(np.degrees(np.arccos(np.clip(cos, -1, 1))))
            check("sharp turn", turn, limits.max_turn, turn > limits.max_turn)
    return out


def motion_notes(trajectory: Trajectory, num_frames: int, limits: MotionLimits = MotionLimits()) -> list[str]:
    """:func:`motion_checks` as sentences a learner reads: what is broken and what the model will do."""
    said = {
        "too fast": lambda c: (f"{c.name}: too fast, {c.value:.1f} px a frame (its training videos moved at most "
                               f"{c.limit:.1f} at {num_frames} frames): the object may fall behind its box."),
        "too long": lambda c: (f"{c.name}: too long, {c.value:.0f} px (it learnt at most {c.limit:.0f}): the object "
                               "stops before the end."),
        "leaves the frame": lambda c: f"{c.name}: the box leaves the frame: the object is lost at the edge.",
        "sharp turn": lambda c: (f"{c.name}: a turn of {c.value:.0f} degrees (it learnt gentle bends): the object "
                                 "cuts the corner or stalls at the turn."),
    }
    return [said[c.rule](c) for c in motion_checks(trajectory, num_frames, limits)]
