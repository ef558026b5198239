"""The inspection record of a generation: what notebooks and plots read."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from .ddim import predicted_x0
from .grid import clip_box


@dataclass(kw_only=True)
class Iteration:
    """One latent-optimisation iteration (docs/method.md §3)."""

    step_index: int
    timestep: int
    iteration: int
    loss: float
    count: float
    skipped: bool  # no active mask cell, or a non-finite gradient: no update was made
    masks: list[list[torch.Tensor | None]] | None = None  # [object][frame] -> (L, h, w) loss weights
    pca: dict[str, torch.Tensor] | None = None  # layer -> (F, 3, h, w) first three components
    latent: torch.Tensor | None = None  # (1, 4, F, h, w) the latent after this iteration's update


@dataclass(kw_only=True)
class X0:
    """The predicted clean video ``x0`` at one step of one phase, decoded: ``frames`` ``(F, H, W, 3)`` uint8.

    ``phase`` "inversion": the condition frame's estimate (:func:`~anyi2v_lab.method.ddim.predicted_x0`) at
    each inversion step (``F = 1``); "optimisation": the latent *before* the optimisation of denoising
    step ``step_index`` read with that step's noise prediction (the sampling entry of the same step is
    the latent *after* it, so the pair shows what the optimisation moved); "sampling": the scheduler's
    ``pred_original_sample`` of denoising step ``step_index``.
    """

    phase: str
    step_index: int
    timestep: int
    frames: np.ndarray


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
    x0: list[X0] = field(default_factory=list)

    def x0_video(self, phase: str = "sampling") -> np.ndarray:
        """``(steps, F, H, W, 3)`` uint8: the kept x0 of one phase in step order (``generate(..., keep_x0=True)``)."""
        kept = [x.frames for x in self.x0 if x.phase == phase]
        if not kept:
            phases = sorted({x.phase for x in self.x0})
            raise ValueError(f"the record kept no x0 for phase={phase!r}"
                             + (f"; it has {phases}" if phases else ": generate(..., keep_x0=True)"))
        return np.stack(kept)

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


def mask_grid(record: InspectionRecord, iteration: int = -1, obj: int = 0) -> np.ndarray:
    """One iteration's loss weights of object ``obj`` placed on the alignment grid: ``(F, L, Hg, Wg)``.

    Frame 0 holds the object's frame-0 semantic mask, frame j >= 1 the weight of its loss term
    (frame-0 mask moved with the box times frame j's mask); zero outside the box and for frames whose
    box left the grid. Needs ``generate(..., keep_masks=True)`` with a trajectory.
    """
    its = record.iterations
    if not its:
        raise ValueError("the record has no optimisation iterations: generate with a trajectory and optimisation=true")
    it = its[iteration]
    if it.masks is None:
        raise ValueError("the record kept no masks: generate(..., keep_masks=True)")
    if not 0 <= obj < len(it.masks):
        raise ValueError(f"obj={obj}, but the record has {len(it.masks)} object(s)")
    gh, gw = record.grid_size
    per_frame = it.masks[obj]
    layers = next(m.shape[0] for m in per_frame if m is not None)
    out = np.zeros((len(per_frame), layers, gh, gw), np.float32)
    for j, m in enumerate(per_frame):
        if m is None:
            continue
        cx0, cy0, cx1, cy1 = clip_box(record.grid_boxes[obj, j], gh, gw)
        out[j, :, cy0:cy1, cx0:cx1] = m.float().cpu().numpy()[:, : cy1 - cy0, : cx1 - cx0]
    return out


def x0_recorder(record: InspectionRecord, decode: Callable[[torch.Tensor], np.ndarray],
                alphas_cumprod: torch.Tensor) -> Callable[[dict], None]:
    """The step callback that appends each step's decoded x0 to ``record.x0`` (k-diffusion's
    ``callback(dict)``). A state holds ``phase``, ``step_index``, ``timestep``, ``denoised`` (the latent
    x0), and for an optimised sampling step ``eps`` and ``latent_before`` (the latent before the
    optimisation); ``decode(latent) -> (F, H, W, 3)`` uint8."""
    def append(state: dict) -> None:
        i, t = state["step_index"], int(state["timestep"])
        if state.get("latent_before") is not None:
            before = predicted_x0(state["latent_before"], state["eps"], alphas_cumprod[t].to(state["eps"].device))
            record.x0.append(X0(phase="optimisation", step_index=i, timestep=t, frames=decode(before)))
        record.x0.append(X0(phase=state["phase"], step_index=i, timestep=t, frames=decode(state["denoised"])))
    return append
