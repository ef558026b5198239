"""``anyi2v-lab demo``: the main job on the embedded toy model, on a CPU.

A held-out toy scene gives an outline sketch of its first frame and its caption; a trajectory moves
the object's box along a path; the full method (inversion, injection, trajectory optimisation)
generates the video; a colour tracker measures where the object went. Written: the video, the
overlay (target boxes and path, loss masks, tracked centres), a plot of target versus achieved path,
and run.json with the ObjMC of this run.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from .toy.settings import TOY_METHOD_SETTINGS

# Documented demo settings: the paper's method and defaults, except the toy canvas (64 px, from the
# model) and the fast inversion schedule, which keeps the demo within 90 s on 2 CPU cores; plus
# ``toy.settings.TOY_METHOD_SETTINGS``, the toy model's departures from the paper (none for the
# committed weights, call J1: the paper's settings won on development scenes).
DEMO_SCENE_SEED = 7
# The sampling noise's seed, chosen for the showcase on earlier weights (call D) and kept: on the
# committed weights this scene's ObjMC over noise seeds 1 to 7 is 13.5, 3.3, 6.0, 2.2, 3.8, 1.8 and
# 6.3 px (mean 5.3; call D with its settings: 14.3, 13.1, 11.5, 21.6 px, object lost (seed 5), and
# 7.4 px for seeds 1-5 and 7). One video is a picture, not a measurement:
# benchmarks/toy_trajectory.py measures the method on 50 scenes.
DEMO_NOISE_SEED = 7
DEMO_OVERRIDES = dict(inversion_schedule="fast", **TOY_METHOD_SETTINGS)
DEMO_MODALITY = "sketch"


def demo_inputs(size: int = 64):
    """The demo's scene (a held-out toy case with one object), its trajectory and prompt."""
    from .toy.world import heldout_cases
    from .trajectory import ObjectTrack, Trajectory

    case = heldout_cases(1, seed=DEMO_SCENE_SEED, size=size, num_objects=1)[0]
    box = case.boxes[0, 0].astype(float)
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    # a smooth arc across the frame, away from where the object starts
    dx = (size * 0.45) * (1 if cx < size / 2 else -1)
    dy = (size * 0.2) * (1 if cy < size / 2 else -1)
    path = [(cx, cy), (cx + 0.5 * dx, cy + dy), (cx + dx, cy + 0.3 * dy)]
    obj = ObjectTrack(box=tuple(box), path=tuple(path), query_points=((cx, cy),), name=case.objects[0].colour)
    return case, Trajectory((obj,), image_size=(size, size)), case.modality_caption("rgb")


def run_demo(out: Path, overwrite: bool = False, tiny: bool = False, fast: bool = False) -> dict:
    from .method import AnyI2VConfig, generate
    from .metrics import objmc
    from .outputs import write_run

    tic = time.perf_counter()
    if tiny:
        from .models.tiny import tiny_pipeline
        pipe, label = tiny_pipeline(), "TINY RANDOM MODEL (untrained: the video is noise, only the plumbing is shown)"
    else:
        from .models.loading import load_pipeline
        pipe, label = load_pipeline(progress=False), "embedded toy model"
    size = pipe.unet.config.sample_size * pipe.vae_scale_factor
    case, trajectory, prompt = demo_inputs(size)
    config = AnyI2VConfig(**DEMO_OVERRIDES)
    if fast:
        config = config.replace(num_inference_steps=10, opt_step=2, opt_iters=3)
    print(f"model: {label}; scene: {case.caption!r} as a {DEMO_MODALITY} condition, {size}x{size}")
    result = generate(pipe, case.conditions[DEMO_MODALITY], prompt, trajectory, config, seed=DEMO_NOISE_SEED,
                      keep_masks=True)
    result = _with_tracking(result, case)
    elapsed = time.perf_counter() - tic
    target = (result.record.boxes[..., :2] + result.record.boxes[..., 2:]) / 2
    score = objmc(target, result.extra["achieved"])["objmc"]
    summary = {"model": label, "caption": case.caption, "modality": DEMO_MODALITY, "objmc_px": score,
               "objmc_frac_width": score / size, "seconds": elapsed, "timings": result.record.timings}

    def plot(path):
        from .plots import plot_paths
        fig = plot_paths(target, result.extra["achieved"], image=case.conditions[DEMO_MODALITY],
                         title=f"target vs achieved (ObjMC {score:.2f} px)")
        fig.savefig(path, dpi=120, bbox_inches="tight")

    def write_summary(path):
        Path(path).write_text(json.dumps(summary, indent=2))

    write_run(result, out, model={"model": "tiny" if tiny else None}, overwrite=overwrite,
              extra_files={"path.png": plot, "demo.json": write_summary})
    print(f"ObjMC {score:.2f} px ({100 * score / size:.1f}% of the width); {elapsed:.1f} s in all")
    print(f"wrote {out}/video.mp4, overlay.mp4, path.png, run.json")
    return summary


def _with_tracking(result, case):
    from .toy.tracking import track_colour

    achieved = np.stack([track_colour(result.frames, obj.rgb)["centroid"].numpy() for obj in case.objects])
    result.extra["achieved"] = achieved
    return result
