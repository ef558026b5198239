"""The microscope on a video transformer (Wan): its token sequences as per-latent-frame grids.

A Wan capture stores a sequence point as ``(B, F, h, w, C)`` (:meth:`~anyi2v_lab.hooks.HookContext.frames`),
``F`` latent frames of ``h x w`` patches. :func:`sequence_views` turns a cache of them into
:class:`~anyi2v_lab.microscope.MicroscopeData`'s arguments, so the same class gives PCA-RGB and clusters in
one basis per hook point (every step and latent frame), self-attention from a point over all tokens of all
latent frames, and cross-attention per word::

    out, cache = run_with_cache(wan_pipe, ..., names=["b12.sa.q", "b12.sa.k", "b12.x.p", "b20.o"], branch="cond")
    data = MicroscopeData(**sequence_views(cache, wan_pipe.transformer), words=prompt_tokens(tok, prompt))

Wan's queries and keys are captured before RoPE: attention from a point compares content only (the
model's own attention also weighs positions; capture ``attn1.probs`` for it). Latent frame ``j > 0``
covers video frames ``4j-3 .. 4j``, frame 0 alone (:func:`video_frames_of`).
"""
from __future__ import annotations

import torch

from ..causal_frames import latent_frame_of, video_frames_of  # noqa: F401 (re-exported)
from .data import _series
from .steps import Step


def _as_tokens(series: dict[Step, torch.Tensor], name: str) -> tuple[dict[Step, torch.Tensor], tuple[int, int]]:
    first = next(iter(series.values()))
    if first.ndim != 4:
        raise ValueError(f"{name}: expected (F, h, w, C) per step as a Wan capture stores a token sequence, "
                         f"got {tuple(first.shape)}; capture it with run_with_cache on a Wan transformer")
    return {s: x.flatten(1, 2) for s, x in series.items()}, tuple(first.shape[1:3])


def sequence_views(cache, model=None) -> dict:
    """``features``, ``keys``, ``cross``, ``grids`` and ``heads`` for ``MicroscopeData(**...)`` from a Wan
    capture (the cond branch of each entry): sequence points become ``(F, h*w, C)`` tokens on their
    ``(h, w)`` grid, a ``.key`` beside its ``.query`` the keys of attention from a point, an ``attn2.probs``
    point ``(F, heads, h*w, T)`` cross-attention. Self-attention probabilities and the model output are
    left out. ``model``: the transformer, for the heads of each point (else 1)."""
    from ..hooks import hook_points

    names = list(cache)
    features, keys, cross, grids = {}, {}, {}, {}
    for name in names:
        series = _series(cache, name)
        if name.endswith(".attn2.probs"):
            cross[name] = series
            first = next(iter(series.values()))
            grids[name] = _grid_of(cache, name, first.shape[-2])
        elif name.endswith(".key") and name[:-4] + ".query" in names:
            keys[name[:-4] + ".query"] = _as_tokens(series, name)[0]
        elif name != "output" and not name.endswith(".probs"):
            features[name], grids[name] = _as_tokens(series, name)
    heads = {} if model is None else {p.name: p.heads for p in hook_points(model)}
    return {"features": features, "keys": keys, "cross": cross, "grids": grids, "heads": heads}


def _grid_of(cache, name: str, tokens: int) -> tuple[int, int]:
    """A cross-attention point's (h, w): that of any sequence point of the same call (all share the grid)."""
    for other in cache:
        x = cache.entries(other)[0].tensor
        if other != name and not other.endswith(".probs") and other != "output" and x.ndim == 5:
            if x.shape[2] * x.shape[3] == tokens:
                return tuple(x.shape[2:4])
    raise ValueError(f"{name}: capture one token sequence point too (e.g. the block's output) to place its "
                     f"{tokens} tokens a frame on a grid")
