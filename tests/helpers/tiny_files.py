"""The seeded tiny model written to disk, and the one pipeline call the tests compare."""
from __future__ import annotations

from pathlib import Path

import torch

from anyi2v_lab.models.original_formats import save_base
from anyi2v_lab.models.tiny import TinySpec, tiny_components

PROMPT = "a red ball rolls to the left"


def save_tiny(root: Path, seed: int = 0, spec: TinySpec = TinySpec()) -> tuple[Path, Path, dict]:
    """``(base folder, adapter folder, components)`` of the seeded tiny model under ``root``."""
    parts = tiny_components(seed, spec)
    base = save_base(parts, root / f"base{seed}")
    parts["motion_adapter"].save_pretrained(root / f"adapter{seed}")
    return base, root / f"adapter{seed}", parts


def frames(pipe):
    """2 DDIM steps, 4 frames at 128 px, seed 0: (4, 128, 128, 3) floats in [0, 1]."""
    g = torch.Generator().manual_seed(0)
    out = pipe(PROMPT, num_frames=4, num_inference_steps=2, height=128, width=128, generator=g, output_type="np")
    return out.frames[0]
