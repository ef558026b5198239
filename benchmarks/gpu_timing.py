"""Timing one complete AnyI2V job for ``gpu_pipeline.py``: the model, a timed case (feature cache
cleared, device synchronised, peak and held memory), a warm-up followed by timed runs, the run log.
"""
from __future__ import annotations

import time

import numpy as np
import torch

from benchmarks.gpu_parts import random_sd15_pipeline, warm_config

T0 = time.time()


class Log:
    def __init__(self, path: str | None):
        self.file = open(path, "a", buffering=1) if path else None

    def __call__(self, msg: str) -> None:
        line = f"[{time.time() - T0:7.1f}s] {msg}"
        print(line, flush=True)
        if self.file:
            self.file.write(line + "\n")


def add_job_arguments(p) -> None:
    """The arguments :func:`build` and ``paper_config`` read: the device, the model and the job's size."""
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--weights", help="SD1.5 diffusers folder (default: random fp16 weights at full size)")
    p.add_argument("--tiny", action="store_true", help="the tiny random model (a CPU check of the script)")
    p.add_argument("--quick", action="store_true", help="4 frames, 3 steps, inversion to 21, 2 x 2 optimisation")


def build(args):
    from anyi2v_lab.models.tiny import tiny_pipeline

    if args.tiny:
        return tiny_pipeline().to(args.device)
    if args.weights:
        from anyi2v_lab.models.loading import load_pipeline
        return load_pipeline(args.weights, device=args.device, dtype="float16", progress=False)
    return random_sd15_pipeline(args.device)


def sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def run_case(pipe, inputs, config, runtime, seed: int = 0) -> tuple[dict, np.ndarray]:
    """One complete job, feature cache cleared (inversion always runs): timings, wall, peak memory."""
    from anyi2v_lab.accel import graph_memory
    from anyi2v_lab.method import generate
    from anyi2v_lab.method.inversion import clear_inversion_cache

    clear_inversion_cache()
    dev = pipe.unet.device
    cuda = dev.type == "cuda"
    floor = None
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        floor = torch.cuda.memory_reserved() / 1e9  # weights, the graphs' pools, the feature cache
    sync(dev)
    tic = time.perf_counter()
    res = generate(pipe, inputs["condition"], inputs["prompt"], inputs["trajectory"], config, seed=seed,
                   progress=False, runtime=runtime)
    sync(dev)
    out = {"wall_s": time.perf_counter() - tic, "phases_s": res.record.timings,
           "finite": bool(np.isfinite(res.video).all()), "loss_first_last": _losses(res)}
    if cuda:
        out["peak_allocated_gb"] = torch.cuda.max_memory_allocated() / 1e9
        out["peak_reserved_gb"] = torch.cuda.max_memory_reserved() / 1e9
        out["reserved_before_gb"] = floor
        out["graph_pools_gb"] = graph_memory(pipe.unet)
    return out, res.video


def _losses(res) -> list[float]:
    lo = res.record.losses()
    return [float(lo.flat[0]), float(lo.flat[-1])] if lo.size else []


def timed(pipe, inputs, config, runtime, log, name: str, repeats: int = 1, on_warm=None) -> tuple[dict, np.ndarray]:
    """Warm-up with the same shapes (compilation, graph capture, cuDNN autotuning), then timed runs."""
    tic = time.perf_counter()
    run_case(pipe, inputs, warm_config(config), runtime)
    warm = time.perf_counter() - tic
    log(f"{name}: warm-up {warm:.1f} s")
    if on_warm:
        on_warm({"runtime": runtime.to_dict(), "warmup_s": warm, "partial": "stopped after the warm-up"})
    runs, video = [], None
    for _ in range(repeats):
        r, video = run_case(pipe, inputs, config, runtime)
        runs.append(r)
        log(f"{name}: {r['wall_s']:.2f} s  {fmt_phases(r['phases_s'])}  peak {r.get('peak_allocated_gb', 0):.1f} GB")
    best = min(runs, key=lambda r: r["wall_s"])
    return {"runtime": runtime.to_dict(), "warmup_s": warm, **best, "all_wall_s": [r["wall_s"] for r in runs]}, video


def fmt_phases(phases: dict) -> str:
    return " ".join(f"{k}={v:.2f}" for k, v in phases.items())
