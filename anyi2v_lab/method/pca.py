"""PCA of feature tokens, deterministic (docs/method.md §3: M = 64 components, refit every iteration).

The reference uses torch_pca, whose randomized solver draws from the global torch RNG, so the number
of iterations or objects changes later random draws. ``eigh`` is exact; ``lowrank`` is a randomized
subspace iteration driven by its own seeded generator. Both flip each component so that its largest
loading is positive, so repeated fits agree in sign.
"""
from __future__ import annotations

import torch


def _flip_signs(components: torch.Tensor) -> torch.Tensor:
    idx = components.abs().argmax(dim=1, keepdim=True)
    return components * components.gather(1, idx).sign()


@torch.no_grad()
def pca_fit(x: torch.Tensor, m: int, method: str = "eigh", seed: int = 0, oversample: int = 8,
            iters: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Fit PCA on ``x`` ``(n, C)``; returns ``mean (C,)`` and ``components (m', C)`` with
    ``m' = min(m, C, n)``, rows ordered by decreasing variance, computed in fp32."""
    x = x.float()
    n, c = x.shape
    m = min(m, c, n)
    mean = x.mean(0)
    xc = x - mean
    if method == "eigh":
        cov = xc.T @ xc / max(n - 1, 1)
        _, vecs = torch.linalg.eigh(cov)  # ascending
        comps = vecs[:, -m:].flip(1).T
    elif method == "lowrank":
        g = torch.Generator(device=x.device).manual_seed(seed)
        q = torch.randn(c, min(c, m + oversample), generator=g, device=x.device)
        for _ in range(iters + 1):
            q, _ = torch.linalg.qr(xc.T @ (xc @ q))
        _, _, vh = torch.linalg.svd(xc @ q, full_matrices=False)
        comps = (q @ vh.T)[:, :m].T
    else:
        raise ValueError(f"pca method {method!r}: use 'eigh' or 'lowrank'")
    return mean, _flip_signs(comps.contiguous())


def pca_project(x: torch.Tensor, mean: torch.Tensor, components: torch.Tensor) -> torch.Tensor:
    """``(n, C) -> (n, m)``; differentiable in ``x`` (the fit is a constant)."""
    return (x.float() - mean) @ components.T


def explained_variance(x: torch.Tensor, components: torch.Tensor) -> torch.Tensor:
    """Fraction of the total variance of ``x`` ``(n, C)`` along each component."""
    xc = x.float() - x.float().mean(0)
    total = xc.pow(2).sum()
    return (xc @ components.T).pow(2).sum(0) / total
