"""Where do the toy model's motion glitches come from? Samples the same weights under sampler variants
(steps, DDIM eta, guidance, ancestral schedulers) and on captions the training sampler did or did not see, and
reports the glitch rate of each, split by motion kind and object count (``evaluate.glitch_by_case``).

    python benchmarks/toy_glitch_probe.py --device cuda --videos 256 --out outputs/glitch_probe.json
    python benchmarks/toy_glitch_probe.py --videos 2 --variants base,eta1 --steps-scale 0.1   # a CPU check

Each variant's seed, steps, guidance and eta are written next to its numbers.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from anyi2v_lab.io import write_json
from anyi2v_lab.toy import model as tm
from anyi2v_lab.toy import scene, world
from anyi2v_lab.toy.evaluate import video_metrics
from toy_trajectory import variant_names  # benchmarks/, beside this script

SEEN_SEED_BASE = 2 * 10**9   # far from heldout_cases' seeds; captions the training sampler can draw

# the model card's evaluation; each variant changes some of it
BASE = dict(captions="heldout", steps=25, guidance_scale=7.5, eta=0.0, scheduler="ddim")
VARIANTS = {
    "base": {}, "seen": {"captions": "seen"}, "cfg1": {"guidance_scale": 1.0},
    "steps50": {"steps": 50}, "steps100": {"steps": 100},
    "eta05": {"eta": 0.5}, "eta1": {"eta": 1.0}, "eta1_cfg5": {"eta": 1.0, "guidance_scale": 5.0},
    "eta1_steps50": {"eta": 1.0, "steps": 50}, "eta1_steps100": {"eta": 1.0, "steps": 100},
    "ddpm100": {"scheduler": "ddpm", "steps": 100}, "euler_a50": {"scheduler": "euler_a", "steps": 50},
}


def scheduler(name: str, config):
    """The sampler of a variant, built from the model's own scheduler config (same betas)."""
    from diffusers import DDIMScheduler, DDPMScheduler, EulerAncestralDiscreteScheduler
    cls = {"ddim": DDIMScheduler, "ddpm": DDPMScheduler, "euler_a": EulerAncestralDiscreteScheduler}[name]
    return cls.from_config(config)


def seen_cases(n: int) -> list[world.ToyCase]:
    """``n`` seeded cases whose captions the training sampler can produce (not held out)."""
    cases, s = [], SEEN_SEED_BASE
    while len(cases) < n:
        # the caption is fixed by the first draws, as in world.heldout_cases: render only the kept seeds
        if not bool(world.is_heldout(scene.sample_attributes(1, torch.Generator().manual_seed(s)))[0]):
            cases.append(world.make_case(s))
        s += 1
    return cases


@torch.no_grad()
def sample(pipe, cases, steps: int, cfg: float, eta: float, seed: int, batch: int, device) -> np.ndarray:
    out = []
    for i in range(0, len(cases), batch):
        g = torch.Generator(device).manual_seed(seed + i)
        v = pipe(prompt=[c.caption for c in cases[i:i + batch]], num_frames=16, num_inference_steps=steps,
                 guidance_scale=cfg, eta=eta, generator=g, output_type="np").frames
        out.append((np.asarray(v) * 255).round().astype(np.uint8))
    return np.concatenate(out)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", default=str(tm.WEIGHTS_DIR))
    p.add_argument("--device", default="cpu")
    p.add_argument("--videos", type=int, default=128)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--case-seed", type=int, default=0,
                   help="another fixed list of held-out captions (world.heldout_cases' seed), to check a rate on "
                        "fresh ones")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--steps-scale", type=float, default=1.0, help="multiply every variant's steps (CPU checks)")
    p.add_argument("--out", default="outputs/toy_glitch_probe.json")
    a = p.parse_args(argv)
    names = variant_names(a.variants, VARIANTS)
    pipe = tm.build_pipeline(tm.load_components(a.weights)).to(a.device)
    pipe.set_progress_bar_config(disable=True)
    t0 = time.time()
    sets = {"heldout": world.heldout_cases(a.videos, seed=a.case_seed)}
    if any(VARIANTS[n].get("captions") == "seen" for n in names):
        sets["seen"] = seen_cases(a.videos)
    res = {"weights": a.weights, "videos": a.videos, "seed": a.seed, "case_seed": a.case_seed,
           "render_seconds": round(time.time() - t0, 1),
           "data": {k: video_metrics(np.stack([c.frames for c in v]), v, a.device) for k, v in sets.items()}}
    base_scheduler = pipe.scheduler.config
    for name in names:
        v = {**BASE, **VARIANTS[name]}
        v["steps"] = max(2, round(v["steps"] * a.steps_scale))
        pipe.scheduler = scheduler(v["scheduler"], base_scheduler)
        t0 = time.time()
        vids = sample(pipe, sets[v["captions"]], v["steps"], v["guidance_scale"], v["eta"], a.seed, a.batch, a.device)
        m = video_metrics(vids, sets[v["captions"]], a.device)
        m.update(v, seconds=round(time.time() - t0, 1))
        res[name] = m
        print(f"{name}: glitch {m['rate']:.4f} (jump {m['jump_rate']:.4f}, dup {m['dup_rate']:.4f}), "
              f"binding {m['binding_accuracy']:.3f}, {m['seconds']} s", flush=True)
    write_json(a.out, res)


if __name__ == "__main__":
    main()
