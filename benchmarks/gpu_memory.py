"""Where the GPU memory of a job goes, for ``gpu_pipeline.py --memory``: the peak of each phase, the
graphs' pools, the VAE decode per chunk size, and the graphs in one shared pool against one pool each.

Every measurement here synchronises the device at phase edges; none of it is a timing of the job.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from unittest import mock

import numpy as np
import torch

from benchmarks.gpu_timing import run_case, timed


def _peaks() -> dict[str, float]:
    return {"allocated_gb": torch.cuda.max_memory_allocated() / 1e9,
            "reserved_gb": torch.cuda.max_memory_reserved() / 1e9}


def memory_by_phase(pipe, inputs, config, runtime) -> dict[str, dict[str, float]]:
    """One job (graphs already captured) with the allocator's peak read and reset at every phase edge:
    ``{phase: {"allocated_gb", "reserved_gb"}}``, the largest over the phase's spans."""
    from anyi2v_lab.accel import PhaseTimer

    peaks: dict[str, dict[str, float]] = {}

    class MemoryTimer(PhaseTimer):
        @contextmanager
        def phase(self, name: str):
            if name == "total":  # the others nest in it; their resets would cut its peak short
                with super().phase(name):
                    yield
                return
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            with super().phase(name):
                yield
            torch.cuda.synchronize()
            now = _peaks()
            old = peaks.setdefault(name, now)
            peaks[name] = {k: max(v, old[k]) for k, v in now.items()}

    with mock.patch("anyi2v_lab.accel.bound.PhaseTimer", MemoryTimer):
        run_case(pipe, inputs, config, runtime)
    return peaks


@torch.no_grad()
def decode_chunks(pipe, frames: int, chunks=(16, 8, 4, 1)) -> dict[str, dict[str, float]]:
    """The VAE decode of ``frames`` random latents per ``chunk`` frames a call: seconds (best of 3)
    and the peak allocated above what was allocated before."""
    def decode_video(pipe, z, chunk):
        return pipe.decode_latents(z.to(pipe.vae.dtype), decode_chunk_size=chunk)

    unet, vae = pipe.unet, pipe.vae
    h, w = unet.config.sample_size, unet.config.sample_size
    z = torch.randn(1, vae.config.latent_channels, frames, h, w, device=unet.device)
    out = {}
    for chunk in chunks:
        decode_video(pipe, z, chunk)  # first use: cuDNN plans
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        best = float("inf")
        for _ in range(3):
            tic = time.perf_counter()
            decode_video(pipe, z, chunk)
            torch.cuda.synchronize()
            best = min(best, time.perf_counter() - tic)
        out[str(chunk)] = {"s": best, "peak_above_gb": (torch.cuda.max_memory_allocated() - base) / 1e9}
    return out


def pool_comparison(pipe, inputs, config, runtime, video, log) -> dict:
    """The same job with every graph in a pool of its own (recaptured): held memory, time, and whether
    its video equals ``video`` (the shared pool's) bit for bit."""
    from anyi2v_lab.accel import clear_graphs, graph_memory

    clear_graphs()
    torch.cuda.empty_cache()
    r, other = timed(pipe, inputs, config, runtime.replace(share_graph_pool=not runtime.share_graph_pool), log,
                     "other_pools")
    r["graph_pools_gb"] = graph_memory(pipe.unet)
    r["identical_video"] = bool(np.array_equal(other, video))
    r["max_abs_diff"] = float(np.abs(other - video).max())
    return r
