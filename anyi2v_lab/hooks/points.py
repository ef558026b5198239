"""The registry of hook points: a stable, printable name for every capturable tensor of a UNet
(a Wan transformer's are in :mod:`.wan`; :func:`hook_points` takes either).

Names are the diffusers module path plus a site, for example
``up_blocks.1.attentions.0.transformer_blocks.0.attn1.query`` or ``up_blocks.2.resnets.0.residual``.
They are listed by :func:`hook_points`, never assembled from strings elsewhere. Every name (and every
hook module path) has a short form, accepted wherever a name is (:func:`short_name` and
:func:`full_name`, table in :mod:`.naming`):
``up_blocks.1.attentions.0.transformer_blocks.0.attn1.query`` is ``up1.a0.t0.q`` and
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
from typing import Iterable

import torch.nn as nn

from .naming import SITES, HookPoint, full_name, short_name
from .wan import is_wan, wan_hook_points

__all__ = ["SITES", "HookPoint", "full_name", "short_name", "hook_points", "list_hook_points", "resolve",
           "up_self_attention", "up_resnets"]


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
    """Every hook point of a diffusers UNet (``UNet2DConditionModel`` or ``UNetMotionModel``) or Wan
    transformer (``WanTransformer3DModel``), in forward order. Works on the ``meta`` device."""
    if is_wan(unet):
        return wan_hook_points(unet)
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
