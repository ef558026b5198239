"""Semantic masks (docs/method.md §3): where, inside a box, a frame's features resemble the object's query points.

For each layer, the cosine similarity of every pixel of the current crop to each query token, maxed
over the query points (Eq. 5-6); the values of all layers pooled and split by a 1-D two-means into a
high- and a low-similarity group (Eq. 7). The reference's kmeans_pytorch draws unseeded initial
centres and can hang on an empty cluster; on a line two-means is solved exactly instead, by scoring
every split of the sorted values.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def two_means_thresholds(values: torch.Tensor) -> torch.Tensor:
    """The optimal two-means split of each row of ``values`` ``(N, M)``, exactly: sort once and score
    every split with prefix sums. Returns ``(N,)`` thresholds; ``row >= threshold`` is the high
    cluster. A constant row gives its value (all high). No iterations and no host sync."""
    v = values.detach().double()
    n = v.shape[1]
    if n < 2:
        return v.sum(1).to(values.dtype)
    s, _ = v.sort(dim=1)
    c1, c2 = s.cumsum(1)[:, :-1], s.pow(2).cumsum(1)[:, :-1]  # left sums for k = 1 .. n-1
    k = torch.arange(1, n, device=s.device, dtype=s.dtype)
    t1, t2 = s.sum(1, keepdim=True), s.pow(2).sum(1, keepdim=True)
    cost = (c2 - c1.pow(2) / k) + ((t2 - c2) - (t1 - c1).pow(2) / (n - k))
    best = cost.argmin(1, keepdim=True)
    pair = torch.cat([s.gather(1, best), s.gather(1, best + 1)], 1)  # gather, not s[best]: no host read
    return pair.mean(1).to(values.dtype)


def two_means_threshold(values: torch.Tensor) -> torch.Tensor:
    """The optimal 1-D two-means split of ``values`` (any shape); see :func:`two_means_thresholds`."""
    return two_means_thresholds(values.reshape(1, -1))[0]


def similarity_maps(queries: torch.Tensor, crop: torch.Tensor, layers: list[slice]) -> torch.Tensor:
    """Max cosine similarity to the query tokens, per layer.

    queries: ``(K, C)`` feature vectors; crop: ``(C, h, w)``, or ``(N, C, h, w)`` for N frames at
    once; layers: channel slices of each layer's block. Returns ``(L, h, w)`` (or ``(N, L, h, w)``).
    """
    crops = crop if crop.ndim == 4 else crop[None]
    maps = []
    for sl in layers:
        q = F.normalize(queries[:, sl].float(), dim=1)  # (K, c)
        s = F.normalize(crops[:, sl].float().flatten(2), dim=1)  # (N, c, h*w)
        maps.append((q @ s).amax(1).view(crops.shape[0], *crops.shape[2:]))
    out = torch.stack(maps, 1)
    return out if crop.ndim == 4 else out[0]


def semantic_mask(queries: torch.Tensor, crop: torch.Tensor, layers: list[slice]) -> torch.Tensor:
    """Binary ``(L, h, w)`` mask (float 0/1) of the high-similarity cluster, one shared threshold;
    for ``(N, C, h, w)`` crops, ``(N, L, h, w)`` with one threshold per frame."""
    sim = similarity_maps(queries, crop, layers)
    batched = sim if sim.ndim == 4 else sim[None]
    thr = two_means_thresholds(batched.flatten(1)).view(-1, 1, 1, 1)
    mask = (batched >= thr).float()
    return mask if sim.ndim == 4 else mask[0]
