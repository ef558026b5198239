"""How many bytes a capture will take, computed from shapes before anything runs.

Attention probabilities are the trap: one self-attention layer of ``up_blocks.3`` at 512 px, 16 frames
and CFG holds ``32 * 8 * 4096**2`` values, 17 GB in fp32.
"""
from __future__ import annotations

import math
from typing import Iterable

import torch
import torch.nn as nn

from ..causal_frames import latent_frame_count
from .cache import Capture
from .points import HookPoint, hook_points, resolve
from .wan import is_wan

WAN_TEXT_TOKENS = 512


def capture_bytes(points: Iterable[HookPoint], capture: Capture, *, batch: int, num_frames: int,
                  latent_hw: tuple[int, int], default_dtype: torch.dtype = torch.float32,
                  text_len: int = 77) -> int:
    """Bytes one UNet call adds to the cache under ``capture``'s branch/frame/dtype restriction."""
    dtype = capture.dtype or default_dtype
    item = torch.empty((), dtype=dtype).element_size()
    keep_b = 1 if capture.branch is not None else batch
    keep_f = len(capture.frames) if capture.frames is not None else num_frames
    total = 0
    for p in points:
        shape = p.shape(batch, num_frames, latent_hw, text_len)
        per_frame = math.prod(shape) // (batch * num_frames)
        total += per_frame * keep_b * keep_f * item
    return total


def estimate_capture_bytes(unet: nn.Module, capture: Capture | Iterable[str], *, height: int = 512,
                           width: int = 512, num_frames: int = 16, batch: int = 2, calls: int = 1,
                           vae_scale: int = 8, dtype: torch.dtype = torch.float16) -> dict:
    """Estimate a capture's size for a generation of ``height x width`` pixels.

    ``batch`` is 2 under CFG, ``calls`` the number of UNet calls the capture matches (a Wan pipeline runs
    CFG's branches as two calls of batch 1: the same total). For a Wan transformer ``num_frames`` are video
    frames, ``1 + 4k`` of them making ``1 + k`` latent frames, and the text has 512 tokens. Returns
    ``{"total": bytes, "per_name": {name: bytes}}``. Works on the ``meta``-device SD1.5 and Wan 1.3B shapes.
    """
    if not isinstance(capture, Capture):
        capture = Capture(tuple(capture))
    registry = {p.name: p for p in hook_points(unet)}
    latent = (height // vae_scale, width // vae_scale)
    wan = is_wan(unet)
    frames = latent_frame_count(num_frames) if wan else num_frames
    per_name = {p.name: calls * capture_bytes([p], capture, batch=batch, num_frames=frames, latent_hw=latent,
                                              default_dtype=dtype, text_len=WAN_TEXT_TOKENS if wan else 77)
                for p in resolve(registry, capture.names)}
    return {"total": sum(per_name.values()), "per_name": per_name}
