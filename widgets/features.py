"""Pure functions behind the feature views (:class:`FeatureViewer` and :class:`Microscope`): feature
maps, PCA-RGB images, the token under a point, attention maps, and their colouring in the one palette
(:mod:`anyi2v_lab.palette`). Their browser twins live in ``js/features.js``.

Shapes per frame: feature maps ``(F, C, h, w)``; attention probabilities ``(F, heads, N, N)`` with
``N = h * w`` (self-attention over the spatial tokens of one frame).
"""
from __future__ import annotations

import math
import re

import numpy as np
import torch

from anyi2v_lab.palette import HEAT_CMAP, heat_colours, heat_lut
from anyi2v_lab.plots.data import normalise_rgb
from anyi2v_lab.plots.data import pca_rgb as plots_pca_rgb


def token_grid(n: int, aspect: float = 1.0) -> tuple[int, int]:
    """The ``(h, w)`` of ``n`` spatial tokens of an image whose width / height is ``aspect``
    (UNet maps keep the image's aspect ratio)."""
    h = max(1, round(math.sqrt(n / aspect)))
    for dh in sorted(range(-2, 3), key=abs):
        if h + dh > 0 and n % (h + dh) == 0:
            return h + dh, n // (h + dh)
    raise ValueError(f"{n} tokens do not form a grid of aspect {aspect:.3f}; pass the feature map as (F, C, h, w)")


def feature_maps(x: torch.Tensor, aspect: float = 1.0) -> torch.Tensor:
    """Per-frame features as maps: tokens ``(F, N, C)`` -> ``(F, C, h, w)``; maps pass through."""
    if x.ndim == 4:
        return x
    if x.ndim != 3:
        raise ValueError(f"features have shape {tuple(x.shape)}; give tokens (F, N, C) or maps (F, C, h, w)")
    h, w = token_grid(x.shape[1], aspect)
    return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], h, w)


def components_to_rgb(pcs: torch.Tensor, quantile: float = 0.01) -> np.ndarray:
    """Three components ``(F, 3, h, w)`` -> ``(F, h, w, 3)`` uint8, each channel stretched between its
    ``quantile`` and ``1 - quantile`` over all frames (:func:`anyi2v_lab.plots.normalise_rgb`), so
    colours mean the same thing in every frame."""
    x = pcs.detach()
    if x.ndim != 4 or x.shape[1] < 1:
        raise ValueError(f"components have shape {tuple(x.shape)}; give (F, 3, h, w)")
    return unit_to_uint8(normalise_rgb(x[:, :3], quantile))


def pca_rgb(maps: torch.Tensor) -> np.ndarray:
    """Feature maps ``(F, C, h, w)`` -> PCA-RGB images ``(F, h, w, 3)`` uint8 (first three components,
    fitted over all frames: :func:`anyi2v_lab.plots.pca_rgb`)."""
    return unit_to_uint8(plots_pca_rgb(maps.detach().float()))


def unit_to_uint8(values: np.ndarray) -> np.ndarray:
    """Values in [0, 1] -> uint8 in [0, 255]."""
    return (values * 255).round().astype(np.uint8)


def to_uint8(maps: np.ndarray, axis=None) -> np.ndarray:
    """Non-negative maps scaled so that each maximum over ``axis`` (default: all) is 255; zero maps stay 0
    (the browser colours such bytes through :func:`heat_lut_bytes`)."""
    m = np.nan_to_num(np.asarray(maps, dtype=np.float64)).clip(min=0)
    top = m.max(axis=axis, keepdims=axis is not None) if m.size else 1.0
    return (m / np.where(top > 0, top, 1.0) * 255).round().astype(np.uint8)


def query_index(point, image_size, grid) -> int:
    """The token (row-major in ``grid`` = (h, w)) under ``point`` (x, y) of an ``image_size`` (W, H) image;
    a point outside the image takes the nearest token (twin: ``js/features.js`` ``cellOf``)."""
    (W, H), (h, w) = image_size, grid
    col = min(max(int(point[0] * w / W), 0), w - 1)
    row = min(max(int(point[1] * h / H), 0), h - 1)
    return row * w + col


def attention_map(probs: torch.Tensor, query: int, grid) -> np.ndarray:
    """One frame's self-attention ``(heads, N, N)`` -> where token ``query`` looks, averaged over heads,
    as an ``(h, w)`` float64 map summing to 1."""
    if probs.ndim != 3 or probs.shape[1] != probs.shape[2]:
        raise ValueError(f"probs have shape {tuple(probs.shape)}; give one frame's self-attention (heads, N, N)")
    h, w = grid
    if h * w != probs.shape[-1]:
        raise ValueError(f"grid {grid} has {h * w} cells but the attention has {probs.shape[-1]} tokens")
    return probs[:, query].double().mean(0).reshape(h, w).cpu().numpy()


def heat_rgba(values: np.ndarray, cmap: str = HEAT_CMAP, alpha: float = 0.7, top: float | None = None) -> np.ndarray:
    """A map ``(h, w)`` -> RGBA ``(h, w, 4)`` uint8, scaled so that ``top`` (default: the map's maximum) is
    the top colour; opacity grows with the value up to ``alpha``, zero is transparent, so the frame stays
    visible where little goes (as the static figures draw maps on frames)."""
    v = np.asarray(values, dtype=np.float64)
    top = (v.max() if v.size else 0.0) if top is None else top
    unit = np.clip(v / (top if top > 0 else 1.0), 0.0, 1.0)
    opacity = np.round(255 * alpha * unit).astype(np.uint8)[..., None]
    return np.concatenate([heat_colours(unit, cmap), opacity], axis=-1)


def heat_lut_bytes(cmap: str = HEAT_CMAP) -> bytes:
    """The heat colour table as the browser views receive it: 256 RGB colours, 768 bytes."""
    return heat_lut(cmap).tobytes()


_BLOCK = re.compile(r"(down_blocks\.\d+|up_blocks\.\d+|mid_block)\.attentions\.(\d+)")
_KINDS = {"attn1.probs": "self-attention", "attn1.query": "queries", "attn1.key": "keys", "attn1.value": "values",
          "attn2.probs": "cross-attention", "attn1": "self-attention output"}


def plain_layer(name: str, grid=None) -> str:
    """A hook point's name as a toolbar says it: ``up_blocks.1.attentions.0.transformer_blocks.0.attn1.probs``
    with grid (16, 16) -> ``up_blocks.1 attention 0, 16x16: self-attention``; the method's aligned layers
    (``aligned up_blocks.1.attentions.0.query, PCA (step 5, iteration 4)``) keep what and when."""
    m = _BLOCK.search(name)
    if m is None:
        return name + (f", {grid[0]}x{grid[1]}" if grid else "")
    where = f"{m.group(1)} attention {m.group(2)}" + (f", {grid[0]}x{grid[1]}" if grid else "")
    if name.startswith("aligned "):
        when = re.search(r"\(([^)]*)\)\s*$", name)
        return f"{where}: aligned queries" + (f" ({when.group(1)})" if when else "")
    tail = name[m.end():].split(".transformer_blocks.0.")[-1].lstrip(".")
    return f"{where}: {_KINDS.get(tail, tail)}" if tail else where
