"""FLOPs of one generation, counted per phase by ``torch.utils.flop_counter.FlopCounterMode``.

>>> counter = FlopCount(Runtime())
>>> generate(pipe, cond, prompt, traj, runtime=counter)
>>> counter.phases        # {"inversion": 1.6e14, "optimisation": ..., "sampling": ..., "decode": ..., "total": ...}

A :class:`FlopCount` is a runtime like any other (``bind(pipe)`` gives the calls :func:`generate` makes),
so the method is counted as it runs, from outside. It runs the wrapped runtime's arithmetic eagerly:
CUDA graph replays and compiled kernels dispatch no ATen operators for the counter to see, and the
graphs compute what the eager calls do, so the count is that of the runtime it wraps. What the wrapped
runtime changes in the work itself (where the optimisation forwards stop: ``truncate``) is kept.

The counter sees matrix products, convolutions (forward and backward) and attention; normalisations,
element-wise work and the PCA's ``eigh`` are not counted (a few per cent of a UNet's FLOPs, and not
tensor-core work). PyTorch's CPU attention kernel is added to its formulas here, so a CPU run counts
attention too.
"""
from __future__ import annotations

from collections import defaultdict
from contextlib import contextmanager

import torch
from torch.utils.flop_counter import FlopCounterMode, flop_registry

_KINDS = (("attention", ("attention", "sdpa")), ("convolution", ("convolution",)),
          ("matmul", ("mm", "addmm", "bmm", "baddbmm", "linear")))


def op_kind(op) -> str:
    """``"attention"``, ``"convolution"``, ``"matmul"`` or ``"other"`` for an ATen operator (or its name)."""
    name = str(op).lower()
    return next((kind for kind, keys in _KINDS if any(k in name for k in keys)), "other")


def _counter() -> FlopCounterMode:
    """A counter that also knows the CPU attention kernel (the same formulas as the CUDA kernels': its
    first arguments are the query, key and value, after the output's gradient in the backward)."""
    aten, mode = torch.ops.aten, FlopCounterMode(display=False, depth=0)
    for cpu, cuda in (("_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_flash_attention"),
                      ("_scaled_dot_product_flash_attention_for_cpu_backward",
                       "_scaled_dot_product_flash_attention_backward")):
        if hasattr(aten, cpu):
            mode.flop_registry[getattr(aten, cpu)] = flop_registry[getattr(aten, cuda)]
    return mode


class FlopCount:
    """Wraps ``runtime`` (a :class:`~anyi2v_lab.accel.Runtime`); after a generation, :attr:`phases` holds
    the FLOPs of each phase (``total`` included, which also holds the prompt's encoding) and
    :attr:`by_kind` each phase's FLOPs split into attention, convolution and matrix products."""

    def __init__(self, runtime):
        self.runtime = runtime.replace(cuda_graphs=False, compile=False, compile_inversion=False,
                                       overlap_pca=False, graph_sampling=False)
        self.phases: dict[str, int] = {}
        self.by_kind: dict[str, dict[str, int]] = {}

    def bind(self, pipe) -> "_CountingCalls":
        self.phases, self.by_kind = defaultdict(int), defaultdict(lambda: defaultdict(int))
        return _CountingCalls(self.runtime.bind(pipe), self)

    def summary(self) -> dict:
        """Plain dicts of the last generation's counts: ``{"phases": ..., "by_kind": ...}``."""
        return {"phases": dict(self.phases), "by_kind": {k: dict(v) for k, v in self.by_kind.items()}}


class _CountingCalls:
    """The bound runtime's calls inside one FLOP counter; each phase adds what was counted within it."""

    def __init__(self, calls, owner: FlopCount):
        self._calls, self._owner = calls, owner
        self._mode = _counter()

    def __getattr__(self, name):
        return getattr(self._calls, name)

    @contextmanager
    def running(self, config, optimises: bool):
        with self._mode, self._calls.running(config, optimises):
            yield

    @contextmanager
    def phase(self, name: str):
        before = dict(self._mode.flop_counts["Global"])
        with self._calls.phase(name):
            try:
                yield
            finally:
                after = self._mode.flop_counts["Global"]
                self._owner.phases[name] += 0  # a phase that counted nothing still shows
                for op, n in after.items():
                    delta = n - before.get(op, 0)
                    if delta:
                        self._owner.phases[name] += delta
                        self._owner.by_kind[name][op_kind(op)] += delta
