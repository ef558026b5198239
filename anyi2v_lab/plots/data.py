"""From inspection records and activation caches to the arrays the plots draw.

Pure functions, tensors or records in, numpy out; the figures in the sibling modules only lay these
out, so tests check the numbers here and the figures' data against them.
"""
from __future__ import annotations

import math
from typing import Mapping

import numpy as np
import torch

from ..hooks import ActivationCache
from ..method.pca import explained_variance, pca_fit, pca_project
from ..method.record import InspectionRecord, mask_grid  # noqa: F401  (re-exported)


def _entry_tensor(cache: ActivationCache, name: str, branch: str | None, select: dict) -> torch.Tensor:
    """The stored ``(B, F, ...)`` tensor reduced to one branch: ``(F, ...)``."""
    tensor = cache.get(name, **select)
    entry = next(e for e in cache.entries(name) if e.tensor is tensor)
    if branch is None or (branch == "cond" and len(entry.branches) == 1):
        return tensor[-1]  # under CFG the conditional branch comes last
    if branch not in entry.branches:
        raise ValueError(f"{name!r} was stored for branches {entry.branches}, not {branch!r}; "
                         f"pass branch= one of them")
    return tensor[entry.branches.index(branch)]


def _grid_hw(n: int, hw: tuple[int, int] | None, what: str) -> tuple[int, int]:
    if hw is not None:
        if hw[0] * hw[1] != n:
            raise ValueError(f"{what}: hw={tuple(hw)} holds {hw[0] * hw[1]} cells, but there are {n} tokens")
        return tuple(hw)
    side = math.isqrt(n)
    if side * side != n:
        raise ValueError(f"{what}: {n} tokens are not a square map; pass hw=(h, w)")
    return side, side


def frame_maps(source, name: str | None = None, *, branch: str | None = "cond", hw=None,
               **select) -> torch.Tensor:
    """Features of every frame as ``(F, C, h, w)`` fp32 on the CPU.

    ``source`` is an :class:`~anyi2v_lab.hooks.ActivationCache` with the hook point ``name`` (tokens
    ``(B, F, N, C)`` or maps ``(B, F, C, h, w)``; ``select`` = ``timestep``/``step``/``phase``/``index``
    picks one call, ``branch`` one CFG branch), or a tensor ``(F, C, h, w)`` already. Tokens are laid
    out on ``hw`` (square by default).
    """
    if isinstance(source, ActivationCache):
        if name is None:
            raise ValueError(f"name the hook point to read; the cache holds {sorted(source)}")
        if name.endswith(".probs"):
            raise ValueError(f"{name!r} holds attention probabilities; read them with attention_of_pixel")
        x = _entry_tensor(source, name, branch, select).detach().float().cpu()
        if x.ndim == 3:  # tokens (F, N, C)
            h, w = _grid_hw(x.shape[1], hw, name)
            return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], h, w)
        return x
    x = torch.as_tensor(source).detach().float().cpu()
    if x.ndim != 4:
        raise ValueError(f"expected features (F, C, h, w), got shape {tuple(x.shape)}")
    return x


def tokens_of(maps: torch.Tensor) -> torch.Tensor:
    """``(F, C, h, w) -> (F*h*w, C)``, frame-major then row-major (the order of :func:`token_index`)."""
    return maps.permute(0, 2, 3, 1).reshape(-1, maps.shape[1])


def token_index(num_frames: int, h: int, w: int) -> np.ndarray:
    """``(F*h*w, 3)`` integer (frame, row, col) of each token of :func:`tokens_of`."""
    f, r, c = np.meshgrid(np.arange(num_frames), np.arange(h), np.arange(w), indexing="ij")
    return np.stack([f.ravel(), r.ravel(), c.ravel()], 1)


def normalise_rgb(projected: torch.Tensor, quantile: float = 0.01) -> np.ndarray:
    """``(F, 3, h, w)`` component maps -> ``(F, h, w, 3)`` in [0, 1], each component scaled by its
    ``quantile``/``1 - quantile`` values over all frames together (so one colour means the same
    feature direction in every frame)."""
    x = projected.detach().float().cpu()
    flat = x.transpose(0, 1).reshape(x.shape[1], -1)
    lo = torch.quantile(flat, quantile, dim=1).view(1, -1, 1, 1)
    hi = torch.quantile(flat, 1 - quantile, dim=1).view(1, -1, 1, 1)
    rgb = ((x - lo) / (hi - lo).clamp(min=1e-12)).clamp(0, 1)
    if rgb.shape[1] < 3:  # fewer than three components: pad with black
        rgb = torch.cat([rgb, rgb.new_zeros(rgb.shape[0], 3 - rgb.shape[1], *rgb.shape[2:])], 1)
    return rgb.permute(0, 2, 3, 1).numpy()


def pca_rgb(maps: torch.Tensor, quantile: float = 0.01) -> np.ndarray:
    """PCA-RGB: fit PCA on the tokens of all frames together, project each frame onto the first three
    components and show them as R, G, B. ``(F, C, h, w) -> (F, h, w, 3)`` in [0, 1]."""
    nf, c, h, w = maps.shape
    mean, comps = pca_fit(tokens_of(maps), 3)
    proj = pca_project(tokens_of(maps), mean, comps).reshape(nf, h, w, -1).permute(0, 3, 1, 2)
    return normalise_rgb(proj, quantile)


def variance_curve(maps: torch.Tensor) -> np.ndarray:
    """Fraction of the variance along each principal component of all frames' tokens, ``(C',)``,
    decreasing; it sums to 1 when ``C' = C`` (fewer tokens than channels cap it)."""
    tokens = tokens_of(maps)
    _, comps = pca_fit(tokens, tokens.shape[1])
    return explained_variance(tokens, comps).numpy()


def temporal_consistency(maps: torch.Tensor, m: int | None = None) -> np.ndarray:
    """How alike each frame's features are to frame 0's, position by position: ``(F,)``, 1 at frame 0.

    Tokens are centred on the mean of all frames (a shared offset would make any two frames look
    alike), optionally reduced to the first ``m`` principal components, and compared by cosine
    similarity at each ``(row, col)``; the mean over positions is returned.
    """
    nf, c, h, w = maps.shape
    tokens = tokens_of(maps)
    mean, comps = pca_fit(tokens, m or c)
    z = pca_project(tokens, mean, comps).reshape(nf, h * w, -1)
    cos = torch.nn.functional.cosine_similarity(z, z[:1].expand_as(z), dim=-1)
    return cos.mean(1).numpy()


def pixel_cell(pixel, hw: tuple[int, int], image_size=None) -> tuple[int, int]:
    """``(x, y)`` in pixels of ``image_size`` = (W, H) (or in cells when None) -> (row, col) of an
    ``hw`` grid."""
    x, y = float(pixel[0]), float(pixel[1])
    h, w = hw
    if image_size is not None:
        x, y = x * w / image_size[0], y * h / image_size[1]
    col, row = int(math.floor(x)), int(math.floor(y))
    if not (0 <= row < h and 0 <= col < w):
        raise ValueError(f"pixel={tuple(pixel)} falls outside the {w}x{h} grid"
                         + (f" of a {image_size[0]}x{image_size[1]} image" if image_size else
                            "; give image_size=(W, H) for pixel coordinates"))
    return row, col


def attention_of_pixel(source, name: str | None = None, *, pixel, image_size=None, head: int | None = None,
                       branch: str | None = "cond", hw=None, **select) -> tuple[np.ndarray, tuple[int, int]]:
    """Where one query position looks: ``(F, h, w)`` attention weights of the token at ``pixel`` over
    the keys of each frame's self-attention, averaged over heads (or one ``head``), and its (row, col).

    ``source`` is a cache holding ``<layer>.probs`` (``(B, F, heads, N, N)``) or a tensor
    ``(F, heads, N, N)``. ``pixel`` is ``(x, y)`` in pixels of ``image_size`` = (W, H), or in cells
    when ``image_size`` is None. Under K/V consistency frames 1.. attend to frame 0's keys, so their
    maps lie on frame 0's positions.
    """
    if isinstance(source, ActivationCache):
        probs = _entry_tensor(source, name, branch, select).detach().float().cpu()
    else:
        probs = torch.as_tensor(source).detach().float().cpu()
    if probs.ndim != 4 or probs.shape[-1] != probs.shape[-2]:
        raise ValueError(f"{name or 'probs'}: expected self-attention probabilities (F, heads, N, N), got "
                         f"{tuple(probs.shape)}; cross-attention keys are text tokens, not positions")
    h, w = _grid_hw(probs.shape[-1], hw, name or "probs")
    row, col = pixel_cell(pixel, (h, w), image_size)
    weights = probs[:, :, row * w + col]  # (F, heads, N)
    weights = weights.mean(1) if head is None else weights[:, head]
    return weights.reshape(-1, h, w).numpy(), (row, col)


def box_centres(boxes) -> np.ndarray:
    """``(..., 4)`` boxes (x0, y0, x1, y1) -> ``(..., 2)`` centres (x, y)."""
    b = np.asarray(boxes, dtype=np.float64)
    return (b[..., :2] + b[..., 2:]) / 2


def as_rows(source, names=None, **select) -> dict[str, torch.Tensor]:
    """Labelled ``(F, C, h, w)`` features from a cache (``names``, default all but probabilities), a
    mapping of label -> features, or one tensor."""
    if isinstance(source, ActivationCache):
        names = [n for n in source if not n.endswith(".probs")] if names is None else list(names)
        return {n: frame_maps(source, n, **select) for n in names}
    if isinstance(source, Mapping):
        return {str(k): frame_maps(v) for k, v in source.items()}
    return {"features": frame_maps(source)}
