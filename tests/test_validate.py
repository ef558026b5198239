"""The input checks: each returns the canonical value or raises one error style, ``field = value problem; fix``."""
import json
import pickle

import numpy as np
import pytest

from anyi2v_lab.cli import _is_bad_input
from anyi2v_lab.conditions import ConditionError
from anyi2v_lab.trajectory import Trajectory, TrajectoryError
from anyi2v_lab.validate import (
    MAX_IMAGE_SIDE,
    InputError,
    check_box,
    check_choice,
    check_coords,
    check_count,
    check_image_size,
    check_number,
    check_point,
    check_points,
    reject,
    show,
)
from widgets.editing import EventError


def _message(check, *args, **kwargs) -> str:
    with pytest.raises(InputError) as info:
        check(*args, **kwargs)
    return str(info.value)


def test_number():
    assert check_number(3, "x") == 3.0 and isinstance(check_number(np.int64(-2), "x"), float)
    assert check_number(np.float32(0.5), "x") == 0.5
    assert _message(check_number, True, "box[0]") == "box[0] = True is not a number; give a finite number of pixels"
    assert _message(check_number, "1", "p[1]") == "p[1] = '1' is not a number; give a finite number of pixels"
    for bad in (float("nan"), float("inf"), 1e300, 10**400):
        assert _message(check_number, bad, "x").endswith(
            "is not a finite pixel coordinate within ±1e+06; give a finite number of pixels")


def test_point_and_points():
    assert check_point([1, 2], "p") == (1.0, 2.0) and check_point(np.array([1, 2]), "p") == (1.0, 2.0)
    assert _message(check_point, [1, 2, 3], "point") == (
        "point = [1, 2, 3] must be a list of 2 numbers [x, y]; give [x, y] in pixels")
    assert _message(check_point, [1, float("nan")], "point").startswith("point[1] = nan is not a finite")
    assert check_points([], "q") == () and check_points(np.zeros((2, 2)), "q") == ((0.0, 0.0), (0.0, 0.0))
    assert _message(check_points, [], "path", min_len=1) == (
        "path = [] must be a list of at least 1 [x, y] point(s); give [[x, y], ...] in pixels")
    assert "at most 2 [x, y]" in _message(check_points, [[0, 0]] * 3, "points", max_len=2)
    assert "of 1 to 2 [x, y]" in _message(check_points, [], "points", min_len=1, max_len=2)
    assert _message(check_points, [[0, 0], [1]], "path").startswith("path[1] = [1] must be a list of 2 numbers")
    assert _message(check_points, "ab", "path").startswith("path = 'ab' must be a list of at least 0")


def test_box():
    assert check_box((0, 1, 2, 3), "box") == (0.0, 1.0, 2.0, 3.0)
    assert check_box(np.array([0.5, 0, 2, 3]), "box") == (0.5, 0.0, 2.0, 3.0)
    assert _message(check_box, [5, 0, 5, 10], "objects[0].box") == (
        "objects[0].box = [5.0, 0.0, 5.0, 10.0] needs x1 > x0 and y1 > y0 (left, top, right, bottom); give a box "
        "with some area, corners in that order (geometry.box_from_corners orders two corners)")
    assert _message(check_box, [0, 0, 10], "box") == (
        "box = [0, 0, 10] must be a list of 4 numbers [x0, y0, x1, y1]; give [x0, y0, x1, y1] in pixels")
    assert _message(check_box, [0, 0, None, 4], "box").startswith("box[2] = None is not a number")


@pytest.mark.parametrize("bad", [(0, 5), (5, -1), (5.0, 5), (True, 4), "512", (512,), None, (1, 2, 3),
                                 (MAX_IMAGE_SIDE + 1, 4), np.array(5)])
def test_image_size_rejects(bad):
    message = _message(check_image_size, bad, "src_size")
    assert message.startswith(f"src_size = {show(bad)} must be [width, height], positive integers <= 65536; ")
    assert message.endswith("give the image's size in pixels, e.g. [512, 512]")


def test_image_size_accepts():
    assert check_image_size([640, 480]) == (640, 480)
    assert check_image_size(np.array([8, MAX_IMAGE_SIDE])) == (8, MAX_IMAGE_SIDE)
    assert check_image_size((np.int32(3), 4)) == (3, 4) and type(check_image_size((np.int32(3), 4))[0]) is int


def test_count_and_choice():
    assert check_count(16, "num_frames") == 16 and check_count(np.int64(3), "n") == 3
    assert _message(check_count, 0, "num_frames") == "num_frames = 0 must be a positive integer; give e.g. 16"
    assert _message(check_count, True, "num_frames").startswith("num_frames = True must be a positive integer")
    assert _message(check_count, 11, "n", maximum=10, example=4) == (
        "n = 11 must be a positive integer <= 10; give e.g. 4")
    assert check_choice("pad", "policy", ("stretch", "pad")) == "pad"
    assert _message(check_choice, "fit", "policy", ("stretch", "pad")) == (
        "policy = 'fit' is unknown; use one of 'stretch', 'pad'")
    assert _message(check_choice, ["pad"], "policy", ("pad",), fix="say what").endswith("is unknown; say what")


def test_coords():
    np.testing.assert_array_equal(check_coords([[1, 2]], "points", "x, y"), [[1.0, 2.0]])
    assert _message(check_coords, [1, 2, 3], "points", "x, y") == (
        "points has shape (3,); give an array of shape (..., 2) of (x, y)")
    assert _message(check_coords, np.zeros((2, 4)), "boxes", "x0, y0, x1, y1", leading="objects, frames") == (
        "boxes has shape (2, 4); give an array of shape (objects, frames, 4) of (x0, y0, x1, y1)")
    assert "holds NaN or infinite values" in _message(check_coords, [[np.inf, 0]], "p", "x, y", finite=True)
    assert _message(check_coords, [[1, 2], [3]], "p", "x, y").startswith("p = [[1, 2], [3]] is not an array")


def test_errors_are_placed_in_their_parent_and_file_keeping_their_type():
    with pytest.raises(TrajectoryError) as info:
        check_box([0, 0, 1, float("inf")], "box", error=TrajectoryError)
    e = info.value.within("objects[2]").located("trajectory file t.json")
    assert type(e) is TrajectoryError and e.field == "objects[2].box[3]"
    assert str(e).startswith("trajectory file t.json: objects[2].box[3] = inf is not a finite pixel coordinate")
    assert e.within("x").located("other file").location == "trajectory file t.json"  # the inner file stays
    assert InputError("is wrong", field="[0]").within("tracks").field == "tracks[0]"
    assert str(InputError("no object drawn").within("canvas")) == "canvas: no object drawn"
    with pytest.raises(EventError, match=r"^index = 3 is out; pick one$"):
        reject("index", 3, "is out", "pick one", error=EventError)
    copy = pickle.loads(pickle.dumps(e))
    assert type(copy) is TrajectoryError and str(copy) == str(e) and copy.field == e.field


def test_every_input_error_is_bad_input_for_the_command_line():
    for cls in (InputError, TrajectoryError, EventError, ConditionError):
        assert issubclass(cls, ValueError) and _is_bad_input(cls("x"))


def test_a_file_error_names_the_file_the_dotted_field_the_value_and_the_fix(tmp_path):
    obj = {"box": [0, 0, 8, 8], "path": [[1, 1]]}
    doc = {"schema": "anyi2v-lab/trajectory", "version": 1, "image_size": [64, 64],
           "objects": [obj, dict(obj, path=[[1, 1], [2, 2], [3, 3], [float("nan"), 4]])]}
    path = tmp_path / "t.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(TrajectoryError) as info:
        Trajectory.load(path)
    assert str(info.value) == (f"trajectory file {path}: objects[1].path[3][0] = nan is not a finite pixel coordinate "
                               "within ±1e+06; give a finite number of pixels")
