"""Trajectories: validation, JSON round trips, the reference format, per-frame boxes, query points."""
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.interpolate import PchipInterpolator

from anyi2v_lab.geometry import POLICIES, ResizeMap
from anyi2v_lab.trajectory import (
    ObjectTrack,
    Trajectory,
    TrajectoryError,
    TrajectoryWarning,
    clip_frame_boxes,
    frame_boxes,
    frame_paths,
    query_offsets,
    query_points_at,
    resample_path,
)

REF = Path(__file__).parent / "data" / "reference_horse_canny.json"
SETTINGS = settings(derandomize=True, deadline=None, max_examples=150)


def _two_objects(num_frames=None):
    a = ObjectTrack((10, 20, 50, 60), [(0, 0), (5, 5), (10, 0)], target_box=(0, 0, 80, 20),
                    query_points=[(20, 30), (100, 100)], name="cat")
    b = ObjectTrack.static((200.5, 100, 300, 180.25), query_points=[(250, 150)])
    return Trajectory((a, b), (320, 256), num_frames)


# --- per-frame boxes ----------------------------------------------------------------------------------
def test_frame_boxes_by_hand():
    boxes = frame_boxes(_two_objects(), 3)
    assert boxes.shape == (2, 3, 4) and boxes.dtype == np.float64
    # box (10,20,50,60) size 40x40 -> target size 80x20; half growth per frame: (+-10, -+5) * i
    np.testing.assert_array_equal(boxes[0], [[10, 20, 50, 60], [5, 30, 65, 60], [0, 30, 80, 50]])
    np.testing.assert_array_equal(boxes[1], [[200.5, 100, 300, 180.25]] * 3)  # static


def test_reference_file_boxes_match_the_spec_rule():
    traj = Trajectory.load(REF)
    assert traj.image_size == (512, 512) and len(traj.objects) == 1
    obj = traj.objects[0]
    assert obj.box == (94, 105, 481, 281) and obj.target_box == obj.box
    assert obj.query_points == ((174, 210), (316, 195), (437, 176))
    raw = json.loads(REF.read_text())["center_traj"][0]
    boxes = frame_boxes(traj, 16)
    for i, (x, y) in enumerate(raw):  # constant size: the box just translates by path[i] - path[0]
        dx, dy = x - 167, y - 244
        np.testing.assert_allclose(boxes[0, i], [94 + dx, 105 + dy, 481 + dx, 281 + dy], rtol=0, atol=1e-12)
    assert boxes[0, -1, 0] - boxes[0, 0, 0] == 173.0


def test_reference_target_box_grows_symmetrically():
    d = json.loads(REF.read_text())
    d["target_box"] = [[0, 0, 587, 76]]  # size 387x176 -> 587x76: +200 wide, -100 high
    boxes = frame_boxes(Trajectory.from_json(d), 16)
    for i in (0, 7, 15):
        dx, g = d["center_traj"][0][i][0] - 167, i / 15
        np.testing.assert_allclose(boxes[0, i], [94 + dx - 100 * g, 105 + 50 * g, 481 + dx + 100 * g, 281 - 50 * g])
    np.testing.assert_allclose(boxes[0, 15, 2:] - boxes[0, 15, :2], [587, 76])


def test_frame_paths_timings():
    traj = Trajectory.load(REF)  # the reference's format: point i is frame i
    assert traj.timing == "first-frames"
    np.testing.assert_array_equal(frame_paths(traj, 8)[0], np.asarray(traj.objects[0].path[:8]))
    res = frame_paths(traj, 8, "resample")[0]
    assert tuple(res[0]) == traj.objects[0].path[0] and tuple(res[-1]) == traj.objects[0].path[-1]
    np.testing.assert_array_equal(frame_paths(Trajectory.load(REF, timing="resample"), 8)[0], res)
    with pytest.raises(TrajectoryError, match="path has 16 points but 20 frames need 20 under timing 'first-frames'"):
        frame_paths(traj, 20)
    still = Trajectory.single((0, 0, 10, 10), [(5, 5)]).with_timing("first-frames")  # one point: static
    np.testing.assert_array_equal(frame_paths(still, 4)[0], [[5, 5]] * 4)
    with pytest.raises(TrajectoryError, match="num_frames is not set"):
        frame_boxes(traj)
    assert frame_boxes(Trajectory(traj.objects, traj.image_size, 16)).shape == (1, 16, 4)


# --- resampling ---------------------------------------------------------------------------------------
def test_resample_path_is_the_apps_pchip():
    pts = [(0, 0), (30, 5), (35, 40), (80, 42)]
    t = np.linspace(0, 1, 4)
    x, y = np.array(pts, float).T
    tt = np.linspace(0, 1, 16)
    expected = np.stack([PchipInterpolator(t, x)(tt), PchipInterpolator(t, y)(tt)], axis=1)
    np.testing.assert_allclose(resample_path(pts, 16), expected, rtol=0, atol=1e-12)


def test_resample_special_cases():
    np.testing.assert_array_equal(resample_path([(3, 4)], 5), [[3, 4]] * 5)
    np.testing.assert_allclose(resample_path([(0, 0), (10, -20)], 5),
                               [[0, 0], [2.5, -5], [5, -10], [7.5, -15], [10, -20]])
    dup = resample_path([(1, 1), (1, 1), (1, 1), (9, 2), (9, 2)], 16)
    assert np.all(np.isfinite(dup)) and dup[0].tolist() == [1, 1] and dup[-1].tolist() == [9, 2]
    assert resample_path([(1, 2), (3, 4)], 1).tolist() == [[1, 2]]
    with pytest.raises(TrajectoryError, match="points"):
        resample_path([], 16)
    with pytest.raises(TrajectoryError, match="num_frames"):
        resample_path([(0, 0)], 0)


coords = st.floats(-1000, 1000, allow_nan=False)


@SETTINGS
@given(st.lists(st.tuples(coords, coords), min_size=1, max_size=20), st.integers(1, 40))
def test_resampled_path_passes_through_given_points(pts, f):
    out = resample_path(pts, f)
    assert out.shape == (f, 2) and np.all(np.isfinite(out))
    assert tuple(out[0]) == pts[0]
    if f > 1:
        assert tuple(out[-1]) == pts[-1]
    if len(pts) == f:
        assert [tuple(p) for p in out] == pts
    elif f > 1 and len(pts) > 1 and (f - 1) % (len(pts) - 1) == 0:  # the sample grid contains every node
        step = (f - 1) // (len(pts) - 1)
        np.testing.assert_allclose(out[::step], pts, rtol=1e-9, atol=1e-9)
    # PCHIP never overshoots the range of the given points
    lo, hi = np.min(pts, axis=0), np.max(pts, axis=0)
    assert np.all(out >= lo - 1e-9) and np.all(out <= hi + 1e-9)


# --- clipping -----------------------------------------------------------------------------------------
def test_clipping_warns_once_and_never_exits():
    traj = Trajectory.single((400, 100, 500, 200), [(0, 0), (100, 0), (600, 0)], (512, 512), name="horse")
    boxes = frame_boxes(traj, 3)
    with pytest.warns(TrajectoryWarning, match=r"2 box\(es\) leave the 512x512 image") as rec:
        clipped, which = clip_frame_boxes(boxes, traj.image_size, names=["horse"])
    assert len(rec) == 1 and "object 0 'horse' frames 1-2 (wholly outside, skipped: 2)" in str(rec[0].message)
    assert which == [(0, 1), (0, 2)]
    np.testing.assert_array_equal(clipped[0], [[400, 100, 500, 200], [500, 100, 512, 200], [512, 100, 512, 200]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert clip_frame_boxes(boxes[:, :1], (512, 512))[1] == []


def test_frame0_box_outside_is_a_validation_error():
    with pytest.raises(TrajectoryError, match=r"objects\[0\].box = \[600.0, 0.0, 700.0, 50.0\] \(object 'x'\) lies "
                                              r"entirely outside the 512x512 image"):
        Trajectory.single((600, 0, 700, 50), [(0, 0)], (512, 512), name="x")
    with pytest.raises(TrajectoryError, match=r"object 1 'b': frame-0 box \[-50.0, 0.0, -10.0, 5.0\]"):
        clip_frame_boxes(np.array([[[0, 0, 5, 5]], [[-50, 0, -10, 5]]]), (64, 64), names=["a", "b"])


# --- query points -------------------------------------------------------------------------------------
def test_query_offsets_inside_outside_and_scaled():
    obj = ObjectTrack((10, 20, 50, 60), [(0, 0)], query_points=[(20, 30), (100, 100), (50, 40)])
    # inside keeps its offset; outside and on the border (x == x1, strict like the reference) -> centre
    np.testing.assert_array_equal(query_offsets(obj), [[10, 10], [20, 20], [20, 20]])
    np.testing.assert_array_equal(query_offsets(obj, (0, 0, 80, 20)), [[20, 5], [40, 10], [40, 10]])
    np.testing.assert_array_equal(query_points_at(obj, (100, 100, 180, 120)), [[120, 105], [140, 110], [140, 110]])
    np.testing.assert_array_equal(query_points_at(obj), [[20, 30], [30, 40], [30, 40]])
    np.testing.assert_array_equal(query_offsets(ObjectTrack((0, 0, 10, 4), [(0, 0)])), [[5, 2]])


def test_query_points_follow_the_frame_boxes():
    traj = _two_objects()
    boxes = frame_boxes(traj, 3)
    obj = traj.objects[0]
    rel0 = (query_points_at(obj) - boxes[0, 0, :2]) / (boxes[0, 0, 2:] - boxes[0, 0, :2])
    for f in range(3):
        rel = (query_points_at(obj, boxes[0, f]) - boxes[0, f, :2]) / (boxes[0, f, 2:] - boxes[0, f, :2])
        np.testing.assert_allclose(rel, rel0)


# --- rescaling ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("policy", POLICIES)
def test_rescaled_commutes_with_frame_boxes(policy):
    traj = _two_objects()
    m = ResizeMap.from_policy(traj.image_size, (512, 384), policy)
    r = traj.rescaled(m)
    assert r.image_size == (512, 384)
    np.testing.assert_allclose(frame_boxes(r, 7), m.boxes(frame_boxes(traj, 7)), rtol=0, atol=1e-9)
    np.testing.assert_allclose(query_points_at(r.objects[0]), m.points(query_points_at(traj.objects[0])), atol=1e-9)
    back = r.rescaled(m.inverse())
    np.testing.assert_allclose(back.objects[0].box, traj.objects[0].box, atol=1e-9)
    with pytest.raises(TrajectoryError, match="resize_map.src_size"):
        r.rescaled(m)


# --- JSON round trips ---------------------------------------------------------------------------------
def test_json_round_trip_and_atomic_save(tmp_path):
    traj = _two_objects(num_frames=16)
    assert Trajectory.from_json(traj.to_json()) == traj
    assert Trajectory.from_json(traj.to_dict()) == traj
    p = tmp_path / "t.json"
    traj.save(p)
    assert Trajectory.load(p) == traj
    assert json.loads(p.read_text())["schema"] == "anyi2v-lab/trajectory"
    with pytest.raises(FileExistsError, match="overwrite=True"):
        traj.save(p)
    other = Trajectory.static((0, 0, 8, 8), (64, 64))
    other.save(str(p), overwrite=True)
    assert Trajectory.load(p) == other
    assert os.listdir(tmp_path) == ["t.json"]  # no temp file left behind
    plain = tmp_path / "plain"
    plain.write_text("")  # the mode of any new file (the temp file's private 0600 is not kept)
    assert p.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777
    plain.unlink()
    ref = Trajectory.load(REF)
    assert Trajectory.from_json(ref.to_json()) == ref


def test_reference_format_options(tmp_path):
    d = json.loads(REF.read_text())
    assert Trajectory.from_json(d, image_size=(1024, 1024)).image_size == (1024, 1024)
    d2 = dict(d, center_traj=[[]], extra=1)
    with pytest.warns(TrajectoryWarning, match="extra"):
        t = Trajectory.from_json(d2)
    assert t.objects[0].path == ((287.5, 193.0),)  # no path: static at the box centre, as the app
    with pytest.raises(TrajectoryError, match=r"query_point = .* one entry per object \(1"):
        Trajectory.from_json(dict(d, query_point=[[], []]))
    with pytest.raises(TrajectoryError, match=r"bounding_box\[0\] = \[481.0, 105.0, 94.0, 281.0\] needs x1 > x0"):
        Trajectory.from_json(dict(d, bounding_box=[[481, 105, 94, 281]]))
    with pytest.raises(TrajectoryError, match="not found"):
        Trajectory.load(tmp_path / "missing.json")


# --- validation messages ------------------------------------------------------------------------------
def _ours(**obj):
    o = {"box": [0, 0, 10, 10], "path": [[0, 0]]}
    o.update(obj)
    return {"schema": "anyi2v-lab/trajectory", "version": 1, "image_size": [64, 64], "objects": [o]}


@pytest.mark.parametrize("doc,match", [
    (_ours(box=[5, 0, 5, 10]), r"objects\[0\].box = \[5.0, 0.0, 5.0, 10.0\] needs x1 > x0"),
    (_ours(box=[0, 0, float("nan"), 10]), r"objects\[0\].box\[2\] = nan is not a finite"),
    (_ours(path=[[0, float("inf")]]), r"path\[0\]\[1\] = inf"),
    (_ours(box=[0, 0, 10]), r"box = \[0, 0, 10\] must be a list of 4 numbers"),
    (_ours(path=[]), "path = \\[\\] must be a list of at least 1"),
    (_ours(path=[[0, "1"]]), r"path\[0\]\[1\] = '1' is not a number"),
    (_ours(query_points=[[1, True]]), r"query_points\[0\]\[1\] = True is not a number"),
    (_ours(target_box=[0, 0, 1e300, 4]), r"target_box\[2\] = 1e\+300 is not a finite"),
    (_ours(nmae="x"), r"unknown keys \['nmae'\]"),
    (dict(_ours(), objects=[]), "objects = \\[\\] must be a non-empty list"),
    (dict(_ours(), image_size=[-64, 64]), r"image_size = \[-64, 64\] must be \[width, height\]"),
    (dict(_ours(), image_size=[0, 64]), r"image_size"),
    (dict(_ours(), version=2), "version = 2 is unknown; this anyi2v-lab reads version 1"),
    (dict(_ours(), schema="other"), "schema = 'other'"),
    ("{not json", "not valid JSON"),
    ([1, 2], "must be a JSON object"),
    ({"foo": 1}, "unrecognised trajectory"),
])
def test_validation_errors_name_the_field(doc, match):
    with pytest.raises(TrajectoryError, match=match):
        Trajectory.from_json(doc)


def test_constructor_errors():
    with pytest.raises(TrajectoryError, match="non-empty list of ObjectTrack"):
        Trajectory((), (64, 64))
    with pytest.raises(TrajectoryError, match=r"objects\[0\] = .* is not an ObjectTrack"):
        Trajectory(({"box": [0, 0, 1, 1]},), (64, 64))
    with pytest.raises(TrajectoryError, match="name"):
        ObjectTrack((0, 0, 1, 1), [(0, 0)], name=3)
    assert isinstance(TrajectoryError("x"), ValueError)


# --- property tests: the parser raises TrajectoryError and nothing else --------------------------------
json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-10**400, 10**400), st.floats(), st.text(max_size=5))
json_like = st.recursive(json_leaf, lambda c: st.one_of(st.lists(c, max_size=5),
                                                         st.dictionaries(st.text(max_size=8), c, max_size=5)),
                         max_leaves=30)
number = st.one_of(st.integers(-10**30, 10**30), st.floats(), st.integers(-600, 600), st.floats(-600, 600))
point = st.one_of(st.lists(number, min_size=0, max_size=3), json_like)
box = st.one_of(st.lists(number, min_size=3, max_size=5), st.builds(lambda a, b: [a, b, a + 40, b + 30],
                                                                    st.integers(-50, 600), st.integers(-50, 600)))
ours_obj = st.fixed_dictionaries({"box": box, "path": st.lists(point, max_size=4)},
                                 optional={"target_box": st.one_of(st.none(), box), "name": json_leaf,
                                           "query_points": st.lists(point, max_size=3), "junk": json_like})
ours_doc = st.fixed_dictionaries({"schema": st.sampled_from(["anyi2v-lab/trajectory", "x"]),
                                  "version": st.sampled_from([1, 1.0, 2, True, "1", None]),
                                  "objects": st.lists(st.one_of(ours_obj, json_like), max_size=3)},
                                 optional={"image_size": st.one_of(st.lists(number, max_size=3), json_like,
                                                                   st.just([512, 512])),
                                           "num_frames": st.one_of(st.integers(-3, 40), json_leaf)})
valid_point = st.lists(st.floats(-600, 600), min_size=2, max_size=2)
valid_box = st.builds(lambda x, y, w, h: [x, y, x + w, y + h], st.floats(-50, 500), st.floats(-50, 500),
                      st.floats(1, 300), st.integers(1, 300))
valid_obj = st.fixed_dictionaries({"box": valid_box, "path": st.lists(valid_point, min_size=1, max_size=5)},
                                  optional={"target_box": st.one_of(st.none(), valid_box), "name": st.text(max_size=4),
                                            "query_points": st.lists(valid_point, max_size=3)})
valid_doc = st.fixed_dictionaries({"schema": st.just("anyi2v-lab/trajectory"), "version": st.just(1),
                                   "image_size": st.just([512, 512]),
                                   "objects": st.lists(valid_obj, min_size=1, max_size=3)},
                                  optional={"num_frames": st.integers(1, 40)})

valid_ref = valid_doc.map(lambda d: {
    "bounding_box": [o["box"] for o in d["objects"]],
    "target_box": [o.get("target_box") or o["box"] for o in d["objects"]],
    "center_traj": [o["path"] for o in d["objects"]],
    "query_point": [o.get("query_points", []) for o in d["objects"]]})


@st.composite
def corrupted(draw, docs):
    """A valid document with one value somewhere replaced by arbitrary JSON-like data."""
    doc = json.loads(json.dumps(draw(docs)))
    node = doc
    while True:
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        if not keys:
            return doc
        k = draw(st.sampled_from(keys))
        if isinstance(node[k], (dict, list)) and node[k] and draw(st.booleans()):
            node = node[k]
            continue
        node[k] = draw(st.one_of(json_like, number))
        return doc


ref_doc = st.fixed_dictionaries({"bounding_box": st.lists(box, max_size=3)},
                                optional={"target_box": st.lists(st.one_of(box, st.none()), max_size=3),
                                          "center_traj": st.lists(st.lists(point, max_size=4), max_size=3),
                                          "query_point": st.lists(st.lists(point, max_size=3), max_size=3)})


def _parse_only_trajectory_errors(doc):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TrajectoryWarning)
            traj = Trajectory.from_json(doc)
    except TrajectoryError:
        return
    assert Trajectory.from_json(traj.to_json()) == traj
    boxes = frame_boxes(traj, 4, "resample")  # 'first-frames' needs 4 points a path (checked elsewhere)
    assert boxes.shape == (len(traj.objects), 4, 4) and np.all(np.isfinite(boxes))
    for o, b in zip(traj.objects, boxes):
        assert np.all(np.isfinite(query_points_at(o, b[-1])))


@SETTINGS
@given(st.one_of(json_like, ours_doc, ref_doc, valid_doc, valid_ref, corrupted(valid_doc), corrupted(valid_ref)))
def test_parser_raises_only_trajectory_error(doc):
    _parse_only_trajectory_errors(doc)


@SETTINGS
@given(st.one_of(st.text(max_size=40), json_like.map(json.dumps), valid_doc.map(json.dumps),
                 corrupted(valid_doc).map(json.dumps)))
def test_parser_on_strings_raises_only_trajectory_error(text):
    _parse_only_trajectory_errors(text)


@settings(derandomize=True, deadline=None, max_examples=60)
@given(st.lists(st.tuples(number, number), max_size=4), st.one_of(st.integers(-2, 30), json_leaf))
def test_resample_raises_only_trajectory_error(pts, f):
    try:
        out = resample_path(pts, f)
    except TrajectoryError:
        return
    assert np.all(np.isfinite(out))


def test_geometry_and_trajectory_do_not_import_torch():
    code = ("import sys, anyi2v_lab.geometry, anyi2v_lab.trajectory as t; t.resample_path([(0, 0), (1, 1)], 4); "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
