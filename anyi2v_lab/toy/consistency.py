"""A training term for the toy model: its features of a condition image should say where objects are,
as its features of the RGB frame do.

AnyI2V assumes that a text-to-image model's decoder features of a canny map, a depth map or a sketch
carry the layout the way its features of a photo do. SD1.5 learned that from the variety of its data;
the toy model learned each condition modality as a style of its own, and injecting its features of a
sketch draws outlines, not objects (``benchmarks/README.md``, "The modality gap"). This term pulls the
features the method injects (the residual branch of the decoder's ResNets and the queries of its
self-attentions, ``AnyI2VConfig``'s default layers), computed for a condition image, towards the same
features of the scene's RGB frame at the same noise, timestep and caption. The RGB side is detached:
the model's own image features are the target and are not pulled towards the condition's.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn as nn

from ..method.config import ATTN_LAYERS, RES_LAYERS


def consistency_modules(res_layers=RES_LAYERS, attn_layers=ATTN_LAYERS) -> list[str]:
    """Submodule paths whose outputs are compared: each ResNet's ``conv2`` (its residual branch, what the
    method's residual injection replaces) and each self-attention's ``to_q`` (the injected query)."""
    return [f"{r}.conv2" for r in res_layers] + [f"{a}.to_q" for a in attn_layers]


@contextmanager
def capturing(net: nn.Module, names: list[str]):
    """Yield a dict filled, on each forward, with the outputs of ``net``'s submodules ``names`` (with their
    graph: the loss trains through them). The hooks are removed on exit, also after an error."""
    out: dict[str, torch.Tensor] = {}
    modules = dict(net.named_modules())
    missing = [n for n in names if n not in modules]
    if missing:
        raise KeyError(f"no submodules {missing} in {type(net).__name__}")
    handles = [modules[n].register_forward_hook(lambda m, i, o, n=n: out.__setitem__(n, o)) for n in names]
    try:
        yield out
    finally:
        for h in handles:
            h.remove()


def feature_consistency(rgb: dict[str, torch.Tensor], cond: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean over layers of ``|f_cond - f_rgb|^2 / var(f_rgb)``; ``f_rgb`` detached. Each map is any shape
    with the batch first; 0 when the condition's features equal the frame's."""
    terms = []
    for name, target in rgb.items():
        target = target.detach().float()
        terms.append((cond[name].float() - target).pow(2).mean() / (target.var() + 1e-6))
    return torch.stack(terms).mean()
