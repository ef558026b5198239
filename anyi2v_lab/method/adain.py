"""Patch-wise AdaIN of injected residuals (docs/method.md §2; the paper's Eq. 1-2, "debias")."""
from __future__ import annotations

import torch


def _tile(x: torch.Tensor, p: int) -> torch.Tensor:
    """``(C, H, W) -> (C, H/p, W/p, p*p)``: non-overlapping p x p windows."""
    c, h, w = x.shape
    return x.reshape(c, h // p, p, w // p, p).permute(0, 1, 3, 2, 4).reshape(c, h // p, w // p, p * p)


def _untile(x: torch.Tensor, p: int) -> torch.Tensor:
    c, hp, wp, _ = x.shape
    return x.reshape(c, hp, wp, p, p).permute(0, 1, 3, 2, 4).reshape(c, hp * p, wp * p)


def patch_adain(target: torch.Tensor, source: torch.Tensor, patch: int | None = 4,
                eps: float = 1e-6) -> torch.Tensor:
    """Give ``target`` the per-window statistics of ``source``.

    target: ``(C, H, W)`` the injected (inverted) residual; source: ``(C, H, W)`` the backbone's current
    residual. For every channel and ``patch x patch`` window:
    ``out = std_s * (target - mean_t) / (std_t + eps) + mean_s``, with the unbiased std as the
    reference. ``patch=None`` uses the whole map (global AdaIN). Computed in fp32 and returned in
    ``source``'s dtype. A constant window of ``target`` (a flat region of a canny or segmentation map)
    has ``std_t = 0``; it then takes the source's mean, finite for any eps > 0.
    """
    if target.shape != source.shape or target.ndim != 3:
        raise ValueError(f"patch_adain wants two (C, H, W) maps of one shape, got {tuple(target.shape)} "
                         f"and {tuple(source.shape)}")
    c, h, w = source.shape
    p = patch
    if p is None:
        t, s = target.float().reshape(c, 1, 1, h * w), source.float().reshape(c, 1, 1, h * w)
    else:
        if h % p or w % p:
            raise ValueError(f"a {h}x{w} map cannot be tiled by {p}x{p} patches; choose adain_patch dividing both")
        t, s = _tile(target.float(), p), _tile(source.float(), p)
    mean_t, std_t = t.mean(-1, keepdim=True), t.std(-1, keepdim=True)
    mean_s, std_s = s.mean(-1, keepdim=True), s.std(-1, keepdim=True)
    out = std_s * (t - mean_t) / (std_t + eps) + mean_s
    out = out.reshape(c, h, w) if p is None else _untile(out, p)
    return out.to(source.dtype)


def adain(target: torch.Tensor, source: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Global AdaIN over each channel's whole map: ``patch_adain(target, source, None, eps)``."""
    return patch_adain(target, source, None, eps)
