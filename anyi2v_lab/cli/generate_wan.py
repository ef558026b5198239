"""``anyi2v-lab generate --backbone wan``: AnyI2V on a Wan video transformer (experimental).

``--model tiny`` builds a tiny random Wan pipeline (with :data:`~anyi2v_lab.method.wan.config.TINY_WAN_SETTINGS`
under the ``--set`` values); otherwise ``--model`` is a diffusers Wan 2.1 folder or hub id. The run writes
``frames/``, ``video.mp4``, ``video.gif``, ``condition.png``, ``trajectory.json`` and ``run.json``."""
from __future__ import annotations

from .arguments import UsageError

_UNET_ONLY = (("checkpoint", "--checkpoint"), ("motion_adapter", "--motion-adapter"), ("lora", "--lora"),
              ("example", "--example"), ("from_run", "--from-run"), ("mask", "--mask"), ("config", "--config"))


def check_wan_arguments(args) -> None:
    """Refuse, before any work, the flags that only the UNet backbone reads."""
    given = [flag for attr, flag in _UNET_ONLY if getattr(args, attr, None)]
    if given:
        raise UsageError(f"--backbone wan does not take {', '.join(given)} (AnimateDiff only); give --model, "
                         f"--condition, --prompt, --trajectory and --set")
    if not args.prompt:
        raise UsageError("--backbone wan needs --prompt")
    if len(args.condition) != 1:
        raise UsageError(f"--backbone wan takes one --condition image, got {len(args.condition)}")


def load_wan(args):
    """The tiny random Wan pipeline, or a diffusers Wan folder / hub id on ``--device`` in ``--dtype``."""
    if args.model == "tiny":
        from ..models.tiny_wan import tiny_wan_pipeline
        return tiny_wan_pipeline(seed=0)
    import torch
    from diffusers import WanPipeline
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = getattr(torch, {"fp16": "float16", "half": "float16", "bf16": "bfloat16", "fp32": "float32"}.get(
        args.dtype, args.dtype or ("bfloat16" if device.startswith("cuda") else "float32")))
    pipe = WanPipeline.from_pretrained(args.model, torch_dtype=dtype).to(device)
    pipe.vae.to(torch.float32)  # decode as Wan's examples do
    pipe.set_progress_bar_config(disable=True)
    return pipe


def run_wan(args) -> int:
    from ..conditions import load_condition
    from ..method.config import check_seed
    from ..method.wan.config import TINY_WAN_SETTINGS, wan_config
    from ..outputs import check_output_folder, claim_output_folder
    from .trajectory_input import check_trajectory, read_trajectory_argument, reference_source

    check_output_folder(args.out, args.overwrite)
    check_wan_arguments(args)
    seed = check_seed(0 if args.seed is None else args.seed, "--seed")
    if not args.model:
        raise UsageError("--backbone wan needs --model: 'tiny' or a diffusers Wan 2.1 folder or hub id")
    config = wan_config(args.set, TINY_WAN_SETTINGS if args.model == "tiny" else None)
    conditions = tuple(args.condition)
    trajectory = check_trajectory(read_trajectory_argument(args.trajectory, args, conditions, None), config,
                                  conditions, reference_source(args.trajectory, args.trajectory_format, None))
    condition = load_condition(args.condition[0], size=(config.width, config.height))
    with claim_output_folder(args.out, args.overwrite) as out:
        from ..method.wan import generate_wan
        pipe = load_wan(args)
        result = generate_wan(pipe, condition, args.prompt, trajectory, config,
                              negative_prompt=args.negative_prompt or "", seed=seed)
        _write(out, result, condition, trajectory, args)
    print(f"wrote {out.path}/video.mp4, video.gif, frames/, run.json")
    return 0


def _write(out, result, condition, trajectory, args) -> None:
    from dataclasses import asdict

    from PIL import Image

    from ..io import write_json
    from ..outputs import atomic_folder, versions
    from ..video import upscale, write_gif, write_mp4

    with atomic_folder(out) as tmp:
        big = upscale(result.frames)
        write_mp4(big, tmp / "video.mp4")
        write_gif(big, tmp / "video.gif")
        (tmp / "frames").mkdir()
        for i, f in enumerate(result.frames):
            Image.fromarray(f).save(tmp / "frames" / f"{i:03d}.png")
        condition.image.save(tmp / "condition.png")
        if trajectory is not None:
            trajectory.save(tmp / "trajectory.json")
        rec = result.record
        write_json(tmp / "run.json", {
            "backbone": "wan", "experimental": True, "prompt": args.prompt,
            "negative_prompt": args.negative_prompt or "", "seed": result.seed,
            "config": asdict(result.config), "model": {"model": args.model},
            "trajectory": "trajectory.json" if trajectory is not None else None, "timesteps": rec.timesteps,
            "injected": rec.injected, "iterations": rec.iterations, "versions": versions()})
