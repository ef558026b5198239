"""The trajectory alignment loss (docs/method.md §3, the paper's Eq. 8), with the reference's defects fixed.

Features are ``(F, C, H, W)`` on the alignment grid (image size / ``compress_factor``); boxes are
``(x0, y0, x1, y1)`` integer grid cells, end-exclusive. For every object and every frame j >= 1, frame
j's crop inside the moved box is pulled towards frame 0's crop inside the start box (resized to the
moved box when the box size changes), weighted by the semantic masks, and normalised by the number of
active mask cells. Fixed here: one frame-0 mask per object (the reference shares object 0's), query
points scaled with the box and shifted when a box is clipped at the top or left border, frame-0 mask
resized from the original each time (the reference's resizes accumulate).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .grid import GridFeatures, clip_box
from .masks import semantic_mask


def box_crop(features: torch.Tensor, box) -> torch.Tensor:
    """``features (C, H, W)`` inside ``box (x0, y0, x1, y1)``, clipped to the map; ``(C, h, w)``."""
    x0, y0, x1, y1 = clip_box(box, features.shape[-2], features.shape[-1])
    return features[:, y0:y1, x0:x1]


def crops(features: torch.Tensor | GridFeatures, frames: list[int], boxes: list) -> torch.Tensor:
    """``(N, C, h, w)``: frame ``frames[i]`` of ``features`` inside ``boxes[i]``, clipped (same size)."""
    if isinstance(features, GridFeatures):
        return features.crop(frames, boxes)
    return torch.stack([box_crop(features[j], b) for j, b in zip(frames, boxes)])


def resize(x: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    """``(C, h, w)`` -> ``(C, *size)``; identity when the size is already right."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    align = False if mode in ("bicubic", "bilinear") else None
    return F.interpolate(x[None].float(), size=size, mode=mode, align_corners=align)[0].to(x.dtype)


@dataclass
class LossParts:
    loss: torch.Tensor
    count: torch.Tensor
    masks: list[list[torch.Tensor | None]] | None  # [object][frame] -> (L, h, w) weights


def _cut(x: torch.Tensor, box, height: int, width: int) -> torch.Tensor:
    """Keep the part of a box-sized ``(C, h, w)`` tensor that lies inside the map."""
    x0, y0, x1, y1 = (int(v) for v in box)
    cx0, cy0, cx1, cy1 = clip_box(box, height, width)
    return x[:, cy0 - y0: x.shape[1] - (y1 - cy1), cx0 - x0: x.shape[2] - (x1 - cx1)]


def _query_tokens(target: torch.Tensor, offsets: torch.Tensor, scale: tuple[float, float], box, height, width):
    """Vectors of ``target`` (a box-sized crop, already cut) at query offsets ``(K, 2)`` (dx, dy)
    given in cells of the start box, scaled to this box and shifted by its clipping."""
    x0, y0, _, _ = (int(v) for v in box)
    cx0, cy0, _, _ = clip_box(box, height, width)
    cols = (offsets[:, 0] * scale[1]).floor().long() - (cx0 - x0)
    rows = (offsets[:, 1] * scale[0]).floor().long() - (cy0 - y0)
    rows = rows.clamp(0, target.shape[1] - 1)
    cols = cols.clamp(0, target.shape[2] - 1)
    return target[:, rows, cols].T  # (K, C)


def _frame_groups(boxes: torch.Tensor, height: int, width: int) -> list[list[int]]:
    """Frames 1.. of one object ``(F, 4)`` grouped by box size and clipping (frames whose box left
    the map are dropped), in order of first appearance."""
    groups: dict[tuple, list[int]] = {}
    for j, box in enumerate(boxes.tolist()[1:], start=1):
        x0, y0, x1, y1 = (int(v) for v in box)
        cx0, cy0, cx1, cy1 = clip_box(box, height, width)
        if cx1 <= cx0 or cy1 <= cy0:
            continue  # the box has left the frame: nothing to align
        groups.setdefault((x1 - x0, y1 - y0, cx0 - x0, cy0 - y0, x1 - cx1, y1 - cy1), []).append(j)
    return list(groups.values())


def alignment_loss(features: torch.Tensor | GridFeatures, layers: list[slice], boxes: torch.Tensor,
                   queries: list[torch.Tensor], mask: str = "semantic", background_weight: float = 0.0,
                   keep_masks: bool = False) -> LossParts:
    """features ``(F, C, H, W)`` (a tensor, or :class:`GridFeatures` that crops without
    materialising the grid); boxes ``(O, F, 4)`` grid cells, read as Python ints (keep them on the
    CPU: a device tensor would sync every frame); queries per object ``(K, 2)`` offsets
    (dx, dy) in cells from the start box's top-left; ``mask`` in {"semantic", "static", "none"}."""
    nf, _, H, W = features.shape
    loss = torch.zeros((), dtype=torch.float32, device=features.device)
    count = torch.zeros((), dtype=torch.float32, device=features.device)
    kept = []
    for o in range(boxes.shape[0]):
        b0 = boxes[o, 0].tolist()
        target0 = crops(features, [0], [b0])[0].detach()
        if target0.numel() == 0:
            raise ValueError(f"object {o}: its start box {b0} lies outside the {W}x{H} feature grid")
        h0, w0 = b0[3] - b0[1], b0[2] - b0[0]
        q = queries[o].to(features.device).float()
        m0 = None
        if mask != "none":
            m0 = semantic_mask(_query_tokens(target0, q, (1.0, 1.0), b0, H, W), target0, layers)
        per_frame = [m0] + [None] * (nf - 1) if keep_masks else None
        # frames whose moved boxes share a size and a clipping see the same target, mask and query
        # tokens: one batch of kernels for all of them instead of one set a frame
        for frames in _frame_groups(boxes[o], H, W):
            bj = boxes[o, frames[0]].tolist()
            current = crops(features, frames, [boxes[o, j].tolist() for j in frames])  # (N, C, h, w)
            hj, wj = bj[3] - bj[1], bj[2] - bj[0]
            # the start crop is the clipped one; stretch it to the full moved box, then cut
            target = _cut(resize(target0, (hj, wj), "bicubic"), bj, H, W)
            if mask == "none":
                weight = torch.ones(len(frames), len(layers), *current.shape[2:], device=current.device)
            else:
                weight = _cut(resize(m0, (hj, wj), "bilinear"), bj, H, W).expand(len(frames), -1, -1, -1)
                if mask == "semantic":
                    tokens = _query_tokens(target, q, (hj / h0, wj / w0), bj, H, W)
                    weight = weight * semantic_mask(tokens, current, layers)
            diff = target.float()[None] - current.float()
            for li, sl in enumerate(layers):
                loss = loss + (weight[:, li, None] * diff[:, sl]).pow(2).mean(1).sum()
            count = count + weight.sum()
            if keep_masks:
                for j, w in zip(frames, weight.detach().unbind(0)):
                    per_frame[j] = w
        kept.append(per_frame)
    total = loss / count.clamp(min=1e-8)
    if background_weight > 0:
        full = features.full() if isinstance(features, GridFeatures) else features
        total = total + background_weight * background_loss(full, boxes)
    return LossParts(total, count, kept if keep_masks else None)


def background_loss(features: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Our option (not the reference's): outside every box of frame 0 and of frame j, frame j's
    features should stay those of frame 0, against the background drift of the sign-gradient steps."""
    nf, _, H, W = features.shape
    free0 = _outside(boxes[:, 0], H, W, features.device)
    terms = []
    for j in range(1, nf):
        free = free0 * _outside(boxes[:, j], H, W, features.device)
        diff = (features[j].float() - features[0].detach().float()).pow(2).mean(0)
        terms.append((diff * free).sum() / free.sum().clamp(min=1))
    return torch.stack(terms).mean()


def _outside(boxes: torch.Tensor, H: int, W: int, device) -> torch.Tensor:
    free = torch.ones(H, W, device=device)
    for box in boxes.tolist():
        x0, y0, x1, y1 = clip_box(box, H, W)
        free[y0:y1, x0:x1] = 0
    return free
