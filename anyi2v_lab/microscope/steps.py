"""The step axis of the microscope: one slider over inversion, optimisation and sampling."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Step:
    """One step of one phase. ``index`` is the step's position in its phase; an optimisation step carries
    the index of the denoising step it precedes. ``timestep`` is the diffusion timestep, if known."""

    phase: str
    index: int
    timestep: int | None = None

    @property
    def label(self) -> str:
        t = "" if self.timestep is None else f" (t={self.timestep})"
        return f"{self.phase} {self.index}{t}"

    def sort_key(self) -> tuple:
        """The order a generation makes them: all inversion steps, then for each denoising step its
        optimisation before its sampling, then plain forwards."""
        if self.phase == "inversion":
            return (0, self.index, 0)
        if self.phase in ("optimisation", "sampling"):
            return (1, self.index, int(self.phase == "sampling"))
        return (2, self.index, 0)


def ordered(steps) -> list[Step]:
    """Distinct steps in generation order."""
    return sorted(set(steps), key=Step.sort_key)
