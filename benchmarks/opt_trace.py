"""Where the wall time of an optimisation iteration goes: a profiler trace of a few iterations of the
full-size job, reduced to GPU-busy time and the idle gaps with what the host was doing meanwhile.

The graphed pass's kernels take about 86-93 ms of a 132-136 ms iteration (H100); this finds the rest.

    python benchmarks/opt_trace.py --out benchmarks/results/opt_trace.json     # GPU, full size
    python benchmarks/opt_trace.py --tiny --out /tmp/opt_trace.json            # CPU check (no kernels)
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_parts import env_info, make_inputs, probe_model, warm_config, write_json  # noqa: E402


def _union(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[list[float]] = []
    for a, b in sorted(intervals):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def summarise(trace: dict, min_gap_us: float = 300.0) -> dict:
    """Per optimisation iteration: wall, GPU-busy and idle µs, and the host ops that overlap each
    idle gap longer than ``min_gap_us`` (the innermost op on any thread covering the gap's start)."""
    ev = [e for e in trace.get("traceEvents", []) if e.get("ph") == "X"]
    kernels = [(e["ts"], e["ts"] + e["dur"]) for e in ev if e.get("cat") in ("kernel", "gpu_memcpy", "gpu_memset")]
    ops = [e for e in ev if e.get("cat") in ("cpu_op", "user_annotation", "python_function")]
    starts = sorted(e["ts"] for e in ops if e.get("name") == "anyi2v.optimisation.forward")
    busy = _union(kernels)
    rows, gap_ops = [], Counter()
    for a, b in zip(starts, starts[1:]):
        inside = [(max(x, a), min(y, b)) for x, y in busy if y > a and x < b]
        busy_us = sum(y - x for x, y in inside)
        gaps = [(y0, x1) for (_, y0), (x1, _) in zip(inside, inside[1:]) if x1 - y0 > min_gap_us]
        for g0, g1 in gaps:
            cover = [e for e in ops if e["ts"] <= g0 < e["ts"] + e["dur"]]
            name = min(cover, key=lambda e: e["dur"])["name"] if cover else "?"
            gap_ops[name[:90]] += g1 - g0
        rows.append({"wall_us": b - a, "gpu_busy_us": busy_us, "idle_us": b - a - busy_us,
                     "gaps_over_min": len(gaps), "gap_us": sum(g1 - g0 for g0, g1 in gaps)})
    return {"iterations": rows, "idle_by_host_op_us": dict(gap_ops.most_common(25))}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="benchmarks/results/opt_trace.json")
    p.add_argument("--tiny", action="store_true")
    p.add_argument("--iters", type=int, default=4)
    p.add_argument("--runtime", default='{"cudnn_benchmark": true, "attention": "auto"}', help="Runtime(**json)")
    args = p.parse_args()

    from torch.profiler import ProfilerActivity, profile

    from anyi2v_lab.accel import Runtime
    from anyi2v_lab.method import generate

    dev, pipe, config = probe_model(args.tiny)
    inputs, runtime = make_inputs(pipe), Runtime(**json.loads(args.runtime))
    job = lambda cfg: generate(pipe, inputs["condition"], inputs["prompt"], inputs["trajectory"], cfg,  # noqa: E731
                               seed=0, progress=False, runtime=runtime)
    job(warm_config(config))
    job(warm_config(config))
    short = warm_config(config).replace(opt_iters=args.iters + 1)
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == "cuda" else [])
    with profile(activities=acts) as prof:
        job(short)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "trace.json"
        prof.export_chrome_trace(str(path))
        summary = summarise(json.loads(path.read_text()))
    result = {"env": env_info(dev), "runtime": runtime.to_dict(), **summary}
    print(json.dumps(summary, indent=1), flush=True)
    write_json(args.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
