"""Switching the motion (temporal) modules off, for an exact spatial-only forward.

Each motion module gets an instance-level identity ``forward`` that is deleted again on exit, so the
class is never touched. Running with ``num_frames=1`` is not equivalent: single-frame temporal
attention still adds a residual.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch.nn as nn


def motion_modules(unet: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(n, m) for n, m in unet.named_modules() if n.split(".")[-2:-1] == ["motion_modules"]]


def _identity(hidden_states, *args, **kwargs):
    return hidden_states


@contextmanager
def bypass_motion(unet: nn.Module):
    """Within the block, every motion module returns its input unchanged (frames are independent)."""
    modules = motion_modules(unet)
    patched = []
    try:
        for _, module in modules:
            if "forward" in module.__dict__:
                raise RuntimeError("a motion module already has an instance forward; is bypass_motion nested?")
            module.forward = _identity
            patched.append(module)
        yield unet
    finally:
        for module in patched:
            del module.forward
