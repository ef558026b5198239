"""Semantic masks (spec 4): where, inside a box, a frame's features resemble the object's query points.

For each layer, the cosine similarity of every pixel of the current crop to each query token, maxed
over the query points (Eq. 5-6); the values of all layers pooled and split by a 1-D two-means into a
high- and a low-similarity group (Eq. 7). The reference's kmeans_pytorch draws unseeded initial
centres and can hang on an empty cluster; on a line two-means is solved exactly instead, by scoring
every split of the sorted values.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def two_means_threshold(values: torch.Tensor) -> torch.Tensor:
    """The optimal 1-D two-means split of ``values`` (any shape), exactly: sort once and score every
    split with prefix sums. Returns the threshold; ``values >= threshold`` is the high cluster.
    Constant input gives its value (all high). No iterations and no host sync."""
    v = values.detach().flatten().double()
    if v.numel() < 2:
        return v.sum().to(values.dtype)
    s, _ = v.sort()
    n = s.numel()
    c1, c2 = s.cumsum(0)[:-1], s.pow(2).cumsum(0)[:-1]  # left sums for k = 1 .. n-1
    k = torch.arange(1, n, device=s.device, dtype=s.dtype)
    t1, t2 = s.sum(), s.pow(2).sum()
    cost = (c2 - c1.pow(2) / k) + ((t2 - c2) - (t1 - c1).pow(2) / (n - k))
    best = cost.argmin()
    return ((s[best] + s[best + 1]) / 2).to(values.dtype)


def similarity_maps(queries: torch.Tensor, crop: torch.Tensor, layers: list[slice]) -> torch.Tensor:
    """Max cosine similarity to the query tokens, per layer.

    queries: ``(K, C)`` feature vectors; crop: ``(C, h, w)``; layers: channel slices of each layer's
    block. Returns ``(L, h, w)``.
    """
    maps = []
    for sl in layers:
        q = F.normalize(queries[:, sl].float(), dim=1)  # (K, c)
        s = F.normalize(crop[sl].float().flatten(1), dim=0)  # (c, h*w)
        maps.append((q @ s).amax(0).view(crop.shape[1:]))
    return torch.stack(maps)


def semantic_mask(queries: torch.Tensor, crop: torch.Tensor, layers: list[slice]) -> torch.Tensor:
    """Binary ``(L, h, w)`` mask (float 0/1) of the high-similarity cluster, one shared threshold."""
    sim = similarity_maps(queries, crop, layers)
    return (sim >= two_means_threshold(sim)).float()
