"""Loss scaling of the optimisation backward, the reference's ``GradScaler`` (``config.loss_scale``).

The reference scales every optimisation loss by 65536 before its backward. In fp16 this matters: at full
size (SD1.5 + AnimateDiff, 512 px, 16 frames) nearly all of the latent's gradient elements lie below
fp16's normal range, and an unscaled fp16 backward zeroes or coarsens many of them: 2.9 % of the sign
step's directions differ from an fp32 backward, 0.15 % with the loss scaled by 65536
(``benchmarks/fp16_underflow.py``). :func:`scaled_forward` wraps the forward of a step's
:class:`~anyi2v_lab.method.optimize.Passes`: the gradient that enters the UNet's backward from the
captured layers is multiplied by ``scale`` and the one that leaves it into the fp32 latent divided by it,
so the loop sees the unscaled gradient and the loss keeps its value. A power of two scales exactly: where
nothing under- or overflows (an fp32 model), the latents are bit for bit the unscaled ones. An overflow
makes the gradient non-finite and the loop skips that iteration, as a ``GradScaler`` does.
"""
from __future__ import annotations

from typing import Callable

import torch


class _ScaleGrad(torch.autograd.Function):
    """Identity forward; the backward multiplies the incoming gradient by ``scale``."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad * ctx.scale, None


def scale_grad(x: torch.Tensor, scale: float) -> torch.Tensor:
    """``x`` unchanged, with its gradient multiplied by ``scale`` on the way back."""
    return _ScaleGrad.apply(x, scale)


def scaled_forward(forward: Callable[[torch.Tensor], list[torch.Tensor]], scale: float) -> Callable:
    """``forward(leaf)`` whose backward runs on ``scale`` times the loss's gradient, unscaled at the latent."""
    def scaled(leaf: torch.Tensor) -> list[torch.Tensor]:
        captured = forward(scale_grad(leaf, 1.0 / scale))
        return [scale_grad(x, scale) for x in captured]
    return scaled
