"""Phase timings with no host sync inside the loops: CUDA events, read once at the end."""
from __future__ import annotations

import time
from collections import defaultdict
from contextlib import contextmanager

import torch


class PhaseTimer:
    """``with timer.phase("sampling"): ...`` any number of times; :meth:`totals` sums each phase in
    seconds. On CUDA the spans are device time between events on the current stream (exact for
    asynchronous work); elsewhere host time."""

    def __init__(self, device):
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self.spans: list[tuple[str, object, object]] = []

    def _mark(self):
        if not self.cuda:
            return time.perf_counter()
        event = torch.cuda.Event(enable_timing=True)
        event.record(torch.cuda.current_stream(self.device))
        return event

    @contextmanager
    def phase(self, name: str):
        start = self._mark()
        try:
            yield
        finally:
            self.spans.append((name, start, self._mark()))

    def totals(self) -> dict[str, float]:
        """Seconds per phase (synchronises once on CUDA)."""
        out: dict[str, float] = defaultdict(float)
        if self.cuda and self.spans:
            self.spans[-1][2].synchronize()
        for name, a, b in self.spans:
            out[name] += a.elapsed_time(b) / 1000 if self.cuda else b - a
        return dict(out)
