"""Which paths can the toy model follow? The full method (paper's settings, fast inversion) and its
no-control baseline on held-out toy scenes, scored per object and binned by the motion that object was
asked for: its kind (the toy world's motions), its path length and its peak speed.

Each object's target is its scene's own ground-truth motion (toy_trajectory.py's cases and trajectory),
tracked by colour. Per object: ObjMC (mean distance over the 16 frames), the final-frame error, and the
progress along the path (the achieved displacement projected on the target's, over the target's: 1 is
all the way, 0 is standing still). "Follows" means final error and ObjMC both within 1.5 latent cells
(6 px at 64 px), the demo's bar. With 16 frames a path's mean speed is its length / 15, so length is
also the mean-speed axis; peak speed is the largest per-frame step (at most 2.6 px in the data).

    python benchmarks/toy_path_limits.py --cases 96 --device cuda --workers 12   # paper's settings on a GPU
    python benchmarks/toy_path_limits.py                                          # 32 cases, CPU (about 25 min idle)
    python benchmarks/toy_path_limits.py --motion path --cases 14 --variants full --steps 10 \
        --opt-step 2 --opt-iters 3                                   # the committed run: paths, the demo's --fast
    python benchmarks/toy_path_limits.py --from-frames videos.npz                 # score saved videos again

The scenes come from their own seed (LIMITS_SEED), disjoint from the benchmark's and the development
set's.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import toy_trajectory as bench  # noqa: E402  (benchmarks/ is not a package)

LIMITS_SEED = 4000      # heldout seeds 4000 and 4001 (one- and two-object scenes); the benchmark uses 2026/2027
CELL_PX = 4.0           # one latent cell of the toy model (x4 VAE) at 64 px
FOLLOW_PX = 1.5 * CELL_PX
LENGTH_BINS = (0.0, 2.0, 8.0, 16.0, 24.0, 40.0)      # px of path (at 64 px)
PEAK_SPEED_BINS = (0.0, 0.25, 1.0, 1.5, 2.0, 3.0)    # px per frame
VARIANTS = ("full", "no_control")


def make_cases(n: int, size: int, seed: int, motion: str | None = None) -> list:
    """The benchmark's case mix (toy_trajectory.make_cases), or ``n`` held-out scenes of one motion
    kind (one object; two for "occlude"), the modality cycling as in the benchmark."""
    if motion is None:
        return bench.make_cases(n, size, seed)
    from anyi2v_lab.toy.world import heldout_cases

    cases = heldout_cases(n, seed=seed, size=size, num_objects=2 if motion == "occlude" else 1, motion=motion)
    return [(c, bench.MODALITIES[i % len(bench.MODALITIES)]) for i, c in enumerate(cases)]


def generate_here(args, variants: list[str], overrides: dict):
    """The videos, generated in this process (one case after another)."""
    from anyi2v_lab.method import AnyI2VConfig, generate
    from anyi2v_lab.models.loading import load_pipeline

    pipe = load_pipeline(args.model, device=args.device, progress=False)
    size = pipe.unet.config.sample_size * pipe.vae_scale_factor
    config = AnyI2VConfig(guidance_scale=8.0, inversion_schedule=args.inversion).replace(**overrides)
    frames, times = {v: {} for v in variants}, []
    for ci, (case, modality) in enumerate(make_cases(args.cases, size, args.case_seed, args.motion)):
        for v in variants:
            tic = time.perf_counter()
            res = generate(pipe, case.conditions[modality], case.caption,
                           bench.trajectory_of(case) if bench.has_trajectory(v) else None, config,
                           seed=args.seed + ci, progress=False)
            frames[v][ci] = res.frames
            times.append(time.perf_counter() - tic)
            print(f"case {ci} {v}: {times[-1]:.1f} s", flush=True)
    return frames, list(range(args.cases)), times


def describe(case) -> list[dict]:
    """The motion each object of a case is asked for: kind, path length, displacement, mean and peak
    speed (px/frame) and turn (degrees between the first and second half's displacement)."""
    rows = []
    for o in range(len(case.objects)):
        c = case.centres[o].astype(np.float64)
        steps = np.linalg.norm(np.diff(c, axis=0), axis=1)
        half = len(c) // 2
        a, b = c[half] - c[0], c[-1] - c[half]
        turn = (float(np.degrees(np.arccos(np.clip(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)), -1, 1))))
                if min(np.linalg.norm(a), np.linalg.norm(b)) > 2 else None)
        kind = case.motion if case.motion != "occlude" else ("occlude: passing" if o == 0 else "occlude: passed")
        rows.append({"kind": kind, "objects": len(case.objects), "length_px": float(steps.sum()),
                     "displacement_px": float(np.linalg.norm(c[-1] - c[0])),
                     "mean_speed": float(steps.mean()), "peak_speed": float(steps.max()), "turn_deg": turn})
    return rows


def score(frames: np.ndarray, case) -> list[dict]:
    """Per object of ``case``: per-frame error (px, NaN where the tracker lost it), ObjMC, final error
    and progress along the path (None for paths shorter than one latent cell)."""
    from anyi2v_lab.toy.tracking import track_colour

    rows = []
    for o, obj in enumerate(case.objects):
        achieved = track_colour(frames, obj.rgb)["centroid"].numpy().astype(np.float64)
        target = case.centres[o].astype(np.float64)
        err = np.linalg.norm(achieved - target, axis=-1)
        want = target[-1] - target[0]
        seen = np.flatnonzero(np.isfinite(achieved[:, 0]))
        progress = None
        if np.linalg.norm(want) >= CELL_PX and len(seen):
            progress = float((achieved[seen[-1]] - target[0]) @ want / (want @ want))
        rows.append({"error_px": [None if not np.isfinite(e) else round(float(e), 3) for e in err],
                     "objmc_px": float(np.nanmean(err)) if np.isfinite(err).any() else None,
                     "final_error_px": float(err[-1]) if np.isfinite(err[-1]) else None,
                     "progress": progress})
    return rows


def _ordered(labels) -> list:
    """Bin labels in numeric order ("2-8" before "16-24"), other labels alphabetically."""
    def num(k):
        return float(k.split("-")[0].lstrip(">=")) if k[:1].isdigit() or k.startswith(">=") else float("inf")

    return sorted(labels, key=lambda k: (num(k), k))


def _bin_label(x: float, edges) -> str:
    for lo, hi in zip(edges[:-1], edges[1:]):
        if lo <= x < hi:
            return f"{lo:g}-{hi:g}"
    return f">={edges[-1]:g}"


def summarise(rows: list[dict]) -> dict:
    """Pooled statistics of object rows: n, ObjMC (mean, median), final error (median), the share that
    follows (final error and ObjMC within FOLLOW_PX; a lost object does not), median progress, lost."""
    objmc = np.array([r["objmc_px"] if r["objmc_px"] is not None else np.nan for r in rows])
    final = np.array([r["final_error_px"] if r["final_error_px"] is not None else np.nan for r in rows])
    prog = [r["progress"] for r in rows if r["progress"] is not None]
    ok = np.isfinite(final) & np.isfinite(objmc)

    def nan(f, x):
        return float(f(x[np.isfinite(x)])) if np.isfinite(x).any() else None

    return {"objects": len(rows), "objmc_mean_px": nan(np.mean, objmc), "objmc_median_px": nan(np.median, objmc),
            "final_median_px": nan(np.median, final),
            "follows": float(np.mean(ok & (np.nan_to_num(final, nan=1e9) <= FOLLOW_PX)
                                     & (np.nan_to_num(objmc, nan=1e9) <= FOLLOW_PX))) if rows else None,
            "progress_median": float(np.median(prog)) if prog else None,
            "progress_objects": len(prog), "lost_final": int((~np.isfinite(final)).sum())}


def bins(objects: list[dict], variant: str) -> dict:
    """summarise() per motion kind, path length bin, peak-speed bin (moving objects) and turn."""
    rows = [{**o["motion"], **o[variant]} for o in objects]

    def group(key):
        return {k: summarise([r for r in rows if key(r) == k])
                for k in _ordered({key(r) for r in rows if key(r) is not None})}

    def moving(f):
        return lambda r: f(r) if r["length_px"] >= LENGTH_BINS[2] else None

    return {"all": summarise(rows),
            "kind": group(lambda r: r["kind"]),
            "length_px": group(lambda r: _bin_label(r["length_px"], LENGTH_BINS)),
            "peak_speed_moving": group(moving(lambda r: _bin_label(r["peak_speed"], PEAK_SPEED_BINS))),
            "turn_moving": group(moving(lambda r: None if r["turn_deg"] is None
                                        else ("straight (<20 deg)" if r["turn_deg"] < 20 else
                                              "bent (20-45 deg)" if r["turn_deg"] < 45 else "turning (>=45 deg)")))}


def benchmark_bins(path: str | Path, size: int = 64) -> dict:
    """The held-out benchmark's per-case ObjMC (paper's settings; toy_trajectory.json) binned as above,
    each case by its kind and its longest path (the benchmark pools a case's objects)."""
    report = json.loads(Path(path).read_text())
    n = report["cases_evaluated"]
    cases = bench.make_cases(n, size, report["settings"]["case_seed"])
    out = {}
    for v in VARIANTS:
        per_case = report["results"][v]["objmc_per_case"]
        rows = []
        for (case, _), m in zip(cases, per_case):
            longest = max(describe(case), key=lambda r: r["length_px"])
            rows.append({"kind": case.motion, "length_px": longest["length_px"], "objmc": m})

        def group(key):
            return {k: {"cases": len(g), "objmc_mean_px": float(np.mean(g)), "objmc_median_px": float(np.median(g))}
                    for k in _ordered({key(r) for r in rows})
                    for g in [[r["objmc"] for r in rows if key(r) == k and r["objmc"] is not None]] if g}

        out[v] = {"kind": group(lambda r: r["kind"]),
                  "length_px": group(lambda r: _bin_label(r["length_px"], LENGTH_BINS))}
    settings = {k: report["settings"][k] for k in ("inversion", "guidance", "case_seed")}
    return {"source": str(path), "cases": n, "settings": settings, **out}


def table(report: dict) -> str:
    """Markdown: per group, the full method's share that follows, ObjMC, final error and progress,
    next to no control's ObjMC."""
    full, nc = report["bins"]["full"], report["bins"].get("no_control")
    out = ["| asked for | objects | follows (final and ObjMC <= 6 px) | ObjMC px (mean) | final error px (median) "
           "| progress (median) | no control: ObjMC px |", "|---|---|---|---|---|---|---|"]

    def fmt(x, f="{:.2f}"):
        return "-" if x is None else f.format(x)

    titles = {"all": "all objects", "kind": "kind: ", "length_px": "path length px: ",
              "peak_speed_moving": "peak speed px/frame (paths >= 8 px): ", "turn_moving": "turn (paths >= 8 px): "}
    for group, title in titles.items():
        items = {"": full[group]} if group == "all" else full[group]
        for name, s in items.items():
            b = None if nc is None else nc["all"] if group == "all" else nc[group].get(name)
            out.append(f"| {title}{name} | {s['objects']} | {fmt(s['follows'] and 100 * s['follows'], '{:.0f}%')} | "
                       f"{fmt(s['objmc_mean_px'])} | {fmt(s['final_median_px'])} | {fmt(s['progress_median'])} | "
                       f"{fmt(b and b['objmc_mean_px'])} |")
    return "\n".join(out)


def machine(device: str) -> dict:
    """Where it ran: the device, CPU cores and the load average at the end (the CPU may be shared)."""
    import os
    import platform

    return {"device": device, "cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
            "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", type=int, default=32)
    p.add_argument("--case-seed", type=int, default=LIMITS_SEED)
    p.add_argument("--device", default="cpu")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--model", default=None, help="default: the embedded toy model")
    p.add_argument("--inversion", default="fast", choices=("reference", "fast"))
    p.add_argument("--seed", type=int, default=0, help="noise seed of case i: seed + i (as the benchmark)")
    p.add_argument("--motion", default=None, choices=("path", "still", "scale", "occlude"),
                   help="scenes of this motion kind only (default: the benchmark's mix)")
    p.add_argument("--variants", default=",".join(VARIANTS), help="full, no_control or both")
    p.add_argument("--steps", type=int, default=None, help="sampling steps (default: the paper's 25)")
    p.add_argument("--opt-step", type=int, default=None, help="last optimised step (default: the paper's)")
    p.add_argument("--opt-iters", type=int, default=None, help="optimisation iterations (default: the paper's)")
    p.add_argument("--from-frames", default=None, metavar="NPZ",
                   help="score the videos saved by an earlier run (--save-frames) instead of generating")
    p.add_argument("--save-frames", default=None, metavar="NPZ", help="also save the videos")
    p.add_argument("--benchmark", default=str(Path(__file__).resolve().parent / "results" / "toy_trajectory.json"),
                   help="also bin this held-out benchmark report's per-case ObjMC ('' to skip)")
    p.add_argument("--out", default="benchmarks/results/toy_path_limits.json")
    args = p.parse_args(argv)
    if args.cases < 1 or args.workers < 1:
        raise SystemExit(f"--cases and --workers must be >= 1, got {args.cases} and {args.workers}")
    tic = time.perf_counter()
    variants = bench.variant_names(args.variants, VARIANTS)
    overrides = {k: v for k, v in (("num_inference_steps", args.steps), ("opt_step", args.opt_step),
                                   ("opt_iters", args.opt_iters)) if v is not None}
    from anyi2v_lab.io import atomic_path, write_json

    if args.from_frames:
        saved = np.load(args.from_frames)
        complete = sorted({int(k.split("/")[1]) for k in saved.files})
        frames = {v: {i: saved[f"{v}/{ci}"] for i, ci in enumerate(complete)} for v in variants}
        seconds_per_video = None
    else:
        gen_args = argparse.Namespace(cases=args.cases, case_seed=args.case_seed, device=args.device,
                                      workers=args.workers, model=args.model, dtype="float32", guidance=8.0,
                                      inversion=args.inversion, runtime="{}", seed=args.seed, set=[],
                                      condition="cycle", deadline=0)
        if args.workers == 1:
            frames, complete, times = generate_here(args, variants, overrides)
        elif args.motion or overrides:
            raise SystemExit("--motion, --steps, --opt-step and --opt-iters run in one process: use --workers 1")
        else:
            frames, complete, times, failed, _ = bench.generate_videos(gen_args, variants)
            if failed:
                raise SystemExit(f"{len(failed)} jobs failed; see their errors above")
        seconds_per_video = float(np.mean(times))
        if args.save_frames:
            with atomic_path(args.save_frames) as tmp, open(tmp, "wb") as f:
                np.savez_compressed(f, **{f"{v}/{ci}": frames[v][i] for v in variants for i, ci in enumerate(complete)})
    size = next(iter(frames["full"].values())).shape[2]
    cases = make_cases(max(complete) + 1, size, args.case_seed, args.motion)
    objects = []
    for i, ci in enumerate(complete):
        case, modality = cases[ci]
        scores = {v: score(frames[v][i], case) for v in variants}
        for o, motion in enumerate(describe(case)):
            objects.append({"case": ci, "object": o, "modality": modality, "noise_seed": args.seed + ci,
                            "motion": motion, **{v: scores[v][o] for v in variants}})
    from anyi2v_lab.outputs import versions
    report = {"settings": {**vars(args), "method": "AnyI2VConfig defaults (the paper's), CFG 8",
                           "overrides": overrides,
                           "follow_px": FOLLOW_PX, "cell_px": CELL_PX},
              "machine": machine(args.device), "size": size, "versions": versions(), "cases": len(complete),
              "seconds": time.perf_counter() - tic,
              "seconds_per_video": seconds_per_video, "bins": {v: bins(objects, v) for v in variants},
              "objects": objects, "benchmark": benchmark_bins(args.benchmark, size) if args.benchmark else None}
    write_json(args.out, report)
    print(table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
