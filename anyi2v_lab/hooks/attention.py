"""An attention processor that exposes a spatial attention layer's internals as hook points.

It is installed per module by :class:`~anyi2v_lab.hooks.session.HookSession` (never class-wide) and
computes exactly what diffusers' ``AttnProcessor2_0`` computes, in the same order, so a hooked layer
whose edits change nothing gives bit-identical outputs. Attention probabilities are materialised only
when a ``probs`` point is hooked; otherwise the layer runs fused SDPA.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from .points import HookPoint

Fire = Callable[[HookPoint, torch.Tensor], torch.Tensor]


class HookedAttnProcessor:
    """Fires the ``input``, ``query``, ``key``, ``value``, ``probs`` and ``output`` points of one layer.

    ``probs`` reach edits as ``(B*F, heads, N, M)``.
    """

    def __init__(self, points: dict[str, HookPoint], fire: Fire, original):
        self.points = points
        self.fire = fire
        self.original = original  # restored on exit

    def _maybe(self, site: str, x: torch.Tensor) -> torch.Tensor:
        point = self.points.get(site)
        return x if point is None else self.fire(point, x)

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None,
                 *args, **kwargs):
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            batch_size, channel, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch_size, channel, height * width).transpose(1, 2)
        batch_size, sequence_length, _ = (
            hidden_states.shape if encoder_hidden_states is None else encoder_hidden_states.shape)
        if attention_mask is not None:
            attention_mask = attn.prepare_attention_mask(attention_mask, sequence_length, batch_size)
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)

        hidden_states = self._maybe("input", hidden_states)
        query = self._maybe("query", attn.to_q(hidden_states))
        if encoder_hidden_states is None:
            encoder_hidden_states = hidden_states
        elif attn.norm_cross:
            encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
        key = self._maybe("key", attn.to_k(encoder_hidden_states))
        value = self._maybe("value", attn.to_v(encoder_hidden_states))

        heads = attn.heads
        head_dim = key.shape[-1] // heads
        if "probs" in self.points:
            q, k, v = (attn.head_to_batch_dim(t) for t in (query, key, value))
            probs = attn.get_attention_scores(q, k, attention_mask)  # (B*heads, N, M)
            probs = self.fire(self.points["probs"], probs.view(-1, heads, *probs.shape[1:]))
            hidden_states = attn.batch_to_head_dim(torch.bmm(probs.flatten(0, 1), v))
        else:
            q = query.view(batch_size, -1, heads, head_dim).transpose(1, 2)
            k = key.view(batch_size, -1, heads, head_dim).transpose(1, 2)
            v = value.view(batch_size, -1, heads, head_dim).transpose(1, 2)
            if attn.norm_q is not None:
                q = attn.norm_q(q)
            if attn.norm_k is not None:
                k = attn.norm_k(k)
            mask = None
            if attention_mask is not None:
                mask = attention_mask.view(batch_size, heads, -1, attention_mask.shape[-1])
            hidden_states = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=0.0,
                                                           is_causal=False)
            hidden_states = hidden_states.transpose(1, 2).reshape(batch_size, -1, heads * head_dim)
        hidden_states = hidden_states.to(query.dtype)
        hidden_states = attn.to_out[1](attn.to_out[0](hidden_states))
        hidden_states = self._maybe("output", hidden_states)

        if input_ndim == 4:
            hidden_states = hidden_states.transpose(-1, -2).reshape(batch_size, channel, height, width)
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor
