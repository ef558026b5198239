"""A :class:`~anyi2v_lab.accel.Runtime` bound to a pipeline: the calls the method makes, made fast.

``Runtime.bind(pipe)`` returns a :class:`BoundRuntime`, which has the methods of the method's plain
:class:`~anyi2v_lab.method.calls.EagerCalls` and computes the same: hook-free UNet calls replayed from
CUDA graphs of compiled blocks, optimisation passes replayed from captured forwards and backwards, PCA
fits overlapping the forward on side streams, a phase timer, process settings for the run. A call that
no setting speeds up is the eager one. Every timestep reaches the UNet as a device tensor made by a
fill kernel (:func:`timestep_tensor`): diffusers would upload a Python int from pageable memory, a copy
that waits for the GPU queue to drain.

What it replays it derives from the run's hook session and config, never from the method's loop: the
blocks holding a hook point of the run (the session's edits and captures, the aligned layers) stay
eager, and a sampling step is hook-free when the session captures nothing and every edit declares
itself inactive there (``edit.active(call)``, as the injection edits do).
"""
from __future__ import annotations

from contextlib import ExitStack, contextmanager
from typing import Callable, Iterable

import torch
from torch.profiler import record_function

from ..hooks import CallInfo
from ..hooks.motion import motion_modules
from ..method.calls import EagerCalls
from ..method.config import AnyI2VConfig
from ..method.grid import layer_fit, layer_fits
from ..method.optimize import (
    Passes,
    PassInputs,
    capture_sites,
    eager_fit,
    frozen,
    pass_session,
    session_forward,
)
from .backends import backend_settings, prepare_layout
from .checkpointing import checkpointed_blocks
from .compile_cache import load_artifacts, save_artifacts
from .fast_loss import fast_loss
from .graphs import unet_graph
from .optimisation_graphs import graphed_loss, graphed_pass
from .overlap import pca_streams, with_fit_starters
from .regions import compiled_regions, hooked_modules
from .timing import PhaseTimer
from .truncation import stopped_after_block, stops_at_last_layer


def timestep_tensor(t: int, device) -> torch.Tensor:
    """``(1,)`` int64 timestep made on ``device`` by a fill kernel (no host-to-device copy)."""
    return torch.full((1,), int(t), dtype=torch.int64, device=device)


class BoundRuntime(EagerCalls):
    """The calls of one generation on ``pipe`` under ``runtime``; made by ``runtime.bind(pipe)``."""

    def __init__(self, pipe, runtime):
        runtime.check_device(pipe.unet.device, pipe.unet)
        super().__init__(pipe)
        self.runtime, self.device = runtime, pipe.unet.device
        self.timer = PhaseTimer(self.device)
        self.config: AnyI2VConfig | None = None
        self.optimises = False
        self.hooked_blocks: set[str] | None = None  # the run's, once its sampling session is known

    @contextmanager
    def running(self, config: AnyI2VConfig, optimises: bool):
        self.config, self.optimises = config, optimises
        prepare_layout(self.pipe, self.runtime)
        folder = self.runtime.compile_cache_folder()
        load_artifacts(folder)  # compiled code saved by an earlier process, before anything compiles
        with backend_settings(self.runtime, self.device):
            if optimises:  # cuSOLVER loads (a host sync) now, not behind the inversion's queued kernels
                pca_streams(self.runtime, config, self.device)
            yield
        save_artifacts(folder)  # what this generation compiled, for later processes

    def phase(self, name: str):
        return self.timer.phase(name)

    def timings(self) -> dict[str, float]:
        return self.timer.totals()

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            chunk = self.runtime.decode_chunk_size(latents.shape[2])
            return self.pipe.decode_latents(latents.to(self.pipe.vae.dtype), decode_chunk_size=chunk)

    def inversion_denoiser(self, unet, latent: torch.Tensor, embeds: torch.Tensor) -> Callable:
        """Eager, or one CUDA graph (captured once per shape, weights and compile setting, cached on the
        UNet) of compiled blocks when ``runtime.compile_inversion``. Called inside ``bypass_motion``."""
        if not self.runtime.graphs_on(unet.device):
            return lambda x, t: unet(x.to(unet.dtype), timestep_tensor(t, x.device),
                                     encoder_hidden_states=embeds).sample.float()
        example = (latent.to(unet.dtype), timestep_tensor(1, latent.device), embeds)
        # the bypassed motion modules stay out: compiling their identity forward would buy nothing
        graph = unet_graph(unet, "inversion", example, self.runtime, "inversion", [p for p, _ in motion_modules(unet)])
        return lambda x, t: graph(x.to(unet.dtype), timestep_tensor(t, x.device), embeds).float()

    def sampling_denoiser(self, session) -> Callable:
        """Blocks holding no hook of the run run compiled (``runtime.compile``); a step that no hook of
        ``session`` changes replays one captured CFG step (``runtime.graph_sampling``)."""
        unet, rt = self.pipe.unet, self.runtime
        sites = capture_sites(self.config) if self.optimises else []
        hooked_blocks = self.hooked_blocks = hooked_modules(unet, [*session.edits, *session.captured, *sites])
        replayed = hook_free_steps(session, self.pipe.scheduler.timesteps) if rt.graphs_sampling(self.device) else ()

        def eps(x: torch.Tensor, t: int, embeds: torch.Tensor) -> torch.Tensor:
            args = (x.to(unet.dtype), timestep_tensor(t, self.device), embeds)
            with compiled_regions(unet, rt, "sampling", hooked_blocks):
                if int(t) in replayed:
                    with session.suspended():
                        return unet_graph(unet, "sampling", args, rt, "sampling", hooked_blocks)(*args).float()
                return unet(args[0], args[1], encoder_hidden_states=args[2]).sample.float()
        return eps

    @contextmanager
    def optimisation_passes(self, inputs: PassInputs):
        """Compiled blocks, frozen weights, checkpointed blocks (``low_memory``), and passes replayed from
        a CUDA graph (``graph_optimisation``) or eager ones whose PCA fits start on side streams."""
        rt, unet = self.runtime, inputs.unet
        hooked_blocks = self.hooked_blocks
        if hooked_blocks is None:  # outside a sampling loop: the passes' own hook points
            hooked_blocks = hooked_modules(unet, [*inputs.edits, *inputs.names])
        with ExitStack() as stack:
            stack.enter_context(compiled_regions(unet, rt, "optimisation", hooked_blocks))
            stack.enter_context(frozen(unet))
            if rt.low_memory:
                stack.enter_context(checkpointed_blocks(unet))
            if rt.graphs_optimisation(self.device) and (inputs.features is not None or not inputs.inject):
                passes = self._graphed_passes(inputs)
            else:
                passes = self._eager_passes(inputs, stack)
            yield _profiled(passes)

    def _eager_passes(self, inputs: PassInputs, stack: ExitStack) -> Passes:
        side = pca_streams(self.runtime, inputs.config, self.device)
        edits, futures = inputs.edits, {}
        if side is not None:  # each layer's PCA fit starts as soon as the forward has produced it
            edits = with_fit_starters(edits, inputs.names, inputs.alignment.shapes, inputs.config, side, futures)
        if isinstance(self.runtime.truncate, str):
            stack.enter_context(stopped_after_block(inputs.unet, self.runtime.truncate))
        session = stack.enter_context(pass_session(inputs.unet, edits, inputs.names,
                                                   stops_at_last_layer(self.runtime.truncate)))
        forward = session_forward(session, inputs, timestep_tensor(inputs.timestep, self.device))
        if side is None:
            return Passes(forward, eager_fit(inputs), fast_loss(inputs))
        fit = lambda captured: [side.result(futures.pop(i)) for i in range(len(captured))]  # noqa: E731
        return Passes(forward, fit, fast_loss(inputs))

    def _graphed_passes(self, inputs: PassInputs) -> Passes:
        rt, unet, config, shapes = self.runtime, inputs.unet, inputs.config, inputs.alignment.shapes
        side = pca_streams(rt, config, self.device)
        t = timestep_tensor(inputs.timestep, self.device)
        state: dict = {"graph": None, "loss": None, "futures": {}}

        def forward(leaf: torch.Tensor) -> list[torch.Tensor]:
            if state["graph"] is None:
                state["graph"] = graphed_pass(unet, inputs.features, config, inputs.names, leaf, t, inputs.embeds, rt,
                                              inputs.call, inject=inputs.inject)
            graph = state["graph"]
            captured = list(graph(leaf, t, inputs.embeds))
            for i, x in enumerate(captured if side is not None else ()):  # each fit once its layer is final
                state["futures"][i] = side.submit(layer_fit, x.detach(), shapes[i], config, i, after=graph.ready[i])
            return captured

        def fit(captured: list[torch.Tensor]) -> list | None:
            if side is not None:
                return [side.result(state["futures"].pop(i)) for i in range(len(captured))]
            return None if config.pca_dim is None else layer_fits(captured, shapes, config)

        if inputs.keep_masks or inputs.keep_pca:  # the graphed loss keeps nothing
            return Passes(forward, fit, fast_loss(inputs))

        def loss(captured: list[torch.Tensor], fits: list | None):
            state["loss"] = state["loss"] or graphed_loss(unet, captured, fits, inputs.alignment, config)
            return state["loss"](captured, fits), []
        return Passes(forward, fit, loss)


def hook_free_steps(session, timesteps: Iterable) -> set[int]:
    """The timesteps of the sampling schedule at which no hook of ``session`` changes the UNet: it
    captures nothing, and every edit carries ``active(call)`` and is inactive there."""
    if session.capture is not None:
        return set()
    edits = [fn for fns in session.edits.values() for fn in fns]
    if not all(callable(getattr(fn, "active", None)) for fn in edits):
        return set()
    free = set()
    schedule = timesteps.tolist() if torch.is_tensor(timesteps) else list(timesteps)  # one host read
    for i, t in enumerate(int(t) for t in schedule):
        call = CallInfo(timestep=t, step_index=i, phase=session.default_phase)
        if not any(fn.active(call) for fn in edits):
            free.add(t)
    return free


def _profiled(passes: Passes) -> Passes:
    """The same calls inside named ranges: a ``torch.profiler`` trace splits an iteration between them."""
    def ranged(name: str, fn: Callable) -> Callable:
        def call(*args):
            with record_function(f"anyi2v.optimisation.{name}"):
                return fn(*args)
        return call
    return Passes(ranged("forward", passes.forward), ranged("pca", passes.fit), ranged("loss", passes.loss))
