"""Where a fresh process's first video loses time: host time of each operator's first call per input
shape, against its later calls with that shape.

    python benchmarks/fresh_profile.py --out results/fresh_profile.json     # GPU, full size, default Runtime()
    python benchmarks/fresh_profile.py --tiny --out /tmp/f.json             # CPU check of the script

The first video of a process pays one-off costs that later videos do not: cuDNN builds a plan per
convolution shape, CUDA loads each kernel's module on first launch, cuSOLVER and cuBLAS create their
handles, graphs are captured. The profiler (host activity only) records every operator call with its
input shapes; a call's "first-use excess" is its self host time minus the median of the later calls
with the same name and shapes. Summed per operator, that says which one-off costs dominate.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.gpu_parts import env_info, make_inputs, probe_model, write_json  # noqa: E402


def first_use_excess(events) -> dict[str, dict]:
    """Per operator name: summed first-call excess (ms) over its shapes, first calls, total self ms."""
    calls: dict[tuple, list[float]] = defaultdict(list)
    for e in events:
        if not e.name.startswith("anyi2v."):  # the method's named ranges span threads: no self time
            calls[(e.name, str(e.input_shapes))].append(e.self_cpu_time_total / 1000)
    out: dict[str, dict] = defaultdict(lambda: {"excess_ms": 0.0, "shapes": 0, "self_ms": 0.0, "calls": 0})
    for (name, _), times in calls.items():
        row = out[name]
        row["self_ms"] += sum(times)
        row["calls"] += len(times)
        row["shapes"] += 1
        later = statistics.median(times[1:]) if len(times) > 1 else 0.0
        row["excess_ms"] += max(times[0] - later, 0.0)
    return dict(out)


def host_syncs(run) -> dict[str, int]:
    """``run()`` under CUDA's sync debug mode: how often each source line made the host wait for the
    device (``file:line`` of the Python frame that called the synchronising operator)."""
    import warnings

    import torch

    counts: dict[str, int] = defaultdict(int)
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            run()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    for w in caught:
        if "synchroniz" in str(w.message):
            counts[f"{Path(w.filename).name}:{w.lineno}"] += 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


def main() -> int:
    import torch
    from torch.profiler import ProfilerActivity, profile

    from anyi2v_lab.accel import Runtime
    from anyi2v_lab.method import generate

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--tiny", action="store_true")
    p.add_argument("--top", type=int, default=30)
    args = p.parse_args()
    dev, pipe, config = probe_model(args.tiny)
    inputs = make_inputs(pipe)
    tic = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        res = generate(pipe, inputs["condition"], inputs["prompt"], inputs["trajectory"], config, seed=0,
                       progress=False, runtime=Runtime())
        if dev.type == "cuda":
            torch.cuda.synchronize()
    wall = time.perf_counter() - tic
    syncs = None
    if dev.type == "cuda":  # a second video, warm: which lines still wait for the device
        from anyi2v_lab.method.inversion import clear_inversion_cache

        clear_inversion_cache()  # the inversion runs again
        syncs = host_syncs(lambda: generate(pipe, inputs["condition"], inputs["prompt"], inputs["trajectory"],
                                            config, seed=0, progress=False, runtime=Runtime()))
    rows = first_use_excess(prof.events())
    top = sorted(rows.items(), key=lambda kv: -kv[1]["excess_ms"])[:args.top]
    ranges = {e.key: {"calls": e.count, "cpu_ms": e.cpu_time_total / 1000}
              for e in prof.key_averages() if e.key.startswith("anyi2v.")}
    out = {"env": env_info(dev), "wall_s_under_profiler": wall, "phases_s": res.record.timings,
           "first_use_excess_ms_total": sum(r["excess_ms"] for r in rows.values()),
           "top": [{"op": k, **{f: round(v, 2) for f, v in r.items()}} for k, r in top], "ranges": ranges,
           "host_syncs": syncs}
    write_json(args.out, out)
    print(f"wall {wall:.2f} s under the profiler; phases {res.record.timings}")
    print(f"first-use excess, all operators: {out['first_use_excess_ms_total']:.0f} ms")
    print(f"host syncs of a second video, by source line: {syncs}")
    for r in out["top"]:
        print(f"  {r['op'][:60]:<60} excess {r['excess_ms']:9.1f} ms  shapes {r['shapes']:4}  calls {r['calls']:6}  "
              f"self {r['self_ms']:9.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
