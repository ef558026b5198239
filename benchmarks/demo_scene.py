"""How the demo's scene was chosen: the full method and no control on the first held-out benchmark cases
at a given number of frames, as ``anyi2v-lab demo`` runs them (the paper's 25 steps, CFG 8, the fast
inversion schedule, case i with noise seed i and its benchmark modality, the scene's own motion as the
trajectory, a colour tracker against the trajectory's per-frame boxes).

    python benchmarks/demo_scene.py --frames 8 --cases 19     # benchmarks/results/demo_scene_8_frames.json

The demo (``anyi2v_lab/demo.py``, ``DEMO_SCENE``) takes the moving one-object case nearest the median
that ends on its target; ``path_px`` says which cases move.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--cases", type=int, default=19)
    p.add_argument("--out", default=None, help="default: benchmarks/results/demo_scene_<frames>_frames.json")
    args = p.parse_args(argv)
    from anyi2v_lab.startup import prepare_process
    prepare_process()
    import numpy as np

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from anyi2v_lab.demo import case_trajectory, score_tracking
    from anyi2v_lab.io import write_json
    from anyi2v_lab.method import AnyI2VConfig, generate
    from anyi2v_lab.models.loading import load_pipeline
    from anyi2v_lab.outputs import versions
    from toy_trajectory import make_cases

    pipe = load_pipeline(progress=False)
    cfg = AnyI2VConfig(inversion_schedule="fast", num_frames=args.frames)
    rows = []
    for i, (case, modality) in enumerate(make_cases(args.cases, 64)):
        traj, tic = case_trajectory(case), time.perf_counter()
        full = generate(pipe, case.conditions[modality], case.caption, traj, cfg, seed=i, progress=False)
        free = generate(pipe, case.conditions[modality], case.caption, None, cfg, seed=i, progress=False,
                        features=full.features)
        s, f = score_tracking(full, case, traj), score_tracking(free, case, traj)
        path = [float(np.linalg.norm(np.diff(c, axis=0), axis=1).sum()) for c in case.centres]
        rows.append(dict(case=i, scene_seed=case.seed, objects=len(case.objects), motion=case.motion,
                         modality=modality, path_px=[round(x, 1) for x in path], objmc_px=s["objmc_px"],
                         final_error_px=s["final_error_px"], no_control_objmc_px=f["objmc_px"],
                         seconds=round(time.perf_counter() - tic, 1)))
        print(json.dumps(rows[-1]), flush=True)
    summary = dict(frames=args.frames, cases=args.cases, settings=cfg.to_dict(), machine=platform.processor() or
                   platform.machine(), date=time.strftime("%Y-%m-%d"), versions=versions(),
                   median_objmc_px=statistics.median(r["objmc_px"] for r in rows),
                   median_no_control_objmc_px=statistics.median(r["no_control_objmc_px"] for r in rows), rows=rows)
    out = Path(args.out or Path(__file__).resolve().parent / "results" / f"demo_scene_{args.frames}_frames.json")
    write_json(out, summary)
    print(f"median ObjMC {summary['median_objmc_px']:.2f} px (no control {summary['median_no_control_objmc_px']:.2f})"
          f" -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
