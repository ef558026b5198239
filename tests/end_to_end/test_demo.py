"""The README's main job: the demo on the embedded toy model, offline, on the CPU."""
import json
from pathlib import Path

import numpy as np
import pytest

from anyi2v_lab.cli import main
from anyi2v_lab.demo import CELL_PX, DEMO_SCENE, LESSON_SCENE, compare_frames, score_tracking
from helpers import load_benchmark

ROOT = Path(__file__).resolve().parents[2]
FOLLOW_PX = 1.5 * CELL_PX  # the bar: 1.5 latent cells, 6 px at 64 px


def load_bench():
    return load_benchmark("toy_trajectory")


@pytest.mark.slow
def test_demo_follows_the_path_and_no_control_does_not(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out)]) == 0
    for name in ("video.mp4", "video.gif", "overlay.mp4", "compare.mp4", "compare.gif", "path.png", "run.json",
                 "demo.json", "condition.png"):
        assert (out / name).stat().st_size > 0, name
    summary = json.loads((out / "demo.json").read_text())
    assert summary["model"] == "embedded toy model" and summary["cell_px"] == CELL_PX == 4
    # the object ends on the target and stays near the path (1.5 latent cells); without control it does not
    assert summary["final_error_px"] <= FOLLOW_PX and summary["objmc_px"] <= FOLLOW_PX
    assert summary["final_error_cells"] == pytest.approx(summary["final_error_px"] / 4)
    assert summary["objmc_cells"] == pytest.approx(summary["objmc_px"] / 4)
    assert summary["no_control"]["objmc_px"] > 2 * FOLLOW_PX
    assert set(summary["seconds"]) == {"load", "anyi2v", "no_control", "total"}
    run = json.loads((out / "run.json").read_text())
    assert run["config"]["inversion_schedule"] == "fast" and run["config"]["num_inference_steps"] == 25
    assert run["config"]["num_frames"] == summary["num_frames"] == DEMO_SCENE.num_frames == 8
    # saved, so the run can be redone
    assert not run["config"]["inject_uncond"] and run["seed"] == DEMO_SCENE.noise_seed
    assert "ObjMC" in capsys.readouterr().out


@pytest.mark.parametrize("scene", [LESSON_SCENE, DEMO_SCENE], ids=["lesson", "demo"])
def test_demo_scene_is_the_benchmark_case_with_its_seed_modality_and_trajectory(scene):
    """Each demo scene runs a held-out benchmark case as the benchmark does (its noise seed, its modality,
    its own motion as the trajectory, the paper's settings with the fast inversion), and that motion is
    one the toy model was trained on: a path of 8-32 px under the data's peak speed."""
    from anyi2v_lab.method import AnyI2VConfig
    from anyi2v_lab.toy.scene import MAX_SPEED, PATH_LENGTH
    from anyi2v_lab.trajectory import frame_paths

    bench = load_bench()
    case, trajectory, prompt = scene.inputs()
    ref, modality = bench.make_cases(scene.case + 1, 64)[scene.case]
    assert case.seed == ref.seed and np.array_equal(case.frames, ref.frames) and prompt == ref.caption
    assert scene.modality == modality and scene.noise_seed == scene.case  # the benchmark's seed: args.seed (0) + i
    assert trajectory == bench.trajectory_of(ref) and len(case.objects) == 1
    steps = np.linalg.norm(np.diff(frame_paths(trajectory, 16)[0], axis=0), axis=1)
    assert case.motion == "path" and PATH_LENGTH[0] <= steps.sum() <= PATH_LENGTH[1] and steps.max() <= MAX_SPEED
    assert AnyI2VConfig(**scene.overrides) == AnyI2VConfig(inversion_schedule="fast", num_frames=scene.num_frames)
    assert scene.inputs(128)[0].frames.shape == (16, 128, 128, 3)


def test_score_tracking_measures_the_distance_to_the_target():
    """The real video scores (near) zero against its own motion; the same video shifted by 8 px scores
    8 px in every frame, with and without an explicit trajectory; a lost object scores NaN."""
    case, trajectory, _ = LESSON_SCENE.inputs()
    real = score_tracking(case.frames, case)
    assert real["objmc_px"] < 1.0 and real["final_error_px"] < 1.0 and real["missed"] == 0
    shifted = np.roll(case.frames, 8, axis=2)            # 8 px to the right (the object stays inside)
    for s in (score_tracking(shifted, case), score_tracking(shifted, case, trajectory)):
        assert s["error_px"].shape == (1, 16)
        assert np.allclose(s["error_px"], np.linalg.norm(s["achieved"] - s["target"], axis=-1))
        assert s["objmc_px"] == pytest.approx(8.0, abs=1.0) and s["final_error_px"] == pytest.approx(8.0, abs=1.0)
        assert s["objmc_cells"] == pytest.approx(s["objmc_px"] / CELL_PX)
    assert np.allclose(score_tracking(case.frames, case, trajectory)["target"][0], case.centres[0], atol=1e-4)
    lost = score_tracking(np.full_like(case.frames, 128), case)
    assert np.isnan(lost["objmc_px"]) and np.isnan(lost["final_error_px"]) and lost["missed"] == 16


def test_compare_frames_puts_condition_and_columns_side_by_side():
    case, _, _ = LESSON_SCENE.inputs()
    frames = case.frames
    target = case.centres.astype(float)
    out = compare_frames(case.conditions["depth"], {"a": (frames, target), "b": (frames[::-1], target)}, target)
    assert out.shape == (16, 18 + 256, 3 * 256, 3) and out.dtype == np.uint8
    # away from the drawn path, each panel holds its (upscaled) frame
    def corner(panel, j):
        return out[j, 18 + 252:18 + 256, panel * 256:panel * 256 + 4]

    assert (corner(1, 0) == frames[0, 63, 0]).all() and (corner(2, 0) == frames[-1, 63, 0]).all()
    assert (corner(0, 5) == case.conditions["depth"][63, 0]).all()


def test_fine_align_settings_name_the_finest_self_attentions():
    """The benchmark's ``toy_fine_align`` variant aligns on exactly the decoder's self-attentions at the
    toy UNet's finest level (16 x 16 for a 64 px frame) and makes a valid config."""
    from anyi2v_lab.hooks.points import hook_points
    from anyi2v_lab.method import AnyI2VConfig
    from anyi2v_lab.toy.model import LATENT_SIZE, build_unet

    fine_align = load_bench().FINE_ALIGN_SETTINGS
    queries = [p for p in hook_points(build_unet()) if p.kind == "self_attention" and p.site == "query"]
    finest = [p.module for p in queries if p.downscale == 1 and p.module.startswith("up_blocks")]
    assert sorted(fine_align["opt_layers"]) == sorted(finest) and LATENT_SIZE == 16
    fine = AnyI2VConfig(**fine_align)
    assert fine.opt_layers == fine_align["opt_layers"] and fine.inject_uncond
