"""Layouts of UNet tensors, and classifier-free-guidance branches.

diffusers' ``UNetMotionModel`` runs its spatial layers on frames flattened into the batch, batch-major:
row ``b * F + f`` holds frame ``f`` of batch element ``b``. Under CFG the batch is ``[uncond, cond]``, so
frame 0 of the conditional branch is row ``F``. These helpers name the conversions once, so that no
other module re-derives the index arithmetic.

Shapes used throughout:

* video latents: ``(B, C, F, H, W)`` (diffusers' pipeline layout)
* frame maps:    ``(B*F, C, H, W)`` (ResNet inputs and outputs, conv2 residuals)
* tokens:        ``(B*F, N, C)`` with ``N = H*W`` (self-attention inputs, queries, keys, values)
* per-frame:     ``(B, F, ...)`` (what caches store and what the method reasons in)
"""
from __future__ import annotations

import torch

CFG_BRANCHES = ("uncond", "cond")


def unflatten_frames(x: torch.Tensor, num_frames: int) -> torch.Tensor:
    """``(B*F, ...) -> (B, F, ...)`` (a view)."""
    if x.shape[0] % num_frames:
        raise ValueError(f"leading dim {x.shape[0]} is not a multiple of num_frames={num_frames}")
    return x.view(x.shape[0] // num_frames, num_frames, *x.shape[1:])


def flatten_frames(x: torch.Tensor) -> torch.Tensor:
    """``(B, F, ...) -> (B*F, ...)``."""
    return x.reshape(x.shape[0] * x.shape[1], *x.shape[2:])


def video_to_frames(video: torch.Tensor) -> torch.Tensor:
    """``(B, C, F, H, W) -> (B*F, C, H, W)``, the order the UNet's spatial layers see."""
    b, c, f, h, w = video.shape
    return video.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)


def frames_to_video(frames: torch.Tensor, num_frames: int) -> torch.Tensor:
    """``(B*F, C, H, W) -> (B, C, F, H, W)``."""
    return unflatten_frames(frames, num_frames).permute(0, 2, 1, 3, 4)


def tokens_to_maps(tokens: torch.Tensor, num_frames: int, height: int, width: int) -> torch.Tensor:
    """``(B*F, H*W, C) -> (B, F, C, H, W)``."""
    bf, n, c = tokens.shape
    if n != height * width:
        raise ValueError(f"{n} tokens do not form a {height}x{width} map")
    maps = tokens.transpose(1, 2).reshape(bf, c, height, width)
    return unflatten_frames(maps, num_frames)


def maps_to_tokens(maps: torch.Tensor) -> torch.Tensor:
    """``(B, F, C, H, W) -> (B*F, H*W, C)``."""
    b, f, c, h, w = maps.shape
    return maps.reshape(b * f, c, h * w).transpose(1, 2)


def infer_branches(batch: int) -> tuple[str, ...]:
    """Branch labels for a UNet batch: 1 -> ("cond",), 2 -> ("uncond", "cond") as diffusers' CFG
    concatenates them; anything else gets positional labels ``b0, b1, ...``."""
    if batch == 1:
        return ("cond",)
    if batch == 2:
        return CFG_BRANCHES
    return tuple(f"b{i}" for i in range(batch))


def branch_index(branches: tuple[str, ...], branch: str) -> int:
    """Position of a named branch in the batch, with an error that lists what exists."""
    try:
        return branches.index(branch)
    except ValueError:
        raise ValueError(f"branch {branch!r} is not in this batch; it holds {branches}") from None


def split_cfg(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Split a CFG batch ``[uncond, cond]`` along dim 0 into its two halves."""
    if x.shape[0] % 2:
        raise ValueError(f"a CFG batch has an even leading dim, got {x.shape[0]}")
    uncond, cond = x.chunk(2)
    return uncond, cond


def per_frame(embeddings: torch.Tensor, num_frames: int) -> torch.Tensor:
    """``(B, T, D) -> (B*F, T, D)``: ``UNetMotionModel`` wants one text-embedding row per frame."""
    return embeddings.repeat_interleave(num_frames, dim=0)
