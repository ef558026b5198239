"""Evaluation of a toy model on held-out captions: motion glitches, colour binding, the probe's motion
table and a colour/edge Frechet distance, per CFG scale, plus a sample grid PNG."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from anyi2v_lab.toy import model as tm
from anyi2v_lab.toy import tracking as tr
from anyi2v_lab.toy import world


def video_metrics(frames, cases, device) -> dict:
    """Glitches (strict and lenient thresholds), colour binding and the probe's motion table."""
    v = torch.as_tensor(frames).to(device)
    g = tr.motion_glitch_rate(v, cases)
    g_all = tr.motion_glitch_rate(v, cases, threshold=tr.DATA_MAX_JUMP["all"] * v.shape[3] / 64)
    b = tr.colour_binding(v, cases)
    out = {k: g[k] for k in ("rate", "jump_rate", "dup_rate", "lost_rate", "threshold")}
    out.update({"rate_lenient": g_all["rate"], "threshold_lenient": g_all["threshold"],
                "binding_accuracy": b["accuracy"], "binding_recall": b["recall"], "binding_extra": b["extra"]})
    out.update({f"stats_{k}": v_ for k, v_ in tr.motion_stats(v, cases).items()})
    out = {k: round(float(x), 4) for k, x in out.items()}
    out["rate_by_case"] = glitch_by_case(g["per_video"], cases)
    return out


def glitch_by_case(per_video, cases) -> dict:
    """The glitch rate of each motion kind ("motion:occlude") and object count ("objects:2"), and how
    many videos each has: where the glitches come from."""
    groups: dict[str, list[float]] = {}
    for rate, c in zip(np.asarray(per_video, dtype=float), cases):
        for key in (f"motion:{c.motion}", f"objects:{len(c.objects)}"):
            groups.setdefault(key, []).append(rate)
    return {k: {"rate": round(float(np.mean(v)), 4), "videos": len(v)} for k, v in sorted(groups.items())}


def sample_grid(videos, cases, path, frames=(0, 2, 4, 6, 8, 10, 12, 14), rows: int = 8, scale: int = 2):
    """A PNG: per row the caption, the data's frame 0 for reference, then sample frames."""
    from PIL import Image, ImageDraw
    H = videos.shape[2] * scale
    pad, text_h = 2, 12
    W = (len(frames) + 1) * (H + pad) + 6
    img = Image.new("RGB", (W, rows * (H + text_h + pad)), (255, 255, 255))
    d = ImageDraw.Draw(img)
    for r in range(min(rows, len(cases))):
        y = r * (H + text_h + pad)
        d.text((2, y), f"{cases[r].caption}   [data frame 0 | sample frames {frames[0]}..{frames[-1]}]", fill=(0, 0, 0))
        tiles = [cases[r].frames[0]] + [videos[r, f] for f in frames]
        for i, t in enumerate(tiles):
            x = i * (H + pad) + (6 if i else 0)
            img.paste(Image.fromarray(np.asarray(t)).resize((H, H), Image.NEAREST), (x, y + text_h))
    img.save(path)


@torch.no_grad()
def evaluate(weights: str | Path, cfg, device: torch.device, log) -> dict:
    """Sample held-out captions from the exported weights (as users load them) at each CFG scale.
    ``cfg`` is a training.config.TrainConfig (or any object with its fields eval_videos, eval_cfg,
    eval_steps, grid_cfg, seed, out); ``log`` a callable taking a line of text."""
    pipe = tm.build_pipeline(tm.load_components(weights)).to(device)
    pipe.set_progress_bar_config(disable=True)
    cases = world.heldout_cases(cfg.eval_videos)
    data = np.stack([c.frames for c in cases])
    ref = np.stack([c.frames for c in world.heldout_cases(cfg.eval_videos, seed=1)])
    res = {"data": video_metrics(data, cases, device),
           "data_fcd": round(tr.frechet_colour_distance(ref, data), 3)}
    log(f"eval data: {res['data']}  fcd(data, data') {res['data_fcd']}")
    for scale in cfg.eval_cfg:
        g = torch.Generator(device).manual_seed(cfg.seed)
        t0 = time.time()
        vids = pipe(prompt=[c.caption for c in cases], num_frames=16, num_inference_steps=cfg.eval_steps,
                    guidance_scale=scale, generator=g, output_type="np").frames
        vids = (np.asarray(vids) * 255).round().astype(np.uint8)
        m = video_metrics(vids, cases, device)
        m["fcd"] = round(tr.frechet_colour_distance(vids, data), 3)
        m["sample_seconds"] = round(time.time() - t0, 2)
        res[f"cfg_{scale}"] = m
        log(f"eval cfg {scale}: {m}")
        grid_name = "samples.png" if scale == cfg.grid_cfg else f"samples_cfg{scale:g}.png"
        sample_grid(vids, cases, Path(cfg.out) / grid_name)
    return res


@torch.no_grad()
def decode(vae, latents: torch.Tensor) -> np.ndarray:
    """(B, 4, F, h, w) scaled latents -> (B, F, H, W, 3) uint8, as AnimateDiffPipeline decodes them."""
    B, C, F = latents.shape[:3]
    z = latents.transpose(1, 2).reshape(B * F, C, *latents.shape[-2:]) / vae.config.scaling_factor
    x = torch.cat([vae.decode(z[i:i + 16]).sample for i in range(0, B * F, 16)])
    x = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.view(B, F, 3, *x.shape[-2:]).permute(0, 1, 3, 4, 2).cpu().numpy()


def main(argv=None):
    """Evaluate on the CPU (or any device): sample latents once per CFG scale, decode them with the
    model's VAE and with any --vae given for comparison, print the metrics, write a grid per decoder."""
    import argparse
    import json
    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("--weights", default=str(tm.WEIGHTS_DIR))
    p.add_argument("--vae", action="append", default=[], help="another vae/ folder to decode with")
    p.add_argument("--videos", type=int, default=32)
    p.add_argument("--cfg", default="7.5")
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="outputs/toy_eval")
    p.add_argument("--device", default="cpu")
    p.add_argument("--reuse-latents", action="store_true", help="decode <out>/latents_cfg*.pt again")
    a = p.parse_args(argv)
    from diffusers import AutoencoderKL
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    pipe = tm.build_pipeline(tm.load_components(a.weights)).to(a.device)
    pipe.set_progress_bar_config(disable=True)
    vaes = {"model": pipe.vae} | {f"vae{i}": AutoencoderKL.from_pretrained(v).to(a.device).eval()
                                  for i, v in enumerate(a.vae)}
    cases = world.heldout_cases(a.videos)
    res = {"data": video_metrics(np.stack([c.frames for c in cases]), cases, a.device), "vaes": a.vae}
    for scale in (float(x) for x in a.cfg.split(",")):
        t0, lat, path = time.time(), [], out / f"latents_cfg{scale:g}.pt"
        if a.reuse_latents:
            lat = [torch.load(path)]
        for i in range(0, len(cases), a.batch) if not a.reuse_latents else ():
            g = torch.Generator(a.device).manual_seed(a.seed + i)
            lat.append(pipe(prompt=[c.caption for c in cases[i:i + a.batch]], num_frames=16,
                            num_inference_steps=a.steps, guidance_scale=scale, generator=g,
                            output_type="latent").frames)
            print(f"cfg {scale}: {i + a.batch}/{len(cases)} videos, {time.time() - t0:.0f} s", flush=True)
        lat = torch.cat(lat)
        torch.save(lat, path)
        for name, vae in vaes.items():
            vids = decode(vae, lat)
            res[f"cfg_{scale:g}_{name}"] = video_metrics(vids, cases, a.device)
            print(name, scale, res[f"cfg_{scale:g}_{name}"], flush=True)
            sample_grid(vids, cases, out / f"samples_cfg{scale:g}_{name}.png")
    (out / "eval.json").write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
