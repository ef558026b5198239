"""The toy model's trainer: each phase's batches and loss, the time-budgeted loop with a cosine lr and
EMA, checkpoints that resume mid-phase, and the fp16 export. :mod:`training.train` configures and runs it.
"""
from __future__ import annotations

import copy
import math
import os
import random
import time
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as Fn

from anyi2v_lab.hooks import Capture, bypass_motion, hooked
from anyi2v_lab.toy import model as tm
from anyi2v_lab.toy import world
from anyi2v_lab.toy.scene import to_dev
from anyi2v_lab.toy.tokenizer import build_tokenizer
from training import parallel
from training.config import TrainConfig
from training.consistency import consistency_points, feature_consistency


class Log:
    """Timestamped lines to stdout and a file; silent (``path=None``) on ranks other than 0."""

    def __init__(self, path: Path | None):
        self.t0, self.f = time.time(), None if path is None else open(path, "a", buffering=1)

    def __call__(self, msg: str):
        if self.f is None:
            return
        line = f"[{time.time() - self.t0:7.1f}s] {msg}"
        print(line, flush=True)
        self.f.write(line + "\n")


class Trainer:
    def __init__(self, cfg: TrainConfig, log: Log, group: parallel.Group = parallel.Group()):
        self.cfg, self.log, self.group = cfg, log, group
        auto = "cuda" if torch.cuda.is_available() else "cpu"
        self.dev = torch.device(auto if cfg.device == "auto" else cfg.device)
        if self.dev.type == "cuda" and group.world > 1:
            self.dev = torch.device("cuda", group.local_rank)
        self.amp = dict(device_type=self.dev.type, dtype=torch.bfloat16, enabled=self.dev.type == "cuda")
        seed = cfg.seed + 1000 * group.rank          # each rank its own batches and noise
        torch.manual_seed(seed)
        random.seed(seed)
        torch.backends.cudnn.benchmark = False   # autotuning costs more than it saves in a time-budgeted phase
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        self.gen = torch.Generator().manual_seed(seed)
        self.tok = build_tokenizer()
        self.sched = tm.build_scheduler()
        self.acp = self.sched.alphas_cumprod.to(self.dev)
        self.vae, self.text, self.unet2d = tm.build_vae(), tm.build_text_encoder(), tm.build_unet()
        self.unet = None                                  # the UNetMotionModel, from the motion phase on
        self.sf, self.done, self.history, self.state = 1.0, [], [], {}
        if cfg.init_from:
            c = tm.load_components(cfg.init_from)
            self.vae, self.text, self.unet2d = c["vae"], c["text_encoder"], c["unet"]
            adapter, depth = c["motion_adapter"], tm.motion_depth(c["motion_adapter"].config)
            if cfg.motion_depth is not None and cfg.motion_depth != depth:
                adapter = tm.grow_motion_adapter(adapter, cfg.motion_depth)
                log(f"motion modules grown from {depth} to {cfg.motion_depth} transformer layers (new ones identities)")
            self.unet = tm.motion_unet(c["unet"], adapter).float()
            self.sf, self.done = float(self.vae.config.scaling_factor), ["vae", "image"]
        for m in self.modules():
            m.to(self.dev)

    def modules(self) -> list[torch.nn.Module]:
        return [m for m in (self.vae, self.text, self.unet2d, self.unet) if m is not None]

    # ---- data ------------------------------------------------------------------------------------
    def images(self, n: int, cond_fraction: float):
        """n single frames, 4 random times from each of n/4 scenes, a share replaced by a condition
        image (caption tagged with its modality); x: (n, 3, H, W) in [-1, 1]."""
        k = 4 if n % 4 == 0 else 1
        spec = world.sample_specs(n // k, self.gen, reject=world.is_heldout, object_probs=self.cfg.object_probs)
        spec = spec.take(torch.arange(n // k).repeat_interleave(k))
        spec = spec.select_frames(torch.randint(16, (n,), generator=self.gen))
        r = world.render_specs(spec, self.dev, conditions=cond_fraction > 0)
        x, caps = r["frames"][:, 0], world.captions_of(spec)
        if cond_fraction > 0:
            pick = torch.rand(n, generator=self.gen)
            mod = torch.randint(len(world.MODALITIES), (n,), generator=self.gen)
            conds = torch.stack([r["conditions"][m] for m in world.MODALITIES], 1)
            use = pick < cond_fraction
            chosen = conds[torch.arange(n, device=self.dev), to_dev(mod, self.dev)]
            x = torch.where(to_dev(use, self.dev)[:, None, None, None], chosen, x)
            tags = [world.MODALITY_TAGS[world.MODALITIES[int(m)]] for m in mod]
            caps = [f"{c}, {tag}" if u else c for c, tag, u in zip(caps, tags, use)]
        return x * 2 - 1, caps

    def videos(self, n: int):
        r = world.render_batch(n, generator=self.gen, device=self.dev, object_probs=self.cfg.object_probs)
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
            noisy = post.mean + self.cfg.vae_noise * post.std * torch.randn_like(post.mean)
            rec = self.vae.decode(noisy).sample.float()
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

    def consistency_loss(self, net, n: int):
        """:mod:`training.consistency`'s term on the frame 0 of n training scenes and one condition image of each
        (a random modality), at one noise, timestep and caption per pair. Timesteps below 400: the method
        inverts conditions to t = 201 and injects the features found there."""
        spec = world.sample_specs(n, self.gen, reject=world.is_heldout, object_probs=self.cfg.object_probs)
        r = world.render_specs(spec.select_frames(torch.zeros(n, dtype=torch.long)), self.dev, conditions=True)
        mod = to_dev(torch.randint(len(world.MODALITIES), (n,), generator=self.gen), self.dev)
        conds = torch.stack([r["conditions"][m] for m in world.MODALITIES], 1)[torch.arange(n, device=self.dev), mod]
        z = self.latents(torch.cat([r["frames"][:, 0], conds]) * 2 - 1)
        t = torch.randint(1, 400, (n,), device=self.dev).repeat(2)
        eps = torch.randn_like(z[:n]).repeat(2, 1, 1, 1)
        a = self.acp[t].view(-1, 1, 1, 1)
        zt = a.sqrt() * z + (1 - a).sqrt() * eps
        with torch.autocast(**self.amp):
            emb = self.encode_text(world.captions_of(spec)).repeat(2, 1, 1)   # the inversion's prompt: the caption
            points = consistency_points()
            with bypass_motion(net), hooked(net, capture=Capture(points, detach=False)) as session:
                net(zt[:, :, None], t, emb)
        feats = {k: session.cache[k] for k in points}   # (2n, 1, ...): the frames first, then their conditions
        return feature_consistency({k: v[:n] for k, v in feats.items()}, {k: v[n:] for k, v in feats.items()},
                                   centred=self.cfg.consistency_centred)

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
            adapter = tm.build_motion_adapter(zero_out=True, depth=self.cfg.motion_depth or 1)
            self.unet = tm.motion_unet(self.unet2d, adapter.to(self.dev)).to(self.dev)
            self.unet2d = None
        if name == "motion":
            self.unet.freeze_unet2d_params()
            return [p for p in self.unet.parameters() if p.requires_grad], lambda i: self.video_loss()
        self.unet.requires_grad_(True)
        self.text.requires_grad_(self.cfg.joint_text).train(self.cfg.joint_text)
        every = self.cfg.image_every
        text = list(self.text.parameters()) if self.cfg.joint_text else []
        return list(self.unet.parameters()) + text, lambda i: (
            self.joint_image_loss() if every and i % every == every - 1 else self.video_loss())

    def joint_image_loss(self):
        loss = self.image_loss(self.unet, self.cfg.batch["image"], bypass=True)
        if self.cfg.feature_consistency:
            loss = loss + self.cfg.feature_consistency * self.consistency_loss(self.unet, self.cfg.batch["image"] // 4)
        return loss

    def run_phase(self, name: str, resume: dict | None):
        cfg = self.cfg
        params, loss_fn = self.setup(name)
        parallel.sync_modules(self.modules(), self.group)   # fresh modules start from rank 0's draw
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
        while True:
            # rank 0's clock decides for all: equal lr and stopping step keep the replicas identical
            done, late = parallel.from_main(
                [max((time.time() - t0) / cfg.seconds[name], step / cfg.max_steps[name]),
                 float(cfg.deadline is not None and time.time() - self.log.t0 > cfg.deadline)], self.group)
            if done >= 1:
                break
            if late:
                self.save(name, dict(opt=opt.state_dict(), ema=ema, step=step, elapsed=time.time() - t0))
                self.log(f"{name}: deadline of {cfg.deadline:.0f} s reached at step {step}; checkpoint saved, "
                         "continue with --resume")
                parallel.close(self.group)
                raise SystemExit(0)
            decay = cfg.lr_final + (1 - cfg.lr_final) * 0.5 * (1 + math.cos(math.pi * min(done, 1.0)))
            for g in opt.param_groups:
                g["lr"] = cfg.lr[name] * min(1.0, (step + 1) / cfg.warmup) * decay
            loss = loss_fn(step)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            parallel.average_grads(params, self.group)
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            if ema:
                d = min(cfg.ema, (1 + step) / (10 + step))
                torch._foreach_lerp_(ema, [p.detach() for p in params], 1 - d)
            acc, acc_n, step = acc + loss.detach(), acc_n + 1, step + 1
            if step % 50 == 0 or step == cfg.max_steps[name]:
                mean = parallel.mean(acc / acc_n, self.group).item()
                self.history.append({"phase": name, "step": step, "loss": mean, "t": round(time.time() - t0, 1)})
                self.log(f"{name} step {step:5d}  loss {mean:.4f}  {step / (time.time() - t0):.2f} it/s"
                         + (f" x {self.group.world} ranks" if self.group.world > 1 else ""))
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
        self.sf = parallel.from_main([tm.fit_scaling_factor(z.std().item())], self.group)[0]
        self.vae.register_to_config(scaling_factor=self.sf)
        with torch.autocast(**self.amp):
            rec = self.vae.decode(self.vae.encode(x).latent_dist.mode()).sample.float().clamp(-1, 1)
        psnr = 10 * torch.log10(4 / Fn.mse_loss(rec, x)).item()
        self.state["vae_eval"] = {"psnr_db": round(psnr, 2), "scaling_factor": self.sf}
        self.log(f"vae: PSNR {psnr:.2f} dB on frames, latent std {1 / self.sf:.4f} -> scaling_factor {self.sf}")

    # ---- checkpoints and export ----------------------------------------------------------------------
    def save(self, phase: str | None, live: dict | None):
        if not self.group.main:
            return
        ck = {"cfg": asdict(self.cfg), "done": self.done, "state": self.state, "sf": self.sf,
              "history": self.history, "phase": phase, "live": live, "gen": self.gen.get_state(),
              "vae": self.vae.state_dict(), "text": self.text.state_dict(),
              "unet2d": None if self.unet2d is None else self.unet2d.state_dict(),
              "unet": None if self.unet is None else self.unet.state_dict()}
        path = Path(self.cfg.out) / "ckpt.pt"
        torch.save(ck, str(path) + ".tmp")
        os.replace(str(path) + ".tmp", path)

    def load(self, path: str) -> dict:
        ck = torch.load(path, map_location=self.dev, weights_only=True)  # a checkpoint never runs code
        self.done, self.state, self.sf, self.history = ck["done"], ck["state"], ck["sf"], ck["history"]
        self.gen.set_state(ck["gen"].cpu())  # map_location moved the CPU generator's state to the device
        if self.group.world > 1:   # the checkpoint holds rank 0's stream: split it again per rank
            self.gen.manual_seed(int(torch.randint(2**62, (1,), generator=self.gen)) + self.group.rank)
        self.vae.load_state_dict(ck["vae"])
        self.vae.register_to_config(scaling_factor=self.sf)
        self.text.load_state_dict(ck["text"])
        if ck["unet"] is not None:
            adapter = tm.build_motion_adapter(depth=tm.state_motion_depth(ck["unet"]))
            self.unet = tm.motion_unet(tm.build_unet(), adapter).to(self.dev)
            self.unet.load_state_dict(ck["unet"])
            self.unet2d = None
        else:
            self.unet2d.load_state_dict(ck["unet2d"])
        self.log(f"resumed from {path}: done {self.done}, in progress {ck['phase']}")
        return ck

    def export(self, path: str | Path):
        """fp16 diffusers folders: unet, motion_adapter, vae, text_encoder, tokenizer, scheduler (rank 0)."""
        if not self.group.main:
            return
        path = Path(path)
        if self.unet is not None:
            unet2d, adapter = tm.split_motion_unet(self.unet)
        else:
            unet2d, adapter = self.unet2d, tm.build_motion_adapter()
        parts = ((unet2d, "unet"), (adapter, "motion_adapter"), (self.vae, "vae"), (self.text, "text_encoder"))
        for obj, name in parts:
            copy.deepcopy(obj).to("cpu", torch.float16).save_pretrained(path / name)
        self.tok.save_pretrained(path / "tokenizer")
        self.sched.save_pretrained(path / "scheduler")
        self.log(f"exported fp16 weights to {path}")
