"""Speed against the reference's own code: its inference script and ours, one GPU, one run, same weights.

    python benchmarks/reference_speed.py PATH/TO/AnyI2V --ref-site /tmp/refsite \
        --out benchmarks/results/reference_speed_h100.json

1. Writes one set of random fp16 weights at full size (SD1.5 UNet, VAE and text encoder, an AnimateDiff
   v3 motion module) in both layouts: a diffusers folder plus an original-layout ``mm.ckpt`` for ours,
   the 2022 folder layout for the reference (the writers of ``reference_parity.py``).
2. Runs the reference as its README does, ``python -m scripts.AnyI2V_fp16 --config ...`` in a process of
   its own, on its shipped example (``configs/prompts/1_1_animate_RealisticVision.yaml``: the horse-canny
   image and trajectory, prompt, negative prompt, seed; ``hyper_params.yaml``; ``inference-v3.yaml``),
   with our random weights in place of the checkpoints and the example listed twice: the first video
   pays the process's first-use costs, the second is warm. Each line it prints is time-stamped here;
   a video is timed from its "Generating" line to its "Saved" line (inversion, sampling with the
   optimisation, decoding, its GIF).
3. Runs ours in a fresh process on the same files, prompt, seed and settings: the default ``Runtime()``
   twice (first and warm video), ``Runtime.baseline()`` and ``Runtime.fast()`` (each after a warm-up,
   as ``gpu_pipeline.py`` does) while ``--budget`` allows.

The reference's environment (``--ref-site``, a ``pip install --target`` folder) holds its pins where
they install on Python 3.12: diffusers 0.11.1, transformers 4.25.1, huggingface_hub 0.25.2, omegaconf
2.3.0 (antlr4-python3-runtime 4.9.3, a wheel built from its sdist), kmeans-pytorch 0.3, torch-pca 1.1.0,
imageio 2.27.0; torch, torchvision, numpy, opencv, scipy, scikit-learn, einops and safetensors are the
machine's (torch 2.11). The smallest changes that run it there, made by a launcher, not in its files:

* ``accelerate``, ``jax``, ``flax`` and ``onnxruntime`` are hidden from the process
  (``sys.modules[name] = None``), as they are absent from its pinned environment: both libraries load
  weights without accelerate, and diffusers 0.11 skips its Flax schedulers (written for a jax that had
  ``random.KeyArray``) and ONNX pipelines;
* transformers 4.25's import-time pin check is skipped (an empty ``dependency_versions_check``): it
  pins tokenizers < 0.14, which has no Python 3.12 wheel, and the machine's tokenizers serves the
  script's slow ``CLIPTokenizer``. Hiding tokenizers instead breaks that tokenizer's special tokens
  (``None`` ids);
* ``import setuptools`` first: Python 3.12 has no ``distutils``, which diffusers 0.11 imports;
* xformers 0.0.27 (its pin) has no build for torch 2.11. By default a stand-in package answers
  ``xformers.ops.memory_efficient_attention`` with ``torch.nn.functional.scaled_dot_product_attention``
  (the same function; PyTorch picks a fused kernel), so the script takes its xformers path as its README
  runs it; ``--no-xformers-shim`` runs its ``--without-xformers`` path instead (diffusers 0.11's
  attention, which materialises the score matrix).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

EXAMPLE = "configs/prompts/1_1_animate_RealisticVision.yaml"
SEED = 0

LAUNCHER = r"""
import runpy, sys, types
for name in ("accelerate", "jax", "flax", "onnxruntime"):
    sys.modules[name] = None  # importlib finds no spec: transformers/diffusers run as in the 2022 pins
# transformers 4.25 pins tokenizers < 0.14 (no Python 3.12 wheel); the machine's newer one serves its slow tokenizer
_CHECK = "transformers.dependency_versions_check"
check = sys.modules[_CHECK] = types.ModuleType(_CHECK)
check.dep_version_check = lambda pkg, hint=None: None
import setuptools  # noqa: F401  (distutils for diffusers 0.11 on Python 3.12)
sys.argv = ["scripts.AnyI2V_fp16"] + sys.argv[1:]
runpy.run_module("scripts.AnyI2V_fp16", run_name="__main__", alter_sys=True)
"""

XFORMERS_OPS = '''"""Stand-in for xformers' memory_efficient_attention (reference_speed.py): the same function."""
import torch.nn.functional as F


def memory_efficient_attention(query, key, value, attn_bias=None, p=0.0, scale=None, op=None):
    squeeze = query.dim() == 3  # (B, M, K): one head
    if squeeze:
        query, key, value = query[:, None], key[:, None], value[:, None]
    out = F.scaled_dot_product_attention(query, key, value, attn_mask=attn_bias, dropout_p=p, scale=scale)
    return out[:, 0] if squeeze else out
'''


def write_xformers_shim(folder: Path) -> Path:
    """A package ``xformers`` (version 0.0.27 in its metadata) whose ``ops`` is :data:`XFORMERS_OPS`."""
    (folder / "xformers").mkdir(parents=True, exist_ok=True)
    (folder / "xformers" / "__init__.py").write_text("from . import ops\n__version__ = '0.0.27'\n")
    (folder / "xformers" / "ops.py").write_text(XFORMERS_OPS)
    meta = folder / "xformers-0.0.27.dist-info"
    meta.mkdir(exist_ok=True)
    (meta / "METADATA").write_text("Metadata-Version: 2.1\nName: xformers\nVersion: 0.0.27\n")
    return folder


# ------------------------------------------------------------------------------------------- weights
def full_components(device: str, tiny: bool = False) -> dict:
    """Seeded random weights shaped as SD1.5 + AnimateDiff v3 (or the tiny model), fp16 on the CPU."""
    import torch

    from anyi2v_lab.models.tiny import TinySpec, tiny_components

    spec = TinySpec(channels=(32, 64, 64, 64), norm_groups=32, heads=8, vae_channels=(32, 32, 32, 32)) if tiny else \
        TinySpec(channels=(320, 640, 1280, 1280), text_dim=768, heads=8, norm_groups=32, latent_size=64,
                 vae_channels=(128, 256, 512, 512))
    with torch.device(device):  # 1.3 B parameters initialise in seconds on a GPU, minutes on a CPU
        parts = tiny_components(SEED, spec)
    # tiny_components at SD1.5's sizes has SD1.5's UNet and v3's motion module; SD1.5's VAE and CLIP text
    # tower are built here
    if not tiny:
        from diffusers import AutoencoderKL
        from transformers import CLIPTextConfig, CLIPTextModel

        tok = parts["tokenizer"]
        with torch.device(device):
            parts["vae"] = AutoencoderKL(block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4,
                                         down_block_types=("DownEncoderBlock2D",) * 4,
                                         up_block_types=("UpDecoderBlock2D",) * 4, norm_num_groups=32, sample_size=512)
            parts["text_encoder"] = CLIPTextModel(CLIPTextConfig(
                vocab_size=len(tok), hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu",
                bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id))
    for name in ("unet", "motion_adapter", "vae", "text_encoder"):
        parts[name] = parts[name].half().cpu().eval()
    return parts


def write_weights(work: Path, device: str, tiny: bool = False) -> None:
    import torch

    from anyi2v_lab.models.original_formats import adapter_to_original, save_base, save_reference_base

    parts = full_components(device, tiny)
    save_base(parts, work / "base")
    save_reference_base(parts, work / "base_ref")
    torch.save(adapter_to_original(parts["motion_adapter"].state_dict()), work / "mm.ckpt")


def example(ref: Path) -> dict:
    """The reference's shipped example (prompt, negative prompt, seed, image, trajectory) as absolute paths."""
    import yaml

    cfg = yaml.safe_load((ref / EXAMPLE).read_text())[0]
    return {"prompt": cfg["prompt"][0], "n_prompt": cfg["n_prompt"][0], "seed": int(cfg["seed"][0]),
            "image": str(ref / cfg["image_path"][0]), "trajectory": str(ref / cfg["trajectory"][0])}


def write_reference_config(work: Path, ref: Path, videos: int) -> Path:
    ex = example(ref)
    cfg = [{"inference_config": str(ref / "configs/inference/inference-v3.yaml"),
            "motion_module": str(work / "mm.ckpt"), "seed": [ex["seed"]] * videos, "prompt": [ex["prompt"]] * videos,
            "n_prompt": [ex["n_prompt"]], "trajectory": [ex["trajectory"]] * videos,
            "image_path": [ex["image"]] * videos}]
    path = work / "reference_example.yaml"
    path.write_text(json.dumps(cfg, indent=1))  # JSON is YAML
    return path


# ---------------------------------------------------------------------------------------- reference
def run_reference(ref: Path, site: str, work: Path, videos: int, shim: bool, timeout: float, log) -> dict:
    """The reference's script in its own process; its stdout lines time-stamped."""
    scratch = work / ("ref_xformers" if shim else "ref_plain")
    scratch.mkdir(exist_ok=True)
    path = [site, str(ref)] + ([str(write_xformers_shim(work / "xformers_shim"))] if shim else [])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path), "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-c", LAUNCHER, "--config", str(write_reference_config(work, ref, videos)),
           "--pretrained-model-path", str(work / "base_ref"),
           "--hyper-params-config", str(ref / "configs/prompts/hyper_params.yaml"),
           *([] if shim else ["--without-xformers"])]
    lines, tic = [], time.perf_counter()
    with open(scratch / "stderr.log", "w") as err:
        proc = subprocess.Popen(cmd, cwd=scratch, env=env, stdout=subprocess.PIPE, stderr=err, text=True)
        try:
            for line in proc.stdout:
                lines.append((round(time.perf_counter() - tic, 3), line.rstrip()))
                log(f"  reference | {line.rstrip()}")
                if time.perf_counter() - tic > timeout:
                    proc.kill()
                    break
        finally:
            rc = proc.wait()
    out = {"returncode": rc, "process_s": round(time.perf_counter() - tic, 2), "xformers": "sdpa stand-in" if shim else
           "off (--without-xformers)", "lines": lines, "videos_s": [], "inversion_s": [], "generation_s": []}
    if rc != 0:
        out["stderr_tail"] = (scratch / "stderr.log").read_text()[-4000:]
    start = step2 = None
    for t, line in lines:
        if line.startswith("--- Generating"):
            start = t
        elif line.startswith("Step 2"):
            step2 = t
        elif line.startswith("Saved individual sample") and start is not None:
            out["videos_s"].append(round(t - start, 2))
            if step2 is not None:
                out["inversion_s"].append(round(step2 - start, 2))
                out["generation_s"].append(round(t - step2, 2))
            start = step2 = None
    return out


# ------------------------------------------------------------------------------------------ ours
def our_side(args) -> int:
    """A fresh process: load the written weights, then the runtimes in turn; JSON after each."""
    t_import = time.perf_counter()
    import torch

    from anyi2v_lab.accel import Runtime
    from anyi2v_lab.conditions import load_condition
    from anyi2v_lab.interop import reference as ref_format
    from anyi2v_lab.method import AnyI2VConfig
    from anyi2v_lab.models.loading import load_pipeline
    from benchmarks.gpu_parts import warm_config
    from benchmarks.gpu_timing import run_case

    T0 = time.perf_counter()
    work, out = Path(args.work), {"import_s": T0 - t_import}
    save = lambda: (work / "ours.json").write_text(json.dumps(out, indent=1, default=str))  # noqa: E731
    dtype = torch.float32 if args.device == "cpu" else torch.float16
    pipe = load_pipeline(work / "base", motion_adapter=work / "mm.ckpt", device=args.device, dtype=dtype,
                         allow_pickle=True, progress=False)
    if args.device != "cpu":
        torch.cuda.synchronize()
    out["load_s"] = time.perf_counter() - T0
    ex = example(Path(args.reference))
    size = 128 if args.tiny else 512
    cond = load_condition(ex["image"], size=(size, size))
    traj = ref_format.read(ex["trajectory"], image_size=(512, 512))
    if size != 512:
        from anyi2v_lab.geometry import ResizeMap
        traj = traj.rescaled(ResizeMap((512, 512), (size, size), "stretch"))
    config = AnyI2VConfig(height=size, width=size)
    if args.quick:
        config = config.replace(num_frames=4, num_inference_steps=3, inversion_timestep=21, load_feature_step=2,
                                opt_step=1, opt_iters=2)
    inputs = {"condition": cond, "prompt": ex["prompt"], "trajectory": traj}
    left = lambda: args.budget - (time.perf_counter() - T0)  # noqa: E731

    def case(rt):
        from anyi2v_lab.method import generate
        from anyi2v_lab.method.inversion import clear_inversion_cache

        clear_inversion_cache()
        if args.device != "cpu":
            torch.cuda.synchronize()
        tic = time.perf_counter()
        res = generate(pipe, inputs["condition"], inputs["prompt"], inputs["trajectory"], config,
                       negative_prompt=ex["n_prompt"], seed=ex["seed"], progress=False, runtime=rt)
        if args.device != "cpu":
            torch.cuda.synchronize()
        return {"wall_s": time.perf_counter() - tic, "phases_s": res.record.timings,
                "finite": bool(torch.isfinite(torch.as_tensor(res.video)).all())}

    out["default"] = [case(Runtime()) for _ in range(args.videos)]
    out["default_s"] = [round(r["wall_s"], 2) for r in out["default"]]
    print(f"ours Runtime(): {out['default_s']}", flush=True)
    save()
    for name, rt, need in (("baseline", Runtime.baseline(), 60), ("fast", Runtime.fast(), 360)):
        if name not in args.ours or left() < need:
            out[name] = {"skipped": f"{left():.0f} s left of --budget"}
            continue
        tic = time.perf_counter()
        warm = run_case(pipe, inputs, warm_config(config), rt)
        out[name] = {"warmup_s": time.perf_counter() - tic, "warmup_finite": warm[0]["finite"],
                     "runs": [case(rt) for _ in range(2 if name == "fast" else 1)]}
        out[name]["wall_s"] = min(r["wall_s"] for r in out[name]["runs"])
        print(f"ours {name}: warm-up {out[name]['warmup_s']:.1f} s, video {out[name]['wall_s']:.2f} s", flush=True)
        save()
    out["process_s"] = time.perf_counter() - T0
    save()
    return 0


# -------------------------------------------------------------------------------------------- main
def main(argv=None) -> int:
    import torch

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("reference", help="a checkout of FudanCVL/AnyI2V")
    p.add_argument("--ref-site", help="the reference's packages (pip install --target); none: skip the reference")
    p.add_argument("--out", default="benchmarks/results/reference_speed.json")
    p.add_argument("--work", help="weights and logs here (default: a temporary folder)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--videos", type=int, default=2, help="videos per process on each side")
    p.add_argument("--ours", default="default,baseline,fast", help="our runtimes after the default one")
    p.add_argument("--reference-runs", default="xformers",
                   help="xformers (the stand-in), plain (--without-xformers), or both")
    p.add_argument("--budget", type=float, default=540, help="seconds for our side's optional runtimes")
    p.add_argument("--reference-timeout", type=float, default=900,
                   help="seconds before the reference's process is stopped")
    p.add_argument("--tiny", action="store_true", help="tiny random weights, 128 px (a CPU check of our side)")
    p.add_argument("--quick", action="store_true", help="4 frames, 3 steps, 2 x 2 optimisation on our side")
    p.add_argument("--_ours", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args._ours:
        return our_side(args)
    import tempfile

    from benchmarks.gpu_parts import env_info, write_json

    T0 = time.perf_counter()
    log = lambda m: print(f"[{time.perf_counter() - T0:7.1f}s] {m}", flush=True)  # noqa: E731
    ref = Path(args.reference).resolve()
    work = Path(args.work or tempfile.mkdtemp(prefix="anyi2v_refspeed_")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    result = {"env": env_info(args.device), "reference": str(ref), "example": example(ref),
              "weights": "random fp16, " + ("tiny" if args.tiny else "SD1.5 + AnimateDiff v3 shapes"), "runs": {}}
    tic = time.perf_counter()
    write_weights(work, args.device, args.tiny)
    result["write_weights_s"] = round(time.perf_counter() - tic, 1)
    log(f"weights written in {result['write_weights_s']} s to {work}")
    if args.device != "cpu":
        torch.cuda.empty_cache()
    for run in filter(None, args.reference_runs.split(",") if args.ref_site else []):
        result["runs"][f"reference_{run}"] = run_reference(ref, args.ref_site, work, args.videos, run == "xformers",
                                                           args.reference_timeout, log)
        log(f"reference ({run}): videos {result['runs'][f'reference_{run}']['videos_s']} s")
        write_json(args.out, result)
    cmd = [sys.executable, __file__, str(ref), "--_ours", "--work", str(work), "--device", args.device,
           "--videos", str(args.videos), "--ours", args.ours, "--budget", str(args.budget)]
    cmd += ["--tiny"] * args.tiny + ["--quick"] * args.quick
    tic = time.perf_counter()
    proc = subprocess.run(cmd, env={**os.environ, "PYTHONUNBUFFERED": "1"}, text=True, capture_output=True)
    log(proc.stdout[-2000:])
    ours = json.loads((work / "ours.json").read_text()) if (work / "ours.json").exists() else {}
    result["runs"]["ours"] = {**ours, "process_wall_s": time.perf_counter() - tic, "returncode": proc.returncode,
                              **({"stderr_tail": proc.stderr[-4000:]} if proc.returncode else {})}
    result["ratios"] = ratios(result["runs"])
    write_json(args.out, result)
    log(f"ratios: {json.dumps(result['ratios'])}")
    return 0 if proc.returncode == 0 else 1


def ratios(runs: dict) -> dict:
    """Reference video seconds over ours, first video to first video and warm to warm."""
    out, ours = {}, runs.get("ours", {})
    for name, r in runs.items():
        if not name.startswith("reference_") or not r.get("videos_s"):
            continue
        ref_first, ref_warm = r["videos_s"][0], r["videos_s"][-1] if len(r["videos_s"]) > 1 else None
        if ours.get("default_s"):
            out[f"{name}/default_first"] = round(ref_first / ours["default_s"][0], 2)
            if ref_warm and len(ours["default_s"]) > 1:
                out[f"{name}/default_warm"] = round(ref_warm / ours["default_s"][-1], 2)
        for k in ("baseline", "fast"):
            if ref_warm and ours.get(k, {}).get("wall_s"):
                out[f"{name}/{k}_warm"] = round(ref_warm / ours[k]["wall_s"], 2)
    return out


if __name__ == "__main__":
    raise SystemExit(main())
