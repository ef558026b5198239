"""Aligned layers' features on the alignment grid (docs/method.md §3, steps 2-3).

Each aligned layer's features are PCA-reduced (:func:`layer_fit`, refitted every pass) to maps
``(F, M, h, w)``, upsampled bicubically to the grid ``(H, W)`` (image size / compress factor: 128 x 128 at
512 px) and concatenated along channels (:func:`aligned_features`). Bicubic resampling is separable,
``up = R @ x @ C.T`` with fixed ``(H, h)`` and ``(W, w)`` matrices (:func:`bicubic_resize`): equal to
``F.interpolate`` and with a far cheaper backward. ``anyi2v_lab.accel.fast_loss`` reads crops of the same
grid from slices of those matrices, without materialising it.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .alignment import Alignment
from .config import AnyI2VConfig
from .pca import pca_fit, pca_project

_RESAMPLE: dict = {}


def bicubic_matrix(n_in: int, n_out: int, device, dtype=torch.float32) -> torch.Tensor:
    """``(n_out, n_in)``: 1-D bicubic resampling as ``F.interpolate`` does it (A = -0.75,
    ``align_corners=False``, borders clamped), built by resampling the identity in float64."""
    key = (n_in, n_out, str(device), dtype)
    if key not in _RESAMPLE:
        eye = torch.eye(n_in, dtype=torch.float64).view(n_in, 1, n_in, 1)
        m = F.interpolate(eye, size=(n_out, 1), mode="bicubic", align_corners=False)[:, 0, :, 0].T
        _RESAMPLE[key] = m.to(device=device, dtype=dtype).contiguous()
    return _RESAMPLE[key]


def bicubic_resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``(..., h, w) -> (..., H, W)``, equal to ``F.interpolate(x, size, mode="bicubic")``: two small
    matrix products, whose backward is far cheaper than PyTorch's bicubic backward kernel."""
    rows = bicubic_matrix(x.shape[-2], size[0], x.device, x.dtype)
    cols = bicubic_matrix(x.shape[-1], size[1], x.device, x.dtype)
    return rows @ x @ cols.T


def clip_box(box, height: int, width: int) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = (int(v) for v in box)
    return max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)


def layer_maps(features: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """A captured tensor ``(1, F, N, C)`` (tokens) or ``(1, F, C, h, w)`` (maps) -> ``(F, C, h, w)``."""
    x = features[0]
    if x.ndim == 3:
        return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], *shape)
    return x


def layer_tokens(features: torch.Tensor, shape: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """A captured tensor (see :func:`layer_maps`) -> its ``(F, C, h, w)`` maps and ``(F*h*w, C)`` tokens."""
    fmap = layer_maps(features, shape)
    return fmap, fmap.permute(0, 2, 3, 1).reshape(-1, fmap.shape[1])


def layer_fit(features: torch.Tensor, shape: tuple[int, int], config: AnyI2VConfig, seed: int):
    """The PCA fit ``(mean, components)`` of one captured layer (docs/method.md §3)."""
    return pca_fit(layer_tokens(features, shape)[1].detach(), config.pca_dim, config.pca_method, seed=seed)


def layer_fits(captured: list[torch.Tensor], shapes: list[tuple[int, int]], config: AnyI2VConfig) -> list:
    """:func:`layer_fit` of every aligned layer, in order (layer ``i`` seeded with ``i``)."""
    return [layer_fit(x, shape, config, i) for i, (x, shape) in enumerate(zip(captured, shapes))]


def reduced_maps(captured: list[torch.Tensor], alignment: Alignment, config: AnyI2VConfig, keep_pca: bool = False,
                 fits: list | None = None) -> tuple[list[torch.Tensor], list[slice], list[torch.Tensor]]:
    """Each aligned layer PCA-reduced to ``(F, M_l, h_l, w_l)`` fp32 maps, its channels' slice in the
    concatenation, and (if asked) its first three components as ``(F, 3, h, w)`` previews. ``fits`` are
    :func:`layer_fit`'s results when computed elsewhere (overlapping the forward)."""
    fmaps, tokens = zip(*(layer_tokens(x, shape) for x, shape in zip(captured, alignment.shapes)))
    if config.pca_dim is None:
        fits = None
    elif fits is None:  # all fits first: eigh reads its status on the host, so wait once
        fits = layer_fits(captured, alignment.shapes, config)
    maps, slices, previews, start = [], [], [], 0
    for i, (fmap, tok) in enumerate(zip(fmaps, tokens)):
        nf, _, h, w = fmap.shape
        tok = pca_project(tok, *fits[i]) if fits is not None else tok.float()
        reduced = tok.reshape(nf, h, w, -1).permute(0, 3, 1, 2)
        if keep_pca:
            previews.append(reduced[:, :3].detach().clone())
        maps.append(reduced)
        slices.append(slice(start, start + reduced.shape[1]))
        start += reduced.shape[1]
    return maps, slices, previews


def aligned_features(captured: list[torch.Tensor], alignment: Alignment, config: AnyI2VConfig,
                     keep_pca: bool = False, fits: list | None = None
                     ) -> tuple[torch.Tensor, list[slice], list[torch.Tensor]]:
    """F̃ of Eq. 8: the :func:`reduced_maps` upsampled to the alignment grid and concatenated,
    ``(F, sum M_l, Hg, Wg)`` fp32, with each layer's channel slice and the PCA previews."""
    maps, slices, previews = reduced_maps(captured, alignment, config, keep_pca, fits)
    return torch.cat([bicubic_resize(m, alignment.grid) for m in maps], 1), slices, previews
