"""Trajectory interop: each peer format read from a hand-made sample, round trips both ways, errors that
name the file and the field. The samples are written by tests/data/interop/make_samples.py from the
formats' definitions, without our writers."""
import io
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from anyi2v_lab.interop import FORMATS, detect_format, read_trajectory, reference, write_trajectory
from anyi2v_lab.interop._common import trajectory_to_tracks
from anyi2v_lab.trajectory import (
    ObjectTrack,
    Trajectory,
    TrajectoryError,
    TrajectoryWarning,
    frame_boxes,
    frame_paths,
    resample_path,
)

DATA = Path(__file__).parents[1] / "data" / "interop"
SAMPLES = {
    "reference": DATA / "reference.json",
    "sgi2v": DATA / "sgi2v" / "traj.npy",
    "draganything": DATA / "draganything" / "demo.json",
    "mofa": DATA / "mofa_tracks.json",
    "ati": DATA / "ati_tracks.pth",
    "wanmove": DATA / "wanmove" / "tracks.npy",
}
SIZES = {"mofa": (128, 72), "ati": (160, 120)}  # the formats that do not record their image's size


def read(fmt, **kw):
    if fmt in SIZES:
        kw.setdefault("image_size", SIZES[fmt])
    if fmt == "mofa":  # a bare JSON list: its format is named, never guessed
        kw.setdefault("format", "mofa")
    return read_trajectory(SAMPLES[fmt], **kw)


def ours(image_size=(128, 96)):
    """A drawn trajectory: a sparse path that grows, with two query points; and a static object."""
    return Trajectory((
        ObjectTrack((20, 30, 44, 50), ((32, 40), (50, 44), (70, 40)), (16, 26, 48, 54), ((28, 36), (38, 46)), "car"),
        ObjectTrack.static((90, 10, 110, 30), name="tree"),
    ), image_size)


# --- reading the samples ---------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", sorted(set(SAMPLES) - {"mofa"}))
def test_detect_format(fmt):
    assert detect_format(SAMPLES[fmt]) == fmt


def test_a_bare_json_list_is_not_guessed_to_be_mofa(tmp_path):
    """A bare list names no format: detection refuses it, saying what it could be and how to say so;
    MOFA-Video's state under its key, or the format named, reads it."""
    with pytest.raises(TrajectoryError, match=r"mofa_tracks.json is a bare JSON list, which does not say its format; "
                       r"MOFA-Video's drag list .* give --trajectory-format mofa on the command line, "
                       r"format='mofa' in Python"):
        read_trajectory(SAMPLES["mofa"], image_size=(128, 72))
    (tmp_path / "numbers.json").write_text("[1, 2, 3]")
    with pytest.raises(TrajectoryError, match="bare JSON list"):
        detect_format(tmp_path / "numbers.json")
    (tmp_path / "m.json").write_text(json.dumps({"tracking_points": json.loads(SAMPLES["mofa"].read_text())}))
    assert detect_format(tmp_path / "m.json") == "mofa"
    assert read_trajectory(tmp_path / "m.json", image_size=(128, 72)) == read("mofa")


def test_detect_ours(tmp_path):
    ours().save(tmp_path / "t.json")
    assert detect_format(tmp_path / "t.json") == "anyi2v"
    assert read_trajectory(tmp_path / "t.json") == ours()


def test_read_reference():
    t = read("reference")
    d = json.loads(SAMPLES["reference"].read_text())
    assert t.image_size == (512, 512) and len(t.objects) == 2
    for o, box, tb, path, qp in zip(t.objects, d["bounding_box"], d["target_box"], d["center_traj"], d["query_point"]):
        assert o.box == tuple(box) and o.end_box == tuple(tb)
        assert np.array_equal(o.path, path) and np.array_equal(o.query_points, qp)


HORSE = Path(__file__).parents[1] / "data" / "reference_horse_canny.json"  # the reference's own example


def test_reference_files_keep_the_references_timing():
    """The reference's command line gives frame i the point center_traj[i]: at 4 frames its horse-canny
    example asks for 26 px of motion (167 -> 193), not the whole path's 173 px; resampling on request."""
    raw = np.array(json.loads(HORSE.read_text())["center_traj"][0], float)
    first = read_trajectory(HORSE)
    assert first.timing == "first-frames"
    boxes = frame_boxes(first, 4)[0]
    np.testing.assert_array_equal(boxes[:, 0] - boxes[0, 0], raw[:4, 0] - raw[0, 0])  # 0, 12, 14, 26
    assert boxes[-1, 0] - boxes[0, 0] == 26.0
    stretched = read_trajectory(HORSE, timing="resample")
    assert stretched.timing == "resample" and reference.read(HORSE, timing="resample") == stretched
    boxes = frame_boxes(stretched, 4)[0]
    np.testing.assert_allclose(boxes[:, 0] - boxes[0, 0], resample_path(raw, 4)[:, 0] - raw[0, 0])
    assert boxes[-1, 0] - boxes[0, 0] == 173.0
    # 16 points, 16 frames: both timings are the file's points
    np.testing.assert_array_equal(frame_paths(first, 16), frame_paths(stretched, 16))
    with pytest.raises(TrajectoryError, match="16 points but 20 frames need 20 under timing 'first-frames'.*"
                                              "--trajectory-timing resample"):
        frame_boxes(first, 20)


def test_timing_survives_our_format_and_rescaling(tmp_path):
    first = read_trajectory(HORSE)
    first.save(tmp_path / "t.json")
    assert json.loads((tmp_path / "t.json").read_text())["timing"] == "first-frames"
    assert read_trajectory(tmp_path / "t.json") == first
    from anyi2v_lab.geometry import ResizeMap
    assert first.rescaled(ResizeMap((512, 512), (64, 64), "stretch")).timing == "first-frames"
    ours().save(tmp_path / "o.json")  # ours: resampled, and the file says nothing about timing
    assert ("timing" not in json.loads((tmp_path / "o.json").read_text())
            and read_trajectory(tmp_path / "o.json").timing == "resample")
    with pytest.raises(TrajectoryError, match="option\\(s\\) \\['timing'\\] do not apply to format 'sgi2v'"):
        read_trajectory(SAMPLES["sgi2v"], timing="resample")
    with pytest.raises(TrajectoryError, match="timing argument = 'stretch' is unknown"):
        read_trajectory(HORSE, timing="stretch")


def test_read_sgi2v_takes_the_size_of_img_png():
    t = read("sgi2v")
    assert t.image_size == (128, 72)  # img.png beside traj.npy
    a = np.load(SAMPLES["sgi2v"])
    for o, row in zip(t.objects, a):
        assert o.box == (*row[0], *row[1]) and np.array_equal(o.path, row[2:])
        assert o.target_box is None and o.query_points == ()
    # the per-frame boxes are SG-I2V's: corners moved by centre[i] - centre[0], constant size
    boxes = frame_boxes(t, 14)
    assert np.allclose(boxes[0, :, 0], 10 + 2 * np.arange(14)) and np.allclose(boxes[1, :, 3], 30 + np.arange(14))
    assert read_trajectory(SAMPLES["sgi2v"], image_size=(1024, 576)).image_size == (1024, 576)


def test_read_draganything_boxes_from_masks():
    t = read("draganything")
    assert t.image_size == (96, 64)  # demo.jpg
    ball, sky = t.objects
    assert ball.name == "ball rolls right" and sky.name == "keep sky"
    assert ball.box == (10, 20, 30, 40)  # the PNG mask's white rectangle, exactly
    assert np.allclose(sky.box, (60, 0, 90, 16), atol=1)  # a JPEG mask: edges blur by a pixel at most
    assert np.array_equal(ball.path, [[18 + i, 32] for i in range(20)]) and ball.query_points == ((18, 32),)
    assert np.ptp(np.asarray(sky.path), axis=0).max() == 0


def test_read_draganything_without_masks_warns_and_makes_a_square(tmp_path):
    (tmp_path / "demo.json").write_text(json.dumps({"1": {"mask_name": "gone.jpg", "trajectory": [[40, 30]] * 3}}))
    with pytest.warns(TrajectoryWarning, match="no mask file 'gone.jpg'"):
        t = read_trajectory(tmp_path / "demo.json", image_size=(80, 64), box_size=10)
    assert t.objects[0].box == (35, 25, 45, 35)


def test_read_mofa_keeps_the_clicks_as_the_path():
    t = read("mofa")
    drag, point = t.objects
    assert drag.path == ((10, 10), (30, 12), (50, 20)) and drag.query_points == ((10, 10),)
    assert drag.box == (5.5, 5.5, 14.5, 14.5)  # the default box: a square of side 72 / 8 = 9 px
    assert point.path == ((60, 40),) and point.target_box is None


def test_read_ati_dequantises_and_fills_the_padding():
    t = read("ati")
    a, b = t.objects
    f = np.arange(121)
    assert np.allclose(a.path, np.stack([20 + 0.5 * f, np.full(121, 30)], -1))
    # track b is padded (invisible zeros) after frame 99: its last visible position is held
    assert np.allclose(np.asarray(b.path)[:100, 1], 10 + 0.25 * f[:100])
    assert np.allclose(np.asarray(b.path)[100:], [100, 10 + 0.25 * 99])
    assert a.query_points == ((20, 30),)


def test_read_wanmove_fills_the_occluded_frames():
    t = read("wanmove")
    assert t.image_size == (160, 96)  # input_image.jpg
    a, b = t.objects
    f = np.arange(81)
    assert np.allclose(a.path, np.stack([40 + f, np.full(81, 50)], -1))
    # b is hidden in frames 30-49; its positions there are interpolated from frames 29 and 50 (a line)
    assert np.allclose(b.path, np.stack([np.full(81, 10), 10 + 0.5 * f], -1))


def test_groups_gather_tracks_into_one_object_with_the_spread_as_scale(tmp_path):
    f = np.arange(9.0)
    # two points 20 px apart moving right together while spreading to 40 px apart: the object doubles
    t = np.stack([np.stack([50 - f * 10 / 8 * 1, 40 + 0 * f], -1), np.stack([70 + f * 10 / 8, 40 + 0 * f], -1)], 1)
    t[..., 0] += f[:, None] * 2
    np.save(tmp_path / "tracks.npy", t[None].astype(np.float32))
    np.save(tmp_path / "visibility.npy", np.ones((1, 9, 2), bool))
    traj = read_trajectory(tmp_path / "tracks.npy", image_size=(160, 96), groups="all", box_size=10)
    (o,) = traj.objects
    assert o.box == (45, 35, 75, 45) and o.query_points == ((50, 40), (70, 40))
    assert np.allclose(o.path[-1], (60 + 16, 40))
    w0, w1 = o.box[2] - o.box[0], o.end_box[2] - o.end_box[0]
    assert w1 / w0 == pytest.approx(2.0)
    assert o.end_box[3] - o.end_box[1] == pytest.approx(20)  # no spread in y at frame 0: y takes x's ratio


# --- ours -> theirs -> ours ------------------------------------------------------------------------
def test_ours_reference_ours_is_lossless_at_512_but_names():
    src = Trajectory.single((100, 100, 200, 180), [(150 + 3 * i, 140 - i) for i in range(16)], (512, 512),
                            target_box=(90, 90, 210, 190), query_points=((120, 120),), name="x")
    d = reference.to_dict(src)
    back = Trajectory.from_json(d)
    o, b = src.objects[0], back.objects[0]
    assert (b.box, b.target_box, b.path, b.query_points) == (o.box, o.target_box, o.path, o.query_points)


def test_ours_reference_rescales_to_512(tmp_path):
    write_trajectory(ours(), tmp_path / "r.json", "reference")
    back = read_trajectory(tmp_path / "r.json")
    assert back.image_size == (512, 512)
    assert np.allclose(back.objects[0].box, np.array(ours().objects[0].box) * [4, 512 / 96, 4, 512 / 96])
    assert len(back.objects[0].path) == 16 and len(back.objects[1].query_points) == 1  # the centre, put in


def test_ours_sgi2v_ours(tmp_path):
    src = ours()
    write_trajectory(src, tmp_path / "traj.npy", "sgi2v")
    back = read_trajectory(tmp_path / "traj.npy", image_size=src.image_size)
    for o, b, p in zip(src.objects, back.objects, frame_paths(src, 14)):
        assert b.box == o.box and np.allclose(b.path, p) and b.target_box is None and b.query_points == ()


def test_ours_draganything_ours(tmp_path):
    src = Trajectory((ObjectTrack((20, 30, 44, 50), [(32 + 2 * i, 40) for i in range(20)], name="car"),
                      ObjectTrack.static((90, 10, 110, 30), name="tree")), (128, 96))
    files = write_trajectory(src, tmp_path / "demo.json", "draganything")
    assert [p.name for p in files] == ["demo.json", "demo_mask_1.png", "demo_mask_2.png"]
    doc = json.loads(files[0].read_text())
    assert doc["1"]["mask_name"] == "demo_mask_1.png" and doc["1"]["trajectory"][0] == [32, 40]
    assert all(isinstance(c, int) for p in doc["1"]["trajectory"] for c in p) and len(doc["2"]["trajectory"]) == 20
    back = read_trajectory(files[0], image_size=(128, 96))
    for o, b, p in zip(src.objects, back.objects, frame_paths(src, 20)):
        assert b.box == o.box and b.name == o.name  # integer boxes survive the mask exactly
        assert np.allclose(np.subtract(b.path, b.path[0]), p - p[0])  # the same displacements
        assert b.query_points == (((o.box[0] + o.box[2]) / 2, (o.box[1] + o.box[3]) / 2),)  # the box centre
    # an object with query points is dragged by its first one
    src = Trajectory.single((20, 30, 44, 50), [(32, 40), (52, 40)], (128, 96), query_points=((25, 35), (40, 45)))
    write_trajectory(src, tmp_path / "q.json", "draganything", num_frames=5)
    assert json.loads((tmp_path / "q.json").read_text())["1"]["trajectory"] == [[25 + 5 * i, 35] for i in range(5)]


@pytest.mark.parametrize("fmt, name, frames", [("mofa", "m.json", 25), ("ati", "a.pth", 121),
                                               ("wanmove", "tracks.npy", 81)])
def test_ours_point_tracks_ours_keeps_the_motion(tmp_path, fmt, name, frames):
    src = ours()
    write_trajectory(src, tmp_path / name, fmt)
    # one track per query point: the car's two, the tree's centre; grouped back by object
    back = read_trajectory(tmp_path / name, fmt, image_size=src.image_size, groups=[[0, 1], [2]])
    car, tree = back.objects
    # the car's query points come back as frame-0 points and its path is their mean, frame by frame
    tracks, _, owner = trajectory_to_tracks(src, frames)
    assert owner == [0, 0, 1]
    assert np.allclose(car.query_points, tracks[0, :2], atol=1e-3)
    assert np.allclose(car.path, tracks[:, :2].mean(1), atol=1e-3)
    # the growth from box to target box comes back as the points' spread (x and y separately)
    src_car = src.objects[0]
    ratio = (np.subtract(src_car.end_box[2:], src_car.end_box[:2]) / np.subtract(src_car.box[2:], src_car.box[:2]))
    got = np.subtract(car.end_box[2:], car.end_box[:2]) / np.subtract(car.box[2:], car.box[:2])
    assert np.allclose(got, ratio, atol=1e-4)
    assert np.allclose(tree.path, [(100, 20)]) and tree.target_box is None


def test_point_tracks_follow_the_box_through_size_changes():
    src = ours()
    tracks, visible, owner = trajectory_to_tracks(src, 16)
    boxes = frame_boxes(src, 16)
    # a query point keeps its relative place in the box at every frame
    rel = (tracks[:, 0] - boxes[0, :, :2]) / (boxes[0, :, 2:] - boxes[0, :, :2])
    assert np.allclose(rel, rel[0]) and visible.all()


def test_points_leaving_the_image_are_written_invisible(tmp_path):
    src = Trajectory.single((10, 10, 30, 30), [(20, 20), (200, 20)], (64, 64))
    write_trajectory(src, tmp_path / "tracks.npy", "wanmove", num_frames=9)
    vis = np.load(tmp_path / "visibility.npy")
    x = np.load(tmp_path / "tracks.npy")[0, :, 0, 0]
    assert np.array_equal(vis[0, :, 0], x < 64) and vis[0, 0, 0] and not vis[0, -1, 0]


# --- theirs -> ours -> theirs ----------------------------------------------------------------------
def test_reference_ours_reference_is_lossless(tmp_path):
    write_trajectory(read("reference"), tmp_path / "r.json", "reference")
    assert json.loads((tmp_path / "r.json").read_text()) == json.loads(SAMPLES["reference"].read_text())


def test_sgi2v_ours_sgi2v_is_lossless(tmp_path):
    write_trajectory(read("sgi2v"), tmp_path / "traj.npy", "sgi2v")
    assert np.array_equal(np.load(tmp_path / "traj.npy"), np.load(SAMPLES["sgi2v"]))


def test_draganything_ours_draganything_keeps_trajectories_and_masks(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        t = read("draganything")
    files = write_trajectory(t, tmp_path / "demo.json", "draganything")
    src, out = json.loads(SAMPLES["draganything"].read_text()), json.loads(files[0].read_text())
    assert [e["trajectory"] for e in out.values()] == [e["trajectory"] for e in src.values()]
    assert [e["comment"] for e in out.values()] == [e["comment"] for e in src.values()]
    m_in = np.asarray(Image.open(DATA / "draganything" / "1_ball.png")) >= 128
    m_out = np.asarray(Image.open(files[1])) >= 128
    assert np.array_equal(m_in, m_out)


def test_mofa_ours_mofa_gives_the_tracks_mofa_would_interpolate(tmp_path):
    write_trajectory(read("mofa"), tmp_path / "m.json", "mofa")
    out = json.loads((tmp_path / "m.json").read_text())
    clicks = json.loads(SAMPLES["mofa"].read_text())
    assert len(out) == 2 and all(len(t) == 25 for t in out)
    assert np.allclose(out[0], resample_path(clicks[0], 25)) and np.allclose(out[1], [[60, 40]] * 25)


def test_ati_ours_ati_keeps_visible_positions(tmp_path):
    write_trajectory(read("ati"), tmp_path / "a.pth", "ati")

    def load(p):
        with np.load(io.BytesIO(torch.load(p, weights_only=True))) as z:
            return z["array"][:, :, 0] / 8

    a, b = load(SAMPLES["ati"]), load(tmp_path / "a.pth")
    assert b.shape == a.shape == (2, 121, 3)
    seen = a[..., 2] > 0.5
    assert np.allclose(b[..., :2][seen], a[..., :2][seen], atol=1e-3)
    # lost: the padding's visibility (frames 100-120 of track 1 hold its last position, inside the image)
    assert np.array_equal(b[..., 2] > 0.5, np.ones_like(seen))


def test_wanmove_ours_wanmove_keeps_positions_loses_occlusion(tmp_path):
    write_trajectory(read("wanmove"), tmp_path / "x_tracks.npy", "wanmove")
    t0, t1 = np.load(SAMPLES["wanmove"]), np.load(tmp_path / "x_tracks.npy")
    v1 = np.load(tmp_path / "x_visibility.npy")
    assert t1.shape == t0.shape and t1.dtype == np.float32 and v1.dtype == bool and v1.shape == (1, 81, 2)
    assert np.allclose(t1, t0, atol=1e-4)
    assert v1.all()  # the occlusion of frames 30-49 is not kept: our objects are always there


# --- writing rules ---------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_every_format_writes_and_reads_back(tmp_path, fmt):
    name = {"sgi2v": "traj.npy", "wanmove": "tracks.npy", "ati": "t.pth"}.get(fmt, "t.json")
    files = write_trajectory(ours(), tmp_path / name, fmt)
    assert all(p.is_file() for p in files) and not list(tmp_path.glob(".*tmp"))
    kw = {} if fmt in ("anyi2v", "reference") else {"image_size": (128, 96)}
    assert len(read_trajectory(files[0], format=fmt, **kw).objects) >= 2


def test_existing_files_are_not_overwritten(tmp_path):
    (tmp_path / "visibility.npy").write_bytes(b"mine")
    with pytest.raises(FileExistsError, match="visibility.npy"):
        write_trajectory(ours(), tmp_path / "tracks.npy", "wanmove")
    assert not (tmp_path / "tracks.npy").exists() and (tmp_path / "visibility.npy").read_bytes() == b"mine"
    write_trajectory(ours(), tmp_path / "tracks.npy", "wanmove", overwrite=True)
    assert np.load(tmp_path / "visibility.npy").shape == (1, 81, 3)


def test_num_frames_option(tmp_path):
    write_trajectory(ours(), tmp_path / "traj.npy", "sgi2v", num_frames=25)
    assert np.load(tmp_path / "traj.npy").shape == (2, 27, 2)


# --- errors ------------------------------------------------------------------------------------------
def _npy(path, a):
    np.save(path, np.asarray(a))
    return path


def _pth(path, obj):
    torch.save(obj, path)
    return path


def _npz_bytes(**arrays):
    b = io.BytesIO()
    np.savez(b, **arrays)
    return b.getvalue()


@pytest.mark.parametrize("make, fmt, kw, match", [
    (lambda p: _npy(p / "traj.npy", np.zeros((2, 2, 2))), "sgi2v", {"image_size": (64, 64)},
     r"traj.npy: traj has shape \(2, 2, 2\)"),
    (lambda p: _npy(p / "traj.npy", [[[5, 5], [1, 9], [3, 7]]]), "sgi2v", {"image_size": (64, 64)},
     r"traj.npy: traj\[0\].box = \[5.0, 5.0, 1.0, 9.0\] needs x1 > x0"),
    (lambda p: _npy(p / "traj.npy", np.full((1, 3, 2), np.nan)), "sgi2v", {"image_size": (64, 64)},
     r"traj.npy: traj holds NaN"),
    (lambda p: _npy(p / "tracks.npy", np.zeros((1, 4, 2, 3))), "wanmove", {"image_size": (64, 64)},
     r"tracks.npy: tracks has shape"),
    (lambda p: (_npy(p / "visibility.npy", np.ones((1, 5, 2), bool)),
                _npy(p / "tracks.npy", np.ones((1, 4, 2, 2))))[1], "wanmove", {"image_size": (64, 64)},
     r"visibility.npy: visibility has shape \(5, 2\)"),
    (lambda p: _npy(p / "tracks.npy", np.ones((1, 4, 2, 2))), "wanmove", {"image_size": (64, 64)},
     r"trajectory file not found: .*visibility.npy"),
    (lambda p: _pth(p / "t.pth", {"tracks": 1}), "ati", {"image_size": (64, 64)},
     r"t.pth: holds a dict; ATI's track file holds the bytes of an .npz archive"),
    (lambda p: _pth(p / "t.pth", _npz_bytes(tracks=np.zeros(3))), "ati", {"image_size": (64, 64)},
     r"t.pth: array is missing"),
    (lambda p: _pth(p / "t.pth", _npz_bytes(array=np.zeros((2, 121, 1, 2)))), "ati", {"image_size": (64, 64)},
     r"t.pth: array has shape \(2, 121, 2\)"),
    (lambda p: _pth(p / "t.pth", _npz_bytes(array=np.zeros((2, 121, 1, 3)))), "ati", {"image_size": (64, 64)},
     r"t.pth: tracks has no track that is visible"),
    (lambda p: (p / "d.json").write_text('{"1": {"trajectory": [[1, 2], [3]]}}') and p / "d.json", "draganything",
     {"image_size": (64, 64)}, r"d.json: 1.trajectory\[1\] = \[3\] must be a list of 2 numbers \[x, y\]"),
    (lambda p: (p / "d.json").write_text('{"1": {"trajectory": [[1, 2]], "mask_name": 7}}') and p / "d.json",
     "draganything", {"image_size": (64, 64)}, r"d.json: 1.mask_name = 7 must be a file name"),
    (lambda p: (p / "m.json").write_text('[[[1, 2]], "x"]') and p / "m.json", "mofa", {"image_size": (64, 64)},
     r"m.json: tracking_points\[1\] = 'x' must be a list of at least 1 \[x, y\] point"),
    (lambda p: (p / "m.json").write_text('{"tracks": []}') and p / "m.json", "mofa", {"image_size": (64, 64)},
     r"m.json: tracking_points is missing"),
    (lambda p: (p / "m.json").write_text('[[[1, 2]]') and p / "m.json", "mofa", {"image_size": (64, 64)},
     r"m.json: is not valid JSON"),
    (lambda p: (p / "r.json").write_text('{"center_traj": []}') and p / "r.json", "reference", {},
     r"r.json: bounding_box is missing"),
    (lambda p: (p / "r.json").write_text('{"bounding_box": [[0, 0, 9, 9]], "center_traj": 5, "target_box": null}')
     and p / "r.json", "reference", {}, r"r.json: center_traj = 5 must be a list"),
])
def test_malformed_files_name_the_file_and_the_field(tmp_path, make, fmt, kw, match):
    path = make(tmp_path)
    with pytest.raises(TrajectoryError, match=match):
        read_trajectory(path, format=fmt, **kw)


def test_missing_image_size_says_how_to_fix(tmp_path):
    with pytest.raises(TrajectoryError, match=r"ati_tracks.pth: .*pass image_size=\(width, height\)"):
        read_trajectory(SAMPLES["ati"])
    shutil.copy(SAMPLES["sgi2v"], tmp_path / "traj.npy")  # without its img.png
    with pytest.raises(TrajectoryError, match=r"or put img.png beside it"):
        read_trajectory(tmp_path / "traj.npy")


def test_detection_and_option_errors(tmp_path):
    with pytest.raises(TrajectoryError, match="format = 'dragnuwa' is unknown"):
        read_trajectory(SAMPLES["mofa"], format="dragnuwa")
    with pytest.raises(TrajectoryError, match=r"option\(s\) \['groups'\] do not apply to format 'sgi2v'"):
        read_trajectory(SAMPLES["sgi2v"], groups="all")
    with pytest.raises(TrajectoryError, match=r"give --trajectory-format NAME on the command line, format=NAME in "
                       r"Python, NAME one of \['sgi2v', 'wanmove'\]"):
        detect_format(_npy(tmp_path / "x.npy", np.zeros((1, 5, 2))))
    with pytest.raises(TrajectoryError, match="visibility file; give the tracks file"):
        detect_format(SAMPLES["wanmove"].with_name("visibility.npy"))
    with pytest.raises(TrajectoryError, match="unknown suffix '.txt'"):
        detect_format(tmp_path / "t.txt")
    (tmp_path / "o.json").write_text('{"hello": 1}')
    with pytest.raises(TrajectoryError, match=r"cannot tell its format.*\['hello'\]"):
        detect_format(tmp_path / "o.json")
    with pytest.raises(TrajectoryError, match="trajectory file not found"):
        read_trajectory(tmp_path / "none.pth", image_size=(9, 9))
    with pytest.raises(TrajectoryError, match="groups = .* must be None"):
        read_trajectory(SAMPLES["mofa"], "mofa", image_size=(128, 72), groups=[[0, 5]])
    with pytest.raises(TrajectoryError, match="box_size = 'big' is not a number; give a finite number of pixels"):
        read_trajectory(SAMPLES["mofa"], "mofa", image_size=(128, 72), box_size="big")
    with pytest.raises(TrajectoryError, match=r"box_size = -4 must be a positive number of pixels; give e.g. 32"):
        read_trajectory(SAMPLES["mofa"], "mofa", image_size=(128, 72), box_size=-4)


def test_default_image_size_applies_only_where_the_file_has_none(tmp_path):
    """The CLI passes the condition image's size as the default: ours and the reference keep their own
    size, a peer image beside the file wins, and formats without one take the default."""
    ours().save(tmp_path / "t.json")
    assert read_trajectory(tmp_path / "t.json", default_image_size=(640, 480)).image_size == (128, 96)
    assert read_trajectory(SAMPLES["reference"], default_image_size=(640, 480)).image_size == (512, 512)
    assert read_trajectory(SAMPLES["sgi2v"], default_image_size=(640, 480)).image_size == (128, 72)  # img.png
    assert read_trajectory(SAMPLES["ati"], default_image_size=(640, 480)).image_size == (640, 480)
    given = read_trajectory(SAMPLES["ati"], default_image_size=(640, 480), image_size=(160, 120))
    assert given.image_size == (160, 120)
    shutil.copy(SAMPLES["sgi2v"], tmp_path / "traj.npy")
    assert read_trajectory(tmp_path / "traj.npy", default_image_size=(640, 480)).image_size == (640, 480)


@pytest.mark.parametrize("content, what", [
    (b"1 2\n3 4\n", r"a text file beginning '1 2\\n3 4\\n'; save the array with np.save"),
    (b"PK\x03\x04rest", r"a zip archive \(an .npz\?\); give the .npy inside it"),
    (b"\x80\x04\x95 pickled", r"a Python pickle, which is never loaded"),
])
def test_a_file_that_is_not_npy_is_called_what_it_is(tmp_path, content, what):
    """np.load calls every non-.npy file "pickled data"; the message says what the file is."""
    (tmp_path / "traj.npy").write_bytes(content)
    with pytest.raises(TrajectoryError, match=r"traj.npy: is not a NumPy .npy file \(np.save writes those\): it is "
                       + what) as e:
        read_trajectory(tmp_path / "traj.npy", image_size=(64, 64))
    assert "pickled data" not in str(e.value)
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(TrajectoryError, match=r"obj.npy: holds Python objects .* never loaded"):
        read_trajectory(tmp_path / "obj.npy", "sgi2v", image_size=(64, 64))


@pytest.mark.parametrize("mask", ["corrupt", "folder"])
def test_a_corrupt_draganything_mask_names_the_file_and_the_field(tmp_path, mask):
    shutil.copytree(SAMPLES["draganything"].parent, tmp_path / "demo")
    doc = json.loads((tmp_path / "demo" / "demo.json").read_text())
    key, name = next((k, e["mask_name"]) for k, e in doc.items() if e.get("mask_name"))
    target = tmp_path / "demo" / name
    target.unlink()
    if mask == "corrupt":
        target.write_bytes(b"\x89PNG\r\n\x1a\n broken")
        why = "cannot read the mask .*1_ball.png' as an image"
    else:
        target.mkdir()
        why = "mask .*1_ball.png' is a folder; give an image file"
    with pytest.raises(TrajectoryError, match=rf"demo.json: {key}.mask_name names a mask that cannot be "
                       rf"used: {why}"):
        read_trajectory(tmp_path / "demo" / "demo.json")
