"""The 5-case version of the toy trajectory benchmark, on the CPU (the full run is on a GPU)."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import load_benchmark

ROOT = Path(__file__).resolve().parents[2]


def load_bench():
    return load_benchmark("toy_trajectory")


@pytest.mark.slow
def test_ci_benchmark_runs_and_reports(tmp_path):
    """The CI mode end to end on the first of its five cases (the five-case numbers are the benchmark's)."""
    out = tmp_path / "toy.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "toy_trajectory.py"), "--ci", "--cases", "1",
                           "--out", str(out)],
                          capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["cases_evaluated"] == 1 and report["size"] == 64
    for variant in ("full", "no_control"):
        r = report["results"][variant]
        assert np.isfinite(r["objmc_px"]) and 0 <= r["frame0_iou"] <= 1 and np.isfinite(r["fd_vae"])
        assert len(r["objmc_per_case"]) == 1
    assert "| full |" in proc.stdout and "Floors" in proc.stdout


def test_worker_goes_on_eagerly_after_a_failed_graph_capture(monkeypatch):
    """A capture failure (seen on an H100) poisons the process's graph pools: the worker retries that job
    and runs the rest without CUDA graphs, and reports the fallback; other errors are reported as before."""
    import argparse
    from types import SimpleNamespace

    import anyi2v_lab.method as method

    bench = load_bench()
    runtimes = []

    def fake_generate(pipe, image, caption, trajectory, config, *, seed, progress, runtime):
        runtimes.append(runtime.cuda_graphs)
        if config.mask == "none":
            raise ValueError("not a capture problem")
        if runtime.cuda_graphs is not False:
            raise RuntimeError("CUDA error: operation failed due to a previous error during capture")
        return SimpleNamespace(frames=np.zeros((16, 64, 64, 3), np.uint8))

    monkeypatch.setattr(method, "generate", fake_generate)
    args = argparse.Namespace(workers=1, device="cpu", model=None, dtype="float32", guidance=8.0,
                              inversion="fast", runtime="{}", cases=1, seed=0, case_seed=bench.BENCH_SEED, set=[],
                              condition="cycle")
    items = []
    bench.run_worker(0, [(0, "full"), (0, "no_mask"), (0, "no_kv")], args, SimpleNamespace(put=items.append))
    full, no_mask, no_kv, end = items
    assert end is None and runtimes == ["auto", False, False, False]
    assert full[2] is not None and "graph capture failed at case 0 full" in full[4]
    assert no_mask[2] is None and "not a capture problem" in no_mask[3] and no_mask[4] is None
    assert no_kv[2] is not None and no_kv[4] is None
    assert not bench.is_capture_failure("CUDA out of memory")


def test_command_line_variants_reach_the_workers_with_their_settings(monkeypatch):
    """``--set NAME:key=value ...`` defines a variant (a ``no_control*`` name runs without a trajectory)
    and ``--case-seed`` picks the scenes; the worker builds each config from them."""
    import argparse
    from types import SimpleNamespace

    import anyi2v_lab.method as method

    bench = load_bench()
    seen, images = [], []

    def fake_generate(pipe, image, caption, trajectory, config, *, seed, progress, runtime):
        seen.append((caption, trajectory is not None, config.lr, config.opt_layers, config.guidance_scale))
        images.append(image)
        return SimpleNamespace(frames=np.zeros((16, 64, 64, 3), np.uint8))

    monkeypatch.setattr(method, "generate", fake_generate)
    sets = ["strong:lr=0.02 opt_layers=[a.attn1,b.attn1]", "no_control_g4:guidance_scale=4"]
    args = argparse.Namespace(workers=1, device="cpu", model=None, dtype="float32", guidance=8.0, inversion="fast",
                              runtime="{}", cases=1, seed=0, case_seed=bench.DEV_SEED, set=sets, condition="cycle")
    items = []
    bench.run_worker(0, [(0, "strong"), (0, "no_control_g4")], args, SimpleNamespace(put=items.append))
    case, modality = bench.make_cases(1, 64, bench.DEV_SEED)[0]
    dev_caption = case.caption
    assert all(np.array_equal(im, case.conditions[modality]) for im in images)
    # --condition rgb: the real frame 0 replaces the condition image; the case and its target stay
    bench.run_worker(0, [(0, "strong")], argparse.Namespace(**{**vars(args), "condition": "rgb"}),
                     SimpleNamespace(put=items.append))
    assert np.array_equal(images[-1], case.frames[0]) and seen[-1] == seen[0]
    seen.pop()
    assert seen == [(dev_caption, True, 0.02, ("a.attn1", "b.attn1"), 8.0), (dev_caption, False, 0.01,
                                                                           method.AnyI2VConfig().opt_layers, 4.0)]
    assert dev_caption != bench.make_cases(1, 64)[0][0].caption


def test_command_line_variants_are_checked_before_any_worker_starts(tmp_path):
    bench = load_bench()
    assert bench.variant_table(["x:lr=0.02 eta=1"])["x"] == {"lr": 0.02, "eta": 1}
    for bad, message in ((["full:lr=1"], "with a name not in"), (["x:lr"], "key=value"),
                         (["x"], "NEW_NAME:key=value")):
        with pytest.raises(SystemExit, match=message):
            bench.variant_table(bad)
    for argv, message in ((["--set", "x:lrr=0.02", "--variants", "x"], "did you mean 'lr'"),
                          (["--set", "x:lr=-1", "--variants", "x"], r"lr\b.*must be > 0"),
                          (["--variants", "y"], "define them with --set")):
        with pytest.raises(SystemExit, match=message):
            bench.main(argv + ["--out", str(tmp_path / "never.json")])
    assert not (tmp_path / "never.json").exists()


@pytest.mark.slow
def test_glitch_probe_reports_each_variant_with_its_sampler(tmp_path):
    out = tmp_path / "probe.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "toy_glitch_probe.py"), "--videos", "2",
                           "--variants", "base,eta1,euler_a50", "--steps-scale", "0.08", "--case-seed", "1",
                           "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(out.read_text())
    assert (r["eta1"]["eta"], r["eta1"]["steps"]) == (1.0, 2)
    assert (r["euler_a50"]["scheduler"], r["euler_a50"]["steps"]) == ("euler_a", 4)
    assert r["case_seed"] == 1
    for v in ("base", "eta1", "euler_a50"):
        assert 0 <= r[v]["rate"] <= 1 and sum(g["videos"] for k, g in r[v]["rate_by_case"].items()
                                              if k.startswith("objects:")) == 2
    assert r["data"]["heldout"]["binding_accuracy"] == 1.0  # the real videos show their captions' colours


def test_glitch_rate_by_case_groups_videos():
    from types import SimpleNamespace

    from anyi2v_lab.toy.evaluate import glitch_by_case
    cases = [SimpleNamespace(motion=m, objects=[0] * n) for m, n in (("path", 1), ("path", 2), ("still", 2))]
    r = glitch_by_case([0.5, 0.25, 0.0], cases)
    assert r == {"motion:path": {"rate": 0.375, "videos": 2}, "motion:still": {"rate": 0.0, "videos": 1},
                 "objects:1": {"rate": 0.5, "videos": 1}, "objects:2": {"rate": 0.125, "videos": 2}}


def test_table_gives_the_paired_standard_error_of_each_difference():
    bench = load_bench()
    full = {"objmc_per_case": [0.0, 0.0, 1.0, 1.0]}
    # differences 1, 2, 3 (the untracked case is left out): s.d. 1, s.e. 1 / sqrt(3)
    assert bench.paired_se({"objmc_per_case": [1.0, 2.0, None, 4.0]}, full) == " ± 0.58"
    assert bench.paired_se({"objmc_per_case": [1.0, None, None, None]}, full) == ""


def test_workers_are_spread_round_robin_over_the_visible_gpus(monkeypatch):
    import torch

    bench = load_bench()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert bench.worker_gpus("cuda", 6) == ["0", "1", "2", "3", "0", "1"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,5")          # the user's choice of GPUs is kept
    assert bench.worker_gpus("cuda", 3) == ["2", "5", "2"]
    assert bench.worker_gpus("cuda:1", 2) == [None, None] and bench.worker_gpus("cpu", 1) == [None]
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert bench.worker_gpus("cuda", 2) == [None, None]


def load_script(name: str):
    sys.path.insert(0, str(ROOT / "benchmarks"))  # the probe imports toy_trajectory beside it
    try:
        return load_benchmark(name)
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))


@pytest.mark.slow
def test_injection_probe_scores_frame_zero_against_the_scene(tmp_path):
    """The probe's score of the real frame 0 is (near) perfect; plain sampling ignores the condition, so
    its rgb and modality runs agree exactly; a bad variant fails before any work."""
    probe = load_script("toy_injection_probe")
    case, _ = probe.make_cases(1, 64, probe.DEV_SEED)[0]
    s = probe.frame0_scores(case.frames[0], case)
    assert max(s["error_px"]) < 1.0 and min(s["iou"]) > 0.8  # anti-aliased edges
    assert np.isnan(probe.frame0_scores(np.full_like(case.frames[0], 128), case)["error_px"]).all()
    with pytest.raises(SystemExit, match="unknown"):
        probe.main(["--variants", "plain,nope", "--out", str(tmp_path / "never.json")])
    out = tmp_path / "probe.json"
    assert probe.main(["--scenes", "1", "--variants", "plain,no_debias", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert set(report["pooled"]) == {"plain/rgb", "plain/modality", "no_debias/rgb", "no_debias/modality"}
    assert report["per_scene"]["plain/rgb"] == report["per_scene"]["plain/modality"]
    assert report["settings"]["base"]["num_frames"] == 1 and out.with_suffix(".png").exists()


@pytest.mark.slow
def test_feature_gap_is_zero_for_the_frame_itself_and_two_for_an_unrelated_map(tmp_path):
    """``relative_gaps``: 0 for equal maps, about 2 for an independent map of the same spread (the
    squared distance of two independent draws is twice their variance), raw and in the top components;
    the script reports both for every injected map."""
    import torch

    gap = load_script("toy_feature_gap")
    g = torch.Generator().manual_seed(0)
    rgb = torch.randn(4096, 16, generator=g) * torch.linspace(0.5, 3, 16)   # a spectrum, so top-k means something
    assert gap.relative_gaps(rgb, rgb.clone(), k=4) == (0.0, 0.0)
    other = torch.randn(4096, 16, generator=g) * torch.linspace(0.5, 3, 16)
    raw, top = gap.relative_gaps(rgb, other, k=4)
    assert raw == pytest.approx(2.0, rel=0.05) and top == pytest.approx(2.0, rel=0.05)
    assert gap.tokens(torch.zeros(8, 4, 4)).shape == (16, 8) and gap.tokens(torch.zeros(16, 8)).shape == (16, 8)
    out = tmp_path / "gap.json"
    assert gap.main(["--scenes", "1", "--out", str(out)]) == 0
    report = json.loads(out.read_text())["weights"]["committed"]
    from anyi2v_lab.method.config import ATTN_LAYERS, RES_LAYERS
    assert set(report) == {f"{r}.residual" for r in RES_LAYERS} | {f"{a}.query" for a in ATTN_LAYERS}
    assert all(v["rel"] >= 0 and v["rel_top8"] >= 0 for v in report.values())


def test_path_limits_score_the_real_video_as_following_and_a_still_one_as_not():
    """toy_path_limits: the real video follows its own motion (error near 0, progress near 1); the first
    frame held still does not (progress 0, final error = the path's displacement); bins count objects."""
    limits = load_script("toy_path_limits")
    case = next(c for c, _ in limits.bench.make_cases(6, 64, limits.LIMITS_SEED)
                if c.motion == "path" and limits.describe(c)[0]["displacement_px"] > 8)
    motion = limits.describe(case)
    steps = np.linalg.norm(np.diff(case.centres[0], axis=0), axis=1)
    assert motion[0]["length_px"] == pytest.approx(steps.sum())
    assert motion[0]["peak_speed"] == pytest.approx(steps.max())
    real = limits.score(case.frames, case)[0]
    assert real["objmc_px"] < 1 and real["final_error_px"] < 1 and real["progress"] == pytest.approx(1, abs=0.05)
    still = limits.score(np.repeat(case.frames[:1], 16, 0), case)[0]
    assert still["progress"] == pytest.approx(0, abs=0.05)
    assert still["final_error_px"] == pytest.approx(motion[0]["displacement_px"], abs=1)
    objects = [{"motion": m, "full": s, "no_control": t}
               for m, s, t in zip(motion, limits.score(case.frames, case),
                                  limits.score(case.frames[::-1].copy(), case))]
    b = limits.bins(objects, "full")
    assert b["all"]["objects"] == len(case.objects)
    assert sum(s["objects"] for s in b["length_px"].values()) == len(objects)
    assert b["kind"]["path"]["follows"] == 1.0 and "| all objects |" in limits.table({"bins": {"full": b}})


@pytest.mark.slow
def test_demo_scene_reports_each_case_and_the_medians(tmp_path):
    """``demo_scene.py`` runs the full method and no control on the first cases, as the demo runs them,
    and writes per-case rows (path length, ObjMC, final error) and their medians."""
    import json

    out = tmp_path / "scene.json"
    assert load_benchmark("demo_scene").main(["--frames", "4", "--cases", "1", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["frames"] == 4 and [r["case"] for r in report["rows"]] == [0]
    assert report["settings"]["num_frames"] == 4 and report["settings"]["inversion_schedule"] == "fast"
    first = report["rows"][0]
    assert first["objects"] == len(first["path_px"]) and first["objmc_px"] >= 0
    assert report["median_objmc_px"] == pytest.approx(first["objmc_px"])
