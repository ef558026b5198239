"""Train the toy model as AnimateDiff does: VAE, then the image model (UNet + text encoder) on frames and
tagged condition images, then the motion modules on videos with the image model frozen, then a short
joint fine-tune that keeps image batches (motion modules bypassed) in the mix. Evaluates and exports.

    python -m anyi2v_lab.toy.train --out outputs/toy --export anyi2v_lab/toy/weights   # the defaults

The committed weights came from five GPU calls (H100, H200, then three H100 calls that continued the
joint phase from the previous export; the weights' README.md has their commands):

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

Each phase runs for a time budget (seconds) or a step cap, whichever ends first, so a run fits a fixed
time limit on any machine. Progress goes to stdout and <out>/train.log; <out>/ckpt.pt holds the full
state (``--resume``) and is rewritten every ``--ckpt-every`` seconds and at each phase end.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as Fn

from anyi2v_lab.toy import model as tm
from anyi2v_lab.toy import world
from anyi2v_lab.toy.evaluate import evaluate
from anyi2v_lab.hooks import bypass_motion
from anyi2v_lab.toy.scene import to_dev
from anyi2v_lab.toy.tokenizer import build_tokenizer

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

    def __post_init__(self):
        for name in ("seconds", "max_steps", "batch", "lr"):
            bad = set(getattr(self, name)) - set(PHASES)
            if bad:
                raise ValueError(f"{name} has unknown phases {bad}; phases are {PHASES}")
        if not 0 <= self.cond_fraction <= 1 or not 0 <= self.caption_dropout < 1:
            raise ValueError("cond_fraction must be in [0, 1] and caption_dropout in [0, 1)")


class Log:
    def __init__(self, path: Path):
        self.t0, self.f = time.time(), open(path, "a", buffering=1)

    def __call__(self, msg: str):
        line = f"[{time.time() - self.t0:7.1f}s] {msg}"
        print(line, flush=True)
        self.f.write(line + "\n")


class Trainer:
    def __init__(self, cfg: TrainConfig, log: Log):
        self.cfg, self.log = cfg, log
        self.dev = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device)
        self.amp = dict(device_type=self.dev.type, dtype=torch.bfloat16, enabled=self.dev.type == "cuda")
        torch.manual_seed(cfg.seed)
        random.seed(cfg.seed)
        torch.backends.cudnn.benchmark = False   # autotuning cost ~10 s per phase on the probe run
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.tok = build_tokenizer()
        self.sched = tm.build_scheduler()
        self.acp = self.sched.alphas_cumprod.to(self.dev)
        self.vae, self.text, self.unet2d = tm.build_vae(), tm.build_text_encoder(), tm.build_unet()
        self.unet = None                                  # the UNetMotionModel, from the motion phase on
        self.sf, self.done, self.history, self.state = 1.0, [], [], {}
        if cfg.init_from:
            c = tm.load_components(cfg.init_from)
            self.vae, self.text, self.unet2d = c["vae"], c["text_encoder"], c["unet"]
            self.unet = tm.motion_unet(c["unet"], c["motion_adapter"]).float()
            self.sf, self.done = float(self.vae.config.scaling_factor), ["vae", "image"]
        for m in (self.vae, self.text, self.unet2d, self.unet):
            if m is not None:
                m.to(self.dev)

    # ---- data ------------------------------------------------------------------------------------
    def images(self, n: int, cond_fraction: float):
        """n single frames, 4 random times from each of n/4 scenes, a share replaced by a condition
        image (caption tagged with its modality); x: (n, 3, H, W) in [-1, 1]."""
        k = 4 if n % 4 == 0 else 1
        spec = world.sample_specs(n // k, self.gen, reject=world.is_heldout).take(torch.arange(n // k).repeat_interleave(k))
        spec = spec.select_frames(torch.randint(16, (n,), generator=self.gen))
        r = world.render_specs(spec, self.dev, conditions=cond_fraction > 0)
        x, caps = r["frames"][:, 0], world.captions_of(spec)
        if cond_fraction > 0:
            pick = torch.rand(n, generator=self.gen)
            mod = torch.randint(len(world.MODALITIES), (n,), generator=self.gen)
            conds = torch.stack([r["conditions"][m] for m in world.MODALITIES], 1)
            use = pick < cond_fraction
            x = torch.where(to_dev(use, self.dev)[:, None, None, None], conds[torch.arange(n, device=self.dev), to_dev(mod, self.dev)], x)
            caps = [f"{c}, {world.MODALITY_TAGS[world.MODALITIES[int(m)]]}" if u else c for c, m, u in zip(caps, mod, use)]
        return x * 2 - 1, caps

    def videos(self, n: int):
        r = world.render_batch(n, generator=self.gen, device=self.dev)
        return r["frames"] * 2 - 1, r["captions"]

    def encode_text(self, caps: list[str]) -> torch.Tensor:
        caps = ["" if random.random() < self.cfg.caption_dropout else c for c in caps]
        ids = self.tok(caps, padding="max_length", max_length=self.tok.model_max_length, truncation=True,
                       return_tensors="pt").input_ids
        ids = to_dev(ids, self.dev)
        return self.text(ids)[0]

    @torch.no_grad()
    def latents(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(**self.amp):
            # the posterior mean: this small VAE's posterior std is about a third of the latents' spread,
            # noise the UNet could never predict
            return self.vae.encode(x).latent_dist.mode().float() * self.sf

    def noised(self, z: torch.Tensor):
        t = torch.randint(0, 1000, (z.shape[0],), device=self.dev)
        eps = torch.randn_like(z)
        a = self.acp[t].view(-1, *[1] * (z.dim() - 1))
        return a.sqrt() * z + (1 - a).sqrt() * eps, t, eps

    # ---- losses, one per batch kind -----------------------------------------------------------------
    def vae_loss(self):
        x, _ = self.images(self.cfg.batch["vae"], 0.3)
        with torch.autocast(**self.amp):
            post = self.vae.encode(x).latent_dist
            rec = self.vae.decode(post.mean + self.cfg.vae_noise * post.std * torch.randn_like(post.mean)).sample.float()
        return Fn.l1_loss(rec, x) + Fn.mse_loss(rec, x) + 1e-6 * post.kl().mean()

    def decoder_loss(self):
        x, _ = self.images(self.cfg.batch["decoder"], 0.3)
        with torch.no_grad(), torch.autocast(**self.amp):
            post = self.vae.encode(x).latent_dist
            # some posterior noise: generated latents are never exactly the encoder's
            z = (post.mean + self.cfg.vae_noise * post.std * torch.randn_like(post.mean)).float()
        with torch.autocast(**self.amp):
            rec = self.vae.decode(z).sample.float()
        return Fn.l1_loss(rec, x) + Fn.mse_loss(rec, x)

    @torch.no_grad()
    def vae_psnr(self, n: int = 256) -> float:
        """PSNR (dB) of frames through the VAE's posterior mean, on a fixed set of training-sampler frames."""
        keep = self.gen.get_state()
        self.gen.manual_seed(12345)
        x, _ = self.images(n, 0.0)
        self.gen.set_state(keep)
        with torch.autocast(**self.amp):
            rec = self.vae.decode(self.vae.encode(x).latent_dist.mode()).sample.float().clamp(-1, 1)
        return 10 * torch.log10(4 / Fn.mse_loss(rec, x)).item()

    def image_loss(self, net, n: int, bypass: bool = False):
        x, caps = self.images(n, self.cfg.cond_fraction)
        z = self.latents(x)
        zt, t, eps = self.noised(z)
        with torch.autocast(**self.amp):
            emb = self.encode_text(caps)
            if bypass:                                   # the motion UNet as an image model
                with bypass_motion(net):
                    pred = net(zt[:, :, None], t, emb).sample[:, :, 0]
            else:
                pred = net(zt, t, emb).sample
        return Fn.mse_loss(pred.float(), eps)

    def video_loss(self):
        x, caps = self.videos(self.cfg.batch["motion"])
        B, F = x.shape[:2]
        z = self.latents(x.flatten(0, 1))
        z = z.view(B, F, *z.shape[1:]).transpose(1, 2)                     # (B, 4, F, h, w)
        zt, t, eps = self.noised(z)
        with torch.set_grad_enabled(self.text.training), torch.autocast(**self.amp):
            emb = self.encode_text(caps).repeat_interleave(F, dim=0)   # per frame, as the pipeline does
        with torch.autocast(**self.amp):
            pred = self.unet(zt, t, emb).sample
        return Fn.mse_loss(pred.float(), eps)

    # ---- phases -------------------------------------------------------------------------------------
    def setup(self, name: str):
        """(trainable parameters, loss function of the step) for a phase; builds the motion UNet."""
        if name == "vae":
            return list(self.vae.parameters()), lambda i: self.vae_loss()
        self.vae.requires_grad_(False).eval()
        if name == "decoder":
            self.state["decoder_psnr_before"] = round(self.vae_psnr(), 2)
            self.log(f"decoder: PSNR before {self.state['decoder_psnr_before']} dB")
            params = [*self.vae.decoder.parameters(), *self.vae.post_quant_conv.parameters()]
            for p in params:
                p.requires_grad_(True)
            return params, lambda i: self.decoder_loss()
        if name == "image":
            return [*self.unet2d.parameters(), *self.text.parameters()], \
                lambda i: self.image_loss(self.unet2d, self.cfg.batch["image"])
        self.text.requires_grad_(False).eval()
        if self.unet is None:
            self.unet = tm.motion_unet(self.unet2d, tm.build_motion_adapter(zero_out=True).to(self.dev)).to(self.dev)
            self.unet2d = None
        if name == "motion":
            self.unet.freeze_unet2d_params()
            return [p for p in self.unet.parameters() if p.requires_grad], lambda i: self.video_loss()
        self.unet.requires_grad_(True)
        self.text.requires_grad_(self.cfg.joint_text).train(self.cfg.joint_text)
        every = self.cfg.image_every
        text = list(self.text.parameters()) if self.cfg.joint_text else []
        return list(self.unet.parameters()) + text, lambda i: (
            self.image_loss(self.unet, self.cfg.batch["image"], bypass=True) if every and i % every == every - 1
            else self.video_loss())

    def run_phase(self, name: str, resume: dict | None):
        cfg = self.cfg
        params, loss_fn = self.setup(name)
        opt = torch.optim.AdamW(params, lr=cfg.lr[name], betas=(0.9, 0.99), weight_decay=1e-2,
                                fused=self.dev.type == "cuda")
        ema = [p.detach().clone() for p in params] if name != "vae" else []
        step, elapsed = 0, 0.0
        if resume is not None:
            opt.load_state_dict(resume["opt"])
            for e, s in zip(ema, resume["ema"]):
                e.copy_(s)
            step, elapsed = resume["step"], resume["elapsed"]
            self.log(f"{name}: resumed at step {step} ({elapsed:.0f} s done)")
        n_par = sum(p.numel() for p in params)
        self.log(f"{name}: {n_par / 1e6:.3f}M trainable parameters, budget {cfg.seconds[name]} s / "
                 f"{cfg.max_steps[name]} steps, lr {cfg.lr[name]}, batch {cfg.batch[name]}")
        t0, last_ck, acc, acc_n = time.time() - elapsed, time.time(), torch.zeros((), device=self.dev), 0
        while step < cfg.max_steps[name] and time.time() - t0 < cfg.seconds[name]:
            if cfg.deadline is not None and time.time() - self.log.t0 > cfg.deadline:
                self.save(name, dict(opt=opt.state_dict(), ema=ema, step=step, elapsed=time.time() - t0))
                self.log(f"{name}: deadline of {cfg.deadline:.0f} s reached at step {step}; checkpoint saved, "
                         "continue with --resume")
                raise SystemExit(0)
            done = max((time.time() - t0) / cfg.seconds[name], step / cfg.max_steps[name])
            decay = cfg.lr_final + (1 - cfg.lr_final) * 0.5 * (1 + math.cos(math.pi * min(done, 1.0)))
            for g in opt.param_groups:
                g["lr"] = cfg.lr[name] * min(1.0, (step + 1) / cfg.warmup) * decay
            loss = loss_fn(step)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            if ema:
                d = min(cfg.ema, (1 + step) / (10 + step))
                torch._foreach_lerp_(ema, [p.detach() for p in params], 1 - d)
            acc, acc_n, step = acc + loss.detach(), acc_n + 1, step + 1
            if step % 50 == 0 or step == cfg.max_steps[name]:
                mean = (acc / acc_n).item()
                self.history.append({"phase": name, "step": step, "loss": mean, "t": round(time.time() - t0, 1)})
                self.log(f"{name} step {step:5d}  loss {mean:.4f}  {step / (time.time() - t0):.2f} it/s")
                acc, acc_n = torch.zeros((), device=self.dev), 0
            if time.time() - last_ck > cfg.ckpt_every:
                self.save(name, dict(opt=opt.state_dict(), ema=ema, step=step, elapsed=time.time() - t0))
                last_ck = time.time()
        with torch.no_grad():
            for p, e in zip(params, ema):
                p.copy_(e)
        self.state[name] = {"steps": step, "seconds": round(time.time() - t0, 1)}
        mem = torch.cuda.max_memory_allocated() / 2**30 if self.dev.type == "cuda" else 0.0
        self.log(f"{name}: done, {step} steps in {time.time() - t0:.0f} s, peak GPU memory {mem:.1f} GiB")
        if name == "vae":
            self.fit_scaling()
        if name == "decoder":
            self.vae.requires_grad_(False)
            self.state["decoder_psnr_after"] = round(self.vae_psnr(), 2)
            self.log(f"decoder: PSNR after {self.state['decoder_psnr_after']} dB")
        self.done.append(name)
        self.save(None, None)
        if name != "vae":   # so a run stopped by a time limit still leaves usable weights
            self.export(Path(self.cfg.out) / "weights")

    @torch.no_grad()
    def fit_scaling(self):
        x, _ = self.images(1024 if self.dev.type == "cuda" else 16, 0.0)
        self.sf = 1.0
        z = self.latents(x)
        self.sf = tm.fit_scaling_factor(z.std().item())
        self.vae.register_to_config(scaling_factor=self.sf)
        with torch.autocast(**self.amp):
            rec = self.vae.decode(self.vae.encode(x).latent_dist.mode()).sample.float().clamp(-1, 1)
        psnr = 10 * torch.log10(4 / Fn.mse_loss(rec, x)).item()
        self.state["vae_eval"] = {"psnr_db": round(psnr, 2), "scaling_factor": self.sf}
        self.log(f"vae: PSNR {psnr:.2f} dB on frames, latent std {1 / self.sf:.4f} -> scaling_factor {self.sf}")

    # ---- checkpoints and export ----------------------------------------------------------------------
    def save(self, phase: str | None, live: dict | None):
        ck = {"cfg": asdict(self.cfg), "done": self.done, "state": self.state, "sf": self.sf,
              "history": self.history, "phase": phase, "live": live, "gen": self.gen.get_state(),
              "vae": self.vae.state_dict(), "text": self.text.state_dict(),
              "unet2d": None if self.unet2d is None else self.unet2d.state_dict(),
              "unet": None if self.unet is None else self.unet.state_dict()}
        path = Path(self.cfg.out) / "ckpt.pt"
        torch.save(ck, str(path) + ".tmp")
        os.replace(str(path) + ".tmp", path)

    def load(self, path: str) -> dict:
        ck = torch.load(path, map_location=self.dev, weights_only=False)
        self.done, self.state, self.sf, self.history = ck["done"], ck["state"], ck["sf"], ck["history"]
        self.gen.set_state(ck["gen"].cpu())  # map_location moved the CPU generator's state to the device
        self.vae.load_state_dict(ck["vae"])
        self.vae.register_to_config(scaling_factor=self.sf)
        self.text.load_state_dict(ck["text"])
        if ck["unet"] is not None:
            self.unet = tm.motion_unet(tm.build_unet(), tm.build_motion_adapter()).to(self.dev)
            self.unet.load_state_dict(ck["unet"])
            self.unet2d = None
        else:
            self.unet2d.load_state_dict(ck["unet2d"])
        self.log(f"resumed from {path}: done {self.done}, in progress {ck['phase']}")
        return ck

    def export(self, path: str | Path):
        """fp16 diffusers folders: unet, motion_adapter, vae, text_encoder, tokenizer, scheduler."""
        path = Path(path)
        if self.unet is not None:
            unet2d, adapter = tm.split_motion_unet(self.unet)
        else:
            unet2d, adapter = self.unet2d, tm.build_motion_adapter()
        for obj, name in ((unet2d, "unet"), (adapter, "motion_adapter"), (self.vae, "vae"), (self.text, "text_encoder")):
            copy.deepcopy(obj).to("cpu", torch.float16).save_pretrained(path / name)
        self.tok.save_pretrained(path / "tokenizer")
        self.sched.save_pretrained(path / "scheduler")
        self.log(f"exported fp16 weights to {path}")


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
              lr_final=a.lr_final, deadline=a.deadline)
    cfg = TrainConfig(**{**kw, **extra})
    Path(cfg.out).mkdir(parents=True, exist_ok=True)
    log = Log(Path(cfg.out) / "train.log")
    log(f"config: {json.dumps(asdict(cfg))}")
    tr = Trainer(cfg, log)
    log(f"device {tr.dev}; torch {torch.__version__}")
    ck = tr.load(str(Path(cfg.out) / "ckpt.pt")) if a.resume else None
    wanted = [x for x in a.phases.split(",") if x]
    if set(wanted) - set(PHASES):
        raise SystemExit(f"--phases must name phases from {PHASES}, got {wanted}")
    for name in PHASES:
        if name in wanted and name not in tr.done:
            tr.run_phase(name, ck["live"] if ck is not None and ck["phase"] == name else None)
    export = Path(cfg.export or Path(cfg.out) / "weights")
    tr.export(export)
    summary = {"config": asdict(cfg), "phases": tr.state, "history": tr.history,
               "params": {"vae": tm.count_params(tr.vae), "text_encoder": tm.count_params(tr.text),
                          "unet_motion": tm.count_params(tr.unet) if tr.unet is not None else None}}
    if not a.no_eval:
        summary["eval"] = evaluate(export, cfg, tr.dev, log)
    with open(Path(cfg.out) / "summary.json", "w") as f:
        json.dump(summary, f, indent=1)
    log("finished")


if __name__ == "__main__":
    main()
