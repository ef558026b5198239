"""The calls :func:`~anyi2v_lab.method.generate` makes on the model, plain and eager.

``generate(..., runtime=r)`` runs with ``r.bind(pipe)`` instead: an object with these methods whose
calls compute the same, faster or leaner (``anyi2v_lab.accel.Runtime`` binds replayed CUDA graphs,
compiled blocks, overlapped PCA fits and a phase timer), as diffusers attaches caches and hooks to a
model from outside. The method itself never branches on how it is run.
"""
from __future__ import annotations

from contextlib import nullcontext
from typing import Callable, ContextManager

import torch

from .config import AnyI2VConfig
from .inversion import eager_denoiser
from .optimize import PassInputs, eager_passes


class EagerCalls:
    """Plain calls: every UNet call launched from Python, no timer (``record.timings`` stays empty)."""

    decode_chunk = 4  # frames per VAE call: a quarter of the 16-frame decode's peak memory

    def __init__(self, pipe):
        self.pipe = pipe

    def running(self, config: AnyI2VConfig, optimises: bool) -> ContextManager:
        """Held around a whole generation (a runtime's process settings)."""
        return nullcontext()

    def phase(self, name: str) -> ContextManager:
        """Held around each phase: ``total``, ``inversion``, ``optimisation``, ``sampling``, ``decode``."""
        return nullcontext()

    def timings(self) -> dict[str, float]:
        """Seconds per phase, read once at the end."""
        return {}

    def inversion_denoiser(self, unet, latent: torch.Tensor, embeds: torch.Tensor) -> Callable:
        """``eps(x, t)`` of the inversion's hook-free single-frame calls (see :func:`invert`)."""
        return eager_denoiser(unet, latent, embeds)

    def sampling_denoiser(self, session) -> Callable:
        """``eps(x, t, embeds)`` of a sampling step: the UNet's prediction, fp32, through ``session``, the
        run's hook session (:func:`~anyi2v_lab.hooks.hooked`) installed on the UNet."""
        unet = self.pipe.unet
        return lambda x, t, embeds: unet(x.to(unet.dtype), t, encoder_hidden_states=embeds).sample.float()

    def optimisation_passes(self, inputs: PassInputs) -> ContextManager:
        """A context yielding one denoising step's :class:`~anyi2v_lab.method.optimize.Passes`."""
        return eager_passes(inputs)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """``(1, 4, F, h, w)`` latents -> ``(1, 3, F, H, W)`` fp32 video."""
        chunk = min(self.decode_chunk, latents.shape[2])
        return self.pipe.decode_latents(latents.to(self.pipe.vae.dtype), decode_chunk_size=chunk)
