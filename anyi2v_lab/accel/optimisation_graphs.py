"""The optimisation passes as CUDA graph replays: the truncated forward and its backward captured once.

At full size one pass is bound by the host, not the GPU: the hooks, diffusers' modules and the
autograd engine launch its thousands of kernels more slowly than the GPU runs them. Every pass of a
generation is the same computation up to the latent and the timestep (injection is always on in the
optimisation passes), so ``torch.cuda.make_graphed_callables`` captures the forward and the backward
once; between the two replays the PCA fits (an ``eigh`` that blocks its thread) and the loss run. The
captured edits read static copies of the inverted features, refreshed before each replay, so a new
condition image replays the same graphs.

With ``runtime.overlap_pca``, the forward graph records an event right after each aligned layer but
the last: that layer's PCA fit starts on a side stream when the event fires, while the replay goes on.

The PCA projections and the loss are a second captured callable (:func:`graphed_loss`), keyed on the
trajectory's grid boxes: eager, their few hundred small kernels were launched while the GPU waited
for them. Its capture takes one warm-up evaluation and the capture, once per trajectory.
"""
from __future__ import annotations

from contextlib import nullcontext
from typing import Callable

import torch

from ..hooks import merge_edits
from ..method.config import AnyI2VConfig
from ..method.feature_bank import FeatureBank
from ..method.injection import injection_edits
from ..method.loss import LossParts
from ..method.optimize import pass_session
from .fast_loss import fast_alignment_loss, grid_features
from .graphs import graphed
from .overlap import pca_streams
from .regions import compile_key
from .truncation import stopped_after_block, stops_at_last_layer

# what the capture is made with; a test swaps in a stand-in to run the same plumbing on a CPU
make_graphed: Callable = torch.cuda.make_graphed_callables

def _bank_tensors(bank: FeatureBank | None) -> list[torch.Tensor]:
    if bank is None:
        return []
    return [*(bank.residuals[k] for k in sorted(bank.residuals)), *(bank.queries[k] for k in sorted(bank.queries))]


def _marker(event) -> Callable:
    """An observer edit that records ``event`` on the current stream (last on its hook point, so
    after every other edit); captured, it becomes an event record node of the graph."""
    def mark(x: torch.Tensor, ctx) -> None:
        event.record()
        return None
    return mark


class GraphedPass:
    """``pass_(leaf, t, embeds)``: the captured tensors at ``names`` (each ``(1, F, ...)``, in the
    autograd graph of ``leaf`` through the captured backward). They are the graph's static outputs:
    use them before the next call. ``load(bank)`` copies a generation's inverted features into the
    static ones the captured edits read. ``ready[i]`` is an event the replay records once
    ``names[i]`` is final (``None`` for the last, or with no overlap)."""

    def __init__(self, fn: Callable, bank: FeatureBank | None, ready: list):
        self.fn, self.bank, self.ready = fn, bank, ready

    def load(self, bank: FeatureBank | None) -> "GraphedPass":
        for dst, src in zip(_bank_tensors(self.bank), _bank_tensors(bank)):
            dst.copy_(src, non_blocking=True)
        return self

    def __call__(self, leaf: torch.Tensor, t: torch.Tensor, embeds: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.fn(leaf, t, embeds)


def pass_key(bank: FeatureBank | None, config: AnyI2VConfig, names: list[str], leaf: torch.Tensor,
             t: torch.Tensor, embeds: torch.Tensor, runtime, inject: bool = True) -> tuple:
    """Everything a captured pass depends on besides the weights (which :func:`graphed` keys on): the
    captured edits read the injection group of ``config``."""
    shapes = tuple((tuple(x.shape), x.dtype, str(x.device)) for x in (leaf, t, embeds, *_bank_tensors(bank)))
    bank_names = None if bank is None else (tuple(sorted(bank.residuals)), tuple(sorted(bank.queries)))
    compiled = compile_key(runtime, "optimisation")
    early = pca_streams(runtime, config, leaf.device) is not None
    return (shapes, bank_names, config.key("injection"), inject, tuple(names), compiled, runtime.truncate,
            early)


def graphed_pass(unet, bank: FeatureBank | None, config: AnyI2VConfig, names: list[str], leaf: torch.Tensor,
                 t: torch.Tensor, embeds: torch.Tensor, runtime, call: dict, inject: bool = True) -> GraphedPass:
    """The captured pass for these shapes and settings, made on first use and cached on ``unet``,
    with ``bank``'s features loaded. Call with the weights frozen (no weight gradients) and inside
    the run's compiled regions. ``call`` is the :meth:`HookSession.calling` information of the capture
    (``timestep`` given, so the session never reads the timestep tensor on the host). ``inject``: the run
    injects (with no bank, K/V consistency alone still edits the pass, as in the eager one)."""
    key = pass_key(bank, config, names, leaf, t, embeds, runtime, inject)
    compiled = compile_key(runtime, "optimisation")

    def build(pool) -> GraphedPass:
        static = None if bank is None else FeatureBank({k: v.clone() for k, v in bank.residuals.items()},
                                                       {k: v.clone() for k, v in bank.queries.items()},
                                                       bank.timestep, dict(bank.meta))
        edits = injection_edits(static, config) if inject else {}
        ready = [None] * len(names)
        if pca_streams(runtime, config, leaf.device) is not None:
            ready[:-1] = [torch.cuda.Event(external=True) for _ in names[:-1]]  # record nodes in the graph
            edits = merge_edits(edits, {n: _marker(ev) for n, ev in zip(names, ready) if ev is not None})

        def forward(x: torch.Tensor, tt: torch.Tensor, emb: torch.Tensor) -> tuple[torch.Tensor, ...]:
            stop = stopped_after_block(unet, runtime.truncate) if isinstance(runtime.truncate, str) else nullcontext()
            with stop, pass_session(unet, edits, names, stops_at_last_layer(runtime.truncate)) as session, \
                    session.calling(**call):
                session.forward(x.to(unet.dtype), tt, encoder_hidden_states=emb)
                return tuple(session.cache.entries(n)[-1].tensor for n in names)

        example = (leaf.detach().clone().requires_grad_(True), t.clone(), embeds.detach().clone())
        # one warm-up pass initialises what a capture cannot (cuDNN plans, cuBLAS workspaces); compiled
        # blocks get a second, so that no recompilation can happen inside the capture
        warmup = 1 if compiled is None else 2
        fn = make_graphed(forward, example, num_warmup_iters=warmup, allow_unused_input=True, pool=pool)
        return GraphedPass(fn, static, ready)

    return graphed(unet, "optimisation", key, build, shared=runtime.share_graph_pool).load(bank)


def loss_key(captured: list[torch.Tensor], fit_tensors: list[torch.Tensor], alignment, config: AnyI2VConfig) -> tuple:
    """Everything a captured loss depends on: the shapes, the trajectory's grid boxes and the loss group of
    ``config``."""
    tensors = [*captured, *fit_tensors, *alignment.queries]
    return (tuple((tuple(x.shape), x.dtype, str(x.device)) for x in tensors),
            tuple(map(tuple, alignment.boxes.reshape(-1, 4).tolist())), tuple(alignment.boxes.shape),
            alignment.grid, tuple(alignment.shapes), config.key("loss"))


def graphed_loss(unet, captured: list[torch.Tensor], fits: list | None, alignment,
                 config: AnyI2VConfig) -> Callable[..., LossParts]:
    """``loss(captured, fits) -> LossParts`` (no masks kept): the PCA projections, the features on the
    alignment grid and the alignment loss, forward and backward captured once per shapes, trajectory
    boxes and loss settings, and cached on ``unet``."""
    fit_tensors = [t for fit in (fits or []) for t in fit]
    n = len(captured)
    key = loss_key(captured, fit_tensors, alignment, config)

    def loss_fn(*tensors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats, queries = list(tensors[:n]), list(tensors[n + len(fit_tensors):])
        flat = tensors[n:n + len(fit_tensors)]
        fit_pairs = [(flat[i], flat[i + 1]) for i in range(0, len(flat), 2)] if fits is not None else None
        grid, slices, _ = grid_features(feats, alignment, config, False, fit_pairs)
        parts = fast_alignment_loss(grid, slices, alignment.boxes, queries, config.mask, config.background_weight)
        return parts.loss, parts.count

    def build(pool) -> Callable:
        example = tuple(x.detach().clone().requires_grad_(x.requires_grad)
                        for x in [*captured, *fit_tensors, *alignment.queries])
        return make_graphed(loss_fn, example, num_warmup_iters=1, allow_unused_input=True, pool=pool)

    # a pool of its own: it replays between the pass's forward and backward (see accel.graphs)
    fn = graphed(unet, "loss", key, build, shared=False)

    def loss(captured_now: list[torch.Tensor], fits_now: list | None) -> LossParts:
        flat_now = [t for fit in (fits_now or []) for t in fit]
        total, count = fn(*captured_now, *flat_now, *alignment.queries)
        return LossParts(total.clone(), count.clone(), None)  # static outputs: the next replay overwrites them
    return loss
