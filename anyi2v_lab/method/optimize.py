"""Zero-shot trajectory control by latent optimisation (spec 3.2 and 3.4).

Before each of the first ``opt_step + 1`` denoising steps, ``opt_iters`` times: run the UNet on the
conditional branch with injection on, truncated after the last aligned layer; reduce each aligned
layer's features by PCA (refit every iteration), upsample them to the alignment grid, compute the
masked alignment loss and take one step on the whole fp32 video latent.

The reference creates a fresh AdamW and GradScaler every iteration, so each update is one Adam step
from zero state: ``z <- z * (1 - lr * wd) - lr * g / (|g| + eps)``, a sign-gradient step of size lr
on every latent element. :func:`fresh_adamw_step` is that update in closed form (tested against
``torch.optim.AdamW``); a non-finite gradient skips the iteration, as GradScaler does silently.
"""
from __future__ import annotations

from contextlib import ExitStack, nullcontext
from dataclasses import dataclass

import torch
from torch.profiler import record_function

from ..accel import Runtime, checkpointed_blocks, frozen, timestep_tensor
from ..accel.overlap import SideStreams
from ..hooks import merge_edits
from .config import AnyI2VConfig
from .features import FeatureBank
from .grid import aligned_features, layer_fit, layer_fits
from .loss import alignment_loss
from .opt_graph import fit_streams, graphed_loss, graphed_pass, pass_session
from .record import InspectionRecord, Iteration


@dataclass
class Alignment:
    """What the loss needs besides features, fixed for a generation.

    ``boxes`` ``(O, F, 4)`` grid cells (on the CPU); ``queries`` per object ``(K, 2)`` cell offsets from the start
    box; ``grid`` ``(Hg, Wg)``; ``shapes`` the latent-space ``(h, w)`` of each aligned layer;
    ``region`` an optional ``(1, 1, F, h, w)`` mask of where the latent may change.
    """

    boxes: torch.Tensor
    queries: list[torch.Tensor]
    grid: tuple[int, int]
    shapes: list[tuple[int, int]]
    region: torch.Tensor | None = None


def fresh_adamw_step(z: torch.Tensor, grad: torch.Tensor, lr: float, weight_decay: float = 0.01,
                     eps: float = 1e-8) -> torch.Tensor:
    """One step of a freshly created ``torch.optim.AdamW([z], lr)`` (default betas, eps, decay)."""
    return z * (1 - lr * weight_decay) - lr * grad / (grad.abs() + eps)


def capture_sites(config: AnyI2VConfig) -> list[str]:
    site = "query" if config.opt_target == "query" else "residual"
    return [f"{layer}.{site}" for layer in config.align_layers]


def optimise_latents(unet, z: torch.Tensor, timestep: int, step_index: int, embeds: torch.Tensor,
                     edits: dict, alignment: Alignment, config: AnyI2VConfig, record: InspectionRecord,
                     keep_masks: bool = False, keep_pca: bool = False, runtime: Runtime | None = None,
                     keep_latents: bool = False, bank: FeatureBank | None = None) -> torch.Tensor:
    """Run ``config.opt_iters`` iterations on ``z`` ``(1, 4, F, h, w)`` fp32; returns the new latent.

    ``embeds`` are the conditional embeddings per frame ``(F, T, D)``; ``edits`` the injection edits.
    ``runtime.truncate`` stops each forward after the last aligned layer (the reference runs the
    whole UNet); ``runtime.low_memory`` recomputes block activations in the backward. ``bank`` is
    what ``edits`` were made from (``injection_edits(bank, config)``, or ``None`` with no edits):
    given it, ``runtime.graph_optimisation`` replays the passes from a CUDA graph
    (:mod:`~anyi2v_lab.method.opt_graph`), which rebuilds the same edits on static copies.
    """
    runtime = runtime or Runtime()
    names = capture_sites(config)
    t_in = timestep_tensor(timestep, z.device)
    adam = None
    side = fit_streams(runtime, config, z.device)
    overlap = side is not None
    futures: dict = {}
    call = dict(timestep=timestep, step_index=step_index, branches=("cond",))
    graph = session = loss_of = None
    with ExitStack() as stack:
        stack.enter_context(frozen(unet))
        if runtime.low_memory:
            stack.enter_context(checkpointed_blocks(unet))
        if runtime.graphs_optimisation(z.device) and (bank is not None or not edits):
            graph = graphed_pass(unet, bank, config, names, z, t_in, embeds, runtime, call)
        else:
            if overlap:  # each layer's PCA fit starts as soon as the forward has produced it
                edits = _with_fit_starters(edits, names, alignment.shapes, config, side, futures)
            session = stack.enter_context(pass_session(unet, edits, names, runtime.truncate))
        for it in range(config.opt_iters):
            futures.clear()
            leaf = z.detach().requires_grad_(True)
            # named ranges: a torch.profiler trace splits each iteration's time between them
            with torch.enable_grad(), session.calling(**call) if session is not None else nullcontext():
                with record_function("anyi2v.optimisation.forward"):
                    if graph is not None:
                        captured = list(graph(leaf, t_in, embeds))
                        for i, x in enumerate(captured if overlap else ()):  # each fit once its layer is final
                            futures[i] = side.submit(layer_fit, x.detach(), alignment.shapes[i], config, i,
                                                     after=graph.ready[i])
                    else:
                        session.forward(leaf.to(unet.dtype), t_in, encoder_hidden_states=embeds)
                        captured = [session.cache.entries(n)[-1].tensor for n in names]
                        session.cache.clear()
                with record_function("anyi2v.optimisation.pca_and_loss"):
                    fits = [side.result(futures[i]) for i in range(len(names))] if overlap else None
                    if graph is not None and not (keep_masks or keep_pca):
                        if fits is None and config.pca_dim is not None:  # the fits stay eager: eigh syncs
                            fits = layer_fits(captured, alignment.shapes, config)
                        loss_of = loss_of or graphed_loss(unet, captured, fits, alignment, config)
                        parts, feats, previews = loss_of(captured, fits), None, []
                    else:
                        feats, slices, previews = aligned_features(captured, alignment, config, keep_pca, fits)
                        parts = alignment_loss(feats, slices, alignment.boxes, alignment.queries, config.mask,
                                               config.background_weight, keep_masks)
                with record_function("anyi2v.optimisation.backward"):
                    grad = torch.autograd.grad(parts.loss, leaf, allow_unused=True)[0]
                del captured, feats
            if grad is None:
                grad = torch.zeros_like(leaf)
            ok = (parts.count > 0) & torch.isfinite(grad).all()
            if config.optimizer == "fresh_adamw":
                new = fresh_adamw_step(z, grad, config.lr)
            else:  # non-reference: one AdamW persisting across the iterations of this step
                adam = adam or torch.optim.AdamW([leaf], lr=config.lr)
                new = _persistent_step(adam, z, grad)
            if alignment.region is not None:
                new = z + (new - z) * alignment.region
            z = torch.where(ok, new, z).detach()  # no host sync: the skip is a select
            pca = None
            if keep_pca:
                pca = {layer: p.cpu() for layer, p in zip(config.align_layers, previews)}
            latent = z.detach().cpu() if keep_latents else None
            record.iterations.append(Iteration(step_index, timestep, it, parts.loss.detach(), parts.count.detach(),
                                               ~ok, parts.masks, pca, latent))
    return z


def _with_fit_starters(edits: dict, names: list[str], shapes, config: AnyI2VConfig, side: SideStreams,
                       futures: dict) -> dict:
    """``edits`` plus, last on each captured point, an observer that starts that layer's PCA fit on a
    side stream; it sees the tensor the capture stores (after every other edit) and changes nothing."""
    def starter(i: int):
        def start_fit(x: torch.Tensor, ctx) -> None:
            if torch._C._current_graph_task_id() == -1:  # not a checkpoint recomputation in the backward
                futures[i] = side.submit(layer_fit, ctx.frames(x).detach(), shapes[i], config, i)
            return None
        return start_fit

    return merge_edits(edits, {name: starter(i) for i, name in enumerate(names)})


def _persistent_step(adam: torch.optim.AdamW, z: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    param = adam.param_groups[0]["params"][0]
    with torch.no_grad():
        param.copy_(z)
    param.grad = torch.nan_to_num(grad)
    adam.step()
    return param.detach().clone()
