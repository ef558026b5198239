"""The inverted features: what DDIM inversion hands to injection (docs/method.md §1), kept in memory.

The reference writes them to ``./feature/*.pth`` and re-reads them at every injected forward; two
runs in one folder clobber each other. Here they live in a :class:`FeatureBank`, can be saved as
safetensors, and are cached per (image, prompt, model, settings) by :class:`InversionCache`.
"""
from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass
class FeatureBank:
    """Residual-branch maps ``(C, h, w)`` by ResNet path and queries ``(N, C)`` by attention path,
    all from the one UNet call at ``timestep`` of the inversion."""

    residuals: dict[str, torch.Tensor]
    queries: dict[str, torch.Tensor]
    timestep: int
    meta: dict = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in [*self.residuals.values(), *self.queries.values()])

    def to(self, device=None, dtype=None) -> "FeatureBank":
        def move(d):
            return {k: v.to(device=device, dtype=dtype) for k, v in d.items()}

        return FeatureBank(move(self.residuals), move(self.queries), self.timestep, dict(self.meta))

    def save(self, path, overwrite: bool = True) -> None:
        from safetensors.torch import save_file

        from ..io import atomic_path

        tensors = {f"residual/{k}": v.contiguous().cpu() for k, v in self.residuals.items()}
        tensors |= {f"query/{k}": v.contiguous().cpu() for k, v in self.queries.items()}
        meta = {"anyi2v_lab.features": json.dumps({"timestep": self.timestep, "meta": self.meta})}
        with atomic_path(path, overwrite=overwrite) as tmp:
            save_file(tensors, tmp, metadata=meta)

    @classmethod
    def load(cls, path, device=None) -> "FeatureBank":
        from safetensors import safe_open

        residuals, queries = {}, {}
        with safe_open(str(path), framework="pt", device=str(device or "cpu")) as f:
            info = json.loads(f.metadata()["anyi2v_lab.features"])
            for key in f.keys():
                kind, name = key.split("/", 1)
                (residuals if kind == "residual" else queries)[name] = f.get_tensor(key)
        return cls(residuals, queries, info["timestep"], info["meta"])


def model_fingerprint(module: torch.nn.Module) -> str:
    """An identity of a module's weights, read afresh at every call. It changes with any in-place change
    of any parameter or buffer (a weight edit in a notebook, a merged LoRA), with the set of tensors (an
    unmerged PEFT adapter added or removed, fused projections), and with PEFT adapters' scales and switches.

    Every bit of every tensor counts. Tensors in host memory are hashed (BLAKE2b) where they lie; tensors
    on an accelerator are reduced there first (:func:`device_sums`), so that a few numbers, not the
    weights, cross to the host. Names, shapes, dtypes and devices are hashed with them.
    """
    # Read afresh, not only when a cheap key (storage pointers, version counters) moves: an edit
    # through ``p.data`` (``p.data.mul_(1.5)``) bumps no counter that ``p`` can see.
    named, adapters = [], []
    for prefix, m in module.named_modules():  # one walk (named_parameters and named_buffers each make one)
        for name, t in [*m._parameters.items(), *m._buffers.items()]:
            if t is not None:
                named.append((f"{prefix}.{name}" if prefix else name, t))
        if hasattr(m, "scaling") and hasattr(m, "active_adapters"):  # peft's BaseTunerLayer, duck-typed
            adapters.append((prefix, list(m.active_adapters), bool(getattr(m, "disable_adapters", False)),
                             list(getattr(m, "merged_adapters", [])), dict(m.scaling)))
    h = hashlib.blake2b(";".join(f"{n}:{tuple(t.shape)}:{t.dtype}:{t.device}" for n, t in named).encode(),
                        digest_size=16)
    h.update(json.dumps(adapters, sort_keys=True, default=str).encode())
    elsewhere = []
    with torch.no_grad():
        for _, t in named:
            if t.device.type == "cpu":
                h.update(_as_words(t).numpy())
            elif t.device.type != "meta":  # a meta tensor has no content
                elsewhere.append(t)
    h.update(device_sums(elsewhere).tobytes())
    return h.hexdigest()


_WORD = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}  # integers of an element's width
_CHUNK = 1 << 22  # elements summed in one go: int64 temporaries of 32 MiB whatever the model's size
_MULTIPLIERS: dict[tuple[torch.device, int], torch.Tensor] = {}


def _multipliers(device: torch.device, size: int) -> torch.Tensor:
    if (device, size) not in _MULTIPLIERS:
        g = torch.Generator().manual_seed(24)
        odd = torch.randint(-2 ** 63, 2 ** 63 - 1, (size,), generator=g, dtype=torch.int64) | 1
        _MULTIPLIERS[device, size] = odd.to(device)
    return _MULTIPLIERS[device, size]


def _as_words(t: torch.Tensor) -> torch.Tensor:
    """The tensor's elements as 1-D integers of the same width: bit patterns, not values."""
    t = t.detach()
    return (t.view(torch.uint8) if t.dtype == torch.bool
            else t.view(_WORD.get(t.element_size(), torch.int64))).reshape(-1)


def device_sums(tensors: list[torch.Tensor], chunk: int = _CHUNK) -> np.ndarray:
    """Per chunk of ``chunk`` elements of the tensors' bit patterns (grouped by device and width), the
    sum of each element times a seeded random odd 64-bit multiplier for its position, modulo 2**64,
    computed on the tensors' device with one copy to the host per group.

    One changed element always changes its chunk's sum (an odd number is invertible modulo 2**64), and a
    swap of two elements does unless their multipliers collide; integer sums do not depend on the
    reduction order, so a sum is the same on every run and device. Memory: a few ``chunk``-sized int64
    temporaries.
    """
    groups: dict[tuple, list[torch.Tensor]] = {}
    out = [np.zeros(0, np.int64)]
    with torch.no_grad():
        for t in tensors:
            words = _as_words(t)
            groups.setdefault((words.device, words.dtype), []).append(words)
        for (device, _), words in groups.items():
            weights = _multipliers(device, chunk)
            sums = [(torch.cat(pieces).to(torch.int64) * weights[:n]).sum() for pieces, n in _chunks(words, chunk)]
            out.append(torch.stack(sums).cpu().numpy())
    return np.concatenate(out)


def _chunks(pieces: list[torch.Tensor], size: int):
    """``(pieces, n)``: ``pieces`` regrouped into lists of ``n <= size`` elements, a long piece split."""
    chunk, room = [], size
    for p in pieces:
        while p.numel():
            head, p = p[:room], p[room:]
            chunk.append(head)
            room -= head.numel()
            if not room:
                yield chunk, size
                chunk, room = [], size
    if chunk:
        yield chunk, size - room


def tensor_fingerprint(x: torch.Tensor) -> str:
    """An exact identity of a small tensor (an image, prompt embeddings): shape, dtype and bytes."""
    h = hashlib.blake2b(f"{tuple(x.shape)}:{x.dtype};".encode(), digest_size=16)
    h.update(_as_words(x.cpu()).view(torch.uint8).numpy())
    return h.hexdigest()


def scheduler_fingerprint(scheduler) -> str:
    """The scheduler's class, config and noise levels (what inversion reads); not its step state, which
    ``set_timesteps`` changes at every generation."""
    h = hashlib.blake2b(type(scheduler).__qualname__.encode(), digest_size=16)
    h.update(json.dumps(dict(scheduler.config), sort_keys=True, default=str).encode())
    alphas = getattr(scheduler, "alphas_cumprod", None)
    if isinstance(alphas, torch.Tensor):
        h.update(tensor_fingerprint(alphas).encode())
    return h.hexdigest()


class InversionCache:
    """A small LRU of inversions' feature banks keyed by (image, prompt, model, settings): the inversion
    depends on neither the seed nor the trajectory, so a new seed or path reuses it."""

    def __init__(self, size: int = 8):
        self.size = size
        self._items: OrderedDict[tuple, FeatureBank] = OrderedDict()

    def get(self, key: tuple) -> FeatureBank | None:
        bank = self._items.get(key)
        if bank is not None:
            self._items.move_to_end(key)
        return bank

    def put(self, key: tuple, bank: FeatureBank) -> None:
        self._items[key] = bank
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)
