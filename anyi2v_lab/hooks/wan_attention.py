"""An attention processor that exposes a Wan attention layer's internals as hook points.

Installed per module by :class:`~anyi2v_lab.hooks.session.HookSession` in place of diffusers'
``WanAttnProcessor``, it runs the same operations in the same order (the same projection helper, q/k
RMS norms, 3D RoPE and attention dispatch, with the original processor's backend), so a hooked layer
whose edits change nothing gives bit-identical outputs. Probabilities are materialised only when a
``probs`` point is hooked; the layer then attends by an explicit softmax.
"""
from __future__ import annotations

from typing import Callable

import torch
from diffusers.models.attention_dispatch import dispatch_attention_fn
from diffusers.models.transformers.transformer_wan import _get_added_kv_projections, _get_qkv_projections

from .naming import HookPoint

Fire = Callable[[HookPoint, torch.Tensor], torch.Tensor]
TEXT_TOKENS = 512  # Wan's I2V layers split the context here, as diffusers does


def rotate(x: torch.Tensor, freqs_cos: torch.Tensor, freqs_sin: torch.Tensor) -> torch.Tensor:
    """Wan's RoPE on ``(B, L, heads, D)``, written as diffusers writes it (pairs interleaved)."""
    x1, x2 = x.unflatten(-1, (-1, 2)).unbind(-1)
    cos, sin = freqs_cos[..., 0::2], freqs_sin[..., 1::2]
    out = torch.empty_like(x)
    out[..., 0::2] = x1 * cos - x2 * sin
    out[..., 1::2] = x1 * sin + x2 * cos
    return out.type_as(x)


class HookedWanAttnProcessor:
    """Fires ``input``, ``query``, ``key``, ``value``, ``probs`` and ``output`` of one Wan attention layer
    (those of its sites that are hooked). ``probs`` reach edits as ``(B, heads, L, M)``."""

    def __init__(self, points: dict[str, HookPoint], fire: Fire, original):
        self.points = points
        self.fire = fire
        self.original = original  # restored on exit; its attention backend is used meanwhile

    def _maybe(self, site: str, x: torch.Tensor) -> torch.Tensor:
        point = self.points.get(site)
        return x if point is None else self.fire(point, x)

    def _attend(self, q, k, v, mask, parallel: bool) -> torch.Tensor:
        if "probs" in self.points:
            scores = q.transpose(1, 2) @ k.transpose(1, 2).transpose(-1, -2) * q.shape[-1] ** -0.5
            if mask is not None:
                scores = scores + mask
            probs = self.fire(self.points["probs"], scores.float().softmax(-1).to(q.dtype))
            return (probs @ v.transpose(1, 2)).transpose(1, 2)
        return dispatch_attention_fn(q, k, v, attn_mask=mask, dropout_p=0.0, is_causal=False,
                                     backend=getattr(self.original, "_attention_backend", None),
                                     parallel_config=getattr(self.original, "_parallel_config", None) if parallel
                                     else None)

    def _image(self, attn, q: torch.Tensor, context_img: torch.Tensor) -> torch.Tensor:
        key_img, value_img = _get_added_kv_projections(attn, context_img)
        key_img = attn.norm_added_k(key_img).unflatten(2, (attn.heads, -1))
        value_img = value_img.unflatten(2, (attn.heads, -1))
        out = dispatch_attention_fn(q, key_img, value_img, attn_mask=None, dropout_p=0.0, is_causal=False,
                                    backend=getattr(self.original, "_attention_backend", None), parallel_config=None)
        return out.flatten(2, 3).type_as(q)

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, rotary_emb=None,
                 **kwargs):
        self_attention = encoder_hidden_states is None
        context_img = None
        if attn.add_k_proj is not None:
            n_img = encoder_hidden_states.shape[1] - TEXT_TOKENS
            context_img, encoder_hidden_states = encoder_hidden_states[:, :n_img], encoder_hidden_states[:, n_img:]
        hidden_states = self._maybe("input", hidden_states)
        query, key, value = _get_qkv_projections(attn, hidden_states, encoder_hidden_states)
        query = self._maybe("query", attn.norm_q(query))
        key = self._maybe("key", attn.norm_k(key))
        value = self._maybe("value", value)
        q, k, v = (x.unflatten(2, (attn.heads, -1)) for x in (query, key, value))
        if rotary_emb is not None:
            q, k = rotate(q, *rotary_emb), rotate(k, *rotary_emb)
        image = None if context_img is None else self._image(attn, q, context_img)
        out = self._attend(q, k, v, attention_mask, parallel=self_attention).flatten(2, 3).type_as(q)
        if image is not None:
            out = out + image
        out = attn.to_out[1](attn.to_out[0](out))
        return self._maybe("output", out)
