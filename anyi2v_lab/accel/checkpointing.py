"""Gradient checkpointing of the UNet's blocks in the optimisation passes (``Runtime.low_memory``)."""
from __future__ import annotations

from contextlib import contextmanager
from functools import partial

import torch
import torch.nn as nn
from torch.utils.checkpoint import checkpoint

from .regions import compile_units


def _checkpointed_forward(forward, *args, **kwargs):
    if not torch.is_grad_enabled():
        return forward(*args, **kwargs)
    # no RNG runs in a UNet block at inference (dropout is 0): saving and restoring the CUDA RNG
    # state around every block would only add work
    return checkpoint(forward, *args, use_reentrant=False, preserve_rng_state=False, **kwargs)


@contextmanager
def checkpointed_blocks(unet: nn.Module):
    """Every ResNet, transformer, motion module and sampler recomputes its activations in the
    backward instead of keeping them. Hook edits run again during the recomputation (the session
    applies edits but neither captures nor stops inside a backward), so gradients are unchanged.
    Non-reentrant checkpointing stops recomputing once the saved tensors are rebuilt, so a block
    that an early stop cut short is not recomputed past that point."""
    patched = []
    try:
        for _, module in compile_units(unet):
            if "forward" in module.__dict__:
                raise RuntimeError(f"{type(module).__name__} already has an instance forward; is "
                                   f"checkpointed_blocks nested or combined with bypass_motion?")
            module.forward = partial(_checkpointed_forward, module.forward)
            patched.append(module)
        yield unet
    finally:
        for module in patched:
            del module.forward
