"""Widgets without a browser: the editor's event logic (hypothesis event sequences, as ipyannotations tests
its canvases), exact trajectory round trips through the synced state, the player's and the feature
viewer's data, and the Python side of the JS fixtures (``widgets/js/fixtures.json``).

Regenerate the fixtures after a deliberate change: ``python tests/widgets/test_widgets.py``.
"""
import io
import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from anyi2v_lab.geometry import ResizeMap
from anyi2v_lab.method.record import InspectionRecord, Iteration
from anyi2v_lab.overlay import COLOURS, masks_from_record
from anyi2v_lab.toy.limits import RULES, MotionLimits, motion_checks
from anyi2v_lab.trajectory import ObjectTrack, Trajectory, TrajectoryError, frame_boxes, resample_path
from anyi2v_lab.widgets import FeatureViewer, TrajectoryCanvas, VideoPlayer, show_run
from anyi2v_lab.widgets.bundle import JS_DIR, esm
from anyi2v_lab.widgets.editing import Draft, EditorState, EventError, apply_event
from anyi2v_lab.widgets.features import attention_map, components_to_rgb, pca_rgb, query_index, token_grid
from anyi2v_lab.widgets.images import mask_tints
from anyi2v_lab.widgets.mapping import canvas_to_image, image_to_canvas, view_size

FIXTURES = JS_DIR / "fixtures.json"
SETTINGS = settings(derandomize=True, deadline=None, max_examples=60)
IMAGE = np.zeros((96, 160, 3), np.uint8)  # W=160, H=96
IMAGE[20:60, 30:90] = (200, 50, 50)
SIZE = (160, 96)


def _png_pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


# --- fixtures shared with node --------------------------------------------------------------------
def make_fixtures() -> dict:
    rng = np.random.default_rng(7)
    cases = [([[5.0, 5.0]], 4), ([[0.0, 0.0], [10.0, 20.0]], 5), ([[0, 0], [1, 1], [2, 2]], 3),
             ([[0, 0], [10, 0], [10, 0], [20, 5]], 9), ([[0, 0], [5, 10], [10, 0], [15, 10]], 16),
             ([[3, 3], [3, 3]], 4), ([[1.5, 2.25], [100.125, -3.5], [7, 8]], 1), ([[0, 0], [9, 9]], 2)]
    for k in range(24):
        n, f = int(rng.integers(2, 12)), int(rng.integers(2, 30))
        pts = rng.uniform(-20, 540, (n, 2))
        cases.append(((np.round(pts) if k % 3 == 0 else pts).tolist(), f))
    resample = [{"points": [list(map(float, p)) for p in pts], "num_frames": f,
                 "expected": resample_path(pts, f).tolist()} for pts, f in cases]
    objs = [ObjectTrack((10.0, 20.0, 50.0, 60.0), [(0.0, 0.0), (5.0, 5.0), (10.0, 0.0)], (0.0, 0.0, 80.0, 20.0)),
            ObjectTrack((100.5, 10.0, 140.0, 30.25), [(120.25, 20.0)]),
            ObjectTrack((1.0, 2.0, 3.0, 4.0), rng.uniform(0, 500, (7, 2)).tolist(), (0.0, 0.0, 7.5, 1.25))]
    fboxes = [{"object": {"box": list(o.box), "target_box": None if o.target_box is None else list(o.target_box),
                          "path": [list(p) for p in o.path]}, "num_frames": f,
               "expected": frame_boxes(Trajectory((o,), (512, 512)), f)[0].tolist()}
              for o in objs for f in (1, 2, 7, 16)]
    mapping = []
    for size, width in [((128, 128), 512), ((1024, 768), 512), ((333, 517), 400), ((640, 360), 333)]:
        disp = view_size(size, width)
        canvas = rng.uniform(0, disp[0], (6, 2)).tolist() + [[0.0, 0.0], [float(disp[0]), float(disp[1])]]
        image = [list(canvas_to_image(p, size, disp)) for p in canvas]
        mapping.append({"image_size": list(size), "display_width": width, "display_size": list(disp),
                        "canvas": canvas, "image": image,
                        "back": [list(image_to_canvas(p, size, disp)) for p in image]})
    return {"resample": resample, "frame_boxes": fboxes, "mapping": mapping, "motion": _motion_fixtures(rng)}


def _motion_fixtures(rng) -> list[dict]:
    """Random drawings on two image sizes, with what :func:`motion_checks` finds (every rule at least once)."""
    cases = []
    for k in range(40):
        size = (64, 64) if k % 2 else (128, 96)
        x0, y0 = rng.uniform(0, size[0] - 20), rng.uniform(0, size[1] - 20)
        box = (x0, y0, x0 + rng.uniform(6, 20), y0 + rng.uniform(6, 20))
        path = rng.uniform(0, size[0] * 0.9, (int(rng.integers(1, 5)), 2)) * [1, size[1] / size[0]]
        obj = ObjectTrack(box, [tuple(p) for p in path], name=f"o{k}",
                          target_box=(0.0, 0.0, 12.0, 12.0) if k % 5 == 0 else None)
        frames = (8, 16)[k % 3 == 0]
        checks = motion_checks(Trajectory((obj,), size), frames)
        cases.append({"image_size": list(size), "num_frames": frames,
                      "object": {"box": list(obj.box), "target_box": None if obj.target_box is None else
                                 list(obj.target_box), "path": [list(p) for p in obj.path], "name": obj.name},
                      "limits": MotionLimits().to_dict(), "expected": [vars(c) for c in checks]})
    assert {c["rule"] for case in cases for c in case["expected"]} == set(RULES)
    return cases


def test_js_fixtures_are_what_python_computes():
    assert json.loads(FIXTURES.read_text()) == json.loads(json.dumps(make_fixtures())), \
        ("widgets/js/fixtures.json is stale: run `python tests/widgets/test_widgets.py` and rerun "
         "node --test widgets/js/")


# --- coordinate mapping ---------------------------------------------------------------------------
def test_mapping_agrees_with_resize_map_and_round_trips():
    for size, width in [((128, 128), 512), ((1024, 768), 512), ((333, 517), 400)]:
        disp = view_size(size, width)
        assert disp[0] == width and abs(disp[1] - size[1] * width / size[0]) <= 0.5
        m = ResizeMap(disp, size, "stretch")  # independent: the project's affine map, canvas -> image
        pts = np.random.default_rng(0).uniform(0, width, (20, 2))
        ours = np.array([canvas_to_image(p, size, disp) for p in pts])
        np.testing.assert_allclose(ours, m.points(pts), rtol=1e-12, atol=1e-9)
        back = np.array([image_to_canvas(p, size, disp) for p in ours])
        np.testing.assert_allclose(back, pts, rtol=1e-12, atol=1e-9)
    assert view_size((3, 1), 2) == (2, 1)  # half up, like JS (Python's round would give 0 -> 1 anyway)
    assert view_size((4, 5), 2) == (2, 3)  # 2.5 -> 3: half up, not banker's rounding
    with pytest.raises(ValueError, match="display_width"):
        view_size((4, 4), 0)


# --- the reducer ----------------------------------------------------------------------------------
def test_events_by_hand():
    s = apply_event(EditorState(), {"type": "box", "index": -1, "box": [10, 20, 50, 60]}, SIZE)
    assert s.selected == 0 and s.objects[0].box == (10.0, 20.0, 50.0, 60.0) and s.objects[0].name == "object 1"
    s = apply_event(s, {"type": "path_point", "index": 0, "point": [30, 40]}, SIZE)
    s = apply_event(s, {"type": "path_point", "index": 0, "point": [500, -3]}, SIZE)  # clamped to the image
    assert s.objects[0].path == ((30.0, 40.0), (160.0, 0.0))
    s = apply_event(s, {"type": "add"}, SIZE)
    assert s.selected == 1 and s.objects[1] == Draft(name="object 2")
    assert s.to_trajectory(SIZE, 8).objects == (s.objects[0].to_track(),)  # no box yet: not in the trajectory
    s = apply_event(s, {"type": "box", "index": 1, "box": [-10, -10, 5, 5]}, SIZE)
    assert s.objects[1].box == (0.0, 0.0, 5.0, 5.0)
    track = s.to_trajectory(SIZE, 8).objects[1]
    assert track.path == ((2.5, 2.5),)  # no path: static at the box centre
    s = apply_event(s, {"type": "delete", "index": 0}, SIZE)
    assert len(s.objects) == 1 and s.selected == 0 and s.objects[0].name == "object 2"
    assert apply_event(s, {"type": "clear"}, SIZE) == EditorState()


@pytest.mark.parametrize("event, match", [
    ({"type": "fly"}, "unknown"), ("box", "event = 'box' is not an event dict"),
    ({"type": "box", "index": 0, "box": [1, 2, 3, 4]}, "not an object index"),
    ({"type": "box", "index": -1, "box": [5, 5, 5, 9]}, "x1 > x0"),
    ({"type": "box", "index": -1, "box": [200, 200, 300, 300]},
     r"box \(clipped to the 160x96 image\) = \[160.0, 96.0, 160.0, 96.0\] needs x1 > x0"),
    ({"type": "box", "index": -1, "box": [0, 0, float("nan"), 1]}, "finite"),
    ({"type": "box", "index": -1, "box": [0, 0, True, 1]}, "finite number"),
    ({"type": "path", "index": True, "points": [[1, 1]]}, "not an object index"),
    ({"type": "select", "index": 3}, "not an object index"),
])
def test_malformed_events_are_rejected_by_name(event, match):
    with pytest.raises(EventError, match=match):
        apply_event(EditorState(), event, SIZE)


coord = st.floats(-50, 250, allow_nan=False)
point = st.lists(coord, min_size=2, max_size=2)
index = st.integers(-2, 4)
events = st.one_of(
    st.just({"type": "add"}), st.just({"type": "clear"}), st.just({"type": "undo"}),
    st.builds(lambda i: {"type": "select", "index": i}, index),
    st.builds(lambda i: {"type": "delete", "index": i}, index),
    st.builds(lambda k, i, a, b: {"type": k, "index": i, "box": a + b}, st.sampled_from(["box", "target_box"]),
              index, point, point),
    st.builds(lambda i, ps: {"type": "path", "index": i, "points": ps}, index, st.lists(point, max_size=6)),
    st.builds(lambda k, i, p: {"type": k, "index": i, "point": p}, st.sampled_from(["path_point", "query_point"]),
              index, point),
    st.builds(lambda: {"type": "box", "index": 0, "box": "wide"}),
)


@SETTINGS
@given(st.lists(events, max_size=25))
def test_random_event_sequences_keep_the_canvas_valid_and_undo_restores(seq):
    canvas = TrajectoryCanvas(IMAGE, num_frames=8)
    sent = []
    canvas.send = lambda content, buffers=None: sent.append(content)  # no kernel: record the acks
    undo_model = []  # the edits an undo should walk back, newest last
    for ev in seq:
        before = canvas.state
        canvas._on_custom_msg(canvas, {"kind": "event", "event": ev}, [])  # what the browser's model.send does
        after = canvas.state
        if canvas.status:
            assert after == before, "a rejected event must change nothing"
        if ev["type"] == "undo":
            assert after == (undo_model.pop() if undo_model else before)
        elif after != before:
            undo_model.append(before)
        # invariants after every event
        assert -1 <= after.selected < len(after.objects)
        W, H = SIZE
        for d in after.objects:
            for b in (d.box, d.target_box):
                assert b is None or (0 <= b[0] < b[2] <= W and 0 <= b[1] < b[3] <= H)
            assert all(0 <= x <= W and 0 <= y <= H for x, y in d.path + d.query_points)
        traj = canvas.trajectory
        assert (traj is None) == all(d.box is None for d in after.objects)
        if traj is not None:
            assert Trajectory.from_json(traj.to_json()) == traj
    assert len(sent) == len(seq) and all(m == {"kind": "ack"} for m in sent)
    while canvas.undo():  # the history walks back to the empty canvas
        pass
    assert canvas.state == EditorState()


# --- exact round trips ----------------------------------------------------------------------------
finite = st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False)


@st.composite
def trajectories(draw):
    objs = []
    for k in range(draw(st.integers(1, 3))):
        x0, y0 = draw(st.floats(0, 150)), draw(st.floats(0, 90))
        w, h = draw(st.floats(0.001, 500)), draw(st.floats(0.001, 500))
        box = (x0, y0, x0 + w, y0 + h)
        path = draw(st.lists(st.tuples(finite, finite), min_size=1, max_size=8))
        qp = draw(st.lists(st.tuples(finite, finite), max_size=3))
        tb = draw(st.one_of(st.none(), st.just((0.0, 0.0, w * 2, h / 3))))
        objs.append(ObjectTrack(box, path, tb, qp, draw(st.sampled_from(["", "cat", "ü 2"]))))
    return Trajectory(tuple(objs), SIZE, draw(st.integers(1, 32)))


@SETTINGS
@given(traj=trajectories())
def test_trajectory_round_trips_exactly_through_the_synced_state_and_files(traj, tmp_path_factory):
    canvas = TrajectoryCanvas(IMAGE, num_frames=4)
    canvas.trajectory = traj
    assert canvas.num_frames == traj.num_frames and canvas.trajectory == traj
    wire = json.loads(json.dumps(canvas.objects))  # what the comm carries: numbers, not strings
    canvas.objects = wire
    assert canvas.trajectory == traj
    # a drawn edit and its undo leave the trajectory exactly as it was
    canvas.handle_event({"type": "path_point", "index": 0, "point": [1.25, 2.5]})
    assert canvas.trajectory != traj
    canvas.handle_event({"type": "undo"})
    assert canvas.trajectory == traj
    path = tmp_path_factory.mktemp("traj") / "t.json"
    canvas.save(path)
    assert path.read_text() == traj.to_json() + "\n"
    other = TrajectoryCanvas(IMAGE)
    assert other.load(path) == traj and other.trajectory == traj


def test_canvas_setter_checks_and_status():
    canvas = TrajectoryCanvas(IMAGE, num_frames=8)
    assert canvas.trajectory is None and canvas.image_size == [160, 96] and canvas.display_size == [512, 307]
    np.testing.assert_array_equal(_png_pixels(canvas.image), IMAGE)
    with pytest.raises(TrajectoryError, match=r"differs from the canvas image .*rescaled"):
        canvas.trajectory = Trajectory.static((0, 0, 10, 10), (512, 512))
    with pytest.raises(TrajectoryError, match="nothing to save"):
        canvas.save("unused.json")
    canvas.send = lambda *a, **k: None
    canvas._on_custom_msg(canvas, {"kind": "event", "event": {"type": "select", "index": 5}}, [])
    assert canvas.status.startswith("ignored: index = 5")
    canvas._on_custom_msg(canvas, {"kind": "event", "event": {"type": "add"}}, [])
    assert canvas.status == "" and canvas.selected == 0
    canvas.trajectory = None
    assert canvas.objects == [] and canvas.undo() and canvas.selected == 0  # the setter is undoable
    with pytest.raises(ValueError, match="num_frames"):
        TrajectoryCanvas(IMAGE, num_frames=0)
    assert canvas.limits == {}  # no limits: the browser warns about nothing
    assert TrajectoryCanvas(IMAGE, limits=MotionLimits(frame_size=32)).limits == {**MotionLimits().to_dict(),
                                                                                "frame_size": 32}
    with pytest.raises(TypeError, match="limits must be a MotionLimits"):
        TrajectoryCanvas(IMAGE, limits={"max_step": 3})


# --- player ---------------------------------------------------------------------------------------
def _fake_result(F=4, H=32, W=48):
    rng = np.random.default_rng(0)
    video = rng.uniform(0, 1, (F, H, W, 3)).astype(np.float32)
    boxes = np.array([[[4.0 + f, 6.0, 20.0 + f, 22.0] for f in range(F)], [[30, 2, 46, 30]] * F], np.float64)
    rec = InspectionRecord(boxes=boxes, grid_boxes=boxes / 4, grid_size=(H // 4, W // 4))
    masks = [[torch.rand(2, 4, 4) for _ in range(F)], [torch.rand(2, 7, 4) if f % 2 else None for f in range(F)]]
    rec.iterations.append(Iteration(step_index=0, timestep=981, iteration=0, loss=1.0, count=1.0, skipped=False,
                                    masks=masks, pca={"layer.a": torch.randn(F, 3, 4, 6),
                                                      "layer.b": torch.randn(F, 3, 8, 12)}))
    frames = (video * 255).round().astype(np.uint8)
    return SimpleNamespace(video=video, frames=frames, record=rec, cache=None)


def test_player_from_result_carries_frames_boxes_paths_and_masks():
    res = _fake_result()
    p = VideoPlayer.from_result(res, fps=12)
    assert len(p.frames) == 4 and p.frame_size == [48, 32] and p.display_size == [256, 171] and p.fps == 12.0
    for f in range(4):
        np.testing.assert_array_equal(_png_pixels(p.frames[f]), res.frames[f])
    np.testing.assert_array_equal(p.boxes, res.record.boxes)
    centres = (res.record.boxes[..., :2] + res.record.boxes[..., 2:]) / 2
    np.testing.assert_array_equal(p.paths, centres)
    expected = mask_tints(masks_from_record(res.record, 2, 4, (32, 48)))
    for f in range(4):
        np.testing.assert_array_equal(_png_pixels(p.masks[f]), expected[f])
    p.frame = 99
    assert p.frame == 3
    # the caption tells runs apart: a digest of the frames and where the paths end
    assert p.caption.startswith("run ") and p.caption.endswith("path ends at (15, 14), (38, 16)")
    other = VideoPlayer.from_result(SimpleNamespace(frames=res.frames[::-1].copy(), record=res.record, seed=3))
    assert other.caption.split(":")[0] != p.caption.split(":")[0] and "seed 3, " in other.caption
    with pytest.raises(ValueError, match=r"boxes has shape \(2, 3, 4\)"):
        VideoPlayer(res.frames, boxes=res.record.boxes[:, :3])


def test_mask_tints_match_draw_overlay_colours():
    m = np.zeros((2, 1, 2, 3), np.float32)
    m[0, 0, 0, 0] = 1.0
    m[1, 0, 0, 1] = 0.5
    m[:, 0, 1, 2] = 1.0  # both: object 1 drawn over object 0
    t = mask_tints(m)[0].astype(float)
    np.testing.assert_allclose(t[0, 0], [*COLOURS[0], 0.45 * 255], atol=0.5)
    np.testing.assert_allclose(t[0, 1], [*COLOURS[1], 0.225 * 255], atol=0.5)
    a = 0.45 + 0.45 * 0.55
    rgb = (np.array(COLOURS[1]) * 0.45 + np.array(COLOURS[0]) * 0.45 * 0.55) / a
    np.testing.assert_allclose(t[1, 2], [*rgb, a * 255], atol=0.5)
    assert t[1, 0, 3] == 0  # untouched pixels are transparent


# --- features -------------------------------------------------------------------------------------
def test_pca_rgb_against_numpy():
    g = torch.Generator().manual_seed(0)
    maps = torch.randn(3, 16, 5, 7, generator=g) * torch.linspace(0.1, 3, 16).view(1, 16, 1, 1)
    rgb = pca_rgb(maps)
    assert rgb.shape == (3, 5, 7, 3) and rgb.dtype == np.uint8
    x = maps.permute(0, 2, 3, 1).reshape(-1, 16).double().numpy()
    xc = x - x.mean(0)
    _, _, vt = np.linalg.svd(xc, full_matrices=False)
    proj = xc @ vt[:3].T
    proj *= np.sign(vt[:3][np.arange(3), np.abs(vt[:3]).argmax(1)])  # pca_fit's sign rule
    lo, hi = np.quantile(proj, 0.01, axis=0), np.quantile(proj, 0.99, axis=0)
    ref = np.round(np.clip((proj - lo) / (hi - lo), 0, 1) * 255).reshape(3, 5, 7, 3)
    assert np.abs(rgb.astype(int) - ref).max() <= 1
    assert components_to_rgb(torch.zeros(1, 3, 2, 2)).max() == 0  # constant: no division by zero


def test_attention_map_token_grid_and_query_index():
    probs = torch.softmax(torch.randn(2, 12, 12, generator=torch.Generator().manual_seed(1)), -1)
    a = attention_map(probs, 5, (3, 4))
    np.testing.assert_allclose(a, probs[:, 5].double().mean(0).reshape(3, 4).numpy())
    assert math.isclose(a.sum(), 1.0, rel_tol=1e-6)
    assert token_grid(12, 4 / 3) == (3, 4) and token_grid(4096) == (64, 64) and token_grid(8 * 12, 1.5) == (8, 12)
    assert query_index((0, 0), (64, 48), (3, 4)) == 0
    assert query_index((63.9, 47.9), (64, 48), (3, 4)) == 11
    assert query_index((64, 48), (64, 48), (3, 4)) == 11  # the far edge belongs to the last cell
    assert query_index((17, 17), (64, 48), (3, 4)) == 1 * 4 + 1


def test_feature_viewer_from_cache_links_query_frame_and_attention(tiny_unet, unet_inputs):
    from anyi2v_lab.hooks import run_with_cache

    attn = "up_blocks.3.attentions.0.transformer_blocks.0.attn1"
    names = [f"{attn}.query", f"{attn}.probs", "up_blocks.2.resnets.0.output",
             "up_blocks.3.attentions.0.transformer_blocks.0.attn2.probs"]
    _, cache = run_with_cache(tiny_unet, *unet_inputs[:2], encoder_hidden_states=unet_inputs[2], names=names)
    video = np.zeros((6, 128, 128, 3), np.uint8)
    v = FeatureViewer.from_cache(cache, frames=video)
    assert set(v.pca) == {f"{attn}.query", "up_blocks.2.resnets.0.output"}  # cross-attention probs: not spatial
    assert v.attention_points == [f"{attn}.probs"] and v.num_frames == 6 and v.attention == b""
    q = cache[f"{attn}.query"][0]  # (F, N, C)
    expected = pca_rgb(q.transpose(1, 2).reshape(6, -1, 16, 16))
    np.testing.assert_array_equal(_png_pixels(v.pca[f"{attn}.query"][2]), expected[2])
    v.frame, v.query = 4, [70.0, 10.0]  # what a click in the browser sets
    probs = cache[f"{attn}.probs"][0, 4]  # (heads, 256, 256)
    ref = probs[:, query_index((70, 10), (128, 128), (16, 16))].double().mean(0).reshape(16, 16).numpy()
    np.testing.assert_allclose(v.attention_at(), ref)
    assert _png_pixels(v.attention).shape == (16, 16, 4)
    with pytest.raises(ValueError, match="frame counts differ"):
        FeatureViewer.from_cache(cache, frames=video[:3])


def test_feature_viewer_from_result_opens_on_the_aligned_layers_and_the_object():
    res = _fake_result()
    v = FeatureViewer.from_result(res)
    b, a = "aligned layer.b.query, PCA (step 0, iteration 0)", "aligned layer.a.query, PCA (step 0, iteration 0)"
    assert list(v.pca) == [b, a] and v.pca_point == b  # the finest aligned layer first
    assert len(v.masks) == 4 and v.attention_points == [] and v.panel_size == [256, 171]
    expected = components_to_rgb(res.record.iterations[0].pca["layer.b"])[1]
    np.testing.assert_array_equal(_png_pixels(v.pca[b][1]), expected)
    # it opens on the last frame, the query on the first object's box centre, and follows the object
    assert v.frame == 3 and v.follow == 0 and v.query == [(7 + 23) / 2, 14.0]
    v.frame = 1
    assert v.query == [(5 + 21) / 2, 14.0]
    v.follow, v.query = -1, [40.0, 3.0]  # what a click sets
    v.frame = 2
    assert v.query == [40.0, 3.0]
    assert FeatureViewer.from_result(res, query=[1.0, 2.0]).follow == -1  # a given query is kept


def test_feature_viewer_from_result_prefers_the_finest_attention(tiny_unet, unet_inputs):
    from anyi2v_lab.hooks import run_with_cache

    coarse, fine = ("up_blocks.2.attentions.0.transformer_blocks.0.attn1",
                    "up_blocks.3.attentions.0.transformer_blocks.0.attn1")
    _, cache = run_with_cache(tiny_unet, *unet_inputs[:2], encoder_hidden_states=unet_inputs[2],
                              names=[f"{coarse}.probs", f"{fine}.probs"])
    F = cache[f"{fine}.probs"].shape[1]
    res = _fake_result(F=F, H=128, W=128)
    res.record.boxes = np.array([[[40.0, 40.0, 80.0, 80.0]] * F])
    res.record.iterations = []
    res.cache = cache
    v = FeatureViewer.from_result(res)
    assert v.attention_points[0] == f"{fine}.probs" and v.attention_point == f"{fine}.probs"
    probs = cache[f"{fine}.probs"][0, F - 1]
    ref = probs[:, query_index((60, 60), (128, 128), (16, 16))].double().mean(0).reshape(16, 16).numpy()
    np.testing.assert_allclose(v.attention_at(), ref)


def test_feature_viewer_scale_answer_and_plain_labels():
    g = torch.Generator().manual_seed(3)
    name = "up_blocks.1.attentions.0.transformer_blocks.0.attn1.probs"
    probs = torch.softmax(torch.randn(3, 2, 16, 16, generator=g) * 3, -1)
    v = FeatureViewer(probs={name: probs}, frames=np.zeros((3, 32, 32, 3), np.uint8), query=[9.0, 25.0], frame=1)
    maps = [probs[f][:, query_index((9, 25), (32, 32), (4, 4))].double().mean(0).numpy() for f in range(3)]
    top = max(m.max() for m in maps)  # shared: one scale over the point's maps in every frame
    assert v.scale == "shared" and v.attention_range == pytest.approx([0.0, top])
    alpha = _png_pixels(v.attention)[..., 3].astype(float)
    np.testing.assert_allclose(alpha, np.round(255 * 0.7 * maps[1] / top).reshape(4, 4), atol=0.5)
    assert v.answered == {"frame": 1, "query": [9.0, 25.0], "point": name}
    # the weights the browser reads under the pointer: the shown map, float32, on its grid
    assert v.attention_grid == [4, 4]
    np.testing.assert_allclose(np.frombuffer(v.attention_values, "<f4").reshape(4, 4), maps[1].reshape(4, 4),
                               rtol=1e-6)
    v.scale = "map"
    assert v.attention_range == pytest.approx([0.0, maps[1].max()])
    v.query = [1.0, 1.0]  # the kernel has answered a new point once the map is computed
    assert v.answered["query"] == [1.0, 1.0] and len(v.heat_lut) == 768
    assert v.labels == {name: "up_blocks.1 attention 0, 4x4: self-attention"}


# --- one loop: draw -> generate -> look ------------------------------------------------------------
SYNCED_RUN = ("frames", "masks", "boxes", "paths", "frame_size", "display_size", "caption", "pca", "pca_point",
              "num_frames", "panel_size", "frame", "follow", "query", "attention", "attention_points")


def _synced(widget) -> dict:
    return {k: getattr(widget, k) for k in SYNCED_RUN if widget.has_trait(k)}


def test_show_run_puts_a_new_run_into_the_views_of_its_key_in_place():
    first, second = _fake_result(), _fake_result(F=5, H=40, W=40)
    second.frames = second.frames[:, ::-1].copy()
    player, viewer = VideoPlayer.from_result(first, key="t1"), FeatureViewer.from_result(first, key="t1")
    other = VideoPlayer.from_result(first)  # no key: it keeps showing its run
    viewer.frame, player.frame = 0, 3
    assert show_run(second, key="t1") == 2 and show_run(second, key="nobody") == 0
    # in place: the same widgets now hold exactly what new views of the second run would
    assert _synced(player) == {**_synced(VideoPlayer.from_result(second)), "frame": 3}
    assert _synced(viewer) == _synced(FeatureViewer.from_result(second))
    assert _synced(other) == _synced(VideoPlayer.from_result(first))
    viewer.follow, viewer.query, viewer.frame = -1, [5.0, 6.0], 2  # a click: the point stays for the next run
    show_run(first, key="t1")
    assert (viewer.query, viewer.frame, viewer.follow) == ([5.0, 6.0], 2, -1)
    again = VideoPlayer.from_result(first, key="t1")  # the cell run again: the new view takes the old one's place
    show_run(second, key="t1")
    assert _synced(again)["caption"] == player.caption
    with pytest.raises(ValueError, match="key = ''"):
        VideoPlayer.from_result(first, key="")


def test_canvas_with_a_key_keeps_the_drawing_when_made_again():
    start = Trajectory.static((10.0, 10.0, 40.0, 40.0), SIZE, name="star")
    canvas = TrajectoryCanvas(IMAGE, trajectory=start, num_frames=8, key="draw-k")
    canvas.handle_event({"type": "path", "index": 0, "points": [[25.0, 25.0], [60.0, 30.0], [90.0, 50.0]]})
    drawn = canvas.trajectory
    assert drawn != start
    again = TrajectoryCanvas(IMAGE, trajectory=start, num_frames=8, key="draw-k")  # the cell run again
    assert again.trajectory == drawn and again.selected == canvas.selected
    assert TrajectoryCanvas(IMAGE, trajectory=start, num_frames=8).trajectory.objects == start.objects  # no key
    small = TrajectoryCanvas(IMAGE[:48], key="draw-k")  # another image size: nothing to take up
    assert small.trajectory is None


# --- bundling -------------------------------------------------------------------------------------
def test_bundled_modules_are_self_contained():
    import base64
    import re

    for name in ("canvas.js", "player.js", "viewer.js"):
        src = esm(name)
        assert 'from "./' not in src and "export default" in src
        urls = re.findall(r'import\("data:text/javascript;base64,([A-Za-z0-9+/=]+)"\)', src)
        inlined = [base64.b64decode(u).decode() for u in urls]
        assert (JS_DIR / "logic.js").read_text() in inlined and (JS_DIR / "draw.js").read_text() in inlined
    assert TrajectoryCanvas._esm == esm("canvas.js")


if __name__ == "__main__":
    FIXTURES.write_text(json.dumps(make_fixtures()) + "\n")
    print(f"wrote {FIXTURES}")
