"""A training term for the toy model: its features of a condition image should say where objects are,
as its features of the RGB frame do.

AnyI2V assumes that a text-to-image model's decoder features of a canny map, a depth map or a sketch
carry the layout the way its features of a photo do. SD1.5 learned that from the variety of its data;
a toy model trained on denoising alone learns each condition modality as a style of its own, and
injecting its features of a sketch draws outlines, not objects. This term pulls the features the method
injects (the residual branch of the decoder's ResNets and the queries of its self-attentions,
``AnyI2VConfig``'s default layers), computed for a condition image, towards the same features of the
scene's RGB frame at the same noise, timestep and caption. The RGB side is detached: the model's own
image features are the target and are not pulled towards the condition's.

``centred`` compares the maps less each channel's spatial mean (:func:`structure`). The raw maps also
differ by what an outline cannot say (the objects' colours, the background) and by the condition's own
style; those offsets dominate the raw term's variance at some layers, so pulling the raw maps together
leaves their layout apart (``benchmarks/toy_feature_gap.py`` measures this). The centred term asks for
the layout alone; the committed weights were trained with it (``training/recipe.md``).
"""
from __future__ import annotations

import torch

from anyi2v_lab.method.config import ATTN_LAYERS, RES_LAYERS


def consistency_points(res_layers=RES_LAYERS, attn_layers=ATTN_LAYERS) -> tuple[str, ...]:
    """The hook points compared: the tensors the method's injection replaces, each ResNet's residual
    branch and each self-attention's query."""
    return tuple(f"{r}.residual" for r in res_layers) + tuple(f"{a}.query" for a in attn_layers)


def structure(name: str, x: torch.Tensor) -> torch.Tensor:
    """A captured map less each channel's spatial mean (residuals ``(..., C, h, w)``, queries ``(..., h*w, C)``,
    told apart by the hook point's name). What is left says where things are, not the map's overall look:
    colours and background, which an outline cannot give, and the condition's own style."""
    return x - x.mean(dim=(-2, -1) if name.endswith(".residual") else -2, keepdim=True)


def feature_consistency(rgb: dict[str, torch.Tensor], cond: dict[str, torch.Tensor],
                        centred: bool = False) -> torch.Tensor:
    """Mean over layers of ``|f_cond - f_rgb|^2 / var(f_rgb)``; ``f_rgb`` detached. Each map is any shape
    with the batch first (``centred``: a hook point's map, compared after :func:`structure`); 0 when the
    condition's features equal the frame's."""
    terms = []
    for name, target in rgb.items():
        target, feat = target.detach().float(), cond[name].float()
        if centred:
            target, feat = structure(name, target), structure(name, feat)
        terms.append((feat - target).pow(2).mean() / (target.var() + 1e-6))
    return torch.stack(terms).mean()
