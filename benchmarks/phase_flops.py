"""FLOPs of each phase of one video, counted, against each phase's measured time: achieved TFLOP/s and
the fraction of the card's dense fp16 peak.

    python benchmarks/phase_flops.py --out benchmarks/results/phase_flops_h100.json            # GPU, random fp16 SD1.5
    python benchmarks/phase_flops.py --fast-from gpu_pipeline.json --out ...   # with fast()'s phases from that run
    python benchmarks/phase_flops.py --tiny --quick --device cpu --out /tmp/p.json         # a check of the script

FLOPs: ``FlopCount`` (``torch.utils.flop_counter``) around a whole generation at the paper's settings,
eager, per phase; once for ``Runtime.baseline()`` (optimisation forwards stopped after ``up_blocks[2]``)
and once for ``Runtime()`` (stopped after the last aligned layer; ``fast()`` does the same arithmetic).
Times: each runtime's phases (CUDA events) of one video after a warm-up with the same shapes; the
compiled ``fast()``'s from a ``gpu_pipeline.py`` result (``--fast-from``: its ``cached`` stage, else
``compiled``), which should come from the same machine.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.gpu_parts import env_info, make_inputs, paper_config  # noqa: E402
from benchmarks.gpu_timing import Log, add_job_arguments, build, sync, timed  # noqa: E402

PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0}  # dense fp16/bf16 tensor-core peak, SXM, no sparsity
PHASES = ("inversion", "optimisation", "sampling", "decode", "total")


def peak_tflops(device_name: str) -> float | None:
    return next((v for k, v in PEAK_TFLOPS.items() if k in device_name), None)


def count(pipe, inputs, config, runtime) -> dict:
    """Per-phase FLOPs of one generation under ``runtime`` (eager, counted)."""
    from anyi2v_lab.accel.flops import FlopCount
    from anyi2v_lab.method import generate
    from anyi2v_lab.method.inversion import clear_inversion_cache

    clear_inversion_cache()
    counter = FlopCount(runtime)
    tic = time.perf_counter()
    generate(pipe, inputs["condition"], inputs["prompt"], inputs["trajectory"], config, seed=0, progress=False,
             runtime=counter)
    return {**counter.summary(), "count_s": time.perf_counter() - tic}


def rows(flops: dict, phases_s: dict, peak: float | None) -> dict:
    """``{phase: {tflop, s, tflops, of_peak}}`` of one runtime."""
    out = {}
    for ph in PHASES:
        if ph not in phases_s or ph not in flops:
            continue
        tflop, s = flops[ph] / 1e12, phases_s[ph]
        rate = tflop / s if s > 0 else float("nan")
        out[ph] = {"tflop": tflop, "s": s, "tflops": rate, "of_peak": rate / peak if peak else None}
    return out


def fast_phases(path: str | None) -> tuple[dict | None, str | None]:
    """The compiled ``fast()``'s phase times from a ``gpu_pipeline.py`` result, and the stage read."""
    if not path or not Path(path).exists():
        return None, None
    stages = json.loads(Path(path).read_text()).get("stages", {})
    for name in ("cached", "artifacts", "compiled"):
        if "phases_s" in stages.get(name, {}):
            return stages[name]["phases_s"], name
    return None, None


def print_table(result: dict, log) -> None:
    log(f"{'runtime':<10} {'phase':<13} {'TFLOP':>8} {'s':>7} {'TFLOP/s':>8} {'of peak':>8}")
    for name, table in result["table"].items():
        for ph, r in table.items():
            peak = f"{100 * r['of_peak']:.1f}%" if r["of_peak"] is not None else "-"
            log(f"{name:<10} {ph:<13} {r['tflop']:8.1f} {r['s']:7.2f} {r['tflops']:8.1f} {peak:>8}")


def main() -> int:
    from anyi2v_lab.accel import Runtime

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="benchmarks/results/phase_flops.json")
    add_job_arguments(p)
    p.add_argument("--fast-from", help="a gpu_pipeline.py result holding the compiled fast()'s phases")
    p.add_argument("--log")
    args = p.parse_args()
    log = Log(args.log)
    pipe = build(args)
    sync(args.device)
    inputs, config = make_inputs(pipe), paper_config(args.quick)
    env = env_info(args.device)
    peak = peak_tflops(env["device_name"])
    result: dict = {"env": env, "peak_tflops": peak, "config": config.to_dict(), "date": time.strftime("%Y-%m-%d"),
                    "flops": {}, "phases_s": {}, "table": {}}
    runtimes = {"baseline": Runtime.baseline(), "default": Runtime()}
    for name, rt in runtimes.items():
        result["flops"][name] = count(pipe, inputs, config, rt)
        log(f"{name}: counted {json.dumps({k: round(v / 1e12, 1) for k, v in result['flops'][name]['phases'].items()})}"
            f" TFLOP in {result['flops'][name]['count_s']:.1f} s")
        r, _ = timed(pipe, inputs, config, rt, log, name)
        result["phases_s"][name] = r
        result["table"][name] = rows(result["flops"][name]["phases"], r["phases_s"], peak)
    fast, stage = fast_phases(args.fast_from)
    if fast is not None:
        result["phases_s"]["fast"] = {"phases_s": fast, "from": f"{args.fast_from}: {stage}"}
        result["table"]["fast"] = rows(result["flops"]["default"]["phases"], fast, peak)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2, default=str))
    print_table(result, log)
    return 0


if __name__ == "__main__":
    sys.exit(main())
