"""Named hook points on a diffusers UNet or Wan video transformer: list them, capture them, edit them.

>>> from anyi2v_lab.hooks import list_hook_points, run_with_cache
>>> names = list_hook_points(unet, pattern="up_blocks.1.*attn1.query")
>>> out, cache = run_with_cache(unet, sample, t, encoder_hidden_states=ehs, names=names)
>>> cache[names[0]].shape        # (B, F, N, C)
>>> short_name(names[0])         # 'up1.a0.t0.q', accepted wherever a name is

The same functions take a ``WanTransformer3DModel`` or a ``WanPipeline`` (points in :mod:`.wan`:
``blocks.3.attn1.query`` is ``b3.sa.q``; a token sequence is cached as ``(B, F, h, w, C)``).
"""
from .cache import ActivationCache, Capture, Entry
from .capture_size import capture_bytes, estimate_capture_bytes
from .context import CallInfo, HookContext
from .motion import bypass_motion
from .points import HookPoint, full_name, hook_points, list_hook_points, short_name, up_resnets, up_self_attention
from .run import run_with_cache, run_with_hooks
from .session import CaptureSizeWarning, HookError, HookPointNotFired, HookSession, StopForward, hooked, merge_edits

__all__ = [
    "ActivationCache", "Capture", "Entry", "CallInfo", "HookContext", "capture_bytes",
    "estimate_capture_bytes", "bypass_motion", "HookPoint", "full_name", "hook_points", "list_hook_points",
    "short_name", "up_resnets", "up_self_attention", "run_with_cache", "run_with_hooks", "CaptureSizeWarning",
    "HookError", "HookPointNotFired", "HookSession", "StopForward", "hooked", "merge_edits",
]
