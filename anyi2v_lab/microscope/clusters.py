"""Cluster masks with shared centroids: k-means fitted once per hook point (on the shared PCA
coordinates of every step and frame), so cluster j is the same feature group at every step."""
from __future__ import annotations

import numpy as np
import torch

from ..palette import cluster_colours


def kmeans(x: torch.Tensor, k: int, iters: int = 30, seed: int = 0) -> torch.Tensor:
    """Centroids ``(k, D)`` of ``x`` ``(n, D)``: k-means++ seeding from a seeded generator, Lloyd steps."""
    g = torch.Generator().manual_seed(seed)
    x = x.float()
    k = min(k, x.shape[0])
    centres = [x[torch.randint(x.shape[0], (1,), generator=g)].squeeze(0)]
    for _ in range(1, k):
        d = torch.cdist(x, torch.stack(centres)).min(1).values ** 2
        centres.append(x[torch.multinomial(d / d.sum().clamp(min=1e-12) if d.sum() > 0 else torch.ones_like(d), 1,
                                           generator=g)].squeeze(0))
    c = torch.stack(centres)
    for _ in range(iters):
        labels = assign(x, c)
        new = torch.stack([x[labels == j].mean(0) if (labels == j).any() else c[j] for j in range(k)])
        if torch.allclose(new, c):
            break
        c = new
    return order_by_size(x, c)


def assign(x: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """Index of the nearest centroid of each row."""
    return torch.cdist(x.float(), centroids).argmin(1)


def order_by_size(x: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """Centroids sorted by how many rows they hold, largest first (cluster 0 is the background
    in most scenes, and keeps the same colour from run to run)."""
    counts = torch.bincount(assign(x, centroids), minlength=centroids.shape[0])
    return centroids[torch.argsort(counts, descending=True, stable=True)]


def label_rgb(labels: np.ndarray) -> np.ndarray:
    """Integer labels ``(...)`` -> ``(..., 3)`` uint8 colours (``palette.CLUSTER_COLOURS``)."""
    return cluster_colours(labels)
