"""PCA-RGB with one basis per hook point: fitted once on the tokens of every step and frame, so a
colour means the same feature direction at every step and in every frame."""
from __future__ import annotations

import numpy as np
import torch

from ..method.pca import pca_fit, pca_project


class SharedPCA:
    """A PCA basis and an RGB normalisation fitted on ``tokens`` ``(n, C)`` (subsampled to
    ``max_tokens`` with a seeded generator). ``components`` keeps ``dims`` directions: the first three
    are the colours, all of them feed the clustering."""

    def __init__(self, tokens: torch.Tensor, dims: int = 16, max_tokens: int = 20000, quantile: float = 0.01,
                 seed: int = 0):
        sample = subsample(tokens.float(), max_tokens, seed)
        self.mean, self.components = pca_fit(sample, dims)
        self.sample = pca_project(sample, self.mean, self.components)  # kept for the clustering fit
        rgb = self.sample[:, :3]
        self.lo = torch.quantile(rgb, quantile, dim=0)
        self.hi = torch.quantile(rgb, 1 - quantile, dim=0)

    def project(self, tokens: torch.Tensor) -> torch.Tensor:
        """``(n, C) -> (n, dims)`` coordinates in the shared basis."""
        return pca_project(tokens, self.mean, self.components)

    def rgb(self, tokens: torch.Tensor) -> np.ndarray:
        """``(n, C) -> (n, 3)`` uint8: the first three coordinates scaled by the fit's quantiles."""
        proj = self.project(tokens)[:, :3]
        if proj.shape[1] < 3:
            proj = torch.cat([proj, proj.new_zeros(proj.shape[0], 3 - proj.shape[1])], 1)
        lo = torch.cat([self.lo, self.lo.new_zeros(3 - self.lo.numel())])
        hi = torch.cat([self.hi, self.hi.new_ones(3 - self.hi.numel())])
        x = ((proj - lo) / (hi - lo).clamp(min=1e-12)).clamp(0, 1)
        return (x * 255).round().to(torch.uint8).numpy()


def subsample(tokens: torch.Tensor, max_tokens: int, seed: int = 0) -> torch.Tensor:
    """At most ``max_tokens`` rows, drawn without replacement by a seeded generator."""
    if tokens.shape[0] <= max_tokens:
        return tokens
    g = torch.Generator().manual_seed(seed)
    return tokens[torch.randperm(tokens.shape[0], generator=g)[:max_tokens]]
