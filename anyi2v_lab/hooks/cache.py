"""What to capture, and the cache that holds it."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Mapping

import torch

from .context import CallInfo
from .points import full_name


def _frozen(values) -> frozenset | None:
    if values is None:
        return None
    if isinstance(values, (int, str)):
        values = (values,)
    return frozenset(values)


def _frames(x: torch.Tensor, frames: tuple[int, ...]) -> torch.Tensor:
    """``x[:, frames]`` for ``(B, F, ...)``; a slice when the frames are consecutive. Indexing with a
    list uploads it to the device with a blocking copy, which waits for every kernel queued before."""
    first = frames[0] if frames else 0
    if tuple(frames) == tuple(range(first, first + len(frames))):
        return x[:, first:first + len(frames)]
    return x.index_select(1, torch.tensor(frames).to(x.device, non_blocking=True))


@dataclass(frozen=True)
class Capture:
    """A capture request: which hook points, restricted to which calls, frames and branch, stored how.

    ``timesteps``/``steps``/``phases`` keep only matching UNet calls; ``frames`` keeps those frame
    indices; ``branch`` keeps one CFG branch (``"cond"`` or ``"uncond"``). Stored tensors are
    ``(b, f, ...)`` (see :meth:`HookContext.frames`), moved to ``device`` and cast to ``dtype`` when
    given. ``detach=False`` keeps the autograd graph (the method's optimisation passes need it).
    ``max_bytes`` refuses a capture whose estimate per UNet call exceeds it, before anything runs.
    Without it, a capture about to hold more than 2 GiB warns (``CaptureSizeWarning``, once a session)
    and a UNet call whose share would not fit the free memory of the storing device is refused before it
    runs (:func:`~anyi2v_lab.hooks.session.check_capture_budget`).
    """

    names: tuple[str, ...]
    timesteps: frozenset[int] | None = None
    steps: frozenset[int] | None = None
    phases: frozenset[str] | None = None
    frames: tuple[int, ...] | None = None
    branch: str | None = None
    device: torch.device | str | None = None
    dtype: torch.dtype | None = None
    detach: bool = True
    max_bytes: int | None = None

    def __post_init__(self):
        names = (self.names,) if isinstance(self.names, str) else tuple(self.names)
        object.__setattr__(self, "names", names)
        for key in ("timesteps", "steps", "phases"):
            object.__setattr__(self, key, _frozen(getattr(self, key)))
        if self.frames is not None:
            frames = (self.frames,) if isinstance(self.frames, int) else tuple(self.frames)
            if any(f < 0 for f in frames):
                raise ValueError(f"Capture.frames={frames}: frame indices must be >= 0")
            object.__setattr__(self, "frames", frames)
        if self.branch not in (None, "cond", "uncond") and not str(self.branch).startswith("b"):
            raise ValueError(f"Capture.branch={self.branch!r}: use 'cond', 'uncond' or None (all)")

    def wants(self, call: CallInfo) -> bool:
        return ((self.timesteps is None or call.timestep in self.timesteps)
                and (self.steps is None or call.step_index in self.steps)
                and (self.phases is None or call.phase in self.phases)
                and (self.branch is None or self.branch in call.branches))

    def reduce(self, per_frame: torch.Tensor, call: CallInfo) -> tuple[torch.Tensor, tuple, tuple]:
        """Restrict a ``(B, F, ...)`` tensor to the requested branch and frames; store it."""
        x = per_frame.detach() if self.detach else per_frame
        branches = call.branches
        if self.branch is not None:
            i = call.branches.index(self.branch)
            x, branches = x[i:i + 1], (self.branch,)
        frames = tuple(range(x.shape[1]))
        if self.frames is not None:
            bad = [f for f in self.frames if f >= x.shape[1]]
            if bad:
                raise IndexError(f"Capture.frames asks for {bad}, but this call has {x.shape[1]} frames")
            x, frames = _frames(x, self.frames), self.frames
        if self.device is not None or self.dtype is not None:
            x = x.to(device=self.device, dtype=self.dtype)
        elif self.detach and x.is_contiguous() is False:
            x = x.contiguous()
        if self.detach and x.untyped_storage().data_ptr() == per_frame.untyped_storage().data_ptr():
            x = x.clone()  # never alias a live activation: later in-place ops would change the cache
        return x, branches, frames


@dataclass
class Entry:
    """One stored tensor and the call it came from."""

    name: str
    tensor: torch.Tensor
    timestep: int | None
    step_index: int | None
    phase: str
    branches: tuple[str, ...]
    frames: tuple[int, ...]


@dataclass
class ActivationCache(Mapping):
    """Captured tensors keyed by hook point name, one :class:`Entry` a matching UNet call.

    ``cache[name]`` is the tensor when the name was stored once; with several calls use
    ``cache.get(name, timestep=..., step=..., phase=...)``, ``cache.stack(name)`` or
    ``cache.entries(name)``.
    """

    _entries: dict[str, list[Entry]] = field(default_factory=dict)

    def add(self, entry: Entry) -> None:
        self._entries.setdefault(entry.name, []).append(entry)

    def clear(self) -> None:
        self._entries.clear()

    def __getitem__(self, name: str) -> torch.Tensor:
        return self.get(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, name) -> bool:
        return isinstance(name, str) and full_name(name) in self._entries

    def entries(self, name: str) -> list[Entry]:
        """Every entry of ``name`` (a full hook point name or its short form, e.g. ``up1.a0.t0.q``)."""
        name = full_name(name)
        if name not in self._entries:
            raise KeyError(f"{name!r} was not captured; the cache holds {sorted(self._entries)}")
        return self._entries[name]

    def get(self, name: str, *, timestep: int | None = None, step: int | None = None,
            phase: str | None = None, index: int | None = None) -> torch.Tensor:
        hits = [e for e in self.entries(name)
                if (timestep is None or e.timestep == timestep) and (step is None or e.step_index == step)
                and (phase is None or e.phase == phase)]
        if not hits:
            raise KeyError(f"{name!r} has no entry with timestep={timestep}, step={step}, phase={phase}; "
                           f"stored timesteps: {self.timesteps(name)}")
        if index is not None:
            return hits[index].tensor
        if len(hits) > 1:
            raise KeyError(f"{name!r} was stored {len(hits)} times (timesteps {[e.timestep for e in hits]}); "
                           f"pick one with timestep=, step=, phase= or index=, or use stack()")
        return hits[0].tensor

    def timesteps(self, name: str) -> list[int | None]:
        return [e.timestep for e in self.entries(name)]

    def stack(self, name: str) -> torch.Tensor:
        """All entries of a name stacked along a new leading dimension (calls)."""
        return torch.stack([e.tensor for e in self.entries(name)])

    @property
    def nbytes(self) -> int:
        return sum(e.tensor.numel() * e.tensor.element_size() for es in self._entries.values() for e in es)

    def to(self, device=None, dtype=None) -> "ActivationCache":
        out = ActivationCache()
        for es in self._entries.values():
            for e in es:
                out.add(Entry(**{**e.__dict__, "tensor": e.tensor.to(device=device, dtype=dtype)}))
        return out

    def summary(self) -> str:
        rows = [f"{'name':<64} {'calls':>5}  shape"]
        for name, es in self._entries.items():
            rows.append(f"{name:<64} {len(es):>5}  {tuple(es[0].tensor.shape)}")
        rows.append(f"{len(self)} names, {self.nbytes / 2**20:.2f} MiB")
        return "\n".join(rows)

    def __repr__(self) -> str:
        return f"ActivationCache({len(self)} names, {self.nbytes / 2**20:.2f} MiB)"

    def save(self, path: str) -> None:
        """Write as safetensors (atomic), with each entry's call info in the metadata."""
        from safetensors.torch import save_file

        from ..io import atomic_path

        tensors, meta = {}, []
        for name, es in self._entries.items():
            for i, e in enumerate(es):
                key = f"{name}@{i}"
                tensors[key] = e.tensor.detach().contiguous().cpu()
                meta.append({**{k: v for k, v in e.__dict__.items() if k != "tensor"}, "key": key})
        with atomic_path(path) as tmp:
            save_file(tensors, tmp, metadata={"anyi2v_lab.cache": json.dumps(meta)})

    @classmethod
    def load(cls, path: str, device=None) -> "ActivationCache":
        from safetensors import safe_open

        out = cls()
        with safe_open(path, framework="pt", device=str(device or "cpu")) as f:
            meta = json.loads(f.metadata()["anyi2v_lab.cache"])
            for m in meta:
                key = m.pop("key")
                m["branches"], m["frames"] = tuple(m["branches"]), tuple(m["frames"])
                out.add(Entry(tensor=f.get_tensor(key), **m))
        return out


def names_of(capture: Capture | Iterable[str] | None) -> tuple[str, ...]:
    if capture is None:
        return ()
    return capture.names if isinstance(capture, Capture) else tuple(capture)
