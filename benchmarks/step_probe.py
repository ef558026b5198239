"""What is left to gain in a fast video's sampling steps and PCA fits, measured one part at a time.

Sampling: one CFG step of the full-size UNet (batch 2 x 16 frames, no hooks, as 21 of the paper's 25
steps are) with eager, two-level or all-level compiled blocks, each launched from Python or replayed
from a CUDA graph; wall time and kernel time. PCA fits: ``torch.linalg.eigh`` of the two aligned
layers' covariances (1280 and 640 channels at full size) with each linear-algebra backend, alone and
two at once on side streams, as the optimisation passes run them.

    python benchmarks/step_probe.py --out benchmarks/results/step_probe.json   # GPU, full size
    python benchmarks/step_probe.py --tiny --out /tmp/step_probe.json          # CPU check
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_parts import _event_ms, env_info, probe_model, write_json  # noqa: E402
from opt_pass import profile_fn  # noqa: E402


def sampling_rows(pipe, config, dev, variants: list[str], reps: int) -> dict:
    from anyi2v_lab.accel import GraphedCall, Runtime, backend_settings, compiled_regions
    from anyi2v_lab.method.generation import model_size

    unet, F = pipe.unet, config.num_frames
    H, W = model_size(pipe, config)
    g = torch.Generator(device="cpu").manual_seed(0)
    x = torch.randn(2 * F, 4, H // pipe.vae_scale_factor, W // pipe.vae_scale_factor, generator=g)
    x = x.view(2, F, 4, *x.shape[-2:]).transpose(1, 2).to(dev, unet.dtype)  # (2, 4, F, h, w)
    emb = torch.randn(2 * F, 77, unet.config.cross_attention_dim, generator=g).to(dev, unet.dtype)
    t = torch.full((1,), 601, device=dev)
    levels = {"eager": (False, None), "levels2": ("regional", 2), "all": ("regional", None)}
    rows = {}
    for name in variants:
        base, graph = name.removesuffix("_graph"), name.endswith("_graph")
        compile_, lv = levels[base]
        runtime = Runtime.fast(compile=compile_, compile_levels=lv)
        with ExitStack() as stack, torch.no_grad():
            stack.enter_context(backend_settings(runtime, dev))
            stack.enter_context(compiled_regions(unet, runtime, "sampling"))
            step = lambda a, b, c: unet(a, b, encoder_hidden_states=c).sample  # noqa: E731
            tic = time.perf_counter()
            if graph and dev.type == "cuda":
                call = GraphedCall(step, [x, t, emb])
                fn = lambda: call(x, t, emb)  # noqa: E731
            else:
                fn = lambda: step(x, t, emb)  # noqa: E731
            fn()
            torch.cuda.synchronize() if dev.type == "cuda" else None
            row = {"first_s": round(time.perf_counter() - tic, 2), "step_ms": round(_event_ms(fn, reps), 2),
                   "profile": profile_fn(fn)}
        print("sampling", name, json.dumps(row), flush=True)
        rows[name] = row
    return rows


def eigh_rows(dev, sizes=(1280, 640), n: int = 4096, reps: int = 10) -> dict:
    """Wall ms of ``eigh`` on ``(C, C)`` covariances of ``n`` random tokens, per backend."""
    from anyi2v_lab.accel.overlap import side_streams

    g = torch.Generator(device="cpu").manual_seed(0)
    covs = []
    for c in sizes:  # a decaying spectrum, as real features have
        x = torch.randn(n, c, generator=g) * torch.logspace(0, -3, c)
        covs.append((x.T @ x / (n - 1)).to(dev))
    sync = (lambda: torch.cuda.synchronize()) if dev.type == "cuda" else (lambda: None)
    rows: dict = {}
    libs = ("default", "cusolver", "magma") if dev.type == "cuda" else ("default",)
    for lib in libs:
        try:
            if dev.type == "cuda":
                torch.backends.cuda.preferred_linalg_library(lib)
            for cov in covs:
                torch.linalg.eigh(cov)
            sync()
            for cov in covs:
                tic = time.perf_counter()
                for _ in range(reps):
                    torch.linalg.eigh(cov)
                sync()
                rows[f"{lib}_{cov.shape[0]}_ms"] = round((time.perf_counter() - tic) / reps * 1000, 2)
            if dev.type == "cuda":  # both at once on side streams, as the passes run them
                side = side_streams(dev, workers=len(covs))
                tic = time.perf_counter()
                for _ in range(reps):
                    futures = [side.submit(torch.linalg.eigh, cov) for cov in covs]
                    [side.result(f) for f in futures]
                sync()
                rows[f"{lib}_parallel_ms"] = round((time.perf_counter() - tic) / reps * 1000, 2)
        except Exception as e:  # noqa: BLE001 - a backend missing from this build
            rows[f"{lib}_error"] = f"{type(e).__name__}: {e}"[:300]
    if dev.type == "cuda":
        torch.backends.cuda.preferred_linalg_library("default")
    print("eigh", json.dumps(rows), flush=True)
    return rows


def loss_rows(pipe, config, dev, reps: int) -> dict:
    """PCA projections, upsampling and the alignment loss of one optimisation pass, forward and
    backward to the captured features, on random features of the aligned layers' shapes."""
    from anyi2v_lab.method.alignment import build_alignment
    from anyi2v_lab.method.generation import model_size
    from anyi2v_lab.method.grid import aligned_features, layer_fits
    from anyi2v_lab.method.loss import alignment_loss
    from gpu_parts import make_inputs

    H, W = model_size(pipe, config)
    lat = (H // pipe.vae_scale_factor, W // pipe.vae_scale_factor)
    shapes = [(lat[0] // 4, lat[1] // 4), (lat[0] // 2, lat[1] // 2)]  # up_blocks.1 and up_blocks.2
    chans = [pipe.unet.config.block_out_channels[-2], pipe.unet.config.block_out_channels[-3]]
    align, _ = build_alignment(make_inputs(pipe)["trajectory"], config, (H, W), lat, shapes, dev)
    g = torch.Generator(device="cpu").manual_seed(0)
    feats = [torch.randn(1, config.num_frames, h * w, c, generator=g).to(dev, pipe.unet.dtype).requires_grad_(True)
             for (h, w), c in zip(shapes, chans)]
    fits = layer_fits(feats, shapes, config)

    def fn():
        with torch.enable_grad():
            f, slices, _ = aligned_features(feats, align, config, fits=fits)
            parts = alignment_loss(f, slices, align.boxes, align.queries, config.mask)
            torch.autograd.grad(parts.loss, feats)

    fn()
    row = {"grid": list(align.grid), "pass_ms": round(_event_ms(fn, reps), 2), "profile": profile_fn(fn)}
    from torch.profiler import ProfilerActivity, profile
    if dev.type == "cuda":
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            fn()
            torch.cuda.synchronize()
        from gpu_parts import kernel_rows
        row["top_kernels"] = [{"name": k[:100], "ms": round(us / 1000, 3), "calls": n}
                              for k, us, n in sorted(kernel_rows(prof), key=lambda r: -r[1])[:12]]
    print("loss", json.dumps(row), flush=True)
    return row


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="benchmarks/results/step_probe.json")
    p.add_argument("--tiny", action="store_true", help="the tiny random model on the CPU (a check of the script)")
    p.add_argument("--variants", default="eager,eager_graph,levels2,levels2_graph,all,all_graph")
    p.add_argument("--reps", type=int, default=5)
    args = p.parse_args()
    dev, pipe, config = probe_model(args.tiny)
    sizes, n = ((32, 16), 64) if args.tiny else ((1280, 640), 4096)
    result = {"env": env_info(dev), "eigh": eigh_rows(dev, sizes, n)}
    result["loss"] = loss_rows(pipe, config, dev, args.reps)
    result["sampling"] = sampling_rows(pipe, config, dev, args.variants.split(","), args.reps)
    write_json(args.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
