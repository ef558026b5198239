"""Regional compilation: ``torch.compile`` on the UNet's repeated blocks that carry no hook of the run.

A block is a ResNet, a spatial transformer, a motion module or an up/down sampler. Compiling blocks
rather than the whole UNet keeps the method's Python hooks (injection, captures, early stop) eager
and exact, and lets blocks of the same class and shape share one compiled graph: the SD1.5 UNet's 60
blocks need about 20 graphs for sampling and as many for the optimisation passes. Blocks that hold a
hook point of the run stay eager. Compiled code stays in Dynamo's cache for the process (and in
Inductor's on-disk cache across processes), so later generations reuse it.
"""
from __future__ import annotations

from contextlib import contextmanager
from functools import partial
from typing import Iterable, NamedTuple

import torch
import torch.nn as nn

from ..hooks.points import hook_points, resolve


def _unit_types() -> tuple[type, ...]:
    from diffusers.models.resnet import Downsample2D, ResnetBlock2D, Upsample2D
    from diffusers.models.transformers.transformer_2d import Transformer2DModel
    from diffusers.models.unets.unet_motion_model import AnimateDiffTransformer3D

    return (ResnetBlock2D, Transformer2DModel, AnimateDiffTransformer3D, Downsample2D, Upsample2D)


def compile_units(unet: nn.Module) -> list[tuple[str, nn.Module]]:
    """The outermost blocks regional compilation works on, as ``(path, module)`` in forward order."""
    types, units = _unit_types(), []
    for path, module in unet.named_modules():
        if isinstance(module, types) and not any(path.startswith(p + ".") for p, _ in units):
            units.append((path, module))
    return units


def hooked_modules(unet: nn.Module, names: Iterable[str]) -> set[str]:
    """Module paths that the hook points ``names`` (or globs) sit on."""
    registry = {p.name: p for p in hook_points(unet)}
    return {p.module for p in resolve(registry, list(names))}


def _overlaps(unit: str, module: str) -> bool:
    if module == "":  # the UNet's own output hook sits outside every block
        return False
    return module == unit or module.startswith(unit + ".") or unit.startswith(module + ".")


def unit_level(path: str, levels: int) -> int:
    """Resolution level of a block: 0 at the latent's size, ``levels - 1`` deepest (mid block)."""
    parts = path.split(".")
    if parts[0] == "down_blocks":
        return int(parts[1])
    if parts[0] == "up_blocks":
        return levels - 1 - int(parts[1])
    return levels - 1


def eligible_units(unet: nn.Module, hooked: Iterable[str],
                   max_levels: int | None = None) -> list[tuple[str, nn.Module]]:
    """Blocks with no hooked module inside, on the ``max_levels`` finest levels (all when None)."""
    hooked, levels = set(hooked), len(unet.down_blocks)
    keep = lambda p: max_levels is None or unit_level(p, levels) < max_levels  # noqa: E731
    return [(p, m) for p, m in compile_units(unet) if keep(p) and not any(_overlaps(p, h) for h in hooked)]


def _configure_dynamo() -> None:
    import torch._dynamo.config as dynamo

    # every block shares nn.Module._call_impl's code object, so its cache holds all block graphs
    dynamo.recompile_limit = max(dynamo.recompile_limit, 512)
    dynamo.accumulated_recompile_limit = max(dynamo.accumulated_recompile_limit, 2048)


class CompileKey(NamedTuple):
    """What a phase's compiled blocks depend on in a runtime; graphs that capture them key on it."""

    backend: str
    mode: str | None
    levels: int | None  # compile the blocks of this many finest levels (None: all)


def compile_key(runtime, phase: str) -> CompileKey | None:
    """The :class:`CompileKey` of ``phase`` under ``runtime``; ``None`` when the phase runs eager."""
    if not runtime.compiles(phase):
        return None
    # the inversion's batch-1 calls are short kernels at every level: fusion pays everywhere
    levels = None if phase == "inversion" else runtime.compile_levels
    return CompileKey(backend=runtime.compile_backend, mode=runtime.compile_mode, levels=levels)


_COMPILED: dict = {}


def _compiled(module: nn.Module, key: CompileKey):
    """``module``'s call through one compiled ``nn.Module._call_impl`` per (backend, mode); Dynamo
    keys its graphs on the block's class, attributes and shapes, so equal blocks share them."""
    if (key.backend, key.mode) not in _COMPILED:
        _COMPILED[key.backend, key.mode] = torch.compile(nn.Module._call_impl, backend=key.backend, mode=key.mode,
                                                         dynamic=False)
    return partial(_COMPILED[key.backend, key.mode], module)


@contextmanager
def compiled_regions(unet: nn.Module, runtime, phase: str, hooked: Iterable[str] = ()):
    """Within the block, the UNet's hook-free blocks run compiled when ``runtime`` (a
    :class:`~anyi2v_lab.accel.Runtime`) compiles ``phase``.
    Yields the paths of the compiled blocks."""
    key = compile_key(runtime, phase)
    if key is None:
        yield []
        return
    _configure_dynamo()
    units = [(p, m) for p, m in eligible_units(unet, hooked, key.levels) if m._compiled_call_impl is None]
    for _, m in units:
        m._compiled_call_impl = _compiled(m, key)
    try:
        yield [p for p, _ in units]
    finally:
        for _, m in units:
            m._compiled_call_impl = None
