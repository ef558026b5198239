"""Train the toy model as AnimateDiff does: VAE, then the image model (UNet + text encoder) on frames and
tagged condition images, then the motion modules on videos with the image model frozen, then a short
joint fine-tune that keeps image batches (motion modules bypassed) in the mix. Evaluates and exports.

    python -m anyi2v_lab.toy.train --out outputs/toy --export anyi2v_lab/toy/weights   # the defaults

The committed weights came from a chain of GPU calls, each continuing the joint phase from the
previous export (the weights' README.md has every command; the last three added the centred
consistency term, ``--feature-consistency W --consistency-centred``); the first two were:

    python -m anyi2v_lab.toy.train --out outputs/toy --seconds vae=40,image=100,motion=190,joint=170 \
        --vae-noise 1 --eval-videos 64 --grid-cfg 5
    python -m anyi2v_lab.toy.train --out outputs/toy2 --init-from outputs/toy/weights --phases joint \
        --joint-text --image-every 2 --seconds joint=490 --lr joint=4e-4 --eval-videos 128

The code changed between and after the two calls (the UNet learns posterior means from the second on,
coarser textures, 4 frames per scene in image batches, --vae-noise, the defaults), so re-running gives
the recipe, not the bits: anyi2v_lab/toy/weights/README.md has the record. ``--phases decoder``
fine-tunes the VAE decoder alone (latent space kept), e.g. on a CPU. A from-scratch run with the
current defaults' VAE phase (2026-11-26: VAE 36.8 dB, but colour binding 39 %) was not adopted; the
weights' README.md has its numbers.

Data-parallel over the GPUs of one host (:mod:`anyi2v_lab.toy.parallel`; calls A-D ran so on 4 H200s,
call H on 2): each process trains on its own batches of ``--batch`` (the effective batch is N times it),
gradients are averaged, and rank 0 logs, checkpoints, exports and evaluates:

    torchrun --standalone --nproc-per-node 4 -m anyi2v_lab.toy.train --out /tmp/toyB \
        --init-from anyi2v_lab/toy/weights --phases joint --joint-text --object-probs 0.1,0.3,0.6 \
        --seconds joint=360 --lr joint=2.5e-4 --eval-videos 128 --eval-cfg 7.5 --deadline 400

Each phase runs for a time budget (seconds) or a step cap, whichever ends first, so a run fits a fixed
time limit on any machine. Progress goes to stdout and <out>/train.log; <out>/ckpt.pt holds the full
state (``--resume``) and is rewritten every ``--ckpt-every`` seconds and at each phase end.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from anyi2v_lab.toy import model as tm
from anyi2v_lab.toy import parallel
from anyi2v_lab.toy.evaluate import evaluate
from anyi2v_lab.toy.scene import check_object_probs
from anyi2v_lab.toy.trainer import Log, Trainer

# "decoder" fine-tunes the VAE decoder alone: the encoder, hence the latent space the UNet learned, stays
# fixed, so it can sharpen a trained model's decoding without touching its UNet.
PHASES = ("vae", "image", "motion", "joint", "decoder")


@dataclass(frozen=True)
class TrainConfig:
    out: str = "outputs/toy"
    export: str | None = None
    seed: int = 0
    device: str = "auto"
    # defaults: the committed run's recipe with a longer, near-deterministic VAE phase (its was 40 s)
    seconds: dict = field(default_factory=lambda: {"vae": 120, "image": 100, "motion": 150, "joint": 150, "decoder": 0})
    max_steps: dict = field(default_factory=lambda: {p: 10**9 for p in PHASES})
    batch: dict = field(default_factory=lambda: {"vae": 256, "image": 512, "motion": 64, "joint": 64, "decoder": 64})
    lr: dict = field(default_factory=lambda: {"vae": 1e-3, "image": 5e-4, "motion": 5e-4, "joint": 2e-4, "decoder": 3e-4})
    cond_fraction: float = 0.3       # image batches: share of condition images (captions tagged)
    caption_dropout: float = 0.1     # empty caption, for classifier-free guidance
    image_every: int = 4             # joint phase: every n-th step is an image batch (motion bypassed)
    joint_text: bool = False         # joint phase: train the text encoder too
    # posterior noise kept in the VAE and decoder phases' latents (1 = posterior samples, as SD trains;
    # the committed weights used 1, which left this small VAE a noisy channel that loses shape detail)
    vae_noise: float = 0.1
    ema: float = 0.999
    warmup: int = 100
    # cosine decay of each phase's lr to this fraction over its time budget (or step cap, whichever ends
    # first): the committed run kept lr constant and its losses were still falling when time ran out
    lr_final: float = 0.1
    deadline: float | None = None    # seconds after start: checkpoint and exit cleanly (a call's time limit)
    ckpt_every: float = 120.0
    eval_videos: int = 128
    eval_cfg: tuple = (3.0, 5.0, 7.5)
    eval_steps: int = 25
    grid_cfg: float = 7.5
    init_from: str | None = None     # warm start from an exported weights folder (fp16 is fine)
    # transformer layers per motion module (None: 1, or the warm start's); a warm start's adapter is grown
    # to it, new layers starting as identities
    motion_depth: int | None = None
    # chances of 1, 2, 3 objects in training scenes (None: the world's 0.35/0.4/0.25); evaluation never changes
    object_probs: tuple | None = None
    # joint phase: weight of toy.consistency's term in the image batches (0: off; the committed weights' last
    # three calls used 0.15, 0.05 and 0.02 with consistency_centred)
    feature_consistency: float = 0.0
    # compare the maps less each channel's spatial mean (toy.consistency.structure): layout, not look
    consistency_centred: bool = False

    def __post_init__(self):
        for name in ("seconds", "max_steps", "batch", "lr"):
            bad = set(getattr(self, name)) - set(PHASES)
            if bad:
                raise ValueError(f"{name} has unknown phases {bad}; phases are {PHASES}")
        if not 0 <= self.cond_fraction <= 1 or not 0 <= self.caption_dropout < 1:
            raise ValueError("cond_fraction must be in [0, 1] and caption_dropout in [0, 1)")
        object.__setattr__(self, "object_probs", check_object_probs(self.object_probs))
        if self.feature_consistency < 0:
            raise ValueError(f"feature_consistency must be >= 0, got {self.feature_consistency}")
        if self.motion_depth is not None and self.motion_depth < 1:
            raise ValueError(f"motion_depth must be None or >= 1, got {self.motion_depth}")


def _kv(text: str, cast) -> dict:
    out = {}
    for item in filter(None, text.split(",")):
        k, v = item.split("=")
        out[k.strip()] = cast(v)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="outputs/toy")
    p.add_argument("--export", default=None, help="folder for the fp16 weights (e.g. anyi2v_lab/toy/weights)")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--phases", default="vae,image,motion,joint",
                   help=f"phases to run, from {PHASES} (decoder only on request)")
    p.add_argument("--seconds", default="", help="per-phase time budgets, e.g. vae=50,image=110")
    p.add_argument("--max-steps", default="", help="per-phase step caps, e.g. vae=3,image=3")
    p.add_argument("--batch", default="", help="per-phase batch sizes")
    p.add_argument("--lr", default="", help="per-phase learning rates")
    p.add_argument("--eval-videos", type=int, default=128)
    p.add_argument("--eval-cfg", default="3,5,7.5")
    p.add_argument("--eval-steps", type=int, default=25)
    p.add_argument("--grid-cfg", type=float, default=7.5)
    p.add_argument("--no-eval", action="store_true")
    p.add_argument("--resume", action="store_true", help="continue from <out>/ckpt.pt")
    p.add_argument("--init-from", default=None, help="warm start from an exported weights folder")
    p.add_argument("--image-every", type=int, default=4, help="joint phase: every n-th step is an image batch")
    p.add_argument("--motion-depth", type=int, default=None,
                   help="transformer layers per motion module; grows a warm start's adapter (new layers identities)")
    p.add_argument("--object-probs", default=None, help="training scenes' chances of 1,2,3 objects, e.g. 0.2,0.4,0.4")
    p.add_argument("--feature-consistency", type=float, default=0.0,
                   help="joint phase: weight of the term that pulls a condition image's injected features towards "
                        "its RGB frame's (anyi2v_lab.toy.consistency); 0 = off")
    p.add_argument("--consistency-centred", action="store_true",
                   help="compare those features less each channel's spatial mean: where things are, not their look")
    p.add_argument("--joint-text", action="store_true", help="joint phase: train the text encoder too")
    p.add_argument("--vae-noise", type=float, default=0.1, help="posterior noise scale in the VAE phases")
    p.add_argument("--lr-final", type=float, default=0.1, help="cosine-decay each phase's lr to this fraction")
    p.add_argument("--deadline", type=float, default=None,
                   help="seconds after start: checkpoint, exit 0 and continue later with --resume")
    p.add_argument("--tiny", action="store_true", help="a few tiny steps of every phase (a CPU check)")
    a = p.parse_args(argv)
    base = TrainConfig()
    seconds, steps, batch, lr = dict(base.seconds), dict(base.max_steps), dict(base.batch), dict(base.lr)
    extra = {}
    if a.tiny:
        steps = {k: 2 for k in PHASES}
        batch = {"vae": 8, "image": 8, "motion": 2, "joint": 2, "decoder": 8}
        extra = dict(eval_steps=2, ckpt_every=0.0)
        a.eval_videos, a.eval_cfg, a.grid_cfg = 2, "3", 3.0
    seconds.update(_kv(a.seconds, float))
    steps.update(_kv(a.max_steps, int))
    batch.update(_kv(a.batch, int))
    lr.update(_kv(a.lr, float))
    kw = dict(out=a.out, export=a.export, seed=a.seed, device=a.device, seconds=seconds, max_steps=steps,
              batch=batch, lr=lr, eval_videos=a.eval_videos, eval_steps=a.eval_steps, grid_cfg=a.grid_cfg,
              eval_cfg=tuple(float(x) for x in a.eval_cfg.split(",")), init_from=a.init_from,
              image_every=a.image_every, joint_text=a.joint_text, vae_noise=a.vae_noise,
              lr_final=a.lr_final, deadline=a.deadline, motion_depth=a.motion_depth,
              feature_consistency=a.feature_consistency, consistency_centred=a.consistency_centred,
              object_probs=None if a.object_probs is None else a.object_probs.split(","))
    cfg = TrainConfig(**{**kw, **extra})
    group = parallel.init(cfg.device)
    Path(cfg.out).mkdir(parents=True, exist_ok=True)
    log = Log(Path(cfg.out) / "train.log" if group.main else None)
    log(f"config: {json.dumps(asdict(cfg))}")
    tr = Trainer(cfg, log, group)
    log(f"device {tr.dev}; torch {torch.__version__}"
        + (f"; {group.world} data-parallel ranks, effective batch x {group.world}" if group.world > 1 else ""))
    ck = tr.load(str(Path(cfg.out) / "ckpt.pt")) if a.resume else None
    wanted = [x for x in a.phases.split(",") if x]
    if set(wanted) - set(PHASES):
        raise SystemExit(f"--phases must name phases from {PHASES}, got {wanted}")
    for name in PHASES:
        if name in wanted and name not in tr.done:
            tr.run_phase(name, ck["live"] if ck is not None and ck["phase"] == name else None)
    export = Path(cfg.export or Path(cfg.out) / "weights")
    tr.export(export)
    parallel.close(group)
    if not group.main:
        return
    summary = {"config": asdict(cfg), "world_size": group.world, "phases": tr.state, "history": tr.history,
               "params": {"vae": tm.count_params(tr.vae), "text_encoder": tm.count_params(tr.text),
                          "unet_motion": tm.count_params(tr.unet) if tr.unet is not None else None}}
    if not a.no_eval:
        summary["eval"] = evaluate(export, cfg, tr.dev, log)
    with open(Path(cfg.out) / "summary.json", "w") as f:
        json.dump(summary, f, indent=1)
    log("finished")


if __name__ == "__main__":
    main()
