"""Aligned layers' features on the alignment grid, read through bicubic upsampling (spec 3.2).

Each aligned layer's PCA-reduced maps ``(F, M, h, w)`` are upsampled bicubically to the grid
``(H, W)`` (image size / compress factor: 128 x 128 at 512 px) and the loss only ever reads box
crops of them. Bicubic resampling is separable, ``up = R @ x @ C.T`` with fixed ``(H, h)`` and
``(W, w)`` matrices, so a crop is ``R[y0:y1] @ x @ C[x0:x1].T``: :class:`GridFeatures` computes crops
that way and never materialises the grid. Why: at full size the grid is 134 MB of fp32 per pass, and
the backward of every crop of it filled and summed a grid-sized gradient (100 fills and 42 adds, 5 of
the 7.5 ms of kernels of the loss's forward and backward on an H100).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

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
    matrix products. Why: PyTorch's bicubic backward kernel took 5.8 ms a call at batch 16 on an
    H100, the products' backward takes microseconds."""
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
        if key not in _INDEX:  # made once, outside any CUDA graph capture (a host copy cannot be captured)
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
