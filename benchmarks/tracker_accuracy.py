"""How accurate is the offline tracker behind ObjMC? On held-out toy videos, where every object's true
position is known, each object's query point (the inscribed-circle centre of its frame-0 mask, as ObjMC
places it) is tracked with OpenCV's pyramidal Lucas-Kanade and compared with where that point of the
shape really is (the frame-0 box mapped onto each frame's box: toy shapes translate and scale, never rotate).

    python benchmarks/tracker_accuracy.py --videos 100
    python benchmarks/tracker_accuracy.py --videos 4 --out /tmp/tracker_accuracy.json   # a quick check

Errors are pixels at 64 px over frames 1..F-1 (frame 0 is the query itself). "point visible" keeps the
frames where the true point lies on the object's visible pixels (not behind another object); "flagged
visible" the frames the forward-backward check keeps. Toy shapes are flat-coloured, so the LK window
around an interior point takes its texture from the shape's edge and the background; a static textured
background holds it back ("per_background" pools all motions, occlusions included). Rendering the cases
takes most of the time; CPU only.
"""
from __future__ import annotations

import argparse
import os
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from anyi2v_lab.evaluation import LucasKanadeTracker, inscribed_circle_centre, target_points
from anyi2v_lab.io import write_json
from anyi2v_lab.toy.world import heldout_cases
from anyi2v_lab.trajectory import ObjectTrack, Trajectory

SETTINGS = {"default": {}, "win15": {"win_size": 15}, "win31": {"win_size": 31}}


def true_points(case, starts: np.ndarray) -> np.ndarray:
    """(O, F, 2): where each frame-0 point of each shape is, frame by frame (through the true boxes)."""
    H, W = case.frames.shape[1:3]
    objs = [ObjectTrack(tuple(map(float, b[0])), tuple(map(tuple, (b[:, :2] + b[:, 2:]) / 2)),
                        tuple(map(float, b[-1]))) for b in case.boxes.astype(np.float64)]
    traj = Trajectory(tuple(objs), (W, H))
    # frame_boxes moves the box centre along the path and changes the size linearly; the toy world's
    # sizes change linearly too, so its boxes come back exactly (checked below)
    pts = target_points(traj, starts, case.frames.shape[0])
    from anyi2v_lab.trajectory import frame_boxes
    assert np.allclose(frame_boxes(traj, case.frames.shape[0]), case.boxes, atol=1e-3), "toy sizes not linear"
    return pts


def stats(err: np.ndarray) -> dict:
    if err.size == 0:
        return {"n": 0}
    return {"median": round(float(np.median(err)), 3), "p90": round(float(np.percentile(err, 90)), 3),
            "mean": round(float(err.mean()), 3), "n": int(err.size)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--videos", type=int, default=100)
    p.add_argument("--seed", type=int, default=0, help="heldout_cases seed")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "tracker_accuracy.json"))
    a = p.parse_args()

    tic = time.perf_counter()
    cases = heldout_cases(a.videos, seed=a.seed, size=a.size)
    render_s = time.perf_counter() - tic
    rows = []  # per case: starts, truth, masks-visible flags
    for c in cases:
        starts = np.array([inscribed_circle_centre(m[0]) for m in c.masks])
        truth = true_points(c, starts)
        H, W = c.frames.shape[1:3]
        ij = np.clip(np.floor(truth[..., ::-1]).astype(int), 0, [H - 1, W - 1])
        on = np.array([[c.masks[o, f, ij[o, f, 0], ij[o, f, 1]] for f in range(truth.shape[1])]
                       for o in range(len(starts))])
        rows.append((c, starts, truth, on))
    results = {}
    for name, kw in SETTINGS.items():
        tracker = LucasKanadeTracker(**kw)
        tic = time.perf_counter()
        err, on, flag, motion, bg = [], [], [], [], []
        for c, starts, truth, seen in rows:
            tracks, visible = tracker.track(c.frames, starts)
            e = np.linalg.norm(tracks - truth, axis=-1)[:, 1:]
            err.append(e.ravel()), on.append(seen[:, 1:].ravel()), flag.append(visible[:, 1:].ravel())
            motion += [c.motion] * e.size
            bg += [c.background] * e.size
        track_s = time.perf_counter() - tic
        err, on, flag = map(np.concatenate, (err, on, flag))
        motion, bg = np.array(motion), np.array(bg)
        results[name] = {"tracker": tracker.name, "seconds": round(track_s, 2),
                         "all": stats(err), "point_visible": stats(err[on]), "flagged_visible": stats(err[flag]),
                         "flagged_fraction": round(float(flag.mean()), 3),
                         "within_1px": round(float((err <= 1).mean()), 3),
                         "per_motion": {m: {"all": stats(err[motion == m]),
                                            "point_visible": stats(err[(motion == m) & on])}
                                        for m in sorted(set(motion.tolist()))},
                         "per_background": {b: stats(err[bg == b]) for b in sorted(set(bg.tolist()))}}
        r = results[name]
        print(f"{name:<8} {r['tracker']}: median {r['all']['median']} p90 {r['all']['p90']} px "
              f"(point visible: {r['point_visible']['median']} / {r['point_visible']['p90']}), {track_s:.2f} s")
        for m, s in r["per_motion"].items():
            print(f"    {m:<8} median {s['all']['median']} p90 {s['all']['p90']} (n {s['all']['n']})")
        for b, s in r["per_background"].items():
            print(f"    {b:<10} median {s['median']} p90 {s['p90']} (n {s['n']})")
    out = {"what": "Lucas-Kanade point tracking error (px) against the toy world's true positions, frames 1..F-1",
           "videos": len(cases), "objects": int(sum(len(c.objects) for c in cases)),
           "frames": int(cases[0].frames.shape[0]) if cases else 0, "size": a.size, "case_seed": a.seed,
           "motions": {m: sum(c.motion == m for c in cases) for m in sorted({c.motion for c in cases})},
           "render_seconds": round(render_s, 1), "results": results,
           "machine": f"{platform.machine()} {os.cpu_count()} cores (shared with other jobs)",
           "date": datetime.now(timezone.utc).strftime("%Y-%m-%d")}
    write_json(a.out, out)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
