"""Inversion of the condition image by the inverse flow ODE, for its features only (experimental).

The condition is encoded alone, as Wan's causal VAE encodes video frame 0 (one latent frame), and
carried from ``sigma = 0`` to ``config.inversion_sigma`` by Euler steps of the flow ODE run backwards,
``x <- x + (sigma_next - sigma) v(x, sigma)``, with the generation prompt and no CFG. A last call at
``inversion_sigma`` captures the chosen blocks' outputs and self-attention queries, keys and values on
that latent frame: the features injected into latent frame 0 while sampling. (The UNet version's DDIM
inversion is :mod:`anyi2v_lab.method.inversion`.)
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ...hooks import Capture, hooked
from .config import WanAnyI2VConfig


@dataclass(kw_only=True)
class WanFeatures:
    """The condition's features per hook point name, each ``(h, w, C)`` on the token grid of one latent
    frame; the noise level they were taken at, and the inverted latent ``(1, 16, 1, h, w)``."""

    tensors: dict[str, torch.Tensor]
    sigma: float
    latent: torch.Tensor


def feature_names(config: WanAnyI2VConfig) -> list[str]:
    """The hook points the injection reads, per injected block."""
    sites = ([("", "output")] if config.inject_output else []) + \
        [("attn1.", s) for s, on in (("query", config.inject_query), ("key", config.inject_kv),
                                     ("value", config.inject_kv)) if on]
    return [f"blocks.{b}.{sub}{site}" for b in config.inject_blocks for sub, site in sites]


def latent_stats(vae, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Wan's per-channel latent mean and std ``(1, 16, 1, 1, 1)`` (the model sees ``(z - mean) / std``)."""
    shape = (1, vae.config.z_dim, 1, 1, 1)
    mean = torch.tensor(vae.config.latents_mean).view(shape).to(like)
    std = torch.tensor(vae.config.latents_std).view(shape).to(like)
    return mean, std


@torch.no_grad()
def encode_condition(vae, pixels: torch.Tensor) -> torch.Tensor:
    """``(1, 3, H, W)`` in [-1, 1] -> the normalised latent ``(1, 16, 1, H/8, W/8)`` (the posterior's mode,
    as Wan's I2V pipeline takes it), fp32."""
    dist = vae.encode(pixels[:, :, None].to(device=vae.device, dtype=vae.dtype)).latent_dist
    latent = dist.mode().float()
    mean, std = latent_stats(vae, latent)
    return (latent - mean) / std


@torch.no_grad()
def invert_flow(transformer, latent: torch.Tensor, embeds: torch.Tensor, config: WanAnyI2VConfig,
                num_train_timesteps: int = 1000) -> WanFeatures:
    """Carry ``latent`` ``(1, 16, 1, h, w)`` up the inverse flow ODE to ``config.inversion_sigma`` in
    ``config.inversion_steps`` Euler steps and capture :func:`feature_names` there (conditional
    embeddings ``(1, T, D)``, no CFG)."""
    x = latent.float()
    embeds = embeds.to(transformer.dtype)
    sigmas = torch.linspace(0, config.inversion_sigma, config.inversion_steps + 1).tolist()
    for a, b in zip(sigmas, sigmas[1:]):
        t = torch.tensor([a * num_train_timesteps], device=x.device)
        v = transformer(x.to(transformer.dtype), t, embeds, return_dict=False)[0].float()
        x = x + (b - a) * v
    names = feature_names(config)
    tensors = {}
    if names:
        t = torch.tensor([config.inversion_sigma * num_train_timesteps], device=x.device)
        with hooked(transformer, capture=Capture(tuple(names), frames=(0,)), stop_after=names,
                    phase="inversion") as session:
            with session.calling(branches=("cond",), step_index=None):
                session.forward(x.to(transformer.dtype), t, embeds, return_dict=False)
        tensors = {n: session.cache[n][0, 0] for n in names}  # (B, F, h, w, C) -> (h, w, C) of frame 0
    return WanFeatures(tensors=tensors, sigma=config.inversion_sigma, latent=x)
