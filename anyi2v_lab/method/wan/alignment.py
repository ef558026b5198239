"""A trajectory on Wan's latent frames, and the latent optimisation's passes on the transformer (experimental).

Wan's causal VAE encodes video frame 0 alone and then 4 video frames a latent frame, so the trajectory's
per-video-frame boxes are binned: latent frame ``j > 0`` gets the mean box of video frames ``4j-3 .. 4j``.
The loss is the UNet version's (Eq. 8, :mod:`anyi2v_lab.method.loss`) on the chosen blocks'
self-attention queries, each a ``(latent frames, C, h, w)`` map on the token grid, PCA-reduced and
resized to the alignment grid (:mod:`anyi2v_lab.method.grid`); the update is the same sign step
(:func:`anyi2v_lab.method.optimize.optimise_latents`).
"""
from __future__ import annotations

import warnings
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from ...causal_frames import WAN_TEMPORAL, video_frames_of
from ...trajectory import Trajectory, TrajectoryWarning, query_points_at
from ..alignment import Alignment, checked_frame_boxes, grid_boxes, query_cells
from ..grid import aligned_features, layer_fits
from ..loss import LossParts, alignment_loss
from ..optimize import Passes, frozen, pass_session
from .config import WanAnyI2VConfig


def latent_frame_boxes(boxes: np.ndarray, latent_frames: int) -> np.ndarray:
    """Per-video-frame boxes ``(O, 4k + 1, 4)`` -> per-latent-frame boxes ``(O, k + 1, 4)``: each latent
    frame's mean box over the video frames it encodes."""
    if boxes.shape[1] != (latent_frames - 1) * WAN_TEMPORAL + 1:
        raise ValueError(f"{boxes.shape[1]} video frames do not make {latent_frames} latent frames (4k + 1 needed)")
    return np.stack([boxes[:, list(video_frames_of(j))].mean(1) for j in range(latent_frames)], 1)


def align_names(config: WanAnyI2VConfig) -> list[str]:
    return [f"blocks.{b}.attn1.query" for b in config.align_blocks]


def wan_alignment(trajectory: Trajectory, config: WanAnyI2VConfig, token_hw: tuple[int, int],
                  device) -> tuple[Alignment, np.ndarray]:
    """The :class:`~anyi2v_lab.method.alignment.Alignment` of a trajectory in model pixels on the latent
    frames, and the binned model-pixel boxes ``(O, latent frames, 4)``."""
    H, W, f = config.height, config.width, config.compress_factor
    boxes = checked_frame_boxes(trajectory, config.num_frames, (H, W), f)
    binned = latent_frame_boxes(boxes, config.latent_frames)
    queries = [query_cells(query_points_at(obj), binned[o, 0], f).to(device)
               for o, obj in enumerate(trajectory.objects)]
    align = Alignment(boxes=grid_boxes(torch.from_numpy(binned), f), queries=queries, grid=(H // f, W // f),
                      shapes=[token_hw] * len(config.align_blocks))
    if not align.aligned_frames:
        why = ("num_frames=1: one latent frame has no later frame to move its objects to" if config.latent_frames == 1
               else "every object's box lies outside the image after frame 0")
        warnings.warn(f"{why}, so the trajectory has nothing to align: the latent optimisation is skipped",
                      TrajectoryWarning, stacklevel=3)
    return align, binned


@dataclass(kw_only=True)
class WanPassInputs:
    """One sampling step's optimisation passes: the transformer, its injection edits, the alignment, the
    conditional embeddings ``(1, T, D)`` and the step's timestep (a ``(1,)`` tensor) and index."""

    transformer: torch.nn.Module
    edits: dict
    alignment: Alignment
    config: WanAnyI2VConfig
    embeds: torch.Tensor
    timestep: torch.Tensor
    step_index: int


def alignment_loss_of(captured: list[torch.Tensor], alignment: Alignment, config: WanAnyI2VConfig,
                      fits: list | None = None) -> LossParts:
    """Eq. 8 on captured queries ``[(1, F, h*w, C)]`` (fits: each layer's PCA, or ``None`` to fit here)."""
    feats, slices, _ = aligned_features(captured, alignment, config, False, fits)
    return alignment_loss(feats, slices, alignment.boxes, alignment.queries, config.mask, config.background_weight)


@contextmanager
def wan_passes(inputs: WanPassInputs):
    """:class:`~anyi2v_lab.method.optimize.Passes` on the transformer: the conditional branch with injection,
    stopped after the last aligned block's query, weights frozen."""
    t, names, a, config = inputs.timestep, align_names(inputs.config), inputs.alignment, inputs.config
    model = inputs.transformer
    with frozen(model), pass_session(model, inputs.edits, names) as session:
        def forward(leaf: torch.Tensor) -> list[torch.Tensor]:
            with session.calling(step_index=inputs.step_index, branches=("cond",)):
                session.forward(leaf.to(model.dtype), t, inputs.embeds, return_dict=False)
            captured = [session.cache.entries(n)[-1].tensor.flatten(2, 3) for n in names]  # (1, F, h*w, C)
            session.cache.clear()
            return captured

        def fit(captured: list[torch.Tensor]) -> list | None:
            return None if config.pca_dim is None else layer_fits(captured, a.shapes, config)

        def loss(captured: list[torch.Tensor], fits: list | None) -> tuple[LossParts, list]:
            return alignment_loss_of(captured, a, config, fits), []
        yield Passes(forward, fit, loss)
