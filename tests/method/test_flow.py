"""Flow matching's x0: against the noising it inverts, diffusers' Euler step and a tiny WanPipeline."""
import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler

from anyi2v_lab.hooks import run_with_cache
from anyi2v_lab.method.flow import flow_noise, flow_sigma, flow_x0


def test_x0_and_noise_invert_the_noising():
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(2, 16, 3, 4, 4, generator=g), torch.randn(2, 16, 3, 4, 4, generator=g)
    sigma = 0.7
    x = (1 - sigma) * x0 + sigma * noise
    v = noise - x0  # the velocity a perfect model predicts
    torch.testing.assert_close(flow_x0(x, v, sigma), x0)
    torch.testing.assert_close(flow_noise(x, v, sigma), noise)


def test_x0_stays_put_along_euler_steps_and_is_where_they_land():
    scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0)
    scheduler.set_timesteps(4)
    g = torch.Generator().manual_seed(1)
    x, v = torch.randn(1, 16, 2, 4, 4, generator=g), torch.randn(1, 16, 2, 4, 4, generator=g)
    x0 = flow_x0(x, v, flow_sigma(scheduler, scheduler.timesteps[0]))
    for t in scheduler.timesteps:  # a straight flow: every Euler step keeps the same x0 ...
        torch.testing.assert_close(flow_x0(x, v, flow_sigma(scheduler, t)), x0)
        x = scheduler.step(v, t, x, return_dict=False)[0]
    torch.testing.assert_close(x, x0)  # ... and the last, to sigma = 0, lands on it
    assert flow_sigma(scheduler, scheduler.timesteps[0]) == float(scheduler.sigmas[0])
    with pytest.raises(ValueError, match="timestep=123.0 is not in the scheduler's schedule"):
        flow_sigma(scheduler, 123.0)


def test_x0_of_the_last_step_is_the_wan_pipelines_result(tiny_wan_pipe):
    kept = []
    out, cache = run_with_cache(
        tiny_wan_pipe, prompt="a ball", height=32, width=32, num_frames=5, num_inference_steps=3, guidance_scale=1.0,
        max_sequence_length=16, output_type="latent", generator=torch.Generator().manual_seed(0), names=["output"],
        callback_on_step_end=lambda pipe, i, t, kw: kept.append(kw["latents"].clone()) or {})
    velocity = cache.get("output", step=2)  # (B, F, C, H, W): the model's prediction at the last step
    sigma = flow_sigma(tiny_wan_pipe.scheduler, tiny_wan_pipe.scheduler.timesteps[2])
    x0 = flow_x0(kept[1], velocity.transpose(1, 2), sigma)  # the latent before the last step
    torch.testing.assert_close(x0, out.frames, rtol=1e-5, atol=1e-6)
