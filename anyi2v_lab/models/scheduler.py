"""The reference's DDIM configuration (docs/method.md §4).

AnimateDiff uses linear betas (not SD's scaled_linear). The reference pins diffusers 0.11.1, whose DDIM
behaves like modern ``timestep_spacing="leading"`` with ``set_alpha_to_one=True``, so 25 steps give the
timesteps 961, 921, ..., 41, 1. diffusers' AnimateDiff docs use "linspace", which is not what the
reference does.
"""
from __future__ import annotations

from diffusers import DDIMInverseScheduler, DDIMScheduler

DDIM_CONFIG = dict(
    num_train_timesteps=1000,
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="linear",
    steps_offset=1,
    clip_sample=False,
    timestep_spacing="leading",
    set_alpha_to_one=True,
)


def ddim_scheduler(**overrides) -> DDIMScheduler:
    return DDIMScheduler(**{**DDIM_CONFIG, **overrides})


def ddim_inverse_scheduler(scheduler: DDIMScheduler) -> DDIMInverseScheduler:
    """The inverse scheduler built from the sampling scheduler's config, as the reference does."""
    return DDIMInverseScheduler.from_config(scheduler.config)
