"""One-call entry points: run a UNet forward or a whole diffusers generation with hooks."""
from __future__ import annotations

from typing import Any, Iterable, Mapping

import torch
import torch.nn as nn

from .cache import ActivationCache, Capture
from .session import EditFn, hooked
from .wan import is_wan


def _unet_of(model) -> tuple[nn.Module, bool]:
    """The denoiser to hook, and whether ``model`` is it (rather than a pipeline holding it)."""
    if (hasattr(model, "down_blocks") and hasattr(model, "up_blocks")) or is_wan(model):
        return model, True
    if hasattr(model, "unet"):
        return model.unet, False
    if is_wan(getattr(model, "transformer", None)):
        return model.transformer, False  # a Wan 2.2 pipeline's transformer_2 (low noise) is not hooked
    raise TypeError(f"expected a diffusers UNet or Wan transformer, or a pipeline with one, got {type(model).__name__}")


def _check_embeddings(unet: nn.Module, args: tuple, kwargs: dict) -> None:
    sample = args[0] if args else kwargs.get("sample")
    ehs = args[2] if len(args) > 2 else kwargs.get("encoder_hidden_states")
    if sample is None or ehs is None or sample.ndim != 5:
        return
    need = sample.shape[0] * sample.shape[2]
    if ehs.shape[0] != need:
        raise ValueError(f"encoder_hidden_states has {ehs.shape[0]} rows; UNetMotionModel needs one per frame "
                         f"({sample.shape[0]} x {sample.shape[2]} = {need}): use "
                         f"anyi2v_lab.layout.per_frame(embeddings, num_frames={sample.shape[2]})")


def _step_of(pipe):
    def step_of(t: int) -> int | None:
        ts = getattr(pipe.scheduler, "timesteps", None)
        if ts is None:
            return None
        hits = (ts == t).nonzero()
        return int(hits[0, 0]) if len(hits) else None
    return step_of


def run_with_hooks(model, *args, edits: Mapping[str, EditFn] | None = None, **kwargs) -> Any:
    """Run ``model`` (a UNet or a pipeline) with edit functions installed; returns its output."""
    out, _ = run_with_cache(model, *args, names=(), edits=edits, **kwargs)
    return out


def run_with_cache(model, *args, names: Iterable[str], timesteps=None, steps=None, phases=None,
                   frames=None, branch: str | None = None, device=None, dtype: torch.dtype | None = None,
                   detach: bool = True, max_bytes: int | None = None,
                   edits: Mapping[str, EditFn] | None = None, stop_early: bool = False,
                   **kwargs) -> tuple[Any, ActivationCache]:
    """Run a UNet or Wan transformer forward (``model`` is one) or a whole generation (``model`` is a
    pipeline) and return ``(output, cache)``, the cache keyed by hook point name.

    ``stop_early`` ends a UNet forward after the last captured point (the output is then ``None``).
    The restriction arguments are those of :class:`~anyi2v_lab.hooks.Capture`.
    """
    unet, is_unet = _unet_of(model)
    names = tuple(names)
    capture = Capture(names, timesteps=timesteps, steps=steps, phases=phases, frames=frames, branch=branch,
                      device=device, dtype=dtype, detach=detach, max_bytes=max_bytes) if names else None
    if stop_early and not is_unet:
        raise ValueError("stop_early applies to a single UNet forward, not to a whole generation")
    if is_unet and not is_wan(unet):
        _check_embeddings(unet, args, kwargs)
    with hooked(unet, edits, capture, stop_after=names if stop_early else None,
                step_of=None if is_unet else _step_of(model)) as session:
        out = session.forward(*args, **kwargs) if is_unet else model(*args, **kwargs)
    return out, session.cache
