"""ObjMC offline: the inscribed-circle query point, the Lucas-Kanade tracker, ObjMC on a video, the
manifest and its resumable runner (fake generators; one run of the tiny model)."""
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from anyi2v_lab.evaluation import (
    EvalCase,
    LucasKanadeTracker,
    ManifestError,
    TrackerUnavailable,
    inscribed_circle_centre,
    load_case,
    objmc_on_video,
    read_manifest,
    run_evaluation,
    target_points,
)
from anyi2v_lab.trajectory import ObjectTrack, Trajectory

try:
    import cv2  # noqa: F401
    HAVE_CV2 = True
except ImportError:
    HAVE_CV2 = False
needs_cv2 = pytest.mark.skipif(not HAVE_CV2, reason="opencv-python-headless is not installed")


# ---- the query point --------------------------------------------------------------------------------

def brute_force_centre(mask: np.ndarray) -> tuple[float, float]:
    """Farthest mask pixel from any non-mask pixel (pixel centres, Euclidean), first in raster order."""
    inside = np.argwhere(mask)
    outside = np.argwhere(~mask)
    d = np.sqrt(((inside[:, None, :] - outside[None, :, :]) ** 2).sum(-1)).min(1)
    i, j = inside[np.argmax(d)]  # argwhere lists pixels in raster order; argmax keeps the first maximum
    return j + 0.5, i + 0.5


def test_inscribed_centre_disc_rectangle_l_shape():
    yy, xx = np.mgrid[:40, :50]
    disc = (xx - 21) ** 2 + (yy - 17) ** 2 <= 9 ** 2
    rect = np.zeros((30, 40), bool)
    rect[5:16, 10:31] = True                      # 11 rows x 21 columns: centres on a row segment
    ell = np.zeros((40, 40), bool)
    ell[4:36, 4:14] = True
    ell[26:36, 4:36] = True
    for mask in (disc, rect, ell):
        assert inscribed_circle_centre(mask) == brute_force_centre(mask)
    assert inscribed_circle_centre(disc) == (21.5, 17.5)
    # distance 6 from the middle row's columns 15..25; ties go to the first in raster order, as cv2.minMaxLoc
    assert inscribed_circle_centre(rect) == (15.5, 10.5)
    x, y = inscribed_circle_centre(ell)           # in the corner square, where the two bars meet
    assert 4 <= x <= 14 and 26 <= y <= 36


def test_inscribed_centre_border_and_errors():
    m = np.zeros((20, 30), bool)
    m[0:8, 0:12] = True                           # touches the frame: as OpenCV, the border does not bound it
    assert inscribed_circle_centre(m) == (0.5, 0.5)
    x, y = inscribed_circle_centre(m, bounded_by_frame=True)
    px, py = brute_force_centre(np.pad(m, 1))     # the frame as background: an independent pad
    assert (x, y) == (px - 1, py - 1) and 3 <= x <= 9 and 3 <= y <= 5
    assert inscribed_circle_centre(np.ones((5, 7), bool)) == (2.5, 2.5)   # the whole frame: the frame bounds it
    with pytest.raises(ValueError, match="mask is empty"):
        inscribed_circle_centre(np.zeros((4, 4), bool))
    with pytest.raises(ValueError, match="2-D"):
        inscribed_circle_centre(np.ones((2, 4, 4), bool))


# ---- the tracker --------------------------------------------------------------------------------------

def translating_square(F=8, size=64, step=(1.5, -0.75), seed=0) -> tuple[np.ndarray, np.ndarray]:
    """A smooth random texture in a 24 px square on a grey background, moving ``step`` px a frame (x, y);
    returns the video and the square's top-left corner per frame."""
    from scipy.ndimage import gaussian_filter, shift
    rng = np.random.default_rng(seed)
    tex = gaussian_filter(rng.random((size, size, 3)) * 255, (1.5, 1.5, 0))
    tex = (tex - tex.mean()) * 4 + 128
    frames, corners = [], []
    for f in range(F):
        dx, dy = step[0] * f, step[1] * f
        layer = shift(np.pad(tex[:24, :24], ((0, size - 24), (0, size - 24), (0, 0))), (20 + dy, 16 + dx, 0), order=3)
        alpha = shift(np.pad(np.ones((24, 24)), ((0, size - 24), (0, size - 24))), (20 + dy, 16 + dx), order=1)
        frame = alpha[..., None] * layer + (1 - alpha[..., None]) * 110
        frames.append(np.clip(frame, 0, 255).round().astype(np.uint8))
        corners.append((16 + dx, 20 + dy))
    return np.stack(frames), np.array(corners)


@needs_cv2
def test_lucas_kanade_follows_a_translating_textured_square():
    video, corners = translating_square()
    points = np.array([[28.0, 32.0], [22.5, 26.5], [33.0, 38.0]])       # inside the square at frame 0
    tracks, visible = LucasKanadeTracker().track(video, points)
    truth = points[:, None] + (corners - corners[0])[None]
    assert tracks.shape == (3, 8, 2) and visible.shape == (3, 8)
    np.testing.assert_array_equal(tracks[:, 0], points)
    err = np.linalg.norm(tracks - truth, axis=-1)
    assert err.max() < 1.0, err.max()
    assert visible.all()


@needs_cv2
def test_lucas_kanade_flags_a_point_whose_content_vanishes():
    video, _ = translating_square(F=6, step=(0.0, 0.0))
    video[3:] = 110                                                    # the square disappears at frame 3
    _, visible = LucasKanadeTracker().track(video, np.array([[28.0, 32.0]]))
    assert visible[0, :3].all() and not visible[0, 3:].any()


def test_lucas_kanade_without_opencv_names_the_install(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "cv2", None)   # import cv2 now fails
    with pytest.raises(TrackerUnavailable, match="anyi2v-lab\\[eval\\].*opencv-python-headless"):
        LucasKanadeTracker().preflight()


def test_lucas_kanade_checks_its_settings():
    with pytest.raises(ValueError, match="win_size"):
        LucasKanadeTracker(win_size=20)
    with pytest.raises(ValueError, match="fb_threshold"):
        LucasKanadeTracker(fb_threshold=0)


def test_cotracker_needs_a_checkpoint_file(tmp_path):
    from anyi2v_lab.evaluation import CoTrackerTracker
    with pytest.raises(TrackerUnavailable, match="checkpoint = .*nope.pth.* is not a file"):
        CoTrackerTracker(tmp_path / "nope.pth")
    with pytest.raises(TrackerUnavailable, match="checkpoint is required"):
        CoTrackerTracker(None)
    weights = tmp_path / "cotracker2.pth"
    weights.write_bytes(b"")
    try:
        import cotracker  # noqa: F401
    except ImportError:
        with pytest.raises(TrackerUnavailable, match="pip install git\\+https://github.com/facebookresearch/co-trac"):
            CoTrackerTracker(weights)
    else:
        pytest.skip("cotracker is installed; its error path cannot be shown here")


# ---- ObjMC of one video ---------------------------------------------------------------------------------

class ScriptedTracker:
    """Returns the given tracks, whatever the video; records the query points it was asked for."""
    name = "scripted"

    def __init__(self, tracks, visible=None):
        self.tracks, self.visible, self.asked = np.asarray(tracks, float), visible, None

    def track(self, video, points):
        self.asked = np.asarray(points)
        vis = np.ones(self.tracks.shape[:2], bool) if self.visible is None else self.visible
        return self.tracks, vis


def test_target_points_follow_moving_and_growing_boxes():
    traj = Trajectory((ObjectTrack((10, 10, 20, 20), ((15, 15), (25, 15), (35, 15)), target_box=(0, 0, 20, 20)),),
                      (64, 64))
    # frame 1: box centre (25, 15), side 15 -> (17.5, 7.5, 32.5, 22.5); frame 2: (25, 5, 45, 25)
    t = target_points(traj, [[12.0, 15.0]], 3)    # 20 % across, half down the frame-0 box
    np.testing.assert_allclose(t[0], [[12.0, 15.0], [17.5 + 3.0, 15.0], [25.0 + 4.0, 15.0]])


def test_objmc_on_video_against_a_hand_computation():
    F, H, W = 3, 32, 48
    masks = np.zeros((2, H, W), bool)
    masks[0, 2:9, 3:10] = True                    # 7 x 7: inscribed centre (6.5, 5.5)
    masks[1, 20:25, 30:35] = True                 # 5 x 5: centre (32.5, 22.5)
    traj = Trajectory((ObjectTrack((3, 2, 10, 9), ((6.5, 5.5), (10.5, 5.5), (14.5, 5.5))),
                       ObjectTrack((30, 20, 35, 25), ((32.5, 22.5),))), (W, H))
    # targets: object 0 at x = 6.5, 10.5, 14.5 (y 5.5); object 1 still at (32.5, 22.5)
    tracks = [[[6.5, 5.5], [10.5 + 3, 5.5 + 4], [14.5, 5.5 - 2]],   # distances 0, 5, 2
              [[32.5, 22.5], [32.5, 22.5], [32.5 + 6, 22.5 + 8]]]   # distances 0, 0, 10
    visible = np.array([[True, True, True], [True, True, False]])
    tracker = ScriptedTracker(tracks, visible)
    res = objmc_on_video(np.zeros((F, H, W, 3), np.uint8), masks, traj, tracker)
    np.testing.assert_array_equal(tracker.asked, [[6.5, 5.5], [32.5, 22.5]])
    np.testing.assert_allclose(res.distances, [[0, 5, 2], [0, 0, 10]])
    assert res.objmc == pytest.approx(17 / 6)                 # every frame counts, as DragAnything's
    assert res.objmc_visible == pytest.approx(7 / 5)          # the last point is not seen
    d = res.to_dict()
    assert d["per_object"] == pytest.approx([7 / 3, 10 / 3], abs=1e-3) and d["tracker"] == "scripted"


def test_objmc_on_video_checks_shapes():
    traj = Trajectory.static((2, 2, 6, 6), (16, 16))
    video = np.zeros((2, 16, 16, 3), np.uint8)
    with pytest.raises(ValueError, match="one frame-0 mask per trajectory object"):
        objmc_on_video(video, np.ones((2, 16, 16), bool), traj, ScriptedTracker(np.zeros((1, 2, 2))))
    with pytest.raises(ValueError, match="image_size"):
        objmc_on_video(np.zeros((2, 16, 20, 3), np.uint8), np.ones((1, 16, 20), bool), traj,
                       ScriptedTracker(np.zeros((1, 2, 2))))
    with pytest.raises(ValueError, match="expected \\(1, 2, 2\\)"):
        objmc_on_video(video, np.ones((1, 16, 16), bool), traj, ScriptedTracker(np.zeros((1, 3, 2))))


# ---- the manifest and the runner ------------------------------------------------------------------------

SIZE = 48


def write_case(folder: Path, name: str, x0: int, dx: float) -> dict:
    """A case on disk: an image with a textured square at x0, its mask, a trajectory moving it dx a frame."""
    video, _ = translating_square(F=1, size=SIZE, step=(0, 0), seed=len(name))
    img = np.roll(video[0], x0 - 16, axis=1)
    mask = np.zeros((SIZE, SIZE), np.uint8)
    mask[20:44, x0:x0 + 24] = 255
    Image.fromarray(img).save(folder / f"{name}.png")
    Image.fromarray(mask).save(folder / f"{name}_mask.png")
    c = (x0 + 12, 32)
    Trajectory.single((x0, 20, x0 + 24, 44), [c, (c[0] + 3 * dx, c[1])], (SIZE, SIZE), num_frames=4).save(
        folder / f"{name}.json")
    return {"id": name, "image": f"{name}.png", "mask": f"{name}_mask.png", "trajectory": f"{name}.json",
            "prompt": f"a square moves ({name})", "seed": len(name)}


def fake_generator(calls: list, interrupt_on: str | None = None, fail_on: str | None = None):
    """Moves the condition image's masked content along the trajectory, a whole pixel a frame."""
    def gen(inputs):
        calls.append(inputs.case.id)
        if inputs.case.id == interrupt_on:
            raise KeyboardInterrupt
        if inputs.case.id == fail_on:
            raise RuntimeError("CUDA out of memory (simulated)")
        from anyi2v_lab.trajectory import frame_paths
        path = frame_paths(inputs.trajectory, 4)[0]
        return np.stack([np.roll(inputs.image, int(round(p[0] - path[0][0])), axis=1) for p in path])
    return gen


@pytest.fixture
def manifest(tmp_path):
    lines = [write_case(tmp_path, "c1", 4, 1.0), write_case(tmp_path, "c2", 12, 2.0),
             write_case(tmp_path, "c3", 8, -1.0)]
    path = tmp_path / "cases.jsonl"
    path.write_text("# three squares\n" + "\n".join(json.dumps(x) for x in lines) + "\n")
    return path


@needs_cv2
def test_runner_resumes_after_an_interrupt(manifest, tmp_path):
    out, calls = tmp_path / "out", []
    with pytest.raises(KeyboardInterrupt):
        run_evaluation(manifest, out, fake_generator(calls, interrupt_on="c2"), log=lambda m: None)
    assert calls == ["c1", "c2"]
    assert sorted(p.name for p in (out / "cases").iterdir()) == ["c1.json"]   # no half-written report
    first = (out / "cases" / "c1.json").read_text()
    calls.clear()
    summary = run_evaluation(manifest, out, fake_generator(calls), log=lambda m: None)
    assert calls == ["c2", "c3"]                                               # c1 is not generated again
    assert (out / "cases" / "c1.json").read_text() == first
    assert summary["finished"] == 3 and summary["failed"] == [] and summary["points"] == 3 * 4
    assert summary["seeds"] == {"c1": 2, "c2": 2, "c3": 2}
    assert summary["objmc"] < 1.0 and summary["versions"]["anyi2v_lab"]
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["per_case"] == pytest.approx(summary["per_case"])
    report = json.loads((out / "cases" / "c2.json").read_text())
    assert report["frames"] == 4 and report["size"] == [SIZE, SIZE] and len(report["distances"][0]) == 4


@needs_cv2
def test_runner_records_a_failing_case_and_redoes_it(manifest, tmp_path):
    out, calls = tmp_path / "out", []
    summary = run_evaluation(manifest, out, fake_generator(calls, fail_on="c2"), log=lambda m: None)
    assert summary["finished"] == 2 and [f["id"] for f in summary["failed"]] == ["c2"]
    assert "out of memory" in json.loads((out / "failed" / "c2.json").read_text())["error"]
    calls.clear()
    summary = run_evaluation(manifest, out, fake_generator(calls), log=lambda m: None)
    assert calls == ["c2"] and summary["finished"] == 3 and not (out / "failed" / "c2.json").exists()


def test_malformed_manifest_names_the_field(manifest, tmp_path):
    good = json.loads(manifest.read_text().splitlines()[1])
    bad = tmp_path / "bad.jsonl"
    for change, match in [({"trajectory": None}, "line 1: 'trajectory' is required"),
                          ({"seed": -1}, "line 1: seed = -1 must be a non-negative integer"),
                          ({"mask": "nope.png"}, "line 1: mask = 'nope.png' does not exist"),
                          ({"prompt": 3}, "line 1: prompt = 3 must be a string"),
                          ({"colour": "red"}, "unknown field\\(s\\) \\['colour'\\]"),
                          ({"id": "../x"}, "id = '../x' must be a plain file name"),
                          ({"set": 3}, "set = 3 must be")]:
        d = {**good, **change}
        d = {k: v for k, v in d.items() if v is not None}
        bad.write_text(json.dumps(d) + "\n")
        with pytest.raises(ManifestError, match=match):
            read_manifest(bad)
    bad.write_text(json.dumps(good) + "\n{oops\n")
    with pytest.raises(ManifestError, match="line 2: not valid JSON"):
        read_manifest(bad)
    bad.write_text(json.dumps(good) + "\n" + json.dumps(good) + "\n")
    with pytest.raises(ManifestError, match="line 2: id 'c1' is used by an earlier case"):
        read_manifest(bad)
    with pytest.raises(ManifestError, match="does not exist"):
        read_manifest(tmp_path / "missing.jsonl")


def test_draganything_points_with_a_label_map_and_a_vipseg_folder(tmp_path):
    root = tmp_path / "vipseg"
    for d in ("imgs/v1", "panomasks/v1", "trajectories"):
        (root / d).mkdir(parents=True)
    labels = np.zeros((24, 32), np.uint8)
    labels[2:10, 4:14] = 3
    labels[12:20, 20:30] = 7
    for n in (0, 1, 10):   # the first frame by number is 0, not '1' or '10' as strings sort
        Image.fromarray(np.full((24, 32, 3), n, np.uint8)).save(root / "imgs" / "v1" / f"{n}.jpg")
        Image.fromarray(labels if n == 0 else labels * 0).save(root / "panomasks" / "v1" / f"{n}.png")
    pts = {"3": [[8, 5], [9, 5], [10, 6]], "7": [[24, 15], [24, 15], [23, 15]]}
    (root / "trajectories" / "v1.json").write_text(json.dumps(pts))
    (root / "prompts.json").write_text(json.dumps({"v1": {"prompt": "two things", "seed": 5}}))
    [case] = read_manifest(root)
    assert case.id == "v1" and case.prompt == "two things" and case.seed == 5
    assert Path(case.image).name == "0.jpg" and Path(case.mask[0]).name == "0.png"
    image, masks, traj = load_case(case)
    assert image.shape == (24, 32, 3) and masks.shape == (2, 24, 32)
    assert (masks[0] == (labels == 3)).all() and (masks[1] == (labels == 7)).all()
    assert traj.image_size == (32, 24) and [o.name for o in traj.objects] == ["3", "7"]
    assert traj.objects[0].box == (4, 2, 14, 10) and traj.objects[0].path[2] == (10.5, 6.5)
    (root / "trajectories" / "v1.json").write_text(json.dumps({"9": [[1, 1]]}))
    with pytest.raises(ManifestError, match="object '9' has no pixel"):
        load_case(read_manifest(root)[0])


def test_binary_masks_must_match_the_trajectory_objects(manifest):
    case = read_manifest(manifest)[0]
    two = EvalCase(case.id, case.image, case.mask * 2, case.trajectory, case.prompt, where="here")
    with pytest.raises(ManifestError, match="here: mask lists 2 file\\(s\\) for 1 trajectory object"):
        load_case(two)


def test_cli_body_rejects_bad_input_before_loading_a_model(manifest, tmp_path, capsys):
    from types import SimpleNamespace

    from anyi2v_lab.evaluation import main_evaluate

    def load_model(spec):
        raise AssertionError("the model must not load for bad input")

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"image": "c1.png"}\n')
    args = SimpleNamespace(manifest=str(bad), out=str(tmp_path / "out"), tracker="lucas-kanade",
                           cotracker_checkpoint=None)
    assert main_evaluate(args, load_model, None, None, {}) == 2
    assert "'mask' is required" in capsys.readouterr().err
    args = SimpleNamespace(manifest=str(manifest), out=str(tmp_path / "out"), tracker="cotracker",
                           cotracker_checkpoint=str(tmp_path / "none.pth"))
    assert main_evaluate(args, load_model, None, None, {}) == 2
    assert "is not a file" in capsys.readouterr().err


@needs_cv2
def test_pipeline_generator_on_the_tiny_model(tiny_pipe, manifest, tmp_path):
    """The real path: generate with the method at 128 px, bring the video back to the 48 px image, track."""
    from anyi2v_lab.evaluation import pipeline_generator
    from anyi2v_lab.method import AnyI2VConfig

    one = tmp_path / "one.jsonl"
    one.write_text(manifest.read_text().splitlines()[1] + "\n")
    # no injection (no inversion): this checks the plumbing, the method has its own tests
    cfg = AnyI2VConfig(num_frames=4, num_inference_steps=2, opt_step=0, load_feature_step=0, inject_residual=False,
                       inject_query=False, kv_consistency=False, height=128, width=128)
    summary = run_evaluation(one, tmp_path / "out", pipeline_generator(tiny_pipe, cfg), log=lambda m: None)
    assert summary["finished"] == 1 and summary["failed"] == [], summary["failed"]
    assert np.isfinite(summary["objmc"]) and summary["generator"]["config"]["num_frames"] == 4
    report = json.loads((tmp_path / "out" / "cases" / "c1.json").read_text())
    assert report["size"] == [SIZE, SIZE] and report["frames"] == 4


# ---- resuming keyed on what a report depends on; malformed lines; processes sharing --out; paths ---------------

def _with_info(gen, **config):
    """A generator that says which settings it generates with, as pipeline_generator and the CLI do."""
    from anyi2v_lab.method import AnyI2VConfig
    gen.info = {"config": AnyI2VConfig(**config).to_dict(), "model": {"model": "tiny"}, "runtime": "default"}
    return gen


@needs_cv2
def test_a_changed_case_is_run_again_and_the_summary_never_mixes_settings(manifest, tmp_path):
    out, calls, quiet = tmp_path / "out", [], (lambda m: None)
    run_evaluation(manifest, out, _with_info(fake_generator(calls), lr=0.01, num_frames=4), log=quiet)
    first = json.loads((out / "cases" / "c1.json").read_text())
    assert first["made_with"]["settings"]["config"]["lr"] == 0.01
    # the same trajectory name, other contents: only that case runs again
    traj = json.loads((tmp_path / "c2.json").read_text())
    (tmp_path / "c2.json").write_text(json.dumps(traj, indent=2))
    calls.clear()
    log = []
    run_evaluation(manifest, out, _with_info(fake_generator(calls), lr=0.01, num_frames=4), log=log.append)
    assert calls == ["c2"] and any("c2: changed since its report (trajectory (contents))" in m for m in log)
    # other settings (as --set lr=0.05 --set num_frames=8 give): every case runs again
    calls.clear()
    log.clear()
    summary = run_evaluation(manifest, out, _with_info(fake_generator(calls), lr=0.05, num_frames=8), log=log.append)
    assert calls == ["c1", "c2", "c3"]
    assert any("c1: changed since its report (config lr 0.01 -> 0.05; config num_frames 4 -> 8)" in m for m in log)
    assert summary["settings"]["config"]["lr"] == 0.05 and summary["finished"] == 3
    for cid in ("c1", "c2", "c3"):
        made_with = json.loads((out / "cases" / f"{cid}.json").read_text())["made_with"]
        assert made_with["settings"]["config"]["lr"] == 0.05 and made_with["settings"]["config"]["num_frames"] == 8
        assert summary["digests"][cid] == made_with["digest"]
    # a case whose rerun fails keeps its old report on disk but is not pooled with the new settings
    calls.clear()
    summary = run_evaluation(manifest, out, _with_info(fake_generator(calls, fail_on="c3"), lr=0.02, num_frames=8),
                             log=quiet)
    assert summary["finished"] == 2 and [f["id"] for f in summary["failed"]] == ["c3"]
    assert set(summary["per_case"]) == {"c1", "c2"} and (out / "cases" / "c3.json").exists()


@needs_cv2
def test_a_malformed_manifest_line_is_a_failed_case_and_the_others_go_on(manifest, tmp_path):
    lines = manifest.read_text().splitlines()
    broken = json.loads(lines[2])
    del broken["mask"]
    manifest.write_text("\n".join([lines[1], json.dumps(broken), "{oops", lines[3]]) + "\n")
    out, calls = tmp_path / "out", []
    summary = run_evaluation(manifest, out, fake_generator(calls), log=lambda m: None)
    assert calls == ["c1", "c3"] and summary["finished"] == 2
    assert {f["id"]: f["error"] for f in summary["failed"]} == {
        "c2": "cases.jsonl line 2: 'mask' is required (a case has image, mask, trajectory, prompt)",
        "line-0003": "cases.jsonl line 3: not valid JSON (Expecting property name enclosed in double quotes: "
                     "line 1 column 2 (char 1))"}
    assert json.loads((out / "failed" / "c2.json").read_text())["error"].endswith("'mask' is required (a case has "
                                                                                   "image, mask, trajectory, prompt)")
    assert sorted(p.name for p in (out / "cases").iterdir()) == ["c1.json", "c3.json"]
    manifest.write_text("# nothing\n\n")
    with pytest.raises(ManifestError, match="holds no case"):
        run_evaluation(manifest, out, fake_generator(calls), log=lambda m: None)
    manifest.write_text("{oops\n")
    with pytest.raises(ManifestError, match="holds no valid case; the first error: cases.jsonl line 1"):
        run_evaluation(manifest, out, fake_generator(calls), log=lambda m: None)


@needs_cv2
def test_a_case_locked_by_another_process_is_left_to_it(manifest, tmp_path):
    from anyi2v_lab.resume import LOCKS, JobLock

    out, calls = tmp_path / "out", []
    other = JobLock(out / LOCKS, "c2")   # another open file: flock refuses it as it would another process
    assert other.acquire()
    try:
        summary = run_evaluation(manifest, out, fake_generator(calls), log=lambda m: None)
    finally:
        other.release()
    assert calls == ["c1", "c3"] and summary["running_elsewhere"] == ["c2"] and summary["cases"] == 3
    assert summary["finished"] == 2 and not (out / "failed").exists()
    calls.clear()
    summary = run_evaluation(manifest, out, fake_generator(calls), log=lambda m: None)
    assert calls == ["c2"] and summary["running_elsewhere"] == [] and summary["finished"] == 3


def test_manifest_paths_may_leave_its_folder_and_are_recorded_resolved(manifest, tmp_path):
    sub = tmp_path / "lists"
    sub.mkdir()
    d = json.loads(manifest.read_text().splitlines()[1])
    d = {**d, "image": "../c1.png", "mask": str(tmp_path / "c1_mask.png"), "trajectory": "../c1.json"}
    (sub / "cases.jsonl").write_text(json.dumps(d) + "\n")
    [case] = read_manifest(sub / "cases.jsonl")
    assert (case.image, case.mask, case.trajectory) == (str(tmp_path / "c1.png"), (str(tmp_path / "c1_mask.png"),),
                                                        str(tmp_path / "c1.json"))


def test_draganything_mask_name_may_leave_the_file_folder(tmp_path):
    from anyi2v_lab.interop import read_trajectory

    (tmp_path / "masks").mkdir()
    (tmp_path / "demo").mkdir()
    mask = np.zeros((64, 80), np.uint8)
    mask[20:40, 10:30] = 255
    Image.fromarray(mask).save(tmp_path / "masks" / "car.png")
    (tmp_path / "demo" / "demo.json").write_text(json.dumps({"1": {"mask_name": "../masks/car.png",
                                                                   "trajectory": [[20, 30]] * 3}}))
    traj = read_trajectory(tmp_path / "demo" / "demo.json", image_size=(80, 64))
    assert traj.objects[0].box == (10, 20, 30, 40)
