"""The registry of hook points: a stable, printable name for every capturable tensor of a UNet.

Names are the diffusers module path plus a site, for example
``up_blocks.1.attentions.0.transformer_blocks.0.attn1.query`` or ``up_blocks.2.resnets.0.residual``.
They are listed by :func:`hook_points`, never assembled from strings elsewhere. Every name (and every
hook module path) has a short form, accepted wherever a name is: :func:`short_name` and
:func:`full_name` convert between them, one path segment at a time:

==========================================  =====================================================
full                                        short
==========================================  =====================================================
``down_blocks.i``, ``mid_block``,           ``down<i>``, ``mid``, ``up<i>``
``up_blocks.i``
``attentions.j``, ``resnets.j``,            ``a<j>``, ``r<j>``, ``m<j>``
``motion_modules.j``
``transformer_blocks.k.attn1``,             ``t<k>`` (self-attention), ``t<k>.x`` (cross-attention)
``transformer_blocks.k.attn2``
sites input, query, key, value, probs,      ``in``, ``q``, ``k``, ``v``, ``p``, ``o``, ``res``
output, residual
==========================================  =====================================================

so ``up_blocks.1.attentions.0.transformer_blocks.0.attn1.query`` is ``up1.a0.t0.q`` and
``mid_block.resnets.1.residual`` is ``mid.r1.res``; the UNet's ``output`` has no shorter form.

=================  ===========================================  ==============================
kind               sites                                        tensor layout (per UNet call)
=================  ===========================================  ==============================
self_attention     input, query, key, value, probs, output      tokens ``(B*F, N, C)``;
                                                                probs ``(B*F, heads, N, N)``
cross_attention    probs, output                                probs ``(B*F, heads, N, T)``
resnet             residual (conv2 output, before the           maps ``(B*F, C, h, w)``
                   shortcut), output
motion             input, output                                maps ``(B*F, C, h, w)``
unet               output (the UNet's prediction)               video ``(B, C, F, H, W)``
=================  ===========================================  ==============================

Only spatial attention counts as attention here: the temporal attentions inside motion modules are
reached through the motion module's input and output.
"""
from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from typing import Iterable

import torch.nn as nn

SITES = {
    "self_attention": ("input", "query", "key", "value", "probs", "output"),
    "cross_attention": ("probs", "output"),
    "resnet": ("residual", "output"),
    "motion": ("input", "output"),
    "unet": ("output",),
}
_SITE_SHORT = {"input": "in", "query": "q", "key": "k", "value": "v", "probs": "p", "output": "o",
               "residual": "res"}
_INDEXED_SHORT = {"down_blocks": "down", "up_blocks": "up", "attentions": "a", "resnets": "r",
                  "motion_modules": "m", "transformer_blocks": "t"}
_NAMED_SHORT = {"mid_block": "mid", "attn2": "x"}
_SITE_FULL = {v: k for k, v in _SITE_SHORT.items()}
_INDEXED_FULL = {v: k for k, v in _INDEXED_SHORT.items()}
_NAMED_FULL = {v: k for k, v in _NAMED_SHORT.items()}
_SHORT_INDEXED = re.compile(r"^([a-z]+)(\d+)$")


@dataclass(frozen=True)
class HookPoint:
    """One capturable tensor.

    ``module`` is the dotted path of the module that produces it (``""`` for the UNet itself),
    ``downscale`` its spatial size relative to the latent (``h = latent_h // downscale``), ``channels``
    its last (tokens) or second (maps) dimension, ``heads`` the attention heads where relevant, and
    ``order`` its position in the forward pass.
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
        """The tensor's shape in the UNet call (before any cache restriction)."""
        h, w = latent_hw[0] // self.downscale, latent_hw[1] // self.downscale
        if self.layout == "video":
            return (batch, self.channels, frames, h, w)
        if self.layout == "maps":
            return (batch * frames, self.channels, h, w)
        if self.layout == "tokens":
            return (batch * frames, h * w, self.channels)
        keys = text_len if self.kind == "cross_attention" else h * w
        return (batch * frames, self.heads, h * w, keys)


def short_name(name: str) -> str:
    """The short form of a hook point name or hook module path (``up1.a0.t0.q`` for
    ``up_blocks.1.attentions.0.transformer_blocks.0.attn1.query``); a name outside the scheme comes
    back unchanged. Inverse of :func:`full_name`."""
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


def _block_order(path: str) -> tuple:
    """Sort key following the forward pass: down blocks, mid block, up blocks; inside a block the
    j-th resnet, then the j-th attention, then the j-th motion module."""
    parts = path.split(".")
    top = parts[0]
    if top == "down_blocks":
        rank, rest = (1, int(parts[1])), parts[2:]
    elif top == "mid_block":
        rank, rest = (2, 0), parts[1:]
    elif top == "up_blocks":
        rank, rest = (3, int(parts[1])), parts[2:]
    else:
        return (9, 0, 0, 0)
    kind, j = rest[0], int(rest[1]) if len(rest) > 1 and rest[1].isdigit() else 0
    sub = {"resnets": 0, "attentions": 1, "motion_modules": 2}.get(kind, 3)
    if top == "mid_block" and kind == "resnets" and j > 0:  # mid: resnet0, (attn_i, motion_i, resnet_i+1)
        j, sub = j - 1, 3
    return (*rank, j, sub)


def _downscale(path: str, n_down: int, n_up: int) -> int:
    parts = path.split(".")
    if parts[0] == "down_blocks":
        return 2 ** int(parts[1])
    if parts[0] == "mid_block":
        return 2 ** (n_down - 1)
    if parts[0] == "up_blocks":
        return 2 ** (n_up - 1 - int(parts[1]))
    return 1


_SPATIAL_ATTN = re.compile(r"^(down_blocks\.\d+|mid_block|up_blocks\.\d+)\.attentions\.\d+\..*\.attn[12]$")
_RESNET = re.compile(r"^(down_blocks\.\d+|mid_block|up_blocks\.\d+)\.resnets\.\d+$")
_MOTION = re.compile(r"^(down_blocks\.\d+|mid_block|up_blocks\.\d+)\.motion_modules\.\d+$")


def hook_points(unet: nn.Module) -> list[HookPoint]:
    """Every hook point of a diffusers UNet (``UNet2DConditionModel`` or ``UNetMotionModel``), in
    forward order. Works on the ``meta`` device."""
    n_down, n_up = len(unet.down_blocks), len(unet.up_blocks)
    points: list[HookPoint] = []
    for path, module in unet.named_modules():
        kind_match = _SPATIAL_ATTN.match(path) or _RESNET.match(path) or _MOTION.match(path)
        if not kind_match:
            continue
        order = _block_order(path)
        scale = _downscale(path, n_down, n_up)
        if _SPATIAL_ATTN.match(path):
            cross = path.endswith("attn2")
            kind = "cross_attention" if cross else "self_attention"
            for i, site in enumerate(SITES[kind]):
                layout = "probs" if site == "probs" else "tokens"
                ch = module.to_q.in_features if site == "input" else module.to_q.out_features
                if site == "output":
                    ch = module.to_out[0].out_features
                points.append(HookPoint(name=f"{path}.{site}", module=path, kind=kind, site=site, layout=layout,
                                        channels=ch, downscale=scale, heads=module.heads,
                                        order=(*order, int(cross), i)))
        elif _RESNET.match(path):
            for i, site in enumerate(SITES["resnet"]):
                points.append(HookPoint(name=f"{path}.{site}", module=path, kind="resnet", site=site, layout="maps",
                                        channels=module.conv2.out_channels, downscale=scale, heads=0,
                                        order=(*order, 0, i)))
        elif _MOTION.match(path):
            for i, site in enumerate(SITES["motion"]):
                points.append(HookPoint(name=f"{path}.{site}", module=path, kind="motion", site=site, layout="maps",
                                        channels=module.in_channels, downscale=scale, heads=0, order=(*order, 0, i)))
    points.sort(key=lambda p: p.order)
    out_ch = unet.conv_out.out_channels
    points.append(HookPoint(name="output", module="", kind="unet", site="output", layout="video", channels=out_ch,
                            downscale=1, heads=0, order=(9, 9, 9, 9)))
    return points


def list_hook_points(unet: nn.Module, pattern: str | None = None, kind: str | None = None,
                     site: str | None = None) -> list[str]:
    """Names of hook points, optionally filtered by a glob ``pattern`` over the full or the short names
    (``"up_blocks.1.*.query"``, ``"up1.*.q"``), a ``kind`` (see :data:`SITES`) and a ``site``."""
    if kind is not None and kind not in SITES:
        raise ValueError(f"kind={kind!r} is unknown; use one of {sorted(SITES)}")
    return [p.name for p in hook_points(unet)
            if (pattern is None or _matches(p, pattern))
            and (kind is None or p.kind == kind) and (site is None or p.site == site)]


def _matches(point: HookPoint, pattern: str) -> bool:
    return fnmatch.fnmatchcase(point.name, pattern) or fnmatch.fnmatchcase(point.short, pattern)


def resolve(points: dict[str, HookPoint], names: Iterable[str]) -> list[HookPoint]:
    """Look full or short names up, expanding globs; an unknown name is an error with close matches
    suggested."""
    out: list[HookPoint] = []
    for name in names:
        if any(ch in name for ch in "*?["):
            hits = [p for p in points.values() if _matches(p, name)]
            if not hits:
                raise KeyError(f"pattern {name!r} matches no hook point; list them with list_hook_points(unet)")
            out.extend(hits)
        elif full_name(name) in points:
            out.append(points[full_name(name)])
        else:
            import difflib
            close = difflib.get_close_matches(name, [*points, *(p.short for p in points.values())], n=3)
            raise KeyError(f"{name!r} is not a hook point of this UNet"
                           + (f"; did you mean {close}?" if close else "; list them with list_hook_points(unet)"))
    seen: dict[str, HookPoint] = {}
    for p in out:
        seen.setdefault(p.name, p)
    return sorted(seen.values(), key=lambda p: p.order)


# The paper's layers (docs/method.md §1, layer names), named rather than counted: the reference numbers
# up-path layers by walking named_modules, which is fragile; these names are what its default lists mean.
def up_self_attention(unet: nn.Module) -> list[str]:
    """Module paths of the up-path spatial self-attentions (the reference's ``self_attn_k``)."""
    return [p.module for p in hook_points(unet)
            if p.kind == "self_attention" and p.site == "query" and p.module.startswith("up_blocks.")]


def up_resnets(unet: nn.Module) -> list[str]:
    """Module paths of the up-path ResNets (the reference's ``ResnetBlock_k``)."""
    return [p.module for p in hook_points(unet)
            if p.kind == "resnet" and p.site == "output" and p.module.startswith("up_blocks.")]
