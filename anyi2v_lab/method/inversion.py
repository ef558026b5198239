"""DDIM inversion of the condition image, for its features only (docs/method.md §1).

The condition is encoded as one frame, the motion modules are bypassed, the generation prompt is
used without CFG, and the inverse schedule steps 1, 2, ..., t_alpha (the reference's 999-step grid,
so 201 UNet calls for t_alpha = 201). The call at ``t = t_alpha`` sees the latent at noise level
``t_alpha - 1``; its residual branches and queries of the configured layers become the
:class:`FeatureBank`. The inverted latent itself is not used for generation (the paper starts from
noise: the end of the chain keeps too much appearance).

``schedule="fast"`` (not the reference) inverts in ``fast_inversion_steps`` coarse DDIM steps to level
``t_alpha - 1`` and then makes the same capture call, so the captured call has the reference's
semantics at about a twentieth of the cost; its features differ slightly from the exact chain's.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from ..hooks import Capture, bypass_motion, hooked
from ..models.scheduler import ddim_inverse_scheduler
from .config import AnyI2VConfig
from .ddim import predicted_x0
from .feature_bank import FeatureBank, InversionCache, model_fingerprint, scheduler_fingerprint, tensor_fingerprint
from .finite import FiniteTrail


@dataclass
class Inversion:
    """The bank, the latent the capture call saw (level ``t_alpha - 1``), and the UNet calls made."""

    bank: FeatureBank
    latent: torch.Tensor
    calls: int


def capture_names(config: AnyI2VConfig) -> list[str]:
    names = [f"{r}.residual" for r in config.res_layers] if config.inject_residual else []
    return names + ([f"{a}.query" for a in config.attn_layers] if config.inject_query else [])


@torch.no_grad()
def encode_image(vae, pixels: torch.Tensor, sample: bool = False,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """``(1, 3, H, W)`` in [-1, 1] -> scaled latent ``(1, 4, 1, h, w)`` (one frame).

    The posterior mean by default: the reference samples it without a seed, which makes inversion
    non-deterministic.
    """
    dist = vae.encode(pixels.to(device=vae.device, dtype=vae.dtype)).latent_dist
    latent = dist.sample(generator) if sample else dist.mean
    return (latent * vae.config.scaling_factor).unsqueeze(2).float()


def ddim_move(x: torch.Tensor, eps: torch.Tensor, alpha_from: torch.Tensor, alpha_to: torch.Tensor) -> torch.Tensor:
    """Deterministic DDIM transport of ``x`` from cumulative alpha ``alpha_from`` to ``alpha_to``."""
    return alpha_to.sqrt() * predicted_x0(x, eps, alpha_from) + (1 - alpha_to).sqrt() * eps


def eager_denoiser(unet, latent: torch.Tensor, embeds: torch.Tensor) -> Callable[[torch.Tensor, int], torch.Tensor]:
    """``eps(x, t)``: the UNet's noise prediction in fp32 for an fp32 latent like ``latent``. A runtime may
    hand :func:`invert` another ``denoiser`` that computes the same (a replayed CUDA graph)."""
    return lambda x, t: unet(x.to(unet.dtype), t, encoder_hidden_states=embeds).sample.float()


def invert(pipe, latent: torch.Tensor, embeds: torch.Tensor, config: AnyI2VConfig,
           progress: bool = True, denoiser: Callable = eager_denoiser,
           callback: Callable[[dict], None] | None = None) -> Inversion:
    """Invert a one-frame latent ``(1, 4, 1, h, w)`` with conditional embeddings ``(1, T, D)`` and
    capture the features of ``config``'s layers at ``config.inversion_timestep``. ``denoiser(unet,
    latent, embeds)`` makes the hook-free noise prediction ``eps(x, t)`` (:func:`eager_denoiser`).
    ``callback(state)`` sees every inversion step: ``phase`` "inversion", ``step_index``, ``timestep``,
    ``latent`` (before the step) and ``denoised``, the x0 estimate the step made from it."""
    from tqdm.auto import tqdm

    unet, t_alpha = pipe.unet, config.inversion_timestep
    embeds = embeds.to(device=unet.device, dtype=unet.dtype)
    latent = latent.to(unet.device).float()
    with bypass_motion(unet), torch.no_grad():
        eps = denoiser(unet, latent, embeds)
        if config.inversion_schedule == "reference":
            inverse = ddim_inverse_scheduler(pipe.scheduler)
            inverse.set_timesteps(999)
            steps = [int(t) for t in inverse.timesteps if t < t_alpha]
            for k, t in enumerate(tqdm(steps, desc="inversion", disable=not progress, leave=False)):
                out = inverse.step(eps(latent, t), t, latent)
                if callback is not None:
                    callback(dict(phase="inversion", step_index=k, timestep=t, latent=latent,
                                  denoised=out.pred_original_sample))
                latent = out.prev_sample
        else:
            alphas = pipe.scheduler.alphas_cumprod.to(latent.device)
            levels = torch.linspace(0, t_alpha - 1, config.fast_inversion_steps + 1).round().long().tolist()
            for k, (a, b) in enumerate(tqdm(list(zip(levels, levels[1:])), desc="inversion (fast)",
                                            disable=not progress, leave=False)):
                e = eps(latent, b)
                if callback is not None:
                    callback(dict(phase="inversion", step_index=k, timestep=b, latent=latent,
                                  denoised=predicted_x0(latent, e, alphas[a])))
                latent = ddim_move(latent, e, alphas[a], alphas[b])
        names = capture_names(config)
        cache = {}
        if names:  # the capture call stops after its last needed layer
            capture = Capture(tuple(names), branch="cond", frames=(0,), dtype=unet.dtype)
            with hooked(unet, capture=capture, stop_after=names, phase="inversion") as session:
                with session.calling(timestep=t_alpha, step_index=None):
                    session.forward(latent.to(unet.dtype), t_alpha, encoder_hidden_states=embeds)
            cache = session.cache
    bank = FeatureBank(
        residuals={r: cache[f"{r}.residual"][0, 0] for r in config.res_layers if config.inject_residual},
        queries={a: cache[f"{a}.query"][0, 0] for a in config.attn_layers if config.inject_query},
        timestep=t_alpha,
        meta={"schedule": config.inversion_schedule},
    )
    calls = (t_alpha if config.inversion_schedule == "reference" else config.fast_inversion_steps + 1)
    return Inversion(bank, latent, calls)


def settings_key(config: AnyI2VConfig) -> tuple:
    """What a bank depends on in ``config``: the inversion group's settings and the features captured."""
    return config.key("inversion"), tuple(capture_names(config))


def inversion_key(pipe, pixels: torch.Tensor, prompt: str, embeds: torch.Tensor, config: AnyI2VConfig) -> tuple:
    """Everything a bank depends on: the image, the prompt's embeddings (so also the text encoder), the
    UNet's and the VAE's every weight, the scheduler's config, dtype, device and the inversion settings.
    Read afresh at each call, so an in-place weight edit, a merged LoRA or a new scheduler gives a fresh
    inversion (:func:`~anyi2v_lab.method.feature_bank.model_fingerprint`)."""
    return (tensor_fingerprint(pixels), prompt, tensor_fingerprint(embeds), model_fingerprint(pipe.unet),
            model_fingerprint(pipe.vae), scheduler_fingerprint(pipe.scheduler), str(pipe.unet.dtype),
            str(pipe.unet.device), settings_key(config))


# One per process, shared by every pipeline (the keys name the model): a new seed or trajectory in a
# notebook reuses the inversion of an earlier generation.
shared_inversion_cache = InversionCache()


def clear_inversion_cache() -> None:
    """Forget the banks :func:`invert_cached` keeps by default, so that the next generation inverts again
    (a benchmark's cold start) and their memory is freed."""
    shared_inversion_cache.clear()


def invert_cached(pipe, pixels: torch.Tensor, prompt: str, embeds: torch.Tensor, config: AnyI2VConfig,
                  cache: InversionCache | None = shared_inversion_cache, progress: bool = True,
                  generator: torch.Generator | None = None, denoiser: Callable = eager_denoiser,
                  callback: Callable[[dict], None] | None = None) -> FeatureBank:
    """Encode the condition pixels and invert, reusing a bank computed for the same image, prompt,
    model and settings (:func:`inversion_key`; the features depend on neither the seed nor the
    trajectory) and kept in ``cache`` (by default the process's shared one, emptied by
    :func:`clear_inversion_cache`; ``None``: no caching). A sampled VAE posterior (``config.vae_sample``)
    is never cached. With a ``callback`` (:func:`invert`'s) the inversion runs, to show its steps, and its
    bank is cached. Non-finite features raise :class:`~anyi2v_lab.method.finite.NonFiniteError` and are
    not cached."""
    key = None if cache is None or config.vae_sample else inversion_key(pipe, pixels, prompt, embeds, config)
    if key is not None and callback is None and (bank := cache.get(key)) is not None:
        return bank
    latent = encode_image(pipe.vae, pixels, sample=config.vae_sample, generator=generator)
    bank = invert(pipe, latent, embeds, config, progress=progress, denoiser=denoiser, callback=callback).bank
    check_bank(bank, latent)
    if key is not None:
        cache.put(key, bank)
    return bank


def check_bank(bank: FeatureBank, latent: torch.Tensor | None = None) -> FeatureBank:
    """``bank``, after raising :class:`~anyi2v_lab.method.finite.NonFiniteError` naming the encoded condition
    ``latent`` or the first feature of ``bank`` that holds a NaN or an infinity (one host read)."""
    trail = FiniteTrail()
    if latent is not None:
        trail.add(latent, "the condition image's VAE latent")
    for kind, features in (("residual", bank.residuals), ("query", bank.queries)):
        for layer, x in features.items():
            trail.add(x, f"the inverted {kind} features of {layer}")
    trail.check()
    return bank
