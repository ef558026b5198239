"""What to capture during a generation for the microscope: the aligned layers' queries and keys, and
the cross-attention probabilities of the blocks that hold them."""
from __future__ import annotations

from ..hooks import Capture, list_hook_points
from ..method.config import AnyI2VConfig


def microscope_names(unet, config: AnyI2VConfig) -> list[str]:
    """``<layer>.query`` and ``<layer>.key`` of ``config.opt_layers`` (what the trajectory loss aligns),
    and ``<cross>.probs`` of every cross-attention in the up blocks that hold those layers."""
    blocks = sorted({".".join(layer.split(".")[:2]) + "." for layer in config.opt_layers})
    cross = [n for n in list_hook_points(unet, kind="cross_attention", site="probs") if n.startswith(tuple(blocks))]
    return [f"{layer}.{site}" for layer in config.opt_layers for site in ("query", "key")] + cross


def microscope_capture(pipe, config: AnyI2VConfig, steps=None, dtype=None) -> Capture:
    """A :class:`~anyi2v_lab.hooks.Capture` of :func:`microscope_names` on the conditional branch, at
    ``steps`` (sampling step indices; ``None``: all), stored on the CPU (``dtype``: e.g. ``torch.float16``
    to halve the memory on a real model)."""
    return Capture(tuple(microscope_names(pipe.unet, config)), steps=steps, branch="cond", device="cpu", dtype=dtype)
