"""Attention views: where the query at one cell looks (self-attention, over the keys of every frame),
and where the cells look at one prompt word (cross-attention, aggregated as DAAM does)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def attention_from_point(queries: torch.Tensor, keys: torch.Tensor, frame: int, cell: int, heads: int,
                         head: int | None = None, within_frame: bool = False) -> torch.Tensor:
    """``softmax(q k^T / sqrt(d))`` of the query at token ``cell`` of ``frame`` against the keys of all
    frames. ``queries``/``keys`` ``(F, N, C)`` with ``C = heads * d``; returns ``(F, N)`` probabilities
    summing to 1: of one ``head``, or the mean of the heads' probabilities. ``within_frame`` keeps only
    the query's own frame's keys (what a spatial attention layer itself computes)."""
    nf, n, c = keys.shape
    d = c // heads
    q = queries[frame, cell].float().view(heads, d)
    k = keys.float().reshape(nf * n, heads, d)
    if within_frame:
        k = k[frame * n:(frame + 1) * n]
    logits = torch.einsum("hd,mhd->hm", q, k) * d ** -0.5
    probs = logits.softmax(-1)
    probs = probs.mean(0) if head is None else probs[head]
    if not within_frame:
        return probs.view(nf, n)
    out = probs.new_zeros(nf, n)
    out[frame] = probs
    return out


def upsample_maps(maps: torch.Tensor, hw: tuple[int, int], size: tuple[int, int]) -> torch.Tensor:
    """``(..., h*w)`` token maps -> ``(..., H, W)`` bilinear (DAAM's per-layer upsampling)."""
    lead = maps.shape[:-1]
    x = maps.float().reshape(-1, 1, *hw)
    if tuple(hw) != tuple(size):
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    return x.reshape(*lead, *size)


def word_maps(probs: torch.Tensor, hw: tuple[int, int], size: tuple[int, int], tokens: list[int],
              head: int | None = None) -> torch.Tensor:
    """One layer's cross-attention ``(F, heads, N, T)`` -> ``(F, len(tokens), H, W)``: each token's column,
    of one ``head`` or averaged over heads, upsampled to ``size``."""
    # one head: pick it before gathering the token columns (a copy of one head's, not every head's)
    x = probs[..., tokens].float().mean(1) if head is None else probs[:, head][..., tokens].float()
    return upsample_maps(x.transpose(1, 2), hw, size)
