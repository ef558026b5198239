"""CUDA graphs for UNet calls that carry no hook: one capture, then replays with no Python per kernel.

The inversion makes 200 single-frame UNet calls before its capture call, all with the same shapes and
no hooks; at batch 1 each is bound by kernel launches, which a graph replay removes. The sampling
steps after the injection window carry no hook either, and a replay of them saves the launches too.
Replays run the same kernels as eager calls, so results are unchanged.

Every graph keeps a private memory pool for its intermediates between replays. The inversion, the
sampling step and the optimisation pass share one pool per module (``Runtime.share_graph_pool``):
a later capture may reuse what an earlier one freed, which is safe because none of them replays
while another's work is still wanted; the pass's forward and backward are captured together, so
the activations saved between them are never handed out. The loss graph replays between that
forward and backward and keeps a pool of its own (sharing it corrupted the backward).
"""
from __future__ import annotations

import contextlib
import gc
import weakref
from typing import Callable, Sequence

import torch

from .regions import compile_key, compiled_regions


class GraphedCall:
    """``fn(*inputs)`` captured once; ``call(*inputs)`` copies into the static inputs and replays.

    The returned tensor is the graph's static output: read (or copy) it before the next call.
    """

    def __init__(self, fn: Callable[..., torch.Tensor], example_inputs: Sequence[torch.Tensor], warmup: int = 2,
                 pool: tuple | None = None):
        self.inputs = [x.detach().clone() for x in example_inputs]
        self.device = self.inputs[0].device
        with torch.cuda.device(self.device):  # the inputs' GPU, whichever is current
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):  # warm-up off the capture stream, as CUDA graphs require
                for _ in range(warmup):
                    fn(*self.inputs)
            torch.cuda.current_stream().wait_stream(side)
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph, pool=pool):
                self.output = fn(*self.inputs)

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor:
        for buf, x in zip(self.inputs, inputs):
            if buf.data_ptr() != x.data_ptr():
                buf.copy_(x, non_blocking=True)
        with torch.cuda.device(self.device):
            self.graph.replay()
        return self.output


_GRAPHS: "weakref.WeakKeyDictionary[torch.nn.Module, dict]" = weakref.WeakKeyDictionary()
_SHARED_POOLS: "weakref.WeakKeyDictionary[torch.nn.Module, tuple]" = weakref.WeakKeyDictionary()


def weights_key(module: torch.nn.Module) -> int:
    """Changes when any parameter is replaced or moved (a graph reads weights by address)."""
    return hash(tuple((p.data_ptr(), p.dtype, tuple(p.stride())) for p in module.parameters()))


def graph_pool(module: torch.nn.Module, shared: bool) -> tuple | None:
    """The memory pool a new capture on ``module`` goes into: the module's shared pool, or one of its
    own; ``None`` off CUDA, where nothing is captured (the tests' stand-ins run eagerly)."""
    if next(module.parameters()).device.type != "cuda":
        return None
    if not shared:
        return torch.cuda.graph_pool_handle()
    if module not in _SHARED_POOLS:
        _SHARED_POOLS[module] = torch.cuda.graph_pool_handle()
    return _SHARED_POOLS[module]


def graphed(module: torch.nn.Module, name: str, key: tuple, build: Callable[[tuple | None], object],
            shared: bool = False):
    """The graph ``build(pool)`` captures into ``pool`` (see :func:`graph_pool`), cached on ``module``
    under ``(name, key, weights, shared)``; one per name."""
    slot = _GRAPHS.setdefault(module, {})
    full = (key, weights_key(module), shared)
    cached = slot.get(name)
    if cached is None or cached[0] != full:
        del cached  # held the old graph through the capture: only the slot may hold it now
        slot.pop(name, None)  # free the old graph's memory before capturing a new one
        pool = graph_pool(module, shared)
        # the caller's stream, read now: a capture that fails may leave its own stream current
        stream = torch.cuda.current_stream(next(module.parameters()).device) if isinstance(pool, tuple) else None
        try:
            with _collected_then_no_gc():
                built = build(pool)
        except BaseException:
            _abandon_capture(module, pool, stream)
            raise
        slot[name] = (full, built, pool)
    return slot[name][1]


@contextlib.contextmanager
def _collected_then_no_gc():
    """Python's cyclic GC runs before a capture and never during one.

    ``make_graphed_callables`` keeps its graphs in a reference cycle (an autograd Function class
    closing over them), so a graph dropped from the cache lives until the GC next collects its
    generation, at whatever allocation that happens. Destroying a graph (``cudaGraphExecDestroy``)
    while another is being captured is not permitted and invalidates that capture: it then fails at
    ``capture_end`` with "operation failed due to a previous error during capture". PyTorch <= 2.8
    collected in ``torch.cuda.graph.__enter__``; 2.9 on only with ``TORCH_CUDAGRAPH_GC``."""
    gc.collect()  # here, outside any capture: stale graphs and their pool memory go now
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _abandon_capture(module: torch.nn.Module, pool, stream) -> None:
    """After a failed warm-up or capture into ``pool``: leave the process as if it had not started.

    PyTorch < 2.12 raises from ``capture_end`` before it stops routing the allocator into the pool
    (pytorch#180395), so each later capture into that pool fails with "already recording to
    mempool_id"; ``torch.cuda.graph.__exit__`` then also skips restoring the current stream."""
    if not isinstance(pool, tuple):  # off CUDA (the tests' stand-ins): nothing was captured
        return
    with torch.cuda.device(stream.device):
        torch.cuda.set_stream(stream)
        end = getattr(torch._C, "_cuda_endAllocateToPool", None)
        if end is not None:
            try:
                end(stream.device.index, pool)
            except RuntimeError:  # "not currently recording": capture_end had ended it (>= 2.12)
                pass
    if _SHARED_POOLS.get(module) == pool:
        del _SHARED_POOLS[module]  # later captures go to a fresh pool; cached graphs keep the old one


def clear_graphs(module: torch.nn.Module | None = None) -> None:
    """Drop cached graphs (of one module, or all) and their memory pools."""
    if module is None:
        _GRAPHS.clear()
        _SHARED_POOLS.clear()
    else:
        _GRAPHS.pop(module, None)
        _SHARED_POOLS.pop(module, None)


def graph_memory(module: torch.nn.Module) -> dict[str, float]:
    """GB reserved by each memory pool of ``module``'s cached graphs, keyed by the names of the graphs
    in it (``"inversion+optimisation+sampling"``). Reads the allocator's snapshot: not for loops."""
    names: dict[tuple, list[str]] = {}
    for name, (_, _, pool) in sorted(_GRAPHS.get(module, {}).items()):
        if isinstance(pool, tuple):  # a CUDA pool handle
            names.setdefault(pool, []).append(name)
    reserved = dict.fromkeys(names, 0)
    for seg in torch.cuda.memory_snapshot() if names else []:
        pool = tuple(seg.get("segment_pool_id", ()))
        if pool in reserved:
            reserved[pool] += seg["total_size"]
    return {"+".join(names[p]): reserved[p] / 1e9 for p in names}


def unet_graph(unet: torch.nn.Module, name: str, example: Sequence[torch.Tensor], runtime, phase: str,
               hooked: Sequence[str] = ()) -> GraphedCall:
    """``unet(x, t, encoder_hidden_states=e).sample`` for ``example = (x, t, e)``, captured once per
    shapes and settings and cached on ``unet`` under ``name``. When ``runtime.compiles(phase)`` the
    capture records the compiled blocks' kernels (blocks holding the modules ``hooked`` stay eager)."""
    x, _, e = example
    compiled = compile_key(runtime, phase)
    key = (tuple(x.shape), x.dtype, tuple(e.shape), runtime.attention, runtime.channels_last, compiled,
           tuple(sorted(hooked)))

    def call(a: torch.Tensor, t: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        return unet(a, t, encoder_hidden_states=emb).sample

    def build(pool) -> GraphedCall:
        with compiled_regions(unet, runtime, phase, hooked):
            # the warm-up compiles (twice: no recompilation may happen inside the capture), the capture
            # records Inductor's kernels; eager, one warm-up call initialises cuDNN and cuBLAS
            return GraphedCall(call, example, warmup=1 if compiled is None else 2, pool=pool)

    return graphed(unet, name, key, build, shared=runtime.share_graph_pool)
