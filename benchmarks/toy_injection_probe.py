"""Does feature injection carry a condition's layout into frame 0 on the toy model?

The trajectory benchmark measures the whole chain (features, injection, optimisation, motion). This
probe isolates its first link: one frame (the motion modules see nothing to mix), no
trajectory, so only the image model's answer to the injected features is measured. Each development
scene (``toy_trajectory.DEV_SEED``) is generated from two conditions, its own frame 0 (``rgb``) and its
benchmark modality, under injection variants that differ from the paper's in one or two switches. The
object's colour is tracked in the generated frame: centre error (px) where found, the share found, and
IoU against the scene's true mask.

    python benchmarks/toy_injection_probe.py --scenes 8 --out benchmarks/results/toy_injection_probe.json   # CPU

Writes the JSON (settings, per-scene and pooled numbers) and a PNG grid beside it (rows: scenes;
columns: the condition, the real frame 0, then each variant's frame 0 for that condition).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from toy_trajectory import DEV_SEED, make_cases, variant_names

# None: plain sampling (no injection). Otherwise changes to the base config below; step 24 is the last
# of the 25 sampling steps, so "all_steps" injects throughout.
VARIANTS = {
    "plain": None,
    "paper": {},                                                 # patch AdaIN (4 x 4), steps 0-3
    "paper_all_steps": {"load_feature_step": 24},
    "global_adain_all_steps": {"adain_patch": None, "load_feature_step": 24},
    "no_debias": {"debias": False},                              # the paper's "w/o debias" (Fig. 10)
    "no_debias_all_steps": {"debias": False, "load_feature_step": 24},
}
# One frame and no trajectory; injection into both CFG branches, as the benchmark's `toy_fine_align` variant does
# (one branch alone turns frame 0 into speckle at CFG 8); the fast inversion keeps the probe to minutes on a CPU.
BASE = dict(num_frames=1, inject_uncond=True, inversion_schedule="fast")
LABELS = {"plain": "plain", "paper": "paper", "paper_all_steps": "paper, all", "global_adain_all_steps": "global, all",
          "no_debias": "no debias", "no_debias_all_steps": "no deb., all"}


def header(labels: list[str], size: int) -> np.ndarray:
    """A white strip with one label per ``size``-wide column, ``(12, len(labels) * size, 3)`` uint8."""
    from PIL import Image, ImageDraw

    strip = Image.new("RGB", (len(labels) * size, 12), "white")
    draw = ImageDraw.Draw(strip)
    for i, label in enumerate(labels):
        draw.text((i * size + 2, 1), label, fill="black")
    return np.asarray(strip)


def frame0_scores(frame: np.ndarray, case) -> dict:
    """Centre error (px, NaN where the colour is not found) and IoU of each object in one generated frame."""
    import torch

    from anyi2v_lab.metrics import colour_mask, iou
    from anyi2v_lab.toy.tracking import track_objects

    n = len(case.objects)
    cen = track_objects(torch.from_numpy(frame[None, None]), [case])["centroid"][0, :n, 0].numpy()
    return {"error_px": [float(np.linalg.norm(cen[o] - case.centres[o, 0])) for o in range(n)],
            "iou": [iou(colour_mask(frame, ob.rgb), case.masks[o, 0]) for o, ob in enumerate(case.objects)]}


def pooled(rows: list[dict]) -> dict:
    """Mean and median centre error over the objects found, the share placed within 4 px (of all
    objects), the share found, and the mean IoU."""
    err = np.array([e for r in rows for e in r["error_px"]], float)
    found = ~np.isnan(err)
    return {"error_px": float(err[found].mean()) if found.any() else float("nan"),
            "median_error_px": float(np.median(err[found])) if found.any() else float("nan"),
            "placed_within_4px": float((err[found] < 4).sum() / len(err)), "found": float(found.mean()),
            "iou": float(np.mean([i for r in rows for i in r["iou"]]))}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenes", type=int, default=8)
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--model", default=None, help="default: the embedded toy model")
    p.add_argument("--device", default="cpu")
    p.add_argument("--guidance", type=float, default=8.0)
    p.add_argument("--grid-rows", type=int, default=8, help="scenes shown in the PNG grid")
    p.add_argument("--out", default="outputs/toy_injection_probe.json")
    a = p.parse_args(argv)
    names = variant_names(a.variants, VARIANTS)
    from tqdm.auto import tqdm

    from anyi2v_lab.method import AnyI2VConfig, generate
    from anyi2v_lab.models.loading import load_pipeline

    base = AnyI2VConfig(guidance_scale=a.guidance, **BASE)
    configs = {n: base.replace(**(VARIANTS[n] or {})) for n in names}  # bad settings fail before any work
    pipe = load_pipeline(a.model, device=a.device, progress=False)
    size = pipe.unet.config.sample_size * pipe.vae_scale_factor
    cases = make_cases(a.scenes, size, DEV_SEED)
    tic = time.perf_counter()
    per_scene = {f"{n}/{c}": [] for n in names for c in ("rgb", "modality")}
    rows = []
    with tqdm(total=len(cases) * len(names) * 2, desc="frames") as bar:
        for i, (case, modality) in enumerate(cases):
            row = []
            for cond_name, image in (("rgb", case.frames[0]), ("modality", case.conditions[modality])):
                row += [image, case.frames[0]]
                for n in names:
                    res = generate(pipe, image, case.caption, None, configs[n], seed=i, progress=False,
                                   inject=VARIANTS[n] is not None)
                    frame = res.frames[0]
                    scores = frame0_scores(frame, case)
                    per_scene[f"{n}/{cond_name}"].append({"scene": i, "modality": modality, **scores})
                    row.append(frame)
                    bar.update()
            rows.append(np.concatenate(row, 1))
    report = {"settings": {**vars(a), "base": BASE, "variants": {n: VARIANTS[n] for n in names}, "case_seed": DEV_SEED},
              "seconds": time.perf_counter() - tic,
              "pooled": {k: pooled(v) for k, v in per_scene.items()}, "per_scene": per_scene}
    from PIL import Image

    from anyi2v_lab.io import atomic_path, write_json

    out = Path(a.out)
    write_json(out, report)
    titles = ["condition", "real f0", *[LABELS[n] for n in names]] * 2
    grid = np.concatenate([header(titles, size), *rows[:a.grid_rows]], 0)
    with atomic_path(out.with_suffix(".png")) as tmp:
        Image.fromarray(grid).resize((grid.shape[1] * 2, grid.shape[0] * 2), Image.NEAREST).save(tmp, format="PNG")
    print(f"{'variant / condition':34} {'error px':>8} {'median':>7} {'placed':>7} {'found':>6} {'IoU':>6}")
    for k, r in report["pooled"].items():
        print(f"{k:34} {r['error_px']:8.2f} {r['median_error_px']:7.2f} {r['placed_within_4px']:7.2f} "
              f"{r['found']:6.2f} {r['iou']:6.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
