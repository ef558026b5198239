"""The trajectory alignment loss, the paper's Eq. 8 (docs/method.md §3, step 5), frame by frame.

    L = Σ_o Σ_{j>=2} Σ_l Σ_x mean_{c in l} (M_1 ⊙ M_j ⊙ (SG(F̃_1[B_1]) - F̃_j[B_j]))²  /  Σ_o Σ_j Σ_l Σ_x M_1 ⊙ M_j

``features`` ``(F, C, H, W)`` is F̃: every aligned layer's PCA-reduced features on the alignment grid
(image size / ``compress_factor``), layer ``l`` in channels ``layers[l]``. ``boxes[o, j]`` is B_j of object
``o``, ``(x0, y0, x1, y1)`` integer grid cells, end-exclusive. ``SG(F̃_1[B_1])`` is frame 1's crop (index 0),
detached and resized to B_j. ``M_1``, ``M_j`` are semantic masks (:mod:`.masks`, Eq. 5-7), one per layer:
``M_1`` on frame 1's crop, moved with the box; ``M_j`` on frame j's crop. A box that leaves the grid is cut
to it; a frame whose box lies wholly outside adds no term.

Fixed here against the reference: one ``M_1`` per object (the reference shares object 0's), query points
scaled with the box and shifted when a box is clipped at the top or left border, ``M_1`` resized from the
original each time (the reference's resizes accumulate). ``anyi2v_lab.accel.fast_loss`` is the same loss
batched over frames; a runtime uses it.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .grid import clip_box
from .masks import semantic_mask


@dataclass
class LossParts:
    loss: torch.Tensor
    count: torch.Tensor
    masks: list[list[torch.Tensor | None]] | None  # [object][frame] -> (L, h, w) weights M_1 ⊙ M_j


def alignment_loss(features: torch.Tensor, layers: list[slice], boxes: torch.Tensor, queries: list[torch.Tensor],
                   mask: str = "semantic", background_weight: float = 0.0, keep_masks: bool = False) -> LossParts:
    """Eq. 8 (see the module). ``queries[o]``: object o's query points p_k ``(K, 2)``, (dx, dy) cells from B_1's
    corner; ``mask``: "semantic" (M_1 ⊙ M_j), "static" (M_1) or "none"; ``keep_masks``: return each M_1 ⊙ M_j."""
    _, _, H, W = features.shape
    loss = count = torch.zeros((), dtype=torch.float32, device=features.device)
    kept = []
    for o, (track, q) in enumerate(zip(boxes.tolist(), queries)):
        target0 = start_crop(features, track[0], o)  # SG(F̃_1[B_1])
        tokens0 = query_tokens(target0, q, track[0], track[0], H, W)  # F̃_1[p_k]
        m0 = None if mask == "none" else semantic_mask(tokens0, target0, layers)  # M_1
        masks = [m0] + [None] * (len(track) - 1)
        for j, box in visible_frames(track, H, W):
            current = box_crop(features[j], box)  # F̃_j[B_j]
            target = moved(target0, box, H, W, "bicubic")  # SG(F̃_1[B_1]) resized to B_j
            cells = (len(layers), *current.shape[1:])
            weight = torch.ones(cells, device=current.device) if m0 is None else moved(m0, box, H, W, "bilinear")  # M_1
            if mask == "semantic":
                weight = weight * semantic_mask(query_tokens(target, q, track[0], box, H, W), current, layers)  # ⊙ M_j
            diff = target.float() - current.float()
            for l_, channels in enumerate(layers):
                loss = loss + (weight[l_] * diff[channels]).pow(2).mean(0).sum()  # Σ_x mean_c (...)²
            count = count + weight.sum()
            masks[j] = weight
        kept.append(masks)
    total = loss / count.clamp(min=1e-8)
    if background_weight > 0:
        total = total + background_weight * background_loss(features, boxes)
    return LossParts(total, count, kept if keep_masks else None)


def visible_frames(track: list, height: int, width: int) -> list[tuple[int, list]]:
    """``(j, B_j)`` for the frames j >= 1 (index 1 on) whose box has a cell on the ``height x width`` grid."""
    return [(j, box) for j, box in enumerate(track[1:], start=1) if on_grid(box, height, width)]


def on_grid(box, height: int, width: int) -> bool:
    """Whether ``box`` has a cell on the ``height x width`` grid."""
    x0, y0, x1, y1 = clip_box(box, height, width)
    return x1 > x0 and y1 > y0


def box_crop(features: torch.Tensor, box) -> torch.Tensor:
    """``features (C, H, W)`` inside ``box (x0, y0, x1, y1)``, clipped to the map: F̃[B], ``(C, h, w)``."""
    x0, y0, x1, y1 = clip_box(box, features.shape[-2], features.shape[-1])
    return features[:, y0:y1, x0:x1]


def start_crop(features: torch.Tensor, start_box, obj: int) -> torch.Tensor:
    """SG(F̃_1[B_1]): frame 1's features inside object ``obj``'s start box, detached (Eq. 8's target)."""
    check_start_box(start_box, obj, *features.shape[-2:])
    return box_crop(features[0], start_box).detach()


def check_start_box(start_box, obj: int, height: int, width: int) -> None:
    """Object ``obj``'s start box must have a cell on the grid: B_1 is where its target comes from."""
    if not on_grid(start_box, height, width):
        raise ValueError(f"object {obj}: its start box {start_box} lies outside the {width}x{height} feature grid")


def resize(x: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    """``(C, h, w)`` -> ``(C, *size)``; identity when the size is already right."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    align = False if mode in ("bicubic", "bilinear") else None
    return F.interpolate(x[None].float(), size=size, mode=mode, align_corners=align)[0].to(x.dtype)


def cut(x: torch.Tensor, box, height: int, width: int) -> torch.Tensor:
    """The part of a box-sized ``(C, h, w)`` tensor that lies on the ``height x width`` grid."""
    x0, y0, x1, y1 = (int(v) for v in box)
    cx0, cy0, cx1, cy1 = clip_box(box, height, width)
    return x[:, cy0 - y0: x.shape[1] - (y1 - cy1), cx0 - x0: x.shape[2] - (x1 - cx1)]


def moved(x: torch.Tensor, box, height: int, width: int, mode: str) -> torch.Tensor:
    """Frame 1's crop (or mask) carried to ``box``: resized (``mode``) to the full box, then cut to the grid."""
    x0, y0, x1, y1 = (int(v) for v in box)
    return cut(resize(x, (y1 - y0, x1 - x0), mode), box, height, width)


def query_tokens(crop: torch.Tensor, offsets: torch.Tensor, start_box, box, height: int, width: int) -> torch.Tensor:
    """The query tokens F̃_1[p_k] of Eq. 5, ``(K, C)``, read from ``crop``: frame 1's crop :func:`moved` to
    ``box``. The offsets ``(K, 2)`` (dx, dy) are cells of the start box, scaled with the box's size, shifted
    by its clipping and clamped to the crop."""
    x0, y0, x1, y1 = (int(v) for v in box)
    sx0, sy0, sx1, sy1 = (int(v) for v in start_box)
    cx0, cy0, _, _ = clip_box(box, height, width)
    offsets = offsets.to(crop.device).float()
    cols = (offsets[:, 0] * ((x1 - x0) / (sx1 - sx0))).floor().long() - (cx0 - x0)
    rows = (offsets[:, 1] * ((y1 - y0) / (sy1 - sy0))).floor().long() - (cy0 - y0)
    rows = rows.clamp(0, crop.shape[1] - 1)
    cols = cols.clamp(0, crop.shape[2] - 1)
    return crop[:, rows, cols].T


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
