"""Injection into latent frame 0's tokens, as edit functions on Wan hook points (experimental).

During the first ``config.inject_steps`` sampling steps and in every optimisation forward, the conditional
branch's latent frame 0 gets, at each injected block: the inverted block output, patch-AdaIN'd onto the
current one (the UNet version injects ResNet residuals; a Wan block has none), and the inverted
self-attention query, key and value. Every other latent frame's tokens are left as they are: they see
frame 0 only through attention. Injected tensors are detached. As in :mod:`anyi2v_lab.method.injection`,
each edit carries ``active(call)``.
"""
from __future__ import annotations

from typing import Callable

import torch

from ...hooks import CallInfo, HookContext
from ..adain import patch_adain
from ..injection import injected_branches
from .config import WanAnyI2VConfig
from .inversion import WanFeatures


def injection_active(config: WanAnyI2VConfig) -> Callable[[CallInfo], bool]:
    """Optimisation forwards always inject; sampling forwards in the first ``inject_steps`` steps."""
    def active(call: CallInfo) -> bool:
        if call.phase == "optimisation":
            return True
        return call.phase == "sampling" and call.step_index is not None and call.step_index < config.inject_steps
    return active


def frame0_edit(stored: torch.Tensor, config: WanAnyI2VConfig, active, adain: bool):
    """Replace latent frame 0's tokens ``(h, w, C)`` by ``stored`` (with ``adain``: patch-AdaIN of ``stored``
    onto the current tokens, windows of ``config.adain_patch`` tokens)."""
    def edit(x: torch.Tensor, ctx: HookContext) -> torch.Tensor | None:
        if not active(ctx.call):
            return None
        v = ctx.frames(x)  # (B, F, h, w, C)
        out = v.clone()
        for b in injected_branches(ctx, config.inject_uncond):
            if adain:
                current = v[b, 0].detach().permute(2, 0, 1)  # (C, h, w)
                target = stored.to(current).permute(2, 0, 1)
                out[b, 0] = patch_adain(target, current, config.adain_patch, config.adain_eps).permute(1, 2, 0)
            else:
                out[b, 0] = stored.to(v)
        return ctx.merge(out)
    edit.active = active
    return edit


def injection_edits(features: WanFeatures | None, config: WanAnyI2VConfig) -> dict[str, list]:
    """Edit functions per hook point name for ``hooked(transformer, edits=...)``."""
    if features is None or not config.injects:
        return {}
    active = injection_active(config)
    return {name: [frame0_edit(stored, config, active, adain=name.endswith(".output"))]
            for name, stored in features.tensors.items()}
