"""Evaluation metrics: ObjMC (DragAnything's), first-frame IoU, and a Frechet distance.

ObjMC follows ``showlab/DragAnything:utils/Eval_ObjMC/ObjMC.py``: the Euclidean distance between each
target trajectory point and the point tracked in the generated video, pooled over every frame, object
and video (not averaged per video first). We report it in pixels of the stated frame and as a
fraction of the frame width; frames where the tracker finds nothing are left out and counted.
"""
from __future__ import annotations

import numpy as np
import torch


def objmc(target: np.ndarray, tracked: np.ndarray) -> dict:
    """``target``/``tracked`` ``(..., 2)`` points (any leading shape, e.g. videos x objects x frames);
    NaN in ``tracked`` marks a missed frame. Returns the pooled mean, the number of points and misses."""
    t, a = np.asarray(target, np.float64), np.asarray(tracked, np.float64)
    d = np.linalg.norm(t - a, axis=-1)
    ok = np.isfinite(d)
    return {"objmc": float(d[ok].mean()) if ok.any() else float("nan"), "points": int(ok.sum()),
            "missed": int((~ok).sum())}


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boolean masks (1.0 when both are empty)."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    union = (a | b).sum()
    return 1.0 if union == 0 else float((a & b).sum() / union)


def colour_mask(frame: np.ndarray, rgb, tau: float = 60.0) -> np.ndarray:
    """Pixels of ``frame`` ``(H, W, 3)`` uint8 within ``tau`` (Euclidean, 0..255) of colour ``rgb``."""
    return np.linalg.norm(frame.astype(np.float32) - np.asarray(rgb, np.float32), axis=-1) < tau


def frechet_distance(feats_a: np.ndarray, feats_b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two feature sets ``(n, d)`` (as FID does).

    The trace term uses the symmetric form ``tr sqrt(S_a^1/2 S_b S_a^1/2)`` with eigendecompositions,
    which is exact for singular covariances too (histogram or few-sample features), where a general
    matrix square root of ``S_a S_b`` is ill-conditioned.
    """
    a, b = np.asarray(feats_a, np.float64), np.asarray(feats_b, np.float64)
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    w, v = np.linalg.eigh(cov_a)
    root_a = (v * np.sqrt(w.clip(min=0))) @ v.T
    mid = np.sqrt(np.linalg.eigvalsh(root_a @ cov_b @ root_a).clip(min=0)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * mid)


@torch.no_grad()
def vae_features(vae, frames: np.ndarray, batch: int = 64, grid: int = 2) -> np.ndarray:
    """Per-frame features from the VAE encoder's middle block, average-pooled to ``grid x grid``.

    frames ``(N, H, W, 3)`` uint8 -> ``(N, C * grid**2)``. With the toy model this is a small network
    trained on the toy world, which is what the quality proxy needs (no Inception weights here).
    """
    enc = vae.encoder
    out = []
    for i in range(0, len(frames), batch):
        x = torch.from_numpy(frames[i:i + batch]).to(vae.device, vae.dtype).permute(0, 3, 1, 2) / 127.5 - 1
        h = enc.conv_in(x)
        for block in enc.down_blocks:
            h = block(h)
        h = enc.mid_block(h)
        out.append(torch.nn.functional.adaptive_avg_pool2d(h.float(), grid).flatten(1).cpu())
    return torch.cat(out).numpy()
