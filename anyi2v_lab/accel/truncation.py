"""Where an optimisation pass's forward stops: after the last aligned layer, after a named block, or not at all.

The loss reads only the aligned layers, so everything the forward computes after the last of them is
thrown away: its outputs get no gradient and change nothing. The reference stops after a whole up
block (``up_blocks[2]`` for the paper's layers, upsampler included); we stop after the last aligned
query. :func:`stopped_after_block` is the reference's rule, attached from outside the method: a forward
hook on the block that ends the forward with the hook session's ``StopForward``, which
``HookSession.forward`` swallows as it does its own early stop.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch.nn as nn

from ..hooks.session import StopForward

REFERENCE_STOP = "up_blocks.2"  # the reference's ``last_recorded_layer`` for attention layers [0, 1, 3, 4]


def check_block(unet: nn.Module, path: str) -> nn.Module:
    """The block ``path`` of ``unet``; a ``ValueError`` naming the setting when there is none."""
    try:
        return unet.get_submodule(path)
    except AttributeError:
        blocks = [f"up_blocks.{i}" for i in range(len(getattr(unet, "up_blocks", ())))]
        raise ValueError(f"Runtime.truncate={path!r} is no module of this UNet; use True (after the last aligned "
                         f"layer), False (the whole UNet) or a block path such as {blocks}") from None


@contextmanager
def stopped_after_block(unet: nn.Module, path: str):
    """Within the block, a UNet forward ends once the module ``path`` has returned."""
    def stop(module, args, output):
        raise StopForward(path)

    handle = check_block(unet, path).register_forward_hook(stop)
    try:
        yield
    finally:
        handle.remove()


def stops_at_last_layer(truncate) -> bool:
    """Whether ``Runtime.truncate`` asks the hook session to stop after the last aligned layer."""
    return truncate is True
