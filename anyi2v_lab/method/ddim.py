"""DDIM's clean-latent estimate, shared by the inversion's steps and the kept x0 of every phase.

``alpha`` is the cumulative noise level ``scheduler.alphas_cumprod[t]`` of the latent ``x``; a noise
prediction ``eps`` implies the clean latent ``x0 = (x - sqrt(1 - alpha) eps) / sqrt(alpha)`` (DDIM,
Song et al. 2021, Eq. 12), the ``pred_original_sample`` of diffusers' DDIM step.
"""
from __future__ import annotations

import torch


def predicted_x0(x: torch.Tensor, eps: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """The clean latent ``(x - sqrt(1 - alpha) eps) / sqrt(alpha)`` that ``eps`` implies for ``x`` at ``alpha``."""
    return (x - (1 - alpha).sqrt() * eps) / alpha.sqrt()
