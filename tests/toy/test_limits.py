"""The toy model's motion limits: each rule against a hand-computed path, the speed limit's frame scaling,
and the sentences the quickstart prints."""
import math

import pytest

from anyi2v_lab.toy.limits import MotionLimits, motion_checks, motion_notes
from anyi2v_lab.toy.scene import MAX_SPEED, PATH_LENGTH
from anyi2v_lab.trajectory import ObjectTrack, Trajectory


def _one(box, path, size=(64, 64), target_box=None):
    return Trajectory((ObjectTrack(box, path, target_box=target_box, name="star"),), size)


def test_limits_are_the_toy_worlds_and_scale_with_the_frames():
    lim = MotionLimits()
    assert (lim.max_step, lim.max_length, lim.trained_frames) == (MAX_SPEED, PATH_LENGTH[1], 16)
    assert lim.step_limit(16) == MAX_SPEED and lim.step_limit(8) == pytest.approx(2.6 * 15 / 7)


def test_each_rule_against_a_hand_computed_path():
    box = (20.0, 20.0, 30.0, 30.0)
    assert motion_checks(_one(box, [(25, 25), (15, 25)]), 8) == []  # 10 px in 7 frames: within
    # 36 px straight in 7 frame steps: 5.14 px a frame (within 5.57 x 1.25), too long (36 > 32 x 1.1)
    (long,) = motion_checks(_one((2.0, 20.0, 12.0, 30.0), [(7, 25), (43, 25)]), 8)
    assert (long.rule, long.limit) == ("too long", 32) and long.value == pytest.approx(36)
    # the same drawing on a 128 px image is 18 px of a 64 px frame: within
    assert motion_checks(_one((2.0, 20.0, 12.0, 30.0), [(7, 25), (43, 25)], size=(128, 128)), 8) == []
    fast = motion_checks(_one(box, [(25, 25), (25, 25), (25, 25), (25, 25), (25, 25), (25, 25), (25, 25),
                                    (25, 55)]), 8)
    assert [c.rule for c in fast] == ["too fast"] and fast[0].value == pytest.approx(30)  # one jump of 30 px
    (edge,) = motion_checks(_one(box, [(25, 25), (25, 2)]), 8)  # the box ends at y = -3 to 7
    assert edge.rule == "leaves the frame"
    turn = motion_checks(_one(box, [(25, 25), (35, 25), (25, 26)]), 8)
    assert [c.rule for c in turn] == ["sharp turn"] and turn[0].value > 150


def test_notes_say_what_the_quickstart_says():
    notes = motion_notes(_one((20.0, 20.0, 30.0, 30.0), [(25, 25)] * 7 + [(25, 55)]), 8)
    assert notes == [f"star: too fast, 30.0 px a frame (its training videos moved at most {2.6 * 15 / 7:.1f} at 8 "
                     "frames): the object may fall behind its box."]
    assert math.isclose(MotionLimits(frame_size=32).step_limit(8), 2.6 * 15 / 7)
