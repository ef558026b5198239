"""Pieces of the GPU benchmark: the random full-size model, the job's inputs, micro-timings, profile."""
from __future__ import annotations

import os
import platform
import time

import numpy as np
import torch

from anyi2v_lab.io import write_json  # noqa: F401  (the GPU benchmarks write their results with it)


def env_info(device) -> dict:
    import diffusers
    import transformers

    info = {"torch": torch.__version__, "cuda": torch.version.cuda, "diffusers": diffusers.__version__,
            "transformers": transformers.__version__, "python": platform.python_version(),
            "cpus": os.cpu_count(), "device": str(device), "device_name": "cpu"}
    if torch.device(device).type == "cuda":
        prop = torch.cuda.get_device_properties(device)
        info.update(device_name=prop.name, sms=prop.multi_processor_count, memory_gb=prop.total_memory / 1e9,
                    cudnn=torch.backends.cudnn.version())
    return info


def random_sd15_pipeline(device):
    """SD1.5 + AnimateDiff v3 shapes with random fp16 weights, built on the device (CPU init of 1.3 B
    parameters would take minutes); the character-level offline tokenizer stands in for CLIP's."""
    from diffusers import AnimateDiffPipeline, AutoencoderKL
    from transformers import CLIPTextConfig, CLIPTextModel

    from anyi2v_lab.models.scheduler import ddim_scheduler
    from anyi2v_lab.models.tiny import offline_tokenizer, sd15_motion_unet

    torch.manual_seed(0)
    unet = sd15_motion_unet(device).half().eval()
    tok = offline_tokenizer()
    with torch.device(device):
        vae = AutoencoderKL(block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4,
                            down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                            norm_num_groups=32, sample_size=512).half().eval()
        text = CLIPTextModel(CLIPTextConfig(
            vocab_size=len(tok), hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
            num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu",
            bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)).half().eval()
    pipe = AnimateDiffPipeline(unet=unet, vae=vae, text_encoder=text, tokenizer=tok, scheduler=ddim_scheduler(),
                               motion_adapter=None)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def probe_model(tiny: bool):
    """``(device, pipe, config)`` of a diagnostic script: the full-size random model at the paper's
    settings on the GPU, or (``tiny``) the tiny random model at quick settings on the CPU."""
    dev = torch.device("cuda" if torch.cuda.is_available() and not tiny else "cpu")
    if tiny:
        from anyi2v_lab.models.tiny import tiny_pipeline
        return dev, tiny_pipeline(seed=0), paper_config(quick=True)
    return dev, random_sd15_pipeline(dev), paper_config()


def paper_config(quick: bool = False):
    from anyi2v_lab.method import AnyI2VConfig

    if quick:
        return AnyI2VConfig(num_frames=4, num_inference_steps=3, inversion_timestep=21, load_feature_step=2, opt_step=1,
                            opt_iters=2)
    return AnyI2VConfig()  # the paper's: 16 frames, 25 steps, CFG 8, inversion to 201, 6 x 5 optimisation


def warm_config(config):
    """Same shapes, least work: compiles, captures and autotunes everything the full job needs (step 0
    injects, step 1 is a hook-free step that a graphed sampling runtime captures)."""
    return config.replace(num_inference_steps=2, inversion_timestep=3, opt_step=0, opt_iters=1, load_feature_step=0)


def make_inputs(pipe) -> dict:
    """A drawn condition image on the model canvas and two moving objects."""
    from PIL import Image, ImageDraw

    from anyi2v_lab.method import AnyI2VConfig
    from anyi2v_lab.method.generation import model_size
    from anyi2v_lab.trajectory import ObjectTrack, Trajectory

    H, W = model_size(pipe, AnyI2VConfig())
    img = Image.new("RGB", (W, H), (30, 30, 40))
    d = ImageDraw.Draw(img)
    a = (0.15 * W, 0.30 * H, 0.40 * W, 0.55 * H)
    b = (0.55 * W, 0.55 * H, 0.80 * W, 0.80 * H)
    d.ellipse(a, fill=(220, 60, 50))
    d.rectangle(b, fill=(60, 200, 90))
    centre = lambda box: ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)  # noqa: E731
    ca, cb = centre(a), centre(b)
    traj = Trajectory(objects=(
        ObjectTrack(a, (ca, (ca[0] + 0.3 * W, ca[1])), query_points=(ca,), name="ball"),
        ObjectTrack(b, (cb, (cb[0] - 0.2 * W, cb[1] - 0.2 * H)), query_points=(cb,), name="box"),
    ), image_size=(W, H))
    return {"condition": np.asarray(img), "trajectory": traj, "prompt": "a red ball and a green box on a table"}


def _event_ms(fn, reps: int = 3) -> float:
    """Median milliseconds of ``fn()`` after one warm-up (device events on CUDA)."""
    fn()
    times = []
    for _ in range(reps):
        if torch.cuda.is_available():
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            fn()
            b.record()
            b.synchronize()
            times.append(a.elapsed_time(b))
        else:
            tic = time.perf_counter()
            fn()
            times.append(1000 * (time.perf_counter() - tic))
    return float(np.median(times))


def microbench(pipe, config, log) -> dict:
    """Plain UNet calls at the job's shapes: CFG step and optimisation forward+backward under each
    layout and SDPA kernel, inversion call eager and graphed, VAE decode, PCA eigh. Chooses the
    fastest layout and attention kernel for the eager fast path."""
    from anyi2v_lab.accel import GraphedCall, Runtime, backend_settings, prepare_layout
    from anyi2v_lab.hooks import bypass_motion
    from anyi2v_lab.method.generation import model_size
    from anyi2v_lab.method.optimize import frozen

    unet, dev, F = pipe.unet, pipe.unet.device, config.num_frames
    H, W = model_size(pipe, config)
    h, w = H // pipe.vae_scale_factor, W // pipe.vae_scale_factor
    g = torch.Generator(device="cpu").manual_seed(0)
    z = torch.randn(1, 4, F, h, w, generator=g).to(dev, unet.dtype)
    emb = torch.randn(1, 77, unet.config.cross_attention_dim, generator=g).to(dev, unet.dtype)
    t = torch.full((1,), 501, device=dev)
    out: dict = {"cfg_step_ms": {}, "opt_full_fwd_bwd_ms": {}}

    def cfg_call():
        with torch.no_grad():
            unet(torch.cat([z, z]), t, encoder_hidden_states=emb.repeat(2 * F, 1, 1))

    def opt_call():
        leaf = z.float().requires_grad_(True)
        with frozen(unet), torch.enable_grad():
            y = unet(leaf.to(unet.dtype), t, encoder_hidden_states=emb.repeat(F, 1, 1)).sample
            torch.autograd.grad(y.float().square().mean(), leaf)

    attn = ("auto", "flash", "cudnn", "efficient") if dev.type == "cuda" else ("auto",)
    for cl in (False, True):
        prepare_layout(pipe, Runtime(channels_last=cl))
        for a in attn:
            try:
                with backend_settings(Runtime(attention=a, cudnn_benchmark=True)):
                    out["cfg_step_ms"][f"cl={cl},attn={a}"] = _event_ms(cfg_call)
                    out["opt_full_fwd_bwd_ms"][f"cl={cl},attn={a}"] = _event_ms(opt_call, 2)
            except Exception as e:  # noqa: BLE001 - a kernel missing on this device
                out["cfg_step_ms"][f"cl={cl},attn={a}"] = f"{type(e).__name__}: {e}"[:200]
        log(f"variants cl={cl}: {out['cfg_step_ms']} {out['opt_full_fwd_bwd_ms']}")
    score = {}
    for key, ms in out["cfg_step_ms"].items():
        if isinstance(ms, float):
            score[key] = 25 * ms + 30 * out["opt_full_fwd_bwd_ms"].get(key, 0.0)
    best = min(score, key=score.get)
    out["chosen"] = {"channels_last": best.startswith("cl=True"), "attention": best.split("attn=")[1]}
    prepare_layout(pipe, Runtime(channels_last=out["chosen"]["channels_last"]))

    x1 = z[:, :, :1].contiguous()
    with torch.no_grad(), bypass_motion(unet):
        call = lambda x, tt, e: unet(x, tt, encoder_hidden_states=e).sample  # noqa: E731
        out["inversion_call_eager_ms"] = _event_ms(lambda: call(x1, t, emb), 5)
        if dev.type == "cuda":
            graph = GraphedCall(call, (x1, t, emb))
            out["inversion_call_graph_ms"] = _event_ms(lambda: graph(x1, t, emb), 5)
            x2 = torch.randn_like(x1)  # fresh input: the replay must compute, not echo the capture
            out["inversion_graph_vs_eager_max_abs"] = float((graph(x2, t, emb) - call(x2, t, emb)).abs().max())
            del graph
    with torch.no_grad():
        out["vae_decode_ms"] = _event_ms(lambda: pipe.decode_latents(z, decode_chunk_size=F), 2)
    for c in (1280, 640):
        x = torch.randn(4096, c, device=dev)
        cov = x.T @ x / 4095
        out[f"eigh_{c}_ms"] = _event_ms(lambda: torch.linalg.eigh(cov), 3)
        # how long the host is held: eigh checks its status on the host, so nothing queues behind it
        torch.cuda.synchronize() if dev.type == "cuda" else None
        tic = time.perf_counter()
        torch.linalg.eigh(cov)
        out[f"eigh_{c}_host_ms"] = 1000 * (time.perf_counter() - tic)
    log(f"micro: {({k: v for k, v in out.items() if k.endswith('_ms') and not isinstance(v, dict)})}")
    return out


_CATEGORIES = [("attention", ("flash", "fmha", "attention", "sdpa", "efficient")),
               ("conv", ("conv", "implicit", "dgrad", "fprop", "wgrad", "nchw", "nhwc")),
               ("matmul", ("gemm", "cutlass", "xmma", "cublas", "gemv", "matmul")),
               ("norm", ("group_norm", "groupnorm", "layer_norm", "layernorm", "norm")),
               ("eigh/linalg", ("syevd", "syevj", "cusolver", "eigh", "potrf")),
               ("copy/layout", ("copy", "transpose", "permute", "cat", "contiguous")),
               ("reduction", ("reduce", "triton_red", "softmax", "sum", "mean")),
               ("elementwise", ("elementwise", "vectorized", "unrolled", "triton_poi", "pointwise"))]


def _category(name: str) -> str:
    low = name.lower()
    return next((c for c, keys in _CATEGORIES if any(k in low for k in keys)), "other")


def kernel_rows(prof) -> list[tuple[str, float, int]]:
    """``(name, self µs, calls)`` of every CUDA kernel in a profile; on a CPU, of every operator (self
    CPU time). The method's named ranges (``anyi2v.*``) are left out."""
    cuda, rows = torch.cuda.is_available(), []
    for e in prof.key_averages():
        if e.key.startswith("anyi2v."):
            continue
        us = getattr(e, "self_device_time_total", 0) if cuda else e.self_cpu_time_total
        if us > 0 and (not cuda or getattr(e, "device_type", None) is not None and "CUDA" in str(e.device_type)):
            rows.append((e.key, us, e.count))
    return rows


def by_category(rows) -> dict[str, float]:
    """Summed µs of :func:`kernel_rows` per kernel category, largest first."""
    out: dict = {}
    for key, us, _ in rows:
        out[_category(key)] = out.get(_category(key), 0.0) + us
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def profile_run(pipe, inputs, config, runtime, log) -> dict:
    """Kernel time by category and the top kernels of one short job (same shapes as the paper's)."""
    from torch.profiler import ProfilerActivity, profile

    from anyi2v_lab.method import generate

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with profile(activities=acts) as prof:
        generate(pipe, inputs["condition"], inputs["prompt"], inputs["trajectory"], config, seed=0,
                 progress=False, runtime=runtime)
    # the method's named ranges: host time and the kernels they launched
    ranges = {e.key: {"calls": e.count, "cpu_ms_per_call": e.cpu_time_total / 1000 / e.count,
                      "device_ms_per_call": getattr(e, "device_time_total", 0) / 1000 / e.count}
              for e in prof.key_averages() if e.key.startswith("anyi2v.")}
    rows = kernel_rows(prof)
    total = sum(r[1] for r in rows) or 1.0
    top = sorted(rows, key=lambda r: -r[1])[:15]
    out = {"total_kernel_ms": total / 1000, "share_by_category": {k: round(v / total, 3)
                                                                   for k, v in by_category(rows).items()},
           "top_kernels": [{"name": k[:120], "ms": us / 1000, "calls": n} for k, us, n in top],
           "ranges": ranges}
    log(f"profile: {out['share_by_category']}")
    log(f"profile ranges: {ranges}")
    return out


def compare(videos: dict, stages: dict) -> dict:
    """Each video against the baseline's (and the fast path against itself in a fresh process: the
    run-to-run noise floor of fp16 kernels), in [0, 1] pixel units."""
    def diff(a, b) -> dict:
        d = np.abs(a.astype(np.float64) - b.astype(np.float64))
        mse = float((d ** 2).mean())
        return {"max_abs": float(d.max()), "mean_abs": float(d.mean()),
                "psnr_db": float(10 * np.log10(1.0 / mse)) if mse > 0 else float("inf")}
    out = {}
    base = videos.get("baseline")
    for name, video in videos.items():
        if name != "baseline" and base is not None and video.shape == base.shape:
            out[f"{name}_vs_baseline"] = diff(video, base)
    fresh = "fresh" if "fresh" in videos else "fresh_r0"
    if "fast_eager" in videos and fresh in videos:
        out["noise_floor_fast_eager_vs_fresh"] = diff(videos["fast_eager"], videos[fresh])
    for name, video in videos.items():  # other fresh processes (repeats, environment variants) against the first
        if name.startswith("fresh") and name != fresh and fresh in videos:
            out[f"{name}_vs_{fresh}"] = diff(video, videos[fresh])
    return out
