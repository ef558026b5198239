"""The full AnyI2V job at the paper's settings, timed per phase: baseline against the fast paths.

    python benchmarks/gpu_pipeline.py --out benchmarks/results/gpu_pipeline_h100.json          # GPU, random fp16 SD1.5
    python benchmarks/gpu_pipeline.py --weights /models/sd15 --out ...            # real weights
    python benchmarks/gpu_pipeline.py --tiny --quick --device cpu --out /tmp/b.json   # end-to-end check

One process measures, on one model: the baseline (``Runtime.baseline()``: exact 201-call inversion,
optimisation forwards stopped after ``up_blocks[2]`` as the reference's, eager, no graphs), the fast eager path, a
profile, the low-memory mode; then child processes measure a fresh process without compilation, the regional
compilation from a cold cache, and again from a warm cache. Every case runs the complete job
(inversion to 201, 25 steps, CFG 8, optimisation 6 x 5, injection, VAE decode) on the same inputs and
seed; videos are compared with the baseline's. The JSON is rewritten after every stage, so a run cut
short still leaves its numbers.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks.gpu_parts import compare, env_info, make_inputs, microbench, paper_config, profile_run, warm_config  # noqa: E402
from benchmarks.gpu_timing import T0, Log, add_job_arguments, build, fmt_phases, run_case, sync, timed  # noqa: E402


# ---------------------------------------------------------------------------------------- children
def child_main(args) -> int:
    """A fresh process: build the model, run one case, write JSON and the video (``--child-out``)."""
    from anyi2v_lab.accel import Runtime

    log = Log(args.log)
    started = time.time()
    pipe = build(args)
    sync(args.device)
    built = time.time() - started
    inputs, config = make_inputs(pipe), paper_config(args.quick)
    extra = json.loads(args.runtime_json or "{}")
    out: dict = {"build_s": built, "import_s": started - T0}
    if args.child == "fresh":  # first video in the process, default runtime: nothing warmed up or autotuned
        rt = Runtime(**extra)
        r, video = run_case(pipe, inputs, config, rt)
        out.update(r, runtime=rt.to_dict())
        log(f"fresh: first video {r['wall_s']:.2f} s  {fmt_phases(r['phases_s'])}")
    else:  # compiled: warm-up = compilation (cold or cached), then timed videos
        rt = Runtime.fast(**extra)
        partial = lambda d: Path(args.child_out).write_text(json.dumps({**out, **d}, indent=2))  # noqa: E731
        r, video = timed(pipe, inputs, config, rt, log, args.child, repeats=1,
                         on_warm=partial)
        out.update(r)
        if args.memory and args.device != "cpu":  # after the timed video: these synchronise and recapture
            from benchmarks.gpu_memory import decode_chunks, memory_by_phase, pool_comparison

            out["memory_by_phase"] = memory_by_phase(pipe, inputs, config, rt)
            out["decode_chunks"] = decode_chunks(pipe, config.num_frames)
            out["other_pools"] = pool_comparison(pipe, inputs, config, rt, video, log)
            log(f"memory: {json.dumps({k: out[k] for k in ('memory_by_phase', 'decode_chunks')})}")
            pools = out["other_pools"]
            log(f"other pools: held {pools['graph_pools_gb']} identical={pools['identical_video']}")
    out["compile_cache"] = cache_report(rt)
    out["process_s"] = time.time() - T0
    np.save(args.child_out + ".npy", video)
    Path(args.child_out).write_text(json.dumps(out, indent=2))
    return 0


def cache_report(rt) -> dict:
    """The saved compiled code a child's runtime used (folder, files, size) and the process's cache counters."""
    from torch._dynamo.utils import counters

    folder = rt.compile_cache_folder()
    files = sorted(folder.glob("*.bin")) if folder is not None and folder.is_dir() else []
    return {"folder": str(folder), "files": len(files), "mb": sum(f.stat().st_size for f in files) / 1e6,
            "counters": {k: dict(counters[k]) for k in ("inductor", "aot_autograd") if k in counters},
            "inductor_dir": os.environ.get("TORCHINDUCTOR_CACHE_DIR", "default")}


def run_child(args, kind: str, timeout: float, log, runtime_extra: dict | None = None, memory: bool = False,
              env: dict | None = None):
    tmp = tempfile.mktemp(prefix=f"anyi2v_{kind}_", suffix=".json")
    cmd = [sys.executable, __file__, "--child", kind, "--child-out", tmp, "--device", args.device,
           "--runtime-json", json.dumps(runtime_extra or {})] + (["--log", args.log] if args.log else [])
    cmd += ["--memory"] if memory else []
    cmd += ["--tiny"] if args.tiny else []
    cmd += ["--quick"] if args.quick else []
    cmd += ["--weights", args.weights] if args.weights else []
    tic = time.time()
    try:
        proc = subprocess.run(cmd, timeout=min(max(timeout, 1), 86400), capture_output=True, text=True,
                              env={**os.environ, **(env or {})})
    except subprocess.TimeoutExpired:
        log(f"{kind}: stopped at its {timeout:.0f} s limit")
        got = json.loads(Path(tmp).read_text()) if Path(tmp).exists() else {}
        return {**got, "error": f"timed out after {timeout:.0f} s"}, None
    if proc.returncode != 0:
        log(f"{kind}: failed\n{proc.stderr[-3000:]}")
        return {"error": proc.stderr[-3000:]}, None
    out = json.loads(Path(tmp).read_text())
    out["process_wall_s"] = time.time() - tic
    return out, np.load(tmp + ".npy")


def fresh_plan(args) -> list[tuple[str, dict, dict | None]]:
    """The fresh processes to run, as (label, Runtime changes, environment), in interleaved rounds so a
    drifting host touches every variant alike; "" is the default ``Runtime()``."""
    variants = {"": ({}, None)}
    variants.update({name: ({}, dict(kv.split("=", 1) for kv in spec.split(",")))
                     for name, spec in (item.split("=", 1) for item in args.fresh_env)})
    variants.update({name: (json.loads(changes), None)
                     for name, changes in (item.split("=", 1) for item in args.fresh_variant)})
    # first-use costs differ per SDPA kernel
    variants.update({kernel: ({"attention": kernel}, None) for kernel in filter(None, args.fresh_attention.split(","))})
    tags = [f"_r{r}" if args.fresh_repeats > 1 else "" for r in range(args.fresh_repeats)]
    return [(f"fresh{'_' + name if name else ''}{tag}", changes, env)
            for tag in tags for name, (changes, env) in variants.items()]


# ---------------------------------------------------------------------------------------- main
def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="benchmarks/results/gpu_pipeline.json")
    add_job_arguments(p)
    p.add_argument("--stages",
                   default="baseline,variants,overlap,fast,nograph,profile,lowmem,fresh,compiled,artifacts,cached")
    p.add_argument("--budget", type=float, default=1e9, help="seconds for the whole run; stages past it are skipped")
    p.add_argument("--compile-backend", default="inductor", help="'eager' checks the compiled path's plumbing fast")
    p.add_argument("--compile", default="regional", choices=("sampling", "regional"),
                   help="what the compiled runs compile (fast()'s: regional)")
    p.add_argument("--fresh-attention", default="",
                   help="also a fresh process per SDPA kernel, e.g. efficient,flash (a --fresh-variant each)")
    p.add_argument("--fresh-env", action="append", default=[], metavar="NAME=VAR=VALUE[,VAR=VALUE]",
                   help="also a fresh process with these environment variables, e.g. v7=TORCH_CUDNN_V8_API_DISABLED=1")
    p.add_argument("--fresh-variant", action="append", default=[], metavar="NAME=JSON",
                   help='also a fresh process with these Runtime changes, e.g. nograph={"graph_optimisation": false}')
    p.add_argument("--fresh-repeats", type=int, default=1,
                   help="rounds of the fresh processes (the default and every variant, interleaved): the host's spread")
    p.add_argument("--cached-variant", action="append", default=[], metavar="NAME=JSON",
                   help='another cached child with these Runtime changes, e.g. levels2={"compile_levels": 2}')
    p.add_argument("--memory", action="store_true",
                   help="the first cached child also measures memory per phase, per decode chunk, and per graph "
                        "pool choice")
    p.add_argument("--log")
    p.add_argument("--child", choices=("fresh", "compiled", "cached"), help=argparse.SUPPRESS)
    p.add_argument("--child-out", help=argparse.SUPPRESS)
    p.add_argument("--runtime-json", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child_main(args)

    from anyi2v_lab.accel import Runtime

    log, stages = Log(args.log), args.stages.split(",")
    left = lambda: args.budget - (time.time() - T0)  # noqa: E731
    model = "tiny" if args.tiny else args.weights or "random fp16 SD1.5 + AnimateDiff v3"
    result: dict = {"env": env_info(args.device), "model": model,
                    "config": paper_config(args.quick).to_dict(), "stages": {}}
    save = lambda: (Path(args.out).parent.mkdir(parents=True, exist_ok=True),  # noqa: E731
                    Path(args.out).write_text(json.dumps(result, indent=2, default=str)))
    tic = time.perf_counter()
    pipe = build(args)
    sync(args.device)
    result["build_s"] = time.perf_counter() - tic
    log(f"model built in {result['build_s']:.1f} s on {result['env']['device_name']}")
    inputs, config = make_inputs(pipe), paper_config(args.quick)
    videos, st = {}, result["stages"]
    # eager, warmed up: truncation, inversion graphs, PCA overlap, cuDNN autotuning and attention
    fast = Runtime(cudnn_benchmark=True, attention="auto")

    def stage(name: str, fn, need: float = 30.0):
        if name not in stages:
            return
        if left() < need:
            st[name] = {"skipped": f"{left():.0f} s left of the budget"}
            log(f"{name}: skipped ({left():.0f} s left)")
            return
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - keep the other stages' numbers
            import traceback
            st[name] = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()[-4000:]}
            log(f"{name}: ERROR {type(e).__name__}: {e}")
        save()

    def baseline():
        st["baseline"], videos["baseline"] = timed(pipe, inputs, config, Runtime.baseline(), log, "baseline")

    def variants():
        nonlocal fast
        st["variants"] = microbench(pipe, config, log)
        fast = fast.replace(**st["variants"]["chosen"])

    def overlap_check():
        # PCA fits on side streams must give the synchronous path's latents; if they fail, measure
        # everything else without them rather than lose the run
        nonlocal fast
        quick = warm_config(config).replace(opt_iters=2)
        from anyi2v_lab.method import generate

        runs = {}
        for on in (False, True):
            runs[on] = generate(pipe, inputs["condition"], inputs["prompt"], inputs["trajectory"], quick, seed=0,
                                progress=False, runtime=fast.replace(overlap_pca=on)).latents
        st["overlap_check"] = {"max_abs": float((runs[True] - runs[False]).abs().max()),
                               "equal": bool(torch.equal(runs[True], runs[False]))}
        log(f"overlap check: {st['overlap_check']}")

    def fast_eager():
        st["fast_eager"], videos["fast_eager"] = timed(pipe, inputs, config, fast, log, "fast_eager")

    def fast_nograph():
        # the same runtime with eager optimisation passes: what the captured passes gain, in one run
        st["fast_nograph"], videos["fast_nograph"] = timed(pipe, inputs, config, fast.replace(graph_optimisation=False),
                                                           log, "fast_nograph")

    def profile():
        # a short job with three optimisation iterations: the method's ranges split their time
        st["profile"] = profile_run(pipe, inputs, warm_config(config).replace(opt_iters=3), fast, log)

    def lowmem():
        from anyi2v_lab.accel import clear_graphs

        clear_graphs()  # earlier stages' graph pools would count against the low-memory peak
        rt = Runtime.low_mem(cudnn_benchmark=True, attention="auto")
        st["low_memory"], videos["low_memory"] = timed(pipe, inputs, config, rt, log, "low_memory")

    def child(kind: str, reserve: float, label: str | None = None, runtime: dict | None = None,
              env: dict | None = None):
        label = label or kind
        memory = args.memory and label == "cached"

        def go():
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            # a fresh process runs the default Runtime(); the compiled ones fast()'s with this run's choices
            extra = {} if kind == "fresh" else {k: v for k, v in fast.to_dict().items()
                                                 if k in ("channels_last", "attention")}
            if not fast.overlap_pca:
                extra["overlap_pca"] = False
            if not fast.graph_optimisation:
                extra["graph_optimisation"] = False
            if kind != "fresh":
                extra.update(compile_backend=args.compile_backend, compile=args.compile)
            if kind == "cached" and "error" in st.get("compiled", {}):
                extra.update(compile_inversion=False)  # still measure the rest if the graphed compile failed
            st[label], video = run_child(args, kind, left() - reserve, log, {**extra, **(runtime or {})}, memory, env)
            if env:
                st[label]["env"] = env
            if video is not None:
                videos[label] = video
        return go

    stage("baseline", baseline, 60)
    stage("variants", variants, 60)
    stage("overlap", overlap_check, 60)
    if "error" in st.get("overlap", {}):
        fast = fast.replace(overlap_pca=False)
    stage("fast", fast_eager, 60)
    if "error" in st.get("fast", {}):  # measure the rest with eager optimisation passes
        fast = fast.replace(graph_optimisation=False)
    stage("nograph", fast_nograph, 60)
    stage("profile", profile, 60)
    stage("lowmem", lowmem, 60)
    # the graph's capture (two warm-up passes, then the capture) against its 30 replays, in a fresh process
    stage("fresh_nograph", child("fresh", 0, "fresh_nograph", {"graph_optimisation": False}), 60)
    for label, changes, env in fresh_plan(args):
        if "fresh" in stages:
            stages.append(label)
        stage(label, child("fresh", 0, label, changes, env), 60)
    stage("compiled", child("compiled", 85), 200)
    # a fresh machine with the saved artefacts alone: Inductor's and Triton's own caches start empty
    empty = tempfile.mkdtemp(prefix="anyi2v_empty_caches_")
    stage("artifacts", child("cached", 0, "artifacts", env={"TORCHINDUCTOR_CACHE_DIR": f"{empty}/inductor",
                                                            "TRITON_CACHE_DIR": f"{empty}/triton"}), 60)
    stage("cached", child("cached", 0), 60)
    # the Inductor cache also holds the sampling-only compile's graphs: the preset without compiled passes
    stage("cached_sampling", child("cached", 0, "cached_sampling", {"compile": "sampling"}), 60)
    for item in args.cached_variant:  # presets against the current one, on the same host and cache
        name, changes = item.split("=", 1)
        stages.append(f"cached_{name}")
        stage(f"cached_{name}", child("cached", 0, f"cached_{name}", json.loads(changes)), 60)
    result["comparison"] = compare(videos, st)
    result["total_s"] = time.time() - T0
    save()
    print_table(result, log)
    return 0


def print_table(result: dict, log) -> None:
    st, base = result["stages"], result["stages"].get("baseline", {}).get("wall_s")
    log(f"{'case':<12} {'video s':>8} {'x base':>7} {'warm-up s':>9} {'peak GB':>8}  phases")
    fresh = [k for k in st if k.startswith("fresh")]
    for name in ("baseline", "fast_eager", "fast_nograph", "low_memory", *fresh, "compiled", "artifacts", "cached",
                 "cached_sampling"):
        r = st.get(name, {})
        if "wall_s" not in r:
            log(f"{name:<12} {r.get('error', r.get('skipped', 'not run'))[:80]}")
            continue
        ratio = base / r["wall_s"] if base else float("nan")
        log(f"{name:<12} {r['wall_s']:8.2f} {ratio:7.2f} {r.get('warmup_s', float('nan')):9.1f} "
            f"{r.get('peak_allocated_gb', float('nan')):8.1f}  {fmt_phases(r['phases_s'])}")
    for k, v in result.get("comparison", {}).items():
        log(f"{k}: {v}")


if __name__ == "__main__":
    sys.exit(main())
