"""Feature injection as edit functions on named hook points (docs/method.md §2).

During the first ``load_feature_step + 1`` denoising steps, and in every optimisation forward, the
conditional branch's frame 0 gets the inverted residuals (after patch AdaIN onto its current
statistics) and the inverted queries, and frames 1..F-1 use frame 0's keys and values. Injected
tensors replace the originals and are detached: no gradient flows into them.

Each edit function carries ``active(call) -> bool``, the calls it changes (on the others it returns
``None``): what a UNet call computes is then known before the call (a runtime replays the steps no
edit changes as hook-free ones).
"""
from __future__ import annotations

from typing import Callable

import torch

from ..hooks import CallInfo, HookContext
from .adain import patch_adain
from .config import AnyI2VConfig
from .feature_bank import FeatureBank


def injection_active(config: AnyI2VConfig) -> Callable[[CallInfo], bool]:
    """Optimisation forwards always inject; sampling forwards up to ``load_feature_step``."""
    def active(call: CallInfo) -> bool:
        if call.phase == "optimisation":
            return True
        return call.phase == "sampling" and call.step_index is not None and call.step_index <= config.load_feature_step
    return active


def injected_branches(ctx: HookContext, inject_uncond: bool) -> list[int]:
    """The batch rows an injection edits: every CFG branch, or the conditional one alone."""
    if inject_uncond:
        return list(range(len(ctx.branches)))
    return [ctx.branch("cond")] if "cond" in ctx.branches else []


def residual_edit(stored: torch.Tensor, config: AnyI2VConfig, active):
    """Replace frame 0's residual branch ``(C, h, w)`` by patch-AdaIN(stored -> current), or by the
    stored map itself when ``config.debias`` is off."""
    def edit(x: torch.Tensor, ctx: HookContext) -> torch.Tensor | None:
        if not active(ctx.call):
            return None
        v = ctx.frames(x)  # (B, F, C, h, w)
        out = v.clone()
        for b in injected_branches(ctx, config.inject_uncond):
            source = v[b, 0].detach()
            if config.debias:
                out[b, 0] = patch_adain(stored.to(source), source, config.adain_patch, config.adain_eps)
            else:
                out[b, 0] = stored.to(source)
        return ctx.merge(out)
    edit.active = active
    return edit


def query_edit(stored: torch.Tensor, config: AnyI2VConfig, active):
    """Replace frame 0's query ``(N, C)`` by the inverted one, unchanged (no AdaIN)."""
    def edit(q: torch.Tensor, ctx: HookContext) -> torch.Tensor | None:
        if not active(ctx.call):
            return None
        v = ctx.frames(q)  # (B, F, N, C)
        out = v.clone()
        for b in injected_branches(ctx, config.inject_uncond):
            out[b, 0] = stored.to(v)
        return ctx.merge(out)
    edit.active = active
    return edit


def frame0_kv_edit(config: AnyI2VConfig, active):
    """K/V consistency: frames 1..F-1 take frame 0's current keys (or values). Copied, not
    concatenated, and not detached: frame 0's K/V are the generated ones."""
    def edit(k: torch.Tensor, ctx: HookContext) -> torch.Tensor | None:
        if not active(ctx.call) or ctx.num_frames < 2:
            return None
        v = ctx.frames(k)  # (B, F, N, C)
        out = v.clone()
        for b in injected_branches(ctx, config.inject_uncond):
            out[b, 1:] = v[b, :1].expand_as(v[b, 1:])
        return ctx.merge(out)
    edit.active = active
    return edit


def injection_edits(bank: FeatureBank | None, config: AnyI2VConfig) -> dict[str, list]:
    """Edit functions per hook point name for ``hooked(unet, edits=...)``."""
    active = injection_active(config)
    edits: dict[str, list] = {}

    def add(name: str, fn) -> None:
        edits.setdefault(name, []).append(fn)

    if bank is not None and config.inject_residual:
        for layer in config.res_layers:
            add(f"{layer}.residual", residual_edit(bank.residuals[layer], config, active))
    if bank is not None and config.inject_query:
        for layer in config.attn_layers:
            add(f"{layer}.query", query_edit(bank.queries[layer], config, active))
    if config.kv_consistency:
        for layer in config.attn_layers:
            add(f"{layer}.key", frame0_kv_edit(config, active))
            add(f"{layer}.value", frame0_kv_edit(config, active))
    return edits
