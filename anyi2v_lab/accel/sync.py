"""Keeping the host ahead of the GPU: no device-to-host reads and no pageable uploads in the loops."""
from __future__ import annotations

import torch


def timestep_tensor(t: int, device) -> torch.Tensor:
    """``(1,)`` int64 timestep made on ``device`` by a fill kernel. diffusers turns a Python int into
    ``torch.tensor([t], device=...)``, a pageable upload that waits for the GPU queue to drain."""
    return torch.full((1,), int(t), dtype=torch.int64, device=device)
