"""A hook point as a record, and the two printable forms of its name (full and short).

The registries (:mod:`.points` for UNets, :mod:`.wan` for Wan transformers) build the records; this
module only knows how a name reads. The short form converts one path segment at a time:

==========================================  =====================================================
full                                        short
==========================================  =====================================================
``down_blocks.i``, ``mid_block``,           ``down<i>``, ``mid``, ``up<i>``
``up_blocks.i``
``attentions.j``, ``resnets.j``,            ``a<j>``, ``r<j>``, ``m<j>``
``motion_modules.j``
``transformer_blocks.k.attn1``,             ``t<k>`` (self-attention), ``t<k>.x`` (cross-attention)
``transformer_blocks.k.attn2``
``blocks.i`` (Wan), ``attn1``, ``ffn``      ``b<i>``, ``sa``, ``ff``
sites input, query, key, value, probs,      ``in``, ``q``, ``k``, ``v``, ``p``, ``o``, ``res``
output, residual
==========================================  =====================================================

``attn1`` is implied only after a UNet's ``transformer_blocks.k``; a Wan block has its own output
point, so its self-attention is spelled out (``blocks.3.attn1.output`` is ``b3.sa.o``, ``blocks.3.output``
is ``b3.o``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

SITES = {
    "self_attention": ("input", "query", "key", "value", "probs", "output"),
    "cross_attention": ("probs", "output"),
    "resnet": ("residual", "output"),
    "motion": ("input", "output"),
    "feed_forward": ("output",),
    "block": ("output",),
    "unet": ("output",),
    "transformer": ("output",),
}
_SITE_SHORT = {"input": "in", "query": "q", "key": "k", "value": "v", "probs": "p", "output": "o",
               "residual": "res"}
_INDEXED_SHORT = {"down_blocks": "down", "up_blocks": "up", "attentions": "a", "resnets": "r",
                  "motion_modules": "m", "transformer_blocks": "t", "blocks": "b"}
_NAMED_SHORT = {"mid_block": "mid", "attn1": "sa", "attn2": "x", "ffn": "ff"}
_SITE_FULL = {v: k for k, v in _SITE_SHORT.items()}
_INDEXED_FULL = {v: k for k, v in _INDEXED_SHORT.items()}
_NAMED_FULL = {v: k for k, v in _NAMED_SHORT.items()}
_SHORT_INDEXED = re.compile(r"^([a-z]+)(\d+)$")


@dataclass(frozen=True)
class HookPoint:
    """One capturable tensor.

    ``module`` is the dotted path of the module that produces it (``""`` for the model itself),
    ``downscale`` its spatial size relative to the latent (``h = latent_h // downscale``; a Wan token's
    patch size), ``channels`` its last (tokens) or second (maps) dimension, ``heads`` the attention heads
    where relevant, and ``order`` its position in the forward pass.
    """

    name: str
    module: str
    kind: str
    site: str
    layout: str
    channels: int
    downscale: int
    heads: int = 0
    order: tuple = ()

    def __str__(self) -> str:
        return self.name

    @property
    def short(self) -> str:
        """The short form of :attr:`name` (see :func:`short_name`)."""
        return short_name(self.name)

    def shape(self, batch: int, frames: int, latent_hw: tuple[int, int], text_len: int = 77) -> tuple:
        """The tensor's shape in the model call (before any cache restriction); ``frames`` are latent frames."""
        h, w = latent_hw[0] // self.downscale, latent_hw[1] // self.downscale
        keys = text_len if self.kind == "cross_attention" else h * w
        if self.layout == "video":
            return (batch, self.channels, frames, h, w)
        if self.layout == "maps":
            return (batch * frames, self.channels, h, w)
        if self.layout == "tokens":
            return (batch * frames, h * w, self.channels)
        if self.layout == "sequence":  # a transformer's tokens: every frame in one sequence
            return (batch, frames * h * w, self.channels)
        if self.layout == "sequence_probs":
            return (batch, self.heads, frames * h * w, keys if self.kind == "cross_attention" else frames * keys)
        return (batch * frames, self.heads, h * w, keys)


def short_name(name: str) -> str:
    """The short form of a hook point name or hook module path (``up1.a0.t0.q`` for
    ``up_blocks.1.attentions.0.transformer_blocks.0.attn1.query``, ``b3.sa.q`` for ``blocks.3.attn1.query``);
    a name outside the scheme comes back unchanged. Inverse of :func:`full_name`."""
    parts = name.split(".")
    site = _SITE_SHORT.get(parts[-1]) if len(parts) > 1 else None
    module, out, i = parts[:-1] if site else parts, [], 0
    while i < len(module):
        seg, index = module[i], module[i + 1] if i + 1 < len(module) else ""
        if seg in _INDEXED_SHORT and index.isdigit():
            out.append(_INDEXED_SHORT[seg] + index)
            i += 2
            continue
        # attn1 is a transformer block's default attention: full_name puts it back after a t<k>
        implied = seg == "attn1" and i >= 2 and module[i - 2] == "transformer_blocks"
        if not implied and seg not in _NAMED_SHORT:
            return name
        out += [] if implied else [_NAMED_SHORT[seg]]
        i += 1
    return ".".join([*out, site] if site else out)


def full_name(name: str) -> str:
    """The full hook point name (or module path) of a short one; a full name, or any name outside the
    scheme, comes back unchanged. Inverse of :func:`short_name`."""
    parts = name.split(".")
    site = _SITE_FULL.get(parts[-1]) if len(parts) > 1 else None
    out: list[str] = []
    for seg in parts[:-1] if site else parts:
        indexed = _SHORT_INDEXED.match(seg)
        if indexed and indexed[1] in _INDEXED_FULL:
            out += [_INDEXED_FULL[indexed[1]], indexed[2]]
        elif seg in _NAMED_FULL:
            out.append(_NAMED_FULL[seg])
        else:
            return name
    if out[-2:-1] == ["transformer_blocks"]:
        out.append("attn1")
    return ".".join([*out, site] if site else out)
