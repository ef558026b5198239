"""What an edit function is told about the tensor it receives."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..layout import branch_index, flatten_frames, unflatten_frames
from .points import HookPoint


@dataclass(frozen=True)
class CallInfo:
    """The state of one UNet call.

    ``timestep`` is the diffusion timestep (``None`` if unknown), ``step_index`` the position in the
    sampling schedule (``None`` outside a sampling loop), ``num_frames`` the frames per batch element,
    ``branches`` one label a batch element (``("uncond", "cond")`` under CFG), and ``phase`` a free
    label set by the caller (``"inversion"``, ``"sampling"``, ``"optimisation"``; ``"forward"`` by default).
    A transformer's call also has ``grid``, its token sequence's (latent frames, h, w), and a float
    ``timestep`` (flow matching's timesteps are not whole numbers).
    """

    timestep: int | float | None = None
    step_index: int | None = None
    num_frames: int = 1
    branches: tuple[str, ...] = ("cond",)
    phase: str = "forward"
    grid: tuple[int, int, int] | None = None


@dataclass(frozen=True)
class HookContext:
    """Passed to every edit function as ``fn(tensor, ctx)``.

    The tensor arrives in the layout its module produced (see :mod:`anyi2v_lab.hooks.points`);
    :meth:`frames` turns it into ``(B, F, ...)`` and :meth:`merge` back, whatever the layout.
    """

    point: HookPoint
    call: CallInfo

    @property
    def name(self) -> str:
        return self.point.name

    @property
    def timestep(self) -> int | None:
        return self.call.timestep

    @property
    def step_index(self) -> int | None:
        return self.call.step_index

    @property
    def num_frames(self) -> int:
        return self.call.num_frames

    @property
    def branches(self) -> tuple[str, ...]:
        return self.call.branches

    @property
    def phase(self) -> str:
        return self.call.phase

    def branch(self, name: str) -> int:
        """Index of a branch (``"cond"``, ``"uncond"``) in the batch dimension of :meth:`frames`."""
        return branch_index(self.branches, name)

    def frames(self, x: torch.Tensor) -> torch.Tensor:
        """The tensor as ``(B, F, ...)``: tokens ``(B, F, N, C)``, maps ``(B, F, C, h, w)``, probs
        ``(B, F, heads, N, M)``, video ``(B, F, C, H, W)``; a transformer's token sequence ``(B, F*h*w, C)``
        as ``(B, F, h, w, C)``, its probs ``(B, heads, F*h*w, M)`` as ``(B, F, heads, h*w, M)``."""
        layout = self.point.layout
        if layout == "video":
            return x.transpose(1, 2) if x.ndim == 5 else x.unsqueeze(1)
        if layout == "sequence":
            return x.unflatten(1, self._grid())
        if layout == "sequence_probs":
            f, h, w = self._grid()
            return x.unflatten(2, (f, h * w)).transpose(1, 2)
        return unflatten_frames(x, self.num_frames)

    def merge(self, x: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`frames`."""
        if self.point.layout == "video":
            return x.transpose(1, 2)
        if self.point.layout == "sequence":
            return x.flatten(1, 3)
        if self.point.layout == "sequence_probs":
            return x.transpose(1, 2).flatten(2, 3)
        return flatten_frames(x)

    def _grid(self) -> tuple[int, int, int]:
        if self.call.grid is None:
            raise ValueError(f"{self.name} is a token sequence but this call has no grid=(frames, h, w); "
                             f"pass CallInfo(grid=...) when building a HookContext by hand")
        return self.call.grid
