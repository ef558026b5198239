"""The inspection record of a generation: what notebooks and plots read."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass
class Iteration:
    """One latent-optimisation iteration (spec 3.4)."""

    step_index: int
    timestep: int
    iteration: int
    loss: float
    count: float
    skipped: bool  # no active mask cell, or a non-finite gradient: no update was made
    masks: list[list[torch.Tensor | None]] | None = None  # [object][frame] -> (L, h, w) loss weights
    pca: dict[str, torch.Tensor] | None = None  # layer -> (F, 3, h, w) first three components
    latent: torch.Tensor | None = None  # (1, 4, F, h, w) the latent after this iteration's update


@dataclass
class InspectionRecord:
    """Everything a generation did that is worth looking at.

    ``boxes`` are the per-frame boxes in model pixels ``(O, F, 4)``; ``grid_boxes`` the same on the
    alignment grid; ``iterations`` one entry per optimisation iteration; ``timings`` seconds per phase.
    """

    boxes: np.ndarray | None = None
    grid_boxes: np.ndarray | None = None
    grid_size: tuple[int, int] | None = None
    iterations: list[Iteration] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    timesteps: list[int] = field(default_factory=list)

    def losses(self) -> np.ndarray:
        """``(optimised steps, iterations)`` loss values (NaN where an iteration is missing)."""
        if not self.iterations:
            return np.zeros((0, 0))
        steps = sorted({it.step_index for it in self.iterations})
        iters = 1 + max(it.iteration for it in self.iterations)
        out = np.full((len(steps), iters), np.nan)
        for it in self.iterations:
            out[steps.index(it.step_index), it.iteration] = it.loss
        return out

    def finalise(self) -> None:
        """Turn the device tensors kept during the loops into numbers (one host sync at the end)."""
        for it in self.iterations:
            for key in ("loss", "count"):
                value = getattr(it, key)
                if torch.is_tensor(value):
                    setattr(it, key, float(value))
            if torch.is_tensor(it.skipped):
                it.skipped = bool(it.skipped)
