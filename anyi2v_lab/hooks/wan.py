"""Hook points of a Wan video transformer (diffusers' ``WanTransformer3DModel``, Wan 2.1 and 2.2).

A Wan block runs full 3D self-attention over every latent frame's tokens at once, then cross-attention
to the text, then a feed-forward. Per block ``i`` the points are:

=================================  ===============  =========================================  ======================
name                               short            tensor                                     layout (per call)
=================================  ===============  =========================================  ======================
``blocks.i.attn1.input``           ``bi.sa.in``     the modulated, normalised block input       sequence ``(B, L, C)``
``blocks.i.attn1.query`` / ``key`` ``bi.sa.q`` ...  after the q/k RMS norm, before 3D RoPE      sequence
``blocks.i.attn1.value``           ``bi.sa.v``      ``to_v``'s output                           sequence
``blocks.i.attn1.probs``           ``bi.sa.p``      softmax over all tokens (on request)        ``(B, heads, L, L)``
``blocks.i.attn1.output``          ``bi.sa.o``      after ``to_out``, before the gate           sequence
``blocks.i.attn2.probs``           ``bi.x.p``       softmax over the text tokens (on request)   ``(B, heads, L, T)``
``blocks.i.attn2.output``          ``bi.x.o``       cross-attention output (added as is)        sequence
``blocks.i.ffn.output``            ``bi.ff.o``      feed-forward output, before the gate        sequence
``blocks.i.output``                ``bi.o``         the block's output                          sequence
``output``                         ``output``       the model's prediction (velocity)           ``(B, C, F, H, W)``
=================================  ===============  =========================================  ======================

``L = F * h * w`` tokens, frame-major (``F`` latent frames of ``h x w = H/2 x W/2`` patches);
:meth:`~anyi2v_lab.hooks.HookContext.frames` turns a sequence into ``(B, F, h, w, C)`` and probabilities
into ``(B, F, heads, h*w, M)`` (the query's frame), :meth:`~anyi2v_lab.hooks.HookContext.merge` back.
Queries and keys are taken before RoPE so that an edit sets the content and the position is added after,
as in the model. Probabilities are computed explicitly (not fused) only when a ``probs`` point is hooked.
"""
from __future__ import annotations

import weakref
from contextlib import contextmanager
from typing import Callable

import torch
import torch.nn as nn

from .naming import SITES, HookPoint

_SUBS = (("attn1", "self_attention"), ("attn2", "cross_attention"), ("ffn", "feed_forward"), ("", "block"))


def is_wan(model: nn.Module) -> bool:
    """Whether ``model`` is a Wan transformer (by its structure, so the ``meta`` device works too)."""
    return hasattr(model, "blocks") and hasattr(model, "rope") and hasattr(model, "patch_embedding")


def patch_size(model: nn.Module) -> tuple[int, int, int]:
    """The model's (t, h, w) patch, checked: the points assume one latent frame a token frame and square
    patches, as every released Wan model has."""
    p_t, p_h, p_w = model.config.patch_size
    if p_t != 1 or p_h != p_w:
        raise ValueError(f"patch_size={tuple(model.config.patch_size)}: the Wan hook points need patches "
                         f"(1, p, p), one latent frame a token frame")
    return p_t, p_h, p_w


def wan_hook_points(model: nn.Module) -> list[HookPoint]:
    """Every hook point of a ``WanTransformer3DModel``, in forward order. Works on the ``meta`` device."""
    _, p, _ = patch_size(model)
    points: list[HookPoint] = []
    for i, block in enumerate(model.blocks):
        for j, (sub, kind) in enumerate(_SUBS):
            module = block.get_submodule(sub) if sub else block
            path = f"blocks.{i}.{sub}" if sub else f"blocks.{i}"
            for k, site in enumerate(SITES[kind]):
                points.append(HookPoint(name=f"{path}.{site}", module=path, kind=kind, site=site,
                                        layout="sequence_probs" if site == "probs" else "sequence",
                                        channels=_channels(module, kind, site), downscale=p,
                                        heads=getattr(module, "heads", 0), order=(i, j, k)))
    points.append(HookPoint(name="output", module="", kind="transformer", site="output", layout="video",
                            channels=model.config.out_channels, downscale=1, order=(len(model.blocks), 0, 0)))
    return points


def _channels(module: nn.Module, kind: str, site: str) -> int:
    if kind == "feed_forward":
        return [m for m in module.modules() if isinstance(m, nn.Linear)][-1].out_features
    if kind == "block":
        return module.scale_shift_table.shape[-1]
    return {"input": module.to_q.in_features, "query": module.to_q.out_features, "key": module.to_k.out_features,
            "value": module.to_v.out_features}.get(site, module.to_out[0].out_features)


def token_grid(model: nn.Module, sample: torch.Tensor) -> tuple[int, int, int]:
    """(latent frames, h, w) of the token sequence for a model input ``(B, C, F, H, W)``."""
    p_t, p_h, p_w = patch_size(model)
    return sample.shape[2] // p_t, sample.shape[3] // p_h, sample.shape[4] // p_w


_LISTENERS: "weakref.WeakKeyDictionary[nn.Module, list]" = weakref.WeakKeyDictionary()


@contextmanager
def call_labels(model: nn.Module, on_label: Callable[[str | None, dict], None]):
    """Report the label diffusers' Wan pipelines give each transformer call (``cache_context("cond")`` or
    ``"uncond"``, with the step index; ``None`` after the call): the pipeline runs CFG's two branches as two
    calls of batch 1, so the batch alone cannot tell them apart. While any session listens, an instance
    attribute wraps the method; the last listener to leave deletes it. The class is not touched."""
    listeners = _LISTENERS.setdefault(model, [])
    if not listeners:
        if "cache_context" in model.__dict__:
            raise RuntimeError("the model's cache_context is already replaced on the instance; remove it first")
        model.__dict__["cache_context"] = _labelled(model.cache_context, listeners)
    listeners.append(on_label)
    try:
        yield model
    finally:
        listeners.remove(on_label)
        if not listeners:
            del model.__dict__["cache_context"]
            del _LISTENERS[model]


def _labelled(bound, listeners: list):
    @contextmanager
    def cache_context(name: str, **kwargs):
        for fn in list(listeners):
            fn(name, kwargs)
        try:
            with bound(name, **kwargs):
                yield
        finally:
            for fn in list(listeners):
                fn(None, {})
    return cache_context
