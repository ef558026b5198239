"""``anyi2v-lab``: the command line.

    anyi2v-lab demo                                   # the toy world, full method, on CPU
    anyi2v-lab generate --condition sketch.png --trajectory t.json --prompt "..." --out runs/a
    anyi2v-lab generate --from-run runs/a/run.json --out runs/b      # redo a run exactly
    anyi2v-lab invert --condition depth.png --prompt "..." --out feats.safetensors
    anyi2v-lab points --pattern "up_blocks.1.*.query"                # list hook points
    anyi2v-lab batch jobs.jsonl --out runs/batch                     # many jobs, resumable
    torchrun --nproc_per_node 2 -m anyi2v_lab.cli batch jobs.jsonl --out runs/batch   # one process a GPU
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model (default: the embedded toy model, offline)")
    g.add_argument("--model", help="SD1.5-family diffusers folder or hub id; 'tiny' for a tiny random model")
    g.add_argument("--checkpoint", help="single-file personalised checkpoint (.safetensors; .ckpt weights-only)")
    g.add_argument("--motion-adapter", help="AnimateDiff motion adapter: folder, hub id or single file")
    g.add_argument("--lora", action="append", default=[], metavar="PATH[:SCALE]", help="LoRA file to merge")
    g.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    g.add_argument("--dtype", help="float32, float16, bfloat16 (default: fp16 on CUDA, fp32 on CPU)")
    g.add_argument("--allow-pickle", action="store_true", help="allow full unpickling of .ckpt files (unsafe)")


def _config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML or JSON config file (defaults are the paper's)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config field")


def model_spec(args) -> dict:
    return {"model": args.model, "checkpoint": args.checkpoint, "motion_adapter": args.motion_adapter,
            "loras": [_lora(item) for item in args.lora], "device": args.device, "dtype": args.dtype, "allow_pickle": args.allow_pickle}


def _lora(item: str) -> list:
    """``path`` or ``path:scale``."""
    path, sep, scale = item.rpartition(":")
    try:
        return [path, float(scale)] if sep else [item, 1.0]
    except ValueError:
        return [item, 1.0]


def load_model(spec: dict):
    """Build the pipeline a model spec (as saved in run.json) names."""
    if spec.get("model") == "tiny":
        from .models.tiny import tiny_pipeline
        return tiny_pipeline(seed=spec.get("tiny_seed", 0))
    from .models.loading import load_pipeline
    return load_pipeline(spec.get("model"), checkpoint=spec.get("checkpoint"),
                         motion_adapter=spec.get("motion_adapter"), loras=[tuple(x) for x in spec.get("loras", [])],
                         dtype=spec.get("dtype"), device=spec.get("device"), allow_pickle=spec.get("allow_pickle", False))


def _config(args):
    from .method import AnyI2VConfig
    cfg = AnyI2VConfig.load(args.config) if args.config else AnyI2VConfig()
    return cfg.with_overrides(args.set) if args.set else cfg


def _condition(args, size, policy):
    from .conditions import condition_from_files
    if not args.condition:
        raise SystemExit("error: --condition is required (an image path; repeat it with --mask for mixed conditions)")
    return condition_from_files(args.condition, args.mask, size=size, policy=policy)


def cmd_generate(args) -> int:
    from .method import AnyI2VConfig, generate
    from .method.generate import model_size
    from .outputs import write_run
    from .trajectory import Trajectory

    if args.from_run:
        run_path = Path(args.from_run)
        run = json.loads(run_path.read_text())
        cfg = AnyI2VConfig.from_dict(run["config"])
        if args.set:
            cfg = cfg.with_overrides(args.set)
        spec = run["model"]
        args.condition = [str(run_path.parent / run["condition"])]
        args.trajectory = str(run_path.parent / run["trajectory"]) if run.get("trajectory") else None
        prompt, negative, seed = run["prompt"], run["negative_prompt"], run["seed"]
    else:
        if not args.prompt:
            raise SystemExit("error: --prompt is required (or --from-run)")
        cfg, spec = _config(args), model_spec(args)
        prompt, negative, seed = args.prompt, args.negative_prompt, args.seed
    trajectory = Trajectory.load(args.trajectory) if args.trajectory else None  # validate before loading weights
    out = Path(args.out)
    if out.exists() and any(out.iterdir()) and not args.overwrite:
        raise SystemExit(f"error: {out} exists and is not empty; choose another --out or pass --overwrite")
    pipe = load_model(spec)
    h, w = model_size(pipe, cfg)
    condition = _condition(args, (w, h), cfg.resize_policy)
    result = generate(pipe, condition, prompt, trajectory, cfg, negative_prompt=negative, seed=seed,
                      keep_masks=trajectory is not None)
    write_run(result, out, model=spec, overwrite=args.overwrite)
    print(f"wrote {out}/video.mp4, video.gif, overlay.mp4, frames/, run.json")
    return 0


def cmd_invert(args) -> int:
    from .method.generate import model_size
    from .method.inversion import invert_cached

    cfg, pipe = _config(args), load_model(model_spec(args))
    h, w = model_size(pipe, cfg)
    cond = _condition(args, (w, h), cfg.resize_policy)
    embeds = pipe.encode_prompt(args.prompt, pipe.unet.device, 1, False)[0]
    bank = invert_cached(pipe, cond.pixels, args.prompt, embeds, cfg)
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise SystemExit(f"error: {out} exists; pass --overwrite")
    bank.save(out)
    print(f"wrote {out} ({bank.nbytes / 2**20:.2f} MiB, {len(bank.residuals)} residuals, {len(bank.queries)} queries)")
    return 0


def cmd_points(args) -> int:
    from .hooks import hook_points, list_hook_points
    if args.model in (None, "sd15"):
        from .models.tiny import sd15_motion_unet
        unet = sd15_motion_unet()
    else:
        unet = load_model(model_spec(args)).unet
    chosen = set(list_hook_points(unet, pattern=args.pattern))
    for p in hook_points(unet):
        if p.name in chosen:
            print(f"{p.name:<70} {p.kind:<16} {p.layout:<6} C={p.channels:<5} 1/{p.downscale}")
    return 0


def cmd_demo(args) -> int:
    from .demo import run_demo
    run_demo(Path(args.out), overwrite=args.overwrite, tiny=args.tiny, fast=args.fast)
    return 0


RUNTIMES = ("default", "fast", "baseline", "low-memory")


def _runtime(name: str):
    from .accel import Runtime
    return {"default": Runtime(), "fast": Runtime.fast(), "baseline": Runtime.baseline(),
            "low-memory": Runtime.low_mem()}[name]


def cmd_batch(args) -> int:
    from .batch import main_batch
    return main_batch(args, load_model, _config(args), _runtime(args.runtime), model_spec(args))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="anyi2v-lab", description="Training-free trajectory-controlled "
                                     "image-to-video with AnimateDiff (AnyI2V).")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("generate", help="generate a video from condition image(s), a prompt and trajectories")
    p.add_argument("--condition", action="append", default=[], help="condition image (repeat for mixed conditions)")
    p.add_argument("--mask", action="append", default=[], help="mask of the matching --condition (mixed conditions)")
    p.add_argument("--trajectory", help="trajectory JSON (ours or the reference's format); none: injection only")
    p.add_argument("--prompt")
    p.add_argument("--negative-prompt", default="")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--from-run", help="redo the run saved in this run.json (model, config, inputs, seed)")
    p.add_argument("--out", required=True, help="output folder (written atomically)")
    p.add_argument("--overwrite", action="store_true")
    _config_args(p)
    _model_args(p)
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("invert", help="save the inverted features of a condition image (safetensors)")
    p.add_argument("--condition", action="append", default=[])
    p.add_argument("--mask", action="append", default=[])
    p.add_argument("--prompt", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--overwrite", action="store_true")
    _config_args(p)
    _model_args(p)
    p.set_defaults(func=cmd_invert)

    p = sub.add_parser("demo", help="the main job: a toy scene, a trajectory, the full method on CPU")
    p.add_argument("--out", default="outputs/demo")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--tiny", action="store_true", help="use the tiny random model (no toy weights needed)")
    p.add_argument("--fast", action="store_true", help="fewer steps, for a quick look")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("batch", help="run the generation jobs of a JSONL file (resumable; one process a GPU "
                       "under torchrun or accelerate launch)")
    p.add_argument("jobs", help="JSONL, one job a line: condition, trajectory, prompt, seed (see anyi2v_lab.batch)")
    p.add_argument("--out", required=True, help="one folder a job, plus failed/ and summary.json")
    p.add_argument("--runtime", choices=RUNTIMES, default="default",
                   help="fast: compiled blocks (compiles once per process); low-memory: for 12 GB GPUs")
    _config_args(p)
    _model_args(p)
    p.set_defaults(func=cmd_batch)

    p = sub.add_parser("points", help="list the hook points of a model (default: SD1.5 shape, no weights)")
    p.add_argument("--pattern", help="glob, e.g. 'up_blocks.1.*.query'")
    _model_args(p)
    p.set_defaults(func=cmd_points)
    return parser


def main(argv: list[str] | None = None) -> int:
    import os
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, FileExistsError) as e:  # our validation errors: no traceback
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
