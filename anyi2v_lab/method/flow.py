"""Flow matching's clean-latent estimate, the x0 a Wan transformer's prediction implies at any step.

Under rectified flow (Wan, diffusers' ``FlowMatchEulerDiscreteScheduler`` and the flow-prediction UniPC) a
latent at noise level ``sigma`` is ``x = (1 - sigma) x0 + sigma noise`` and the model predicts the velocity
``v = noise - x0``; so ``x0 = x - sigma v`` and ``noise = x + (1 - sigma) v``. An Euler step from ``sigma``
to 0 lands exactly on this x0. (The DDIM counterpart for the UNet is :mod:`.ddim`.)
"""
from __future__ import annotations

import torch


def flow_x0(x: torch.Tensor, velocity: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
    """The clean latent ``x - sigma * velocity`` that ``velocity`` implies for ``x`` at noise level ``sigma``."""
    return x - sigma * velocity


def flow_noise(x: torch.Tensor, velocity: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
    """The noise ``x + (1 - sigma) * velocity`` that ``velocity`` implies (the inverse flow's end point)."""
    return x + (1 - sigma) * velocity


def flow_sigma(scheduler, timestep: float | torch.Tensor) -> float:
    """The noise level of ``timestep`` in a flow-matching scheduler's current schedule (``set_timesteps``
    done): ``scheduler.sigmas`` at the timestep's index. An unknown timestep is an error naming the schedule."""
    t = float(timestep.flatten()[0]) if torch.is_tensor(timestep) else float(timestep)
    timesteps = getattr(scheduler, "timesteps", None)
    if timesteps is None or not hasattr(scheduler, "sigmas"):
        raise ValueError(f"{type(scheduler).__name__} has no flow-matching schedule: call set_timesteps() on a "
                         f"flow-matching scheduler (sigmas and timesteps) first")
    hits = (timesteps.float() == torch.tensor(t, dtype=torch.float32)).nonzero()
    if not len(hits):
        raise ValueError(f"timestep={t} is not in the scheduler's schedule {[round(x, 3) for x in timesteps.tolist()]}")
    return float(scheduler.sigmas[int(hits[0, 0])])
