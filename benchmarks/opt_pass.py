"""Where one optimisation pass spends its time: the truncated forward and its backward, eager against
regionally compiled blocks, with a kernel profile of each.

The optimisation passes (30 forward+backward calls at batch 16, about half of a fast video) gained
nothing from compiled blocks in the full benchmark (runs 1 and 7), while the sampling forwards gain
a quarter. This separates forward from backward and compiled from eager on the exact pass: the
hook points the method captures, the early stop after the last one, frozen weights.

    python benchmarks/opt_pass.py --out benchmarks/results/opt_pass.json          # GPU, full size
    python benchmarks/opt_pass.py --tiny --out /tmp/opt_pass.json                 # CPU check
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
from gpu_parts import _event_ms, by_category, env_info, kernel_rows, probe_model, write_json  # noqa: E402


def pass_fn(unet, names, z, t, emb, backward: bool):
    """One optimisation-shaped pass: forward to the last captured point, loss on the captures, and
    (``backward``) the gradient of the latent."""
    from anyi2v_lab.method.optimize import pass_session

    def run():
        leaf = z.detach().requires_grad_(True)
        with torch.enable_grad(), pass_session(unet, {}, names, truncate=True) as s, \
                s.calling(timestep=int(t), step_index=0, branches=("cond",)):
            s.forward(leaf.to(unet.dtype), t, encoder_hidden_states=emb)
            loss = sum(s.cache.entries(n)[-1].tensor.float().square().mean() for n in names)
            if backward:
                torch.autograd.grad(loss, leaf)
    return run


def profile_fn(fn) -> dict:
    from torch.profiler import ProfilerActivity, profile

    cuda = torch.cuda.is_available()
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=acts) as prof:
        fn()
        torch.cuda.synchronize() if cuda else None
    rows = kernel_rows(prof) if cuda else []  # on a CPU there are no kernels to split
    return {"kernel_ms": round(sum(r[1] for r in rows) / 1000, 2), "kernels": sum(r[2] for r in rows),
            "ms_by_category": {k: round(v / 1000, 2) for k, v in by_category(rows).items()}}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="benchmarks/results/opt_pass.json")
    p.add_argument("--tiny", action="store_true", help="the tiny random model on the CPU (a check of the script)")
    p.add_argument("--variants", default="eager,levels2,all", help="eager, levels2 (two finest levels), all")
    p.add_argument("--reps", type=int, default=5)
    args = p.parse_args()

    from anyi2v_lab.accel import Runtime, backend_settings, compiled_regions, hooked_modules
    from anyi2v_lab.method.generation import model_size
    from anyi2v_lab.method.optimize import capture_sites, frozen

    dev, pipe, config = probe_model(args.tiny)
    unet, F = pipe.unet, config.num_frames
    H, W = model_size(pipe, config)
    g = torch.Generator(device="cpu").manual_seed(0)
    z = torch.randn(1, 4, F, H // pipe.vae_scale_factor, W // pipe.vae_scale_factor, generator=g).to(dev)
    emb = torch.randn(F, 77, unet.config.cross_attention_dim, generator=g).to(dev, unet.dtype)
    t = torch.full((1,), 901, device=dev)
    names = capture_sites(config)
    # the real passes also hold the injection points, which keep their blocks eager
    hooked_blocks = hooked_modules(unet, names + [f"{x}.residual" for x in config.res_layers]
                          + [f"{x}.{s}" for x in config.attn_layers for s in ("query", "key", "value")])
    levels = {"eager": None, "levels2": 2, "all": None}
    result = {"env": env_info(dev), "names": names, "variants": {}}
    for name in args.variants.split(","):
        runtime = Runtime.fast(compile="regional" if name != "eager" else False, compile_levels=levels[name])
        row: dict = {}
        with ExitStack() as stack:
            stack.enter_context(backend_settings(runtime, dev))
            stack.enter_context(frozen(unet))
            paths = stack.enter_context(compiled_regions(unet, runtime, "optimisation", hooked_blocks))
            row["compiled_blocks"] = len(paths)
            for kind, backward in (("forward", False), ("forward_backward", True)):
                fn = pass_fn(unet, names, z, t, emb, backward)
                tic = time.perf_counter()
                fn()
                torch.cuda.synchronize() if dev.type == "cuda" else None
                row[f"{kind}_first_s"] = round(time.perf_counter() - tic, 2)
                row[f"{kind}_ms"] = round(_event_ms(fn, args.reps), 2)
                row[f"{kind}_profile"] = profile_fn(fn)
        print(name, json.dumps(row), flush=True)
        result["variants"][name] = row
    write_json(args.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
