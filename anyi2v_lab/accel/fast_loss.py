"""The alignment loss's fast twin: :func:`~anyi2v_lab.method.loss.alignment_loss` batched over frames and read
from crops of the upsampling, computing the same up to float rounding (tests/accel/test_fast_loss.py).

Two savings, both invisible in the result:

- **Crops without the grid.** The loss reads only box crops of the ``(F, C, H, W)`` grid, and bicubic
  upsampling is separable (``up = R @ x @ C.T``, :func:`~anyi2v_lab.method.grid.bicubic_resize`), so a crop is
  ``R[y0:y1] @ x @ C[x0:x1].T``. :class:`GridFeatures` computes crops that way and never materialises the
  grid, whose full-size copy (and the grid-sized gradient of every crop) costs more memory and time than
  the crops themselves (128 MiB fp32 at 512 px).
- **Frames in groups.** Frames whose moved boxes share a size and a clipping see the same resized target,
  moved frame-1 mask and query tokens: one batch of kernels serves all of them instead of one set a frame.

A :class:`~anyi2v_lab.accel.Runtime` uses it (:func:`fast_loss`, and inside the captured loss of
``accel.optimisation_graphs``); the method without a runtime computes the plain loss.
"""
from __future__ import annotations

from typing import Callable

import torch

from ..method.alignment import Alignment
from ..method.config import AnyI2VConfig
from ..method.grid import bicubic_matrix, bicubic_resize, clip_box, reduced_maps
from ..method.loss import LossParts, background_loss, check_start_box, moved, on_grid, query_tokens
from ..method.masks import semantic_mask
from ..method.optimize import PassInputs

_INDEX: dict = {}


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
        if key not in _INDEX:  # one upload per frame list: a host-to-device copy per crop would wait for the device
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


def grid_features(captured: list[torch.Tensor], alignment: Alignment, config: AnyI2VConfig, keep_pca: bool = False,
                  fits: list | None = None) -> tuple[GridFeatures, list[slice], list[torch.Tensor]]:
    """:func:`~anyi2v_lab.method.grid.aligned_features` as :class:`GridFeatures` (upsampled crop by crop)."""
    maps, slices, previews = reduced_maps(captured, alignment, config, keep_pca, fits)
    return GridFeatures(maps, alignment.grid), slices, previews


def frame_groups(track: list, height: int, width: int) -> list[list[int]]:
    """Frames 1.. of one object's boxes ``track`` grouped by box size and clipping (frames whose box left
    the grid are dropped), in order of first appearance."""
    groups: dict[tuple, list[int]] = {}
    for j, box in enumerate(track[1:], start=1):
        if not on_grid(box, height, width):
            continue
        x0, y0, x1, y1 = (int(v) for v in box)
        cx0, cy0, cx1, cy1 = clip_box(box, height, width)
        groups.setdefault((x1 - x0, y1 - y0, cx0 - x0, cy0 - y0, x1 - cx1, y1 - cy1), []).append(j)
    return list(groups.values())


def fast_alignment_loss(features: GridFeatures, layers: list[slice], boxes: torch.Tensor, queries: list[torch.Tensor],
                        mask: str = "semantic", background_weight: float = 0.0, keep_masks: bool = False) -> LossParts:
    """:func:`~anyi2v_lab.method.loss.alignment_loss` on :class:`GridFeatures`, one batch per :func:`frame_groups`
    group. ``boxes`` are read as Python ints: keep them on the CPU (a device tensor would sync every frame)."""
    nf, _, H, W = features.shape
    loss = count = torch.zeros((), dtype=torch.float32, device=features.device)
    kept = []
    for o, (track, q) in enumerate(zip(boxes.tolist(), queries)):
        check_start_box(track[0], o, H, W)
        q = q.to(features.device).float()  # once per object (query_tokens' own cast is then no kernel)
        target0 = features.crop([0], [track[0]])[0].detach()
        m0 = None
        if mask != "none":
            m0 = semantic_mask(query_tokens(target0, q, track[0], track[0], H, W), target0, layers)
        per_frame = [m0] + [None] * (nf - 1)
        for frames in frame_groups(track, H, W):
            box = track[frames[0]]  # every frame of the group has its size and clipping
            current = features.crop(frames, [track[j] for j in frames])  # (N, C, h, w)
            target = moved(target0, box, H, W, "bicubic")
            if mask == "none":
                weight = torch.ones(len(frames), len(layers), *current.shape[2:], device=current.device)
            else:
                weight = moved(m0, box, H, W, "bilinear").expand(len(frames), -1, -1, -1)
                if mask == "semantic":
                    weight = weight * semantic_mask(query_tokens(target, q, track[0], box, H, W), current, layers)
            diff = target.float()[None] - current.float()
            for li, channels in enumerate(layers):
                loss = loss + (weight[:, li, None] * diff[:, channels]).pow(2).mean(1).sum()
            count = count + weight.sum()
            if keep_masks:
                for j, w in zip(frames, weight.detach().unbind(0)):
                    per_frame[j] = w
        kept.append(per_frame)
    total = loss / count.clamp(min=1e-8)
    if background_weight > 0:
        total = total + background_weight * background_loss(features.full(), boxes)
    return LossParts(total, count, kept if keep_masks else None)


def fast_loss(inputs: PassInputs) -> Callable[[list[torch.Tensor], list | None], tuple[LossParts, list]]:
    """:func:`~anyi2v_lab.method.optimize.eager_loss` with :func:`fast_alignment_loss` on :func:`grid_features`."""
    alignment, config = inputs.alignment, inputs.config

    def loss(captured: list[torch.Tensor], fits: list | None) -> tuple[LossParts, list[torch.Tensor]]:
        grid, slices, previews = grid_features(captured, alignment, config, inputs.keep_pca, fits)
        parts = fast_alignment_loss(grid, slices, alignment.boxes, alignment.queries, config.mask,
                                    config.background_weight, inputs.keep_masks)
        return parts, previews
    return loss
