"""Parity with the AnyI2V reference's own code, stage by stage, on one set of tiny random weights.

Given a local checkout of the reference (FudanCVL/AnyI2V; nothing of it is copied here) and a Python
environment with its 2022-era pins (diffusers 0.11.1, transformers 4.25.1, torch-pca, kmeans-pytorch),
this script

1. builds a tiny random SD1.5-shaped model (channels 32/64/64/64, 32 norm groups, 8 heads: the
   reference's motion module hard-codes 32 groups) and writes it twice: our diffusers folder plus an
   original-layout motion module file (``mm.ckpt``), and the same 2D weights in the 2022 folder layout
   the reference's environment reads (``anyi2v_lab.models.original_formats.save_reference_base``);
2. writes one condition image, one trajectory in the reference's JSON format and one initial noise;
3. runs the reference's pipeline (its ``AnyI2V`` class, ``DDIM_inversion``, ``load_weights``,
   ``enhance_pipeline`` and ``load_trajectory_data`` of ``scripts/AnyI2V_fp16.py``) in that environment,
   and ours (``load_pipeline`` + ``generate``), both fp32 on the CPU, with the same settings;
4. compares: text embeddings, the source latent, the inverted features at t=201, the injected UNet
   output (both CFG halves) at step 0, the latent after each optimisation step (and iteration), the
   semantic masks of the first iteration, the final latent and the decoded frames.

How the reference is driven (its script hard-codes CUDA, 512 px and model ids), each change named in
the output's ``adaptations``: see ``ADAPTATIONS``. Where ours deviates, a variant switches our side to
the reference's behaviour, patched on from outside (``VARIANTS``: AnimateDiff's per-frame motion-module
GroupNorm; on the clipped scenario also the reference's two clipped-box rules), so what remains with every
switch on can be read as noise, and each switch's difference is a named deviation of docs/method.md.

    python benchmarks/reference_parity.py /path/to/AnyI2V --python /path/to/refenv/bin/python

Writes ``benchmarks/results/reference_parity.json`` (atomically). ``--work`` keeps the intermediate files.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "reference_parity.json"

SPEC = dict(channels=(32, 64, 64, 64), norm_groups=32, heads=8, vae_channels=(32, 32, 32, 32), latent_size=16)
PROMPT = "a red ball rolls to the right"
NEGATIVE = "blurry, low quality"
SEED = 0
# float32 on one CPU: two implementations of the same arithmetic differ in summation order only
NOISE_REL = 1e-4

ADAPTATIONS = [
    "CPU instead of CUDA: torch.Tensor.cuda is the identity, kmeans_pytorch is called with device='cpu' "
    "(pipeline_anyi2v.py:184,189 hard-code cuda); torch.autocast('cuda') and torch.cuda.amp.GradScaler "
    "disable themselves without CUDA, so the reference runs fp32 with an unscaled backward (ours: fp32)",
    "no xformers (its CPU path is not used by the reference either without CUDA)",
    "torchvision is a stub exposing transforms.functional.to_tensor: the PyPI torchvision wheels that match "
    "torch 2.13 are CUDA builds whose operators do not load on the CPU torch; nothing else of it is called",
    "models are built as scripts/AnyI2V_fp16.py main() builds them, minus .cuda()/.half(): tokenizer, "
    "text encoder and VAE from the 2022-layout folder, MyUNet3DConditionModel.from_pretrained_2d with "
    "configs/inference/inference-v3.yaml (inflated GroupNorm, as diffusers' UNetMotionModel), DDIMScheduler "
    "from its noise_scheduler_kwargs, load_weights(motion_module_path=mm.ckpt), enhance_pipeline",
    "load_and_encode_image is replaced by the same code with the canvas size instead of the hard-coded "
    "512x512 and the posterior mean instead of latent_dist.sample() (audit differences 1 and 2: ours "
    "uses the mean; the reference's sample is unseeded)",
    "initial noise: ours (seeded CPU generator, diffusers' prepare_latents) handed to the reference's "
    "pipeline as latents=, instead of its CUDA torch.randn (audit difference 16)",
    "numpy's global RNG is seeded (kmeans_pytorch draws its initial centres from it, unseeded in the reference)",
    "settings are the reference's hyper_params.yaml except num_frames/size (tiny); VIDEO_LENGTH of "
    "scripts/AnyI2V_fp16.py is set to the frame count, as its main() does",
    "features are run in a scratch folder: the reference writes and re-reads ./feature/*.pth",
    "runs marked reference_kmeans='exact' replace kmeans_pytorch's kmeans (random initial centres, stops when "
    "the centres move less than 1e-2) by the exact 1-D two-means that ours computes (exact_two_means here, "
    "written independently of anyi2v_lab.method.masks): it isolates audit difference 8",
]


# ------------------------------------------------------------------------------------------ inputs
RUNS = {
    # name: (trajectory, the reference's kmeans, what the run isolates)
    "injection_only": (None, "kmeans_pytorch", "no trajectory: inversion, injection, CFG sampling, decoding"),
    "aligned": ("aligned", "kmeans_pytorch", "the whole method, as shipped on both sides"),
    "aligned_exact_two_means": ("aligned", "exact", "the reference's kmeans_pytorch call replaced by an exact 1-D "
                                "two-means (audit difference 8), all else as shipped"),
    "clipped": ("clipped", "exact", "a box leaving the right edge, query points off the 4-px lattice "
                "(audit differences 10-12), exact two-means on the reference side"),
}


def exact_two_means(X, num_clusters=2, distance="euclidean", device=None):
    """kmeans_pytorch's ``kmeans`` signature, the globally optimal split of 1-D values: every split of
    the sorted values scored by its within-cluster sum of squares. Labels: 1 = the high cluster."""
    import torch

    v = X.detach().double().reshape(-1)
    s, _ = v.sort()
    n = s.numel()
    k = torch.arange(1, n, dtype=s.dtype)
    c1, c2 = s.cumsum(0)[:-1], s.pow(2).cumsum(0)[:-1]
    cost = (c2 - c1 ** 2 / k) + ((s.pow(2).sum() - c2) - (s.sum() - c1) ** 2 / (n - k))
    b = int(cost.argmin())
    thr = (s[b] + s[b + 1]) / 2
    ids = (v >= thr).long()
    centers = torch.stack([v[ids == 0].mean(), v[ids == 1].mean()])[:, None].float()
    return ids, centers


def scenarios(size: int) -> dict:
    """Trajectories in the reference's JSON format on a ``size`` px canvas (one object, 4 frames)."""
    s = size / 128
    def sc(v):
        return [round(x * s) for x in v]
    return {
        # box and query points on multiples of compress_factor: the query-cell rules agree (audit 12);
        # the box stays inside the image: no clipping rule is involved (audit 10, 11)
        "aligned": {"bounding_box": [sc([24, 40, 72, 88])], "target_box": [sc([24, 40, 72, 88])],
                    "center_traj": [[sc([48, 64]), sc([56, 64]), sc([64, 66]), sc([72, 68])]],
                    "query_point": [[sc([40, 56]), sc([60, 72]), sc([48, 80])]]},
        # the box leaves the right edge from frame 2 and query points are off the 4-px lattice
        "clipped": {"bounding_box": [sc([26, 42, 90, 86])], "target_box": [sc([26, 42, 90, 86])],
                    "center_traj": [[sc([58, 64]), sc([78, 64]), sc([98, 66]), sc([118, 66])]],
                    "query_point": [[sc([41, 57]), sc([63, 71]), sc([50, 81])]]},
    }


def condition_image(size: int):
    """A bright disc with an edge ring on a dark ground (an edge-map-like condition)."""
    import numpy as np
    from PIL import Image

    yy, xx = np.mgrid[:size, :size] / size
    r = np.hypot(xx - 0.375, yy - 0.5)
    img = np.zeros((size, size, 3))
    img[r < 0.17] = (0.9, 0.3, 0.2)
    img[np.abs(r - 0.17) < 0.015] = 1.0
    img[..., 2] += 0.25 * xx
    return Image.fromarray((img.clip(0, 1) * 255).astype(np.uint8))


def write_inputs(work: Path, frames: int) -> dict:
    """Weights (both layouts), condition, trajectories and the initial noise; returns the settings."""
    import torch

    sys.path.insert(0, str(ROOT))
    from anyi2v_lab.models.original_formats import adapter_to_original, save_base, save_reference_base
    from anyi2v_lab.models.tiny import TinySpec, tiny_components

    spec = TinySpec(**SPEC)
    parts = tiny_components(SEED, spec)
    save_base(parts, work / "base")
    save_reference_base(parts, work / "base_ref")
    torch.save(adapter_to_original(parts["motion_adapter"].state_dict()), work / "mm.ckpt")
    size = spec.image_size
    condition_image(size).save(work / "condition.png")
    for name, traj in scenarios(size).items():
        (work / f"{name}.json").write_text(json.dumps(traj))
    g = torch.Generator().manual_seed(SEED)
    noise = torch.randn((1, 4, frames, spec.latent_size, spec.latent_size), generator=g)
    torch.save(noise, work / "noise.pt")
    settings = dict(frames=frames, size=size, prompt=PROMPT, negative_prompt=NEGATIVE, inference_steps=25,
                    guidance_scale=8.0, lr=0.01, opt_iters=5, PCA_dim=64, opt_step=5, compress_factor=4,
                    load_feature_step=3, inversion_timestep=201, debias_patch_size=4, opt_attn_list=[1, 3],
                    load_attn_list=[0, 1, 3, 4], load_res_list=[3, 4, 6, 7])
    (work / "settings.json").write_text(json.dumps(settings, indent=1))
    return settings


# ------------------------------------------------------------------------------- the reference side
def _torchvision_stub(folder: Path) -> None:
    pkg = folder / "torchvision"
    (pkg / "transforms").mkdir(parents=True, exist_ok=True)
    (pkg / "__init__.py").write_text("from . import transforms, utils\n")
    (pkg / "utils.py").write_text("def make_grid(*a, **k):\n    raise NotImplementedError('stub')\n")
    (pkg / "transforms" / "__init__.py").write_text("from . import functional\n")
    (pkg / "transforms" / "functional.py").write_text(
        "import numpy as np, torch\n"
        "def to_tensor(pic):\n"
        "    a = np.asarray(pic, dtype=np.float32) / 255.0\n"
        "    return torch.from_numpy(a.transpose(2, 0, 1).copy())\n")


def reference_side(ref: Path, work: Path, run: str) -> None:
    """Runs inside the reference's environment (stdlib, torch, numpy and the reference's modules only)."""
    import numpy as np

    _torchvision_stub(work / "stub")
    sys.path[:0] = [str(work / "stub"), str(ref)]
    import torch

    torch.set_num_threads(1)
    torch.Tensor.cuda = lambda self, *a, **k: self
    import animatediff.pipelines.pipeline_anyi2v as pa
    from animatediff.models.my_unet import MyUNet3DConditionModel
    from animatediff.utils.util import load_weights
    from diffusers import AutoencoderKL, DDIMScheduler
    from einops import rearrange
    from omegaconf import OmegaConf
    from PIL import Image
    from scripts import AnyI2V_fp16 as script
    from transformers import CLIPTextModel, CLIPTokenizer

    s = json.loads((work / "settings.json").read_text())
    H = W = s["size"]
    L = s["frames"]
    base = str(work / "base_ref")
    kmeans, masks = pa.kmeans, []

    scenario, which_kmeans, _ = RUNS[run]
    if which_kmeans == "exact":
        kmeans = exact_two_means

    def kmeans_cpu(X, num_clusters, distance, device):
        ids, centers = kmeans(X=X, num_clusters=num_clusters, distance=distance, device=torch.device("cpu"))
        masks.append((ids == torch.argmax(centers)).float())
        return ids, centers
    pa.kmeans = kmeans_cpu
    np.random.seed(SEED)
    torch.manual_seed(SEED)

    inference = OmegaConf.load(ref / "configs" / "inference" / "inference-v3.yaml")
    tokenizer = CLIPTokenizer.from_pretrained(base, subfolder="tokenizer")
    text_encoder = CLIPTextModel.from_pretrained(base, subfolder="text_encoder")
    vae = AutoencoderKL.from_pretrained(base, subfolder="vae")
    unet = MyUNet3DConditionModel.from_pretrained_2d(
        base, subfolder="unet", unet_additional_kwargs=OmegaConf.to_container(inference.unet_additional_kwargs))
    unet.requires_grad_(False)
    pipeline = pa.AnyI2V(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                         scheduler=DDIMScheduler(**OmegaConf.to_container(inference.noise_scheduler_kwargs)))
    pipeline = load_weights(pipeline, motion_module_path=str(work / "mm.ckpt"))
    pipeline.set_progress_bar_config(disable=True)
    script.VIDEO_LENGTH = L
    cwd = os.getcwd()
    os.chdir(work / f"ref_{run}")  # the reference writes and re-reads ./feature/*.pth
    script.enhance_pipeline(pipeline, s["debias_patch_size"], H, W, L)
    traj, q_points = script.load_trajectory_data(str(work / f"{scenario}.json")) if scenario else (None, None)

    out = {}
    with torch.no_grad():
        emb = pipeline._encode_prompt([s["prompt"]], "cpu", 1, True, [s["negative_prompt"]])
    out["text_embeddings"] = emb

    image = Image.open(work / "condition.png").convert("RGB").resize((W, H))  # adaptation: canvas size
    image = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
    with torch.no_grad():
        latent = vae.encode((image - 0.5) * 2).latent_dist.mean * 0.18215  # adaptation: the mean
    source = rearrange(latent, "(b f) c h w -> b c f h w", b=1, f=1)
    out["source_latent"] = source

    try:
        with torch.autocast("cuda", dtype=torch.float16):  # as main(); disabled without CUDA
            pipeline.use_motion_module(False)
            pipeline.DDIM_inversion(prompt=s["prompt"], negative_prompt="", num_inference_steps=999,
                                    guidance_scale=1.0, width=W, height=H, video_length=1, latents=source,
                                    inversion_end_step=s["inversion_timestep"] / 100 + 0.01,
                                    inference_step=s["inference_steps"], inversion_timestep=s["inversion_timestep"],
                                    load_attn_list=s["load_attn_list"], load_res_list=s["load_res_list"])
            t = s["inversion_timestep"]
            out["features"] = {f"res{k}": torch.load(f"feature/ResnetBlock_{k}_{t}.pth")["conv_fea"]
                               for k in s["load_res_list"]}
            out["features"].update({f"attn{k}": torch.load(f"feature/self_attn_{k}_{t}.pth")["q"]
                                    for k in s["load_attn_list"]})

            unet_outputs, latents_after = [], []
            hook = unet.register_forward_hook(
                lambda m, a, o: unet_outputs.append(o.sample.detach().clone()) if o is not None else None)
            optimise = pipeline.optimize_latent

            def recorded(*a, **k):
                z = optimise(*a, **k)
                latents_after.append(z.detach().clone())
                return z
            pipeline.optimize_latent = recorded
            pipeline.use_motion_module(True)
            noise = torch.load(work / "noise.pt")
            output = pipeline(s["prompt"], negative_prompt=s["negative_prompt"],
                              num_inference_steps=s["inference_steps"], guidance_scale=s["guidance_scale"],
                              width=W, height=H, video_length=L, latents=noise, trajectory=traj,
                              query_points=q_points, lr=s["lr"], PCA_dim=s["PCA_dim"],
                              inversion_timestep=s["inversion_timestep"], opt_step=s["opt_step"],
                              opt_iters=s["opt_iters"], compress_factor=s["compress_factor"],
                              load_feature_step=s["load_feature_step"], opt_attn_list=s["opt_attn_list"],
                              load_attn_list=s["load_attn_list"], load_res_list=s["load_res_list"])
            hook.remove()
    finally:
        os.chdir(cwd)
    out["unet_outputs"] = unet_outputs
    out["opt_latents"] = latents_after
    out["kmeans_masks"] = masks
    out["final_latent"] = output.latents
    out["video"] = output.videos  # (1, 3, F, H, W) in [0, 1]
    out["boxes"] = [[b.tolist() for b in obj] for obj in traj] if traj else None
    out["query_points"] = q_points
    motion = {k for k in unet.state_dict() if "motion_modules." in k}
    loaded = {k for k in torch.load(work / "mm.ckpt") if "pos_encoder.pe" not in k}
    out["motion_keys_not_loaded"] = sorted(motion - loaded)
    torch.save(out, work / f"ref_{run}.pt")


# -------------------------------------------------------------------------------------- our side
def our_side(work: Path, scenario: str, variant: dict) -> dict:
    """Our pipeline on the same inputs; ``variant`` are AnyI2VConfig overrides."""
    import torch

    sys.path.insert(0, str(ROOT))
    from anyi2v_lab.conditions import load_condition
    from anyi2v_lab.interop import reference as ref_format
    from anyi2v_lab.method.config import AnyI2VConfig
    from anyi2v_lab.method.generation import generate
    from anyi2v_lab.method.inversion import encode_image
    from anyi2v_lab.models.loading import load_pipeline

    s = json.loads((work / "settings.json").read_text())
    size, F = s["size"], s["frames"]
    pipe = load_pipeline(work / "base", motion_adapter=work / "mm.ckpt", device="cpu", dtype=torch.float32,
                         allow_pickle=True, progress=False)
    condition = load_condition(work / "condition.png", size=(size, size))
    trajectory = ref_format.read(work / f"{scenario}.json", image_size=(size, size)) if scenario else None
    variant = dict(variant)
    if variant.pop("motion_norm", None) == "per_frame":
        per_frame_group_norm(pipe.unet)
    undo = reference_clip_rules() if variant.pop("clip_rules", None) == "reference" else (lambda: None)
    config = AnyI2VConfig(num_frames=F, height=size, width=size).replace(**variant)
    out = {}
    with torch.no_grad():
        cond, uncond = pipe.encode_prompt(s["prompt"], "cpu", 1, True, s["negative_prompt"])
        out["text_embeddings"] = torch.cat([uncond, cond])
        out["source_latent"] = encode_image(pipe.vae, condition.pixels.to(pipe.vae.dtype))
    outputs = []
    hook = pipe.unet.register_forward_hook(
        lambda m, a, o: outputs.append(o.sample.detach().clone()) if o.sample.shape[0] == 2 else None)
    noise = torch.load(work / "noise.pt")
    gen = sys.modules[generate.__module__]  # the module (anyi2v_lab.method re-exports the function's name)

    drawn = gen.initial_noise

    def same_noise(*a, **k):  # the harness's noise (equal to the seed's draw; checked below)
        z, step_noise = drawn(*a, **k)
        out["noise_check"] = float((z - noise).abs().max())
        return noise.clone(), step_noise
    gen.initial_noise = same_noise
    try:
        result = generate(pipe, condition, s["prompt"], trajectory, config, negative_prompt=s["negative_prompt"],
                          seed=SEED, progress=False, keep_latents=True, keep_masks=True)
    finally:
        gen.initial_noise = drawn
        hook.remove()
        undo()
    bank = result.features
    attn = "up_blocks.{}.attentions.{}.transformer_blocks.0.attn1"
    out["features"] = {**{f"res{k}": bank.residuals[f"up_blocks.{k // 3}.resnets.{k % 3}"] for k in s["load_res_list"]},
                       **{f"attn{k}": bank.queries[attn.format(k // 3 + 1, k % 3)] for k in s["load_attn_list"]}}
    out["unet_outputs"] = outputs
    out["opt_latents"] = [it.latent for it in result.record.iterations]
    out["masks"] = [it.masks for it in result.record.iterations]
    out["final_latent"] = result.latents
    out["video"] = torch.from_numpy(result.video)  # (F, H, W, 3)
    out["boxes"] = None if trajectory is None else result.record.grid_boxes.tolist()
    return out


# ------------------------------------------------------------------------------------ comparing
def diff(a, b) -> dict:
    import torch

    a, b = torch.as_tensor(a).double().reshape(-1), torch.as_tensor(b).double().reshape(-1)
    if a.shape != b.shape:
        return {"shape_mismatch": [list(a.shape), list(b.shape)]}
    d = (a - b).abs()
    rel = float(d.norm() / b.norm().clamp(min=1e-30))
    return {"max_abs": float(d.max()), "rel": rel, "ref_abs_max": float(b.abs().max()), "noise": rel <= NOISE_REL}


def compare(ours: dict, ref: dict, settings: dict) -> list[dict]:
    """Per-stage differences (``rel``: ||ours - ref|| / ||ref||)."""
    import torch

    F, iters, steps = settings["frames"], settings["opt_iters"], settings["opt_step"] + 1
    rows = [{"stage": "text embeddings (uncond, cond)", **diff(ours["text_embeddings"], ref["text_embeddings"])},
            {"stage": "source latent (VAE mean)", **diff(ours["source_latent"].reshape(-1),
                                                          ref["source_latent"].reshape(-1))}]
    for k, r in ref["features"].items():
        o = ours["features"][k]
        if k.startswith("res"):  # ours (C, h, w); reference (1, C, 1, h, w)
            r = r[0, :, 0]
        else:  # ours (N, C); reference (1, N, C)
            r = r[0]
        rows.append({"stage": f"inverted feature t=201 {k}", **diff(o, r)})
    # step 0's CFG call: ours (2, C, F, h, w) [uncond, cond]; the reference's hook sees the same layout
    # with a trajectory the step-0 call sees each side's own optimised latent (optimisation comes first)
    rows.append({"stage": "injected UNet output, step 0 (both CFG halves)",
                 **diff(ours["unet_outputs"][0], ref["unet_outputs"][0])})
    rows.append({"stage": "UNet output, step 0, cond half",
                 **diff(ours["unet_outputs"][0][1], ref["unet_outputs"][0][1])})
    for i in range(steps if ref["opt_latents"] else 0):
        for it in range(iters):
            n = i * iters + it
            row = diff(ours["opt_latents"][n], ref["opt_latents"][n])
            flips = ((ours["opt_latents"][n] - ref["opt_latents"][n]).abs() > 0.5 * settings["lr"]).sum()
            row["elements_differing_by_a_sign_step"] = int(flips)
            row["stage"] = f"latent after optimisation step {i}, iteration {it}"
            row["step_end"] = it == iters - 1
            rows.append(row)
    # masks of the first iteration: reference kmeans calls go frame by frame (frame 0 first), each (h*w*L,)
    rm, om = ref["kmeans_masks"], ours["masks"][0] if ours["masks"] else None
    if om is not None:
        agree, total = 0, 0
        per_obj = om[0]
        shapes = reference_crop_shapes(ref["boxes"][0], settings)
        stored = None  # the reference's frame-0 mask, resized into each clipped crop and kept (:195-198)
        for j in range(F):
            if j >= len(rm) or per_obj[j] is None:
                continue
            r = rm[j].reshape(*shapes[j], -1)  # (h, w, L)
            o = per_obj[j]  # (L, h, w) weight = m0 * m_j (frame 0: m0)
            if j == 0:
                stored = r
            else:
                if stored.shape[:2] != r.shape[:2]:
                    stored = torch.nn.functional.interpolate(stored.permute(2, 0, 1)[None], size=r.shape[:2],
                                                             mode="bilinear")[0].permute(1, 2, 0)
                r = r * stored
            r = r.reshape(-1)
            o = o.permute(1, 2, 0).reshape(-1)
            if o.shape == r.shape:
                agree += int((o.round() == r.round()).sum())
                total += o.numel()
        rows.append({"stage": "semantic masks, step 0 iteration 0 (all frames)",
                     "agreement": agree / max(total, 1), "cells": total, "noise": total > 0 and agree == total})
    rows.append({"stage": "final latent", **diff(ours["final_latent"], ref["final_latent"])})
    ref_video = ref["video"][0].permute(1, 2, 3, 0)  # (F, H, W, 3)
    rows.append({"stage": "decoded frames", **diff(ours["video"], ref_video)})
    return rows


def reference_crop_shapes(boxes_px, settings) -> list[tuple[int, int]]:
    """The (rows, columns) of the reference's crop of each frame: its boxes are [top, left, bottom, right]
    pixels, cut on the grid as pipeline_anyi2v.py:155-168 does (floor, at least one cell, clipped)."""
    import numpy as np

    n = settings["size"] // settings["compress_factor"]
    shapes = []
    for b in boxes_px:
        t, l, bo, r = (np.asarray(b, dtype=np.float32) // settings["compress_factor"]).astype(np.int32).tolist()
        bo, r = max(t + 1, bo), max(l + 1, r)
        shapes.append((min(bo, n) - max(t, 0), min(r, n) - max(l, 0)))
    return shapes


def markdown(report: dict) -> str:
    """One row per run and stage group: the largest relative difference and whether it is float noise."""
    groups = (("text embeddings", "text embeddings"), ("source latent", "source latent"),
              ("inverted features t=201 (8 layers)", "inverted feature"),
              ("UNet output, step 0 (CFG, injected)", "injected UNet output"),
              ("latent after optimisation steps 0-5", "latent after optimisation"),
              ("semantic masks (step 0, iteration 0)", "semantic masks"),
              ("final latent", "final latent"), ("decoded frames", "decoded frames"))
    lines = ["| run | our side | stage | max abs | relative | float noise |", "|---|---|---|---|---|---|"]
    for r in report["runs"]:
        for label, prefix in groups:
            rows = [x for x in r["stages"] if x["stage"].startswith(prefix)]
            if not rows:
                continue
            if "agreement" in rows[0]:
                lines.append(f"| {r['run']} | {r['variant']} | {label} | | {1 - rows[0]['agreement']:.2%} of cells "
                             f"differ | {'yes' if rows[0]['noise'] else 'no'} |")
                continue
            worst = max(rows, key=lambda x: x.get("rel", float("inf")))
            flips = max((x.get("elements_differing_by_a_sign_step", 0) for x in rows), default=0)
            extra = f" ({flips} elements a sign step apart)" if flips else ""
            lines.append(f"| {r['run']} | {r['variant']} | {label} | {worst['max_abs']:.2g} | "
                         f"{worst['rel']:.2g}{extra} | {'yes' if all(x['noise'] for x in rows) else 'no'} |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------- main
VARIANTS = {
    # our pipeline as shipped
    "ours_default": {},
    # diffusers' UNetMotionModel normalises each motion module's input over all frames at once (GroupNorm
    # on (b, c, f, h, w)); AnimateDiff's original, which the reference runs, per frame ((b f) c h w). This
    # variant patches our motion modules' GroupNorm to per-frame statistics, from outside, to show the rest
    "per_frame_motion_norm": {"motion_norm": "per_frame"},
    # and our two clipped-box rules swapped for the reference's (reference_clip_rules), from outside
    "per_frame_motion_norm+reference_clip_rules": {"motion_norm": "per_frame", "clip_rules": "reference"},
}
# the variants a run compares (the clip rules change nothing where no box leaves the image)
RUN_VARIANTS = {"clipped": tuple(VARIANTS)}


# Why a stage exceeds float noise, by (run, variant); what remains with every switch on is noise.
EXPLANATIONS = {
    ("*", "ours_default"): "motion-module GroupNorm: diffusers' AnimateDiffTransformer3D normalises over all frames "
        "(GroupNorm on (b, c, f, h, w), unet_motion_model.py), AnimateDiff's original per frame (reference "
        "animatediff/models/motion_module.py:139-144). The 2D UNet alone agrees to 1e-6; every UNet call with motion "
        "modules differs, so every stage from the step-0 UNet output on differs. Not in the audit's list",
    ("aligned", "per_frame_motion_norm"): "audit difference 8: kmeans_pytorch (random initial centres, stops when the "
        "centres move < 1e-2) against our exact two-means; the masks differ in a few cells, and the sign steps "
        "then differ wherever the gradient's sign does",
    ("aligned_exact_two_means", "per_frame_motion_norm"): "float noise: one latent element a sign step apart "
        "(a gradient within rounding of 0)",
    ("injection_only", "per_frame_motion_norm"): "float noise",
    ("clipped", "per_frame_motion_norm"): "the two clipped-box rules (docs/method.md, 'Where we differ': the "
        "frame-1 mask of a clipped box, the query cell): the box leaves the right edge at frame 2, where ours "
        "resizes frame 0's mask to the full moved box and cuts it, as the target features, while the reference "
        "squeezes it into the visible part; and the query cells are floor(p/4) - floor(box0/4) here, "
        "floor((p - box0)/4) there (2 of 3 points one cell apart)",
    ("clipped", "per_frame_motion_norm+reference_clip_rules"): "float noise: with the reference's two clipped-box "
        "rules patched onto ours, nothing else differs on a clipped box",
}


def reference_clip_rules():
    """Swap our two clipped-box rules for the reference's, from outside (pipeline_anyi2v.py:191-198 and
    AnyI2V_fp16.py:96, written here independently): query cells ``floor((p - box0) / f)``, and frame 0's
    mask resized into the visible part of each moved box, the resized mask kept for the next frame.
    Returns the function that undoes the patch."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    from anyi2v_lab.method import alignment, loss

    saved = alignment.query_cells, loss.resize, loss.cut
    state = {}

    def cells(points, start_box, factor):
        p = np.asarray(points, dtype=np.float64) - np.asarray(start_box, dtype=np.float64)[:2]
        return torch.from_numpy(np.floor(p / factor)).long()

    def resize(x, size, mode):
        out = saved[1](x, size, mode)
        if mode == "bilinear":  # only the frame-0 mask is resized bilinearly
            if state.get("m0") is not x:  # a new loss call (or object): the stored mask starts as m0
                state["m0"], state["stored"] = x, x
            state["marked"] = out
        return out

    def cut(x, box, height, width):
        if x is not state.get("marked"):
            return saved[2](x, box, height, width)
        x0, y0, x1, y1 = loss.clip_box(box, height, width)
        stored = state["stored"]
        if tuple(stored.shape[-2:]) != (y1 - y0, x1 - x0):
            stored = F.interpolate(stored[None].float(), size=(y1 - y0, x1 - x0), mode="bilinear")[0]
            state["stored"] = stored
        return stored

    alignment.query_cells, loss.resize, loss.cut = cells, resize, cut

    def undo():
        alignment.query_cells, loss.resize, loss.cut = saved
    return undo



def per_frame_group_norm(unet) -> None:
    """Each motion module's input GroupNorm with per-frame statistics, as AnimateDiff's original code."""
    import torch.nn.functional as F

    from anyi2v_lab.hooks.motion import motion_modules

    def per_frame(gn):
        def forward(x):  # (b, c, f, h, w)
            b, c, f, h, w = x.shape
            y = F.group_norm(x.transpose(1, 2).reshape(b * f, c, h, w), gn.num_groups, gn.weight, gn.bias, gn.eps)
            return y.reshape(b, f, c, h, w).transpose(1, 2)
        return forward
    for _, module in motion_modules(unet):
        module.norm.forward = per_frame(module.norm)


def run(ref: Path, python: str, work: Path, frames: int, names: list[str]) -> dict:
    import torch

    settings = write_inputs(work, frames)
    report = {"reference": str(ref), "settings": settings, "tiny_model": {k: list(v) if isinstance(v, tuple) else v
                                                                          for k, v in SPEC.items()},
              "noise_threshold_rel": NOISE_REL, "adaptations": ADAPTATIONS, "runs": []}
    try:
        report["reference_commit"] = subprocess.run(["git", "-C", str(ref), "rev-parse", "--short", "HEAD"],
                                                    capture_output=True, text=True).stdout.strip() or None
    except OSError:
        report["reference_commit"] = None
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
    procs, started = {}, time.perf_counter()
    for name in names:  # the reference runs in parallel with ours: each is single-threaded
        (work / f"ref_{name}").mkdir(exist_ok=True)
        log = open(work / f"ref_{name}.log", "w")
        procs[name] = (subprocess.Popen([python, __file__, "_reference", str(ref), str(work), name], env=env,
                                        stdout=log, stderr=subprocess.STDOUT), log)
    torch.set_num_threads(1)
    ours_cache = {}
    for name in names:
        scenario, which_kmeans, what = RUNS[name]
        for variant in RUN_VARIANTS.get(name, ("ours_default", "per_frame_motion_norm")):
            changes = VARIANTS[variant]
            key = (scenario, variant)
            if key not in ours_cache:
                t0 = time.perf_counter()
                ours_cache[key] = our_side(work, scenario, changes), round(time.perf_counter() - t0, 1)
    for name in names:
        scenario, which_kmeans, what = RUNS[name]
        proc, log = procs[name]
        if proc.wait():
            log.close()
            raise SystemExit(f"the reference side failed on {name!r}:\n"
                             + (work / f"ref_{name}.log").read_text()[-4000:])
        log.close()
        ref_out = torch.load(work / f"ref_{name}.pt", weights_only=False)
        for variant in RUN_VARIANTS.get(name, ("ours_default", "per_frame_motion_norm")):
            changes = VARIANTS[variant]
            ours, ours_s = ours_cache[(scenario, variant)]
            rows = compare(ours, ref_out, settings)
            report["runs"].append({"run": name, "scenario": scenario, "isolates": what,
                                   "reference_kmeans": which_kmeans, "variant": variant, "config_changes": changes,
                                   "motion_keys_not_loaded_by_reference": ref_out["motion_keys_not_loaded"],
                                   "boxes_ours_grid": ours["boxes"], "boxes_reference_px": ref_out["boxes"],
                                   "noise_check": ours.get("noise_check"),
                                   "seconds": {"ours": ours_s}, "stages": rows,
                                   "explanation": EXPLANATIONS.get((name, variant), EXPLANATIONS.get(("*", variant)))})
    report["seconds_total"] = round(time.perf_counter() - started, 1)
    return report


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--table"]:  # the Markdown table of a written report
        print(markdown(json.loads(Path(argv[1] if len(argv) > 1 else OUT).read_text())))
        return 0
    if argv[:1] == ["_reference"]:
        reference_side(Path(argv[1]), Path(argv[2]), argv[3])
        return 0
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("reference", type=Path, help="a local checkout of FudanCVL/AnyI2V")
    p.add_argument("--python", default=os.environ.get("ANYI2V_REFERENCE_PYTHON"),
                   help="the Python of the reference's environment (or $ANYI2V_REFERENCE_PYTHON)")
    p.add_argument("--work", type=Path, help="keep the intermediate files here (default: a temporary folder)")
    p.add_argument("--frames", type=int, default=4)
    p.add_argument("--run", action="append", choices=list(RUNS), help="default: all")
    p.add_argument("--out", type=Path, default=OUT)
    a = p.parse_args(argv)
    if not (a.reference / "animatediff" / "pipelines" / "pipeline_anyi2v.py").is_file():
        p.error(f"reference={str(a.reference)!r} is not an AnyI2V checkout "
                "(no animatediff/pipelines/pipeline_anyi2v.py)")
    if not a.python or not Path(a.python).is_file():
        p.error(f"--python={a.python!r}: give the reference environment's interpreter")
    os.environ["HF_HUB_OFFLINE"] = "1"
    with tempfile.TemporaryDirectory() as tmp:
        work = a.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        report = run(a.reference.resolve(), a.python, work.resolve(), a.frames, a.run or list(RUNS))
    sys.path.insert(0, str(ROOT))
    from anyi2v_lab.io import write_json

    report["date"] = time.strftime("%Y-%m-%d")
    report["machine"] = "2-core CPU (shared), torch fp32"
    write_json(a.out, report)
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
