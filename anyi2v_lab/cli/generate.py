"""``anyi2v-lab generate``: a video from condition image(s), a prompt and a trajectory; or a run redone from
its run.json (``--from-run``); or a shipped example of the reference (``--example``). The command line is
read into one record, :class:`RunInputs`, checked before any model loads; then the run writes its folder."""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .arguments import (
    OVERWRITE_HELP,
    UsageError,
    add_command,
    add_condition_arguments,
    add_config_arguments,
    check_conditions,
    config_from_arguments,
    config_with_overrides,
)
from .model import add_model_arguments, check_model_paths, model_spec
from .saved_run import SavedRun, read_saved_run, reproducibility_note
from .trajectory_input import check_trajectory, read_trajectory_argument, reference_source

if TYPE_CHECKING:
    from ..examples import Example
    from ..method.config import AnyI2VConfig
    from ..trajectory import Trajectory


def register(subparsers) -> None:
    from ..examples import example_names
    from ..interop import FORMATS
    from ..trajectory import TIMINGS
    p = add_command(subparsers, "generate", "generate a video from condition image(s), a prompt and trajectories")
    add_condition_arguments(p)
    p.add_argument("--trajectory", help="trajectory file: ours, the reference's or a peer method's (see "
                   "--trajectory-format); none: injection only")
    p.add_argument("--trajectory-format", choices=sorted(FORMATS), default=None,
                   help="format of --trajectory (default: detected from the file)")
    p.add_argument("--trajectory-timing", choices=TIMINGS, default=None,
                   help="which path point is which frame: resample spreads the whole path over the frames; "
                   "first-frames makes point i frame i (the reference's rule: a longer path keeps its first "
                   "points). Default: the file's own, first-frames for the reference's format, else resample")
    p.add_argument("--example", choices=example_names(), default=None,
                   help="run a shipped example (the reference's own): its prompt, negative prompt, seed, "
                   "trajectory and config; the flags given here override them. Weights are yours: --model, "
                   "--checkpoint, --motion-adapter, --lora (at the example's strength unless PATH:SCALE)")
    p.add_argument("--reference-checkout", metavar="PATH", help="a clone of FudanCVL/AnyI2V, where --example "
                   "finds its condition image (not shipped: the reference has no licence)")
    p.add_argument("--prompt")
    p.add_argument("--negative-prompt", default=None, help="(default: empty, or the example's)")
    p.add_argument("--seed", type=int, default=None, help="(default: 0, or the example's)")
    p.add_argument("--from-run", help="redo the run saved in this run.json (model, config, inputs, seed)")
    p.add_argument("--out", required=True, help="output folder (written atomically; a symbolic link is followed)")
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    p.add_argument("--no-memory-check", action="store_true", help="run even where the memory estimate exceeds "
                   "the device's free memory (anyi2v_lab.resources gives the formula)")
    p.add_argument("--backbone", choices=("unet", "wan"), default="unet",
                   help="unet: AnimateDiff (default); wan: a Wan 2.1 video transformer (experimental; --model tiny "
                   "or a diffusers Wan folder, --set takes WanAnyI2VConfig's keys)")
    add_config_arguments(p)
    add_model_arguments(p)
    p.set_defaults(func=run)


@dataclass(frozen=True, kw_only=True)
class RunInputs:
    """What one run generates from, every part checked: from the command line, a saved run (``--from-run``)
    or a shipped example (``--example``) with the command line's flags on top."""

    conditions: tuple[str, ...]     # condition image files
    masks: tuple[str, ...]          # their masks (mixed conditions), or none
    trajectory: Trajectory | None   # on the condition image's pixels; None: injection only
    prompt: str
    negative_prompt: str
    seed: int
    config: AnyI2VConfig
    model: dict                     # the model spec, as run.json saves it
    example: Example | None = None  # the shipped example it runs
    saved_run: SavedRun | None = None  # the run.json it redoes


def run(args) -> int:
    from ..outputs import check_output_folder, claim_output_folder
    if args.backbone == "wan":
        from .generate_wan import run_wan
        return run_wan(args)

    check_output_folder(args.out, args.overwrite)  # at once; claimed below, before the model loads
    inputs = run_inputs(args)
    from ..resources import check_spec_fits  # Runtime()'s estimate is the eager calls' (runtime=None)
    check_spec_fits(inputs.model, inputs.config, trajectory=inputs.trajectory is not None,
                    memory_check=not args.no_memory_check)
    with claim_output_folder(args.out, args.overwrite) as out:  # a second process on --out is refused from here
        from ..accel import Runtime
        from ..conditions import condition_from_files
        from ..method import generate
        from ..method.generation import model_size
        from ..outputs import write_run
        from .model import load_model
        if inputs.saved_run is not None:
            reproducibility_note(inputs.saved_run)
        pipe = load_model(inputs.model)
        h, w = model_size(pipe, inputs.config)
        condition = condition_from_files(list(inputs.conditions), list(inputs.masks), size=(w, h),
                                         policy=inputs.config.resize_policy)
        result = generate(pipe, condition, inputs.prompt, inputs.trajectory, inputs.config,
                          negative_prompt=inputs.negative_prompt, seed=inputs.seed,
                          keep_masks=inputs.trajectory is not None, runtime=Runtime(),
                          memory_check=not args.no_memory_check)
        example = inputs.example
        extra = {} if example is None else {"example.yaml": lambda p: p.write_bytes(example.file.read_bytes())}
        write_run(result, out, model=inputs.model, extra_files=extra)
    print(f"wrote {out}/video.mp4, video.gif, overlay.mp4, frames/, run.json" + (", example.yaml" if extra else ""))
    return 0


def run_inputs(args) -> RunInputs:
    """The inputs the command line gives, checked in the order a user fixes them: what to run, the seed, the
    model, the conditions, the trajectory, the config; all before any model loads."""
    from ..method.config import check_seed
    if args.from_run and args.example:
        raise UsageError("--from-run and --example both say what to run; give one of them")
    saved = read_saved_run(args.from_run, args.set, args.allow_pickle) if args.from_run else None
    example, conditions = _example(args) if saved is None and args.example else (None, tuple(args.condition))
    if saved is not None:
        prompt, negative, seed, spec = saved.prompt, saved.negative_prompt, saved.seed, saved.model
        conditions, masks, trajectory_file = (saved.condition,), (), saved.trajectory
    else:
        if example is None and args.reference_checkout:
            raise UsageError("--reference-checkout is where --example finds its condition image; give --example")
        prompt, negative, seed = _prompt_and_seed(args, example)
        spec = model_spec(args, lora_scale=example.lora_alpha if example else None)
        masks, trajectory_file = tuple(args.mask), args.trajectory
    check_seed(seed, f"--from-run {args.from_run!r}: seed" if saved else "--seed")
    check_model_paths(spec)
    check_conditions(conditions, masks)
    trajectory = read_trajectory_argument(trajectory_file, args, conditions, example)
    config = (saved.config if saved else config_from_arguments(args) if example is None
              else config_with_overrides(example.config, args.set, "--set"))
    trajectory = check_trajectory(trajectory, config, conditions,
                                  reference_source(trajectory_file, args.trajectory_format, example))
    return RunInputs(conditions=conditions, masks=masks, trajectory=trajectory, prompt=prompt,
                     negative_prompt=negative, seed=seed, config=config, model=spec, example=example,
                     saved_run=saved)


def _prompt_and_seed(args, example) -> tuple[str, str, int]:
    """Prompt, negative prompt and seed: the command line's, else the example's, else the defaults."""
    prompt = args.prompt if args.prompt is not None else example.prompt if example else None
    if not prompt:
        raise UsageError("--prompt is required (or --example, or --from-run)")
    negative = args.negative_prompt if args.negative_prompt is not None else example.negative_prompt if example else ""
    seed = args.seed if args.seed is not None else example.seed if example else 0
    return prompt, negative, seed


# ------------------------------------------------------------------ a shipped example
def _example(args) -> tuple[Example, tuple[str, ...]]:
    """The shipped example of ``--example``, checked against the flags given with it, and its condition
    images: the command line's, else the example's in the reference checkout."""
    from ..examples import load_example
    ex = load_example(args.example)
    if args.config:
        raise UsageError(f"--example {ex.name} brings its own config; change its values with --set KEY=VALUE "
                         f"instead of --config")
    conditions = tuple(args.condition)
    if not conditions:
        if not args.reference_checkout:
            raise UsageError(f"--example {ex.name} needs its condition image, which is not shipped (the reference "
                             f"repository has no licence): give --reference-checkout PATH (a clone of "
                             f"FudanCVL/AnyI2V) or --condition PATH/{Path(ex.condition).name}")
        conditions = (str(ex.condition_path(args.reference_checkout)),)
    w = ex.weights
    flags = (("--checkpoint", "checkpoint"), ("--motion-adapter", "motion_adapter"), ("--lora", "lora"))
    missing = [f"{flag} {w[key]}" for flag, key in flags if w.get(key) and not getattr(args, key)]
    if missing and args.model != "tiny":
        print(f"note: the reference ran {ex.name} with {', '.join(missing)}; without them this is another model's "
              f"video", file=sys.stderr)
    return ex, conditions


# ------------------------------------------------------------------ the trajectory
