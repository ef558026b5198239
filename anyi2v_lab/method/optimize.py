"""Zero-shot trajectory control by latent optimisation (docs/method.md §3).

Before each of the first ``opt_step + 1`` denoising steps, ``opt_iters`` times: run the UNet on the
conditional branch with injection on, up to the last aligned layer; reduce each aligned layer's
features by PCA (refit every iteration), read them on the alignment grid, compute the masked alignment
loss (the paper's Eq. 8) and take one step on the whole fp32 video latent.

The reference creates a fresh AdamW and GradScaler every iteration, so each update is one Adam step
from zero state: ``z <- z * (1 - lr * wd) - lr * g / (|g| + eps)``, a sign-gradient step of size lr
on every latent element. :func:`fresh_adamw_step` is that update in closed form (tested against
``torch.optim.AdamW``); a non-finite gradient skips the iteration, as GradScaler does silently.

:func:`optimise_latents` is the loop; the forward pass, the PCA fits and the loss are handed in as
callables (:class:`Passes`). :func:`eager_passes` makes them plainly; ``anyi2v_lab.accel`` makes
replayed, overlapped ones that compute the same.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, NamedTuple

import torch
import torch.nn as nn

from ..hooks import Capture, hooked
from .alignment import Alignment
from .config import AnyI2VConfig
from .feature_bank import FeatureBank
from .grid import aligned_features, layer_fits
from .injection import injection_edits
from .loss import LossParts, alignment_loss
from .loss_scaling import scaled_forward
from .record import InspectionRecord, Iteration


class Passes(NamedTuple):
    """One denoising step's optimisation calls. ``forward(leaf)``: the aligned layers' captured features
    ``[(1, F, ...)]``, in ``leaf``'s autograd graph; ``fit(captured)``: each layer's PCA fit, or ``None``
    (no PCA, or fitted inside ``loss``); ``loss(captured, fits)``: :class:`LossParts` and the kept PCA
    previews."""

    forward: Callable[[torch.Tensor], list[torch.Tensor]]
    fit: Callable[[list[torch.Tensor]], list | None]
    loss: Callable[[list[torch.Tensor], list | None], tuple[LossParts, list[torch.Tensor]]]


def optimise_latents(z: torch.Tensor, passes: Passes, config: AnyI2VConfig, region: torch.Tensor | None = None,
                     record: Callable | None = None) -> torch.Tensor:
    """``config.opt_iters`` steps of ``z <- z - lr * sign(grad_z L_align)`` (Eq. 8's loss, the reference's
    fresh-AdamW update) on the fp32 latent ``z`` ``(1, 4, F, h, w)``; returns the new latent.

    ``region`` restricts where ``z`` may change; ``record(iteration, parts, skipped, previews, z)`` sees
    every iteration. An iteration with no active mask cell or a non-finite gradient changes nothing. The
    backward runs on the loss scaled by ``config.loss_scale`` (:mod:`~anyi2v_lab.method.loss_scaling`).
    """
    update = latent_update(config, region)
    if config.loss_scale is not None:
        passes = passes._replace(forward=scaled_forward(passes.forward, config.loss_scale))
    for it in range(config.opt_iters):
        leaf = z.detach().requires_grad_(True)
        with torch.enable_grad():
            captured = passes.forward(leaf)                # the UNet with injection, to the last aligned layer
            fits = passes.fit(captured)                    # PCA of each aligned layer
            parts, previews = passes.loss(captured, fits)  # the masked alignment loss
            # a loss with no term (every box off the grid) is a constant: no gradient, nothing to move
            grad = torch.autograd.grad(parts.loss, leaf, allow_unused=True)[0] if parts.loss.requires_grad else None
        del captured
        grad = torch.zeros_like(leaf) if grad is None else grad
        ok = (parts.count > 0) & torch.isfinite(grad).all()
        z = torch.where(ok, update(z, grad), z).detach()  # no host sync: the skip is a select
        if record is not None:
            record(it, parts, ~ok, previews, z)
    return z


def fresh_adamw_step(z: torch.Tensor, grad: torch.Tensor, lr: float, weight_decay: float = 0.01,
                     eps: float = 1e-8) -> torch.Tensor:
    """One step of a freshly created ``torch.optim.AdamW([z], lr)`` (default betas, eps, decay)."""
    return z * (1 - lr * weight_decay) - lr * grad / (grad.abs() + eps)


def latent_update(config: AnyI2VConfig, region: torch.Tensor | None = None) -> Callable:
    """``update(z, grad) -> new z``: the reference's fresh-AdamW step, or (``optimizer="adam"``, not the
    reference) one AdamW kept across the iterations of a denoising step; only inside ``region``."""
    adam = None

    def update(z: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        nonlocal adam
        if config.optimizer == "fresh_adamw":
            new = fresh_adamw_step(z, grad, config.lr)
        else:
            adam = adam or torch.optim.AdamW([z.detach().clone().requires_grad_(True)], lr=config.lr)
            new = _persistent_step(adam, z, grad)
        return new if region is None else z + (new - z) * region
    return update


def _persistent_step(adam: torch.optim.AdamW, z: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    param = adam.param_groups[0]["params"][0]
    with torch.no_grad():
        param.copy_(z)
    param.grad = torch.nan_to_num(grad)
    adam.step()
    return param.detach().clone()


def capture_sites(config: AnyI2VConfig) -> list[str]:
    """The hook points whose features the loss aligns: each aligned layer's query or residual."""
    site = "query" if config.opt_target == "query" else "residual"
    return [f"{layer}.{site}" for layer in config.align_layers]


@dataclass(kw_only=True)
class PassInputs:
    """Everything one denoising step's optimisation passes depend on.

    ``inject``: the passes run with the injection edits of the sampling steps (docs/method.md §2);
    ``features`` the inverted features they inject (``None``: none, as with K/V consistency alone);
    ``embeds`` the conditional embeddings per frame ``(F, T, D)``; ``keep_masks`` and ``keep_pca`` keep
    each iteration's loss masks and PCA maps."""

    unet: nn.Module
    inject: bool
    features: FeatureBank | None
    alignment: Alignment
    config: AnyI2VConfig
    embeds: torch.Tensor
    timestep: int
    step_index: int
    keep_masks: bool = False
    keep_pca: bool = False

    @property
    def names(self) -> list[str]:
        return capture_sites(self.config)

    @property
    def edits(self) -> dict[str, list]:
        """The injection edits of the passes, made from ``features`` (none when ``inject`` is off)."""
        return injection_edits(self.features, self.config) if self.inject else {}

    @property
    def call(self) -> dict:
        """What :meth:`HookSession.calling` is told of each pass (the conditional branch alone)."""
        return dict(timestep=self.timestep, step_index=self.step_index, branches=("cond",))


@contextmanager
def frozen(module: nn.Module):
    """Parameters stop requiring gradients for the block (the optimisation differentiates the latent
    only: weight gradients and the activations saved for them are wasted), then are restored."""
    trainable = [p for p in module.parameters() if p.requires_grad]
    for p in trainable:
        p.requires_grad_(False)
    try:
        yield module
    finally:
        for p in trainable:
            p.requires_grad_(True)


def pass_session(unet, edits: dict, names: list[str], truncate: bool = True):
    """The hook session of an optimisation pass: ``edits``, the aligned layers captured with their
    autograd graph, and (``truncate``) the forward stopped after the last of them."""
    return hooked(unet, edits=edits, capture=Capture(tuple(names), detach=False),
                  stop_after=names if truncate else None, phase="optimisation")


def session_forward(session, inputs: PassInputs, t=None) -> Callable[[torch.Tensor], list[torch.Tensor]]:
    """``forward(leaf)`` through an entered :func:`pass_session`: the captured aligned layers."""
    unet, names = inputs.unet, inputs.names
    t = inputs.timestep if t is None else t

    def forward(leaf: torch.Tensor) -> list[torch.Tensor]:
        with session.calling(**inputs.call):
            session.forward(leaf.to(unet.dtype), t, encoder_hidden_states=inputs.embeds)
        captured = [session.cache.entries(n)[-1].tensor for n in names]
        session.cache.clear()
        return captured
    return forward


def eager_fit(inputs: PassInputs) -> Callable[[list[torch.Tensor]], list | None]:
    """Each aligned layer's PCA fit, after the forward (docs/method.md §3: refit every iteration)."""
    config, shapes = inputs.config, inputs.alignment.shapes
    return lambda captured: None if config.pca_dim is None else layer_fits(captured, shapes, config)


def eager_loss(inputs: PassInputs) -> Callable:
    """The masked alignment loss of the captured layers (keeping masks and PCA previews if asked)."""
    a, config = inputs.alignment, inputs.config

    def loss(captured: list[torch.Tensor], fits: list | None) -> tuple[LossParts, list[torch.Tensor]]:
        feats, slices, previews = aligned_features(captured, a, config, inputs.keep_pca, fits)
        parts = alignment_loss(feats, slices, a.boxes, a.queries, config.mask, config.background_weight,
                               inputs.keep_masks)
        return parts, previews
    return loss


@contextmanager
def eager_passes(inputs: PassInputs):
    """The plain :class:`Passes`: hooked forwards stopped after the last aligned layer, weights frozen."""
    with frozen(inputs.unet), pass_session(inputs.unet, inputs.edits, inputs.names) as session:
        yield Passes(session_forward(session, inputs), eager_fit(inputs), eager_loss(inputs))


def iteration_recorder(record: InspectionRecord, inputs: PassInputs, keep_latents: bool = False) -> Callable:
    """The ``record`` callback of :func:`optimise_latents` that appends to ``record.iterations``."""
    def append(it: int, parts: LossParts, skipped: torch.Tensor, previews: list, z: torch.Tensor) -> None:
        pca = None
        if inputs.keep_pca:
            pca = {layer: p.cpu() for layer, p in zip(inputs.config.align_layers, previews)}
        latent = z.detach().cpu() if keep_latents else None
        record.iterations.append(Iteration(step_index=inputs.step_index, timestep=inputs.timestep, iteration=it,
                                           loss=parts.loss.detach(), count=parts.count.detach(), skipped=skipped,
                                           masks=parts.masks, pca=pca, latent=latent))
    return append
