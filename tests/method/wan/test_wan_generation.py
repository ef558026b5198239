"""AnyI2V on a tiny random Wan pipeline, end to end: inversion, injection, optimisation, CFG sampling, decode."""
import numpy as np
import pytest
import torch

from anyi2v_lab.method.config import ConfigError
from anyi2v_lab.method.wan import WanAnyI2VConfig, generate_wan
from anyi2v_lab.trajectory import Trajectory

# 9 video frames at 64 px: 3 latent frames of 4x4 tokens; an alignment grid of 16x16 cells
CONFIG = WanAnyI2VConfig(num_frames=9, height=64, width=64, num_inference_steps=2, guidance_scale=2.0,
                         max_sequence_length=16, inversion_steps=2, inject_blocks=(0, 1), align_blocks=(1,),
                         inject_steps=1, opt_steps=1, opt_iters=1)
TRAJECTORY = Trajectory.single((8, 8, 32, 32), [(20, 20), (44, 44)], image_size=(64, 64))


@pytest.fixture(scope="module")
def condition():
    return (np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def result(tiny_wan_pipe, condition):
    return generate_wan(tiny_wan_pipe, condition, "a red ball", TRAJECTORY, CONFIG, seed=3)


@pytest.fixture(scope="module")
def plain(tiny_wan_pipe, condition):
    return generate_wan(tiny_wan_pipe, condition, "a red ball", None, CONFIG, seed=3, inject=False)


def test_end_to_end_frames_and_record(result, plain):
    assert result.video.shape == (9, 64, 64, 3) and result.frames.dtype == np.uint8
    assert np.isfinite(result.video).all() and result.video.min() >= 0 and result.video.max() <= 1
    assert result.latents.shape == (1, 16, 3, 8, 8)
    rec = result.record
    assert len(rec.timesteps) == 2 and rec.sigmas[0] == pytest.approx(1.0)
    assert rec.injected == sorted(f"blocks.{b}.{s}" for b in (0, 1)
                                  for s in ("output", "attn1.query", "attn1.key", "attn1.value"))
    assert rec.grid_boxes.shape == (1, 3, 4) and rec.boxes.shape == (1, 3, 4)
    assert [(it["step_index"], it["iteration"]) for it in rec.iterations] == [(0, 0)]
    assert rec.iterations[0]["count"] > 0 and np.isfinite(rec.iterations[0]["loss"])
    assert {tuple(x.shape) for x in result.features.tensors.values()} == {(4, 4, 24)}
    assert result.features.sigma == CONFIG.inversion_sigma
    assert np.abs(result.video - plain.video).max() > 1e-3  # injection and optimisation change the video


def test_deterministic_with_a_seed(tiny_wan_pipe, condition, result):
    again = generate_wan(tiny_wan_pipe, condition, "a red ball", TRAJECTORY, CONFIG, seed=3)
    assert np.array_equal(again.video, result.video)
    assert again.record.iterations == result.record.iterations


def test_without_injection_or_trajectory_it_is_wan_pipeline(tiny_wan_pipe, plain):
    video = tiny_wan_pipe(prompt="a red ball", height=64, width=64, num_frames=9, num_inference_steps=2,
                          guidance_scale=2.0, max_sequence_length=16, generator=torch.Generator().manual_seed(3),
                          output_type="np").frames[0]
    assert np.array_equal(video, plain.video)
    assert plain.features is None and plain.record.injected == [] and plain.record.iterations == []


@pytest.mark.parametrize("change, match", [
    (dict(inject_blocks=(0, 2)), "inject_blocks=\\(0, 2\\): this transformer has blocks 0..1"),
    (dict(align_blocks=(5,)), "align_blocks"),
    (dict(adain_patch=3), "adain_patch=3 does not tile the 4x4 token grid"),
    (dict(height=32), "the condition is 64x64 but the canvas is 64x32"),
])
def test_bad_input_fails_before_any_work(tiny_wan_pipe, condition, change, match):
    from dataclasses import replace

    from anyi2v_lab.conditions import load_condition

    cond = load_condition(condition, size=(64, 64))
    with pytest.raises(ConfigError, match=match):
        generate_wan(tiny_wan_pipe, cond, "a red ball", TRAJECTORY, replace(CONFIG, **change))


def test_config_errors_name_the_field_and_the_fix():
    with pytest.raises(ConfigError, match="num_frames=8: Wan's causal VAE needs 4k \\+ 1"):
        WanAnyI2VConfig(num_frames=8)
    with pytest.raises(ConfigError, match="inject_steps=60: use 0 \\(off\\) .. num_inference_steps=50"):
        WanAnyI2VConfig(inject_steps=60)
    with pytest.raises(ConfigError, match="inversion_sigma=1.0"):
        WanAnyI2VConfig(inversion_sigma=1.0)
