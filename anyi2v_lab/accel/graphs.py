"""CUDA graphs for UNet calls that carry no hook: one capture, then replays with no Python per kernel.

The inversion makes 200 single-frame UNet calls before its capture call, all with the same shapes and
no hooks; at batch 1 each is bound by kernel launches (24 ms eager on an H100 for about 2 ms of
arithmetic), which a graph replay removes. The sampling steps after the injection window carry no
hook either; at batch 32 a replay of compiled blocks takes 113 ms against 121 ms launched from Python
(``benchmarks/results/h100_step_probe.json``). Replays run the same kernels as eager calls, so
results are unchanged.
"""
from __future__ import annotations

import weakref
from typing import Callable, Sequence

import torch

from .regions import compiled_regions
from .runtime import Runtime


class GraphedCall:
    """``fn(*inputs)`` captured once; ``call(*inputs)`` copies into the static inputs and replays.

    The returned tensor is the graph's static output: read (or copy) it before the next call.
    """

    def __init__(self, fn: Callable[..., torch.Tensor], example_inputs: Sequence[torch.Tensor], warmup: int = 2):
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
            with torch.cuda.graph(self.graph):
                self.output = fn(*self.inputs)

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor:
        for buf, x in zip(self.inputs, inputs):
            if buf.data_ptr() != x.data_ptr():
                buf.copy_(x, non_blocking=True)
        with torch.cuda.device(self.device):
            self.graph.replay()
        return self.output


_GRAPHS: "weakref.WeakKeyDictionary[torch.nn.Module, dict]" = weakref.WeakKeyDictionary()


def weights_key(module: torch.nn.Module) -> int:
    """Changes when any parameter is replaced or moved (a graph reads weights by address)."""
    return hash(tuple((p.data_ptr(), p.dtype, tuple(p.stride())) for p in module.parameters()))


def graphed(module: torch.nn.Module, name: str, key: tuple, build: Callable[[], object]):
    """The graph ``build()`` makes, cached on ``module`` under ``(name, key, weights)``; one per name."""
    slot = _GRAPHS.setdefault(module, {})
    full = (key, weights_key(module))
    cached = slot.get(name)
    if cached is None or cached[0] != full:
        slot.pop(name, None)  # free the old graph's memory pool before capturing a new one
        slot[name] = (full, build())
    return slot[name][1]


def clear_graphs(module: torch.nn.Module | None = None) -> None:
    """Drop cached graphs (of one module, or all) and their memory pools."""
    if module is None:
        _GRAPHS.clear()
    else:
        _GRAPHS.pop(module, None)


def unet_graph(unet: torch.nn.Module, name: str, example: Sequence[torch.Tensor], runtime: Runtime, phase: str,
               hooked: Sequence[str] = ()) -> GraphedCall:
    """``unet(x, t, encoder_hidden_states=e).sample`` for ``example = (x, t, e)``, captured once per
    shapes and settings and cached on ``unet`` under ``name``. When ``runtime.compiles(phase)`` the
    capture records the compiled blocks' kernels (blocks holding the modules ``hooked`` stay eager)."""
    x, _, e = example
    compiled = runtime.compiles(phase)
    key = (tuple(x.shape), x.dtype, tuple(e.shape), runtime.attention, runtime.channels_last, compiled,
           (runtime.compile_backend, runtime.compile_mode, runtime.compile_levels) if compiled else None,
           tuple(sorted(hooked)))

    def call(a: torch.Tensor, t: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        return unet(a, t, encoder_hidden_states=emb).sample

    def build() -> GraphedCall:
        with compiled_regions(unet, runtime, phase, hooked):
            # the warm-up compiles (twice: no recompilation may happen inside the capture), the capture
            # records Inductor's kernels; eager, one warm-up call initialises cuDNN and cuBLAS
            return GraphedCall(call, example, warmup=2 if compiled else 1)

    return graphed(unet, name, key, build)
