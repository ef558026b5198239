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
        move = lambda d: {k: v.to(device=device, dtype=dtype) for k, v in d.items()}
        return FeatureBank(move(self.residuals), move(self.queries), self.timestep, dict(self.meta))

    def save(self, path) -> None:
        from safetensors.torch import save_file

        from ..io import atomic_path

        tensors = {f"residual/{k}": v.contiguous().cpu() for k, v in self.residuals.items()}
        tensors |= {f"query/{k}": v.contiguous().cpu() for k, v in self.queries.items()}
        meta = {"anyi2v_lab.features": json.dumps({"timestep": self.timestep, "meta": self.meta})}
        with atomic_path(path) as tmp:
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


def model_fingerprint(unet: torch.nn.Module) -> str:
    """A cheap identity of the weights: shapes plus a few parameter sums (changes with a LoRA merge)."""
    h = hashlib.sha1()
    params = list(unet.parameters())
    for p in params[:: max(1, len(params) // 16)]:
        h.update(str(tuple(p.shape)).encode())
        h.update(f"{float(p.detach().float().sum()):.6e}".encode())
    return h.hexdigest()[:16]


def tensor_fingerprint(x: torch.Tensor) -> str:
    return hashlib.sha1(x.detach().cpu().contiguous().numpy().tobytes()).hexdigest()[:16]


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
