"""Aligned layers' features on the alignment grid, read through bicubic upsampling (docs/method.md §3).

Each aligned layer's PCA-reduced maps ``(F, M, h, w)`` are upsampled bicubically to the grid
``(H, W)`` (image size / compress factor: 128 x 128 at 512 px) and the loss only ever reads box
crops of them. Bicubic resampling is separable, ``up = R @ x @ C.T`` with fixed ``(H, h)`` and
``(W, w)`` matrices, so a crop is ``R[y0:y1] @ x @ C[x0:x1].T``: :class:`GridFeatures` computes crops
that way and never materialises the grid, whose full-size copy (and the grid-sized gradient of every
crop) would cost more memory and time than the crops themselves.

:func:`aligned_features` makes them from the captured layers: PCA per layer (docs/method.md §3), then the grid.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .alignment import Alignment
from .config import AnyI2VConfig
from .pca import pca_fit, pca_project

_RESAMPLE: dict = {}
_INDEX: dict = {}


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


class GridFeatures:
    """Layers' maps ``[(F, M_l, h_l, w_l)]`` seen as one ``(F, sum M_l, H, W)`` grid tensor.

    ``crop(frames, boxes)`` equals ``torch.stack([bicubic_resize(cat(maps))[j][:, y0:y1, x0:x1] ...])``
    up to fp32 rounding; ``full()`` materialises the grid (for terms that read all of it).
    """

    def __init__(self, maps: list[torch.Tensor], size: tuple[int, int]):
        self.maps, self.size = maps, tuple(size)
        self.rows = [bicubic_matrix(m.shape[-2], self.size[0], m.device, m.dtype) for m in maps]
        self.cols = [bicubic_matrix(m.shape[-1], self.size[1], m.device, m.dtype) for m in maps]

    @property
    def device(self) -> torch.device:
        return self.maps[0].device

    @property
    def shape(self) -> torch.Size:
        return torch.Size((self.maps[0].shape[0], sum(m.shape[1] for m in self.maps), *self.size))

    def crop(self, frames: list[int], boxes: list) -> torch.Tensor:
        """``(N, C, h, w)``: frame ``frames[i]`` inside ``boxes[i]`` (clipped to the grid); every
        clipped box must have the same size."""
        H, W = self.size
        clipped = [clip_box(b, H, W) for b in boxes]
        key = (tuple(frames), str(self.device))
        if key not in _INDEX:  # one upload per frame list: a host-to-device copy at every crop would wait for the device
            _INDEX[key] = torch.tensor(frames, device=self.device)
        index = _INDEX[key]
        out = []
        for x, rows, cols in zip(self.maps, self.rows, self.cols):
            r = torch.stack([rows[y0:y1] for _, y0, _, y1 in clipped])[:, None]  # (N, 1, h, h_l)
            c = torch.stack([cols[x0:x1] for x0, _, x1, _ in clipped])[:, None]  # (N, 1, w, w_l)
            out.append(r @ x.index_select(0, index) @ c.transpose(-1, -2))
        return torch.cat(out, 1)

    def full(self) -> torch.Tensor:
        return torch.cat([bicubic_resize(x, self.size) for x in self.maps], 1)


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


def aligned_features(captured: list[torch.Tensor], alignment: Alignment, config: AnyI2VConfig,
                     keep_pca: bool = False, fits: list | None = None
                     ) -> tuple[GridFeatures, list[slice], list[torch.Tensor]]:
    """PCA-reduce each aligned layer and read them together on the alignment grid.

    Returns the ``(F, sum M_l, Hg, Wg)`` fp32 grid features (upsampled lazily, crop by crop), each
    layer's channel slice, and (if asked) each layer's first three components as ``(F, 3, h, w)``
    maps. ``fits`` are :func:`layer_fit`'s results when computed elsewhere (overlapping the forward).
    """
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
    return GridFeatures(maps, alignment.grid), slices, previews
