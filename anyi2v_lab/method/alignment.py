"""The alignment (docs/method.md §3): a user trajectory in model pixels becomes what the loss reads on its grids.

The alignment grid is the image divided by ``compress_factor`` (128 x 128 cells at 512 px); each object
has a box per frame on it, query points as cell offsets from its start box, and optionally a region of
the latent that the sign steps may change.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch

from ..hooks import hook_points
from ..trajectory import Trajectory, TrajectoryError, TrajectoryWarning, clip_frame_boxes, frame_boxes, query_points_at
from .config import AnyI2VConfig, ConfigError


@dataclass
class Alignment:
    """What the loss needs besides features, fixed for a generation.

    ``boxes`` ``(O, F, 4)`` grid cells (on the CPU); ``queries`` per object ``(K, 2)`` cell offsets from the start
    box; ``grid`` ``(Hg, Wg)``; ``shapes`` the latent-space ``(h, w)`` of each aligned layer;
    ``region`` an optional ``(1, 1, F, h, w)`` mask of where the latent may change.
    """

    boxes: torch.Tensor
    queries: list[torch.Tensor]
    grid: tuple[int, int]
    shapes: list[tuple[int, int]]
    region: torch.Tensor | None = None

    @property
    def aligned_frames(self) -> int:
        """How many object boxes of frames 1.. lie at least partly on the grid: the loss's terms. 0 (one
        frame, or every object off the image after frame 0) leaves nothing to align."""
        later = self.boxes[:, 1:]
        inside_x = later[..., 2].clamp(max=self.grid[1]) > later[..., 0].clamp(min=0)
        inside_y = later[..., 3].clamp(max=self.grid[0]) > later[..., 1].clamp(min=0)
        return int((inside_x & inside_y).sum())


def grid_boxes(boxes: torch.Tensor, factor: int) -> torch.Tensor:
    """Pixel boxes ``(..., 4)`` -> grid boxes: floor division, at least one cell high and wide."""
    g = torch.div(torch.as_tensor(boxes, dtype=torch.float64), factor, rounding_mode="floor").long()
    g[..., 2] = torch.maximum(g[..., 2], g[..., 0] + 1)
    g[..., 3] = torch.maximum(g[..., 3], g[..., 1] + 1)
    return g


def query_cells(points, start_box, factor: int) -> torch.Tensor:
    """Query points ``(K, 2)`` and the start box ``(x0, y0, x1, y1)``, in model pixels -> ``(K, 2)`` cell
    offsets (dx, dy) from the start box's top-left grid cell: ``floor(p / factor) - floor(box0 / factor)``.

    The start crop is cut from the grid at ``floor(box0 / factor)`` (:func:`grid_boxes`), so this is the
    cell the point falls in. The reference computes ``floor((p - box0) / factor)``, one cell short
    whenever ``p mod factor < box0 mod factor`` (docs/method.md, "Where we differ": the query cell; on
    its horse-canny example two of the three points).
    """
    p = np.floor(np.asarray(points, dtype=np.float64) / factor)
    corner = np.floor(np.asarray(start_box, dtype=np.float64)[:2] / factor)
    return torch.from_numpy(p - corner).long()


def to_model_space(trajectory: Trajectory, condition) -> Trajectory:
    """Map a trajectory drawn on the condition's source image (or already on the model canvas) to
    model pixels with the condition's resize policy."""
    size = tuple(trajectory.image_size)
    if size == tuple(condition.size):
        return trajectory
    if size == tuple(condition.source_size):
        return trajectory.rescaled(condition.resize_map)
    raise TrajectoryError(
        f"trajectory.image_size={size} matches neither the condition image {tuple(condition.source_size)} "
        f"nor the model canvas {tuple(condition.size)}; draw it on one of them or rescale it with "
        f"Trajectory.rescaled(ResizeMap.from_policy({size}, ..., policy))")


def layer_shapes(unet, layers: tuple[str, ...], latent_hw: tuple[int, int]) -> list[tuple[int, int]]:
    """The latent-space ``(h, w)`` of each named spatial layer at latent size ``latent_hw``."""
    points = {p.module: p for p in hook_points(unet) if p.site in ("query", "residual")}
    missing = [layer for layer in layers if layer not in points]
    if missing:
        raise ConfigError(f"layers {missing} are not spatial self-attentions or ResNets of this UNet; "
                          f"list them with anyi2v_lab.hooks.list_hook_points(unet, site='query')")
    return [(latent_hw[0] // points[l].downscale, latent_hw[1] // points[l].downscale) for l in layers]


def checked_frame_boxes(trajectory: Trajectory, num_frames: int, image_hw: tuple[int, int], f: int) -> np.ndarray:
    """The trajectory's boxes ``(O, F, 4)`` in model pixels, once ``f`` is known to divide the image; a box
    that leaves the image warns (:class:`~anyi2v_lab.trajectory.TrajectoryWarning`), or raises at frame 0."""
    H, W = image_hw
    if H % f or W % f:
        raise ConfigError(f"compress_factor={f} must divide the image size {W}x{H}")
    boxes = frame_boxes(trajectory, num_frames)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        clip_frame_boxes(boxes, (W, H), [o.name for o in trajectory.objects])
    return boxes


def build_alignment(trajectory: Trajectory, config: AnyI2VConfig, image_hw: tuple[int, int],
                    latent_hw: tuple[int, int], shapes: list[tuple[int, int]], device) -> tuple[Alignment, np.ndarray]:
    """Per-frame boxes on the alignment grid, query offsets per object, and the optional update
    region. Returns the alignment and the model-pixel boxes ``(O, F, 4)``. Warns
    (:class:`~anyi2v_lab.trajectory.TrajectoryWarning`) when no later frame has a box on the image."""
    H, W = image_hw
    f = config.compress_factor
    boxes = checked_frame_boxes(trajectory, config.num_frames, image_hw, f)
    grid = grid_boxes(torch.from_numpy(boxes), f)
    queries = [query_cells(query_points_at(obj), boxes[o, 0], f) for o, obj in enumerate(trajectory.objects)]
    region = None
    if config.update_region == "boxes":
        region = box_region(boxes, config.region_margin, (H, W), latent_hw)
    # grid boxes stay on the CPU: the loss slices with them (a device copy would sync every frame);
    # the query offsets index device features, so they move once here
    align = Alignment(boxes=grid, queries=[q.to(device) for q in queries], grid=(H // f, W // f), shapes=shapes,
                      region=None if region is None else region.to(device))
    if not align.aligned_frames:
        why = ("num_frames=1: a one-frame video has no later frame to move its objects to" if config.num_frames == 1
               else "every object's box lies outside the image after frame 0")
        warnings.warn(f"{why}, so the trajectory has nothing to align: the latent optimisation is skipped and the "
                      f"condition is animated with injection only", TrajectoryWarning, stacklevel=3)
    return align, boxes


def box_region(boxes: np.ndarray, margin: float, image_hw: tuple[int, int], latent_hw) -> torch.Tensor:
    """``(1, 1, F, h, w)`` 0/1 mask of the latent cells near any object's box in each frame (our
    option: keeps the sign steps off the background)."""
    H, W = image_hw
    h, w = latent_hw
    region = torch.zeros(1, 1, boxes.shape[1], h, w)
    for obj in boxes:
        for j, (x0, y0, x1, y1) in enumerate(obj):
            mx, my = margin * (x1 - x0), margin * (y1 - y0)
            c0, c1 = int(np.floor((x0 - mx) * w / W)), int(np.ceil((x1 + mx) * w / W))
            r0, r1 = int(np.floor((y0 - my) * h / H)), int(np.ceil((y1 + my) * h / H))
            region[..., j, max(r0, 0):max(r1, 0), max(c0, 0):max(c1, 0)] = 1
    return region
