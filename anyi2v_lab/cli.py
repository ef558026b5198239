"""``anyi2v-lab``: the command line.

    anyi2v-lab demo                                   # the toy world, full method, on CPU
    anyi2v-lab generate --condition sketch.png --trajectory t.json --prompt "..." --out runs/a
    anyi2v-lab generate --from-run runs/a/run.json --out runs/b      # redo a run exactly
    anyi2v-lab generate --example horse-canny --reference-checkout AnyI2V --model SD15 ... --out runs/h
    anyi2v-lab invert --condition depth.png --prompt "..." --out feats.safetensors
    anyi2v-lab config                                                 # the method's settings: --set KEY=VALUE
    anyi2v-lab points --pattern "up_blocks.1.*.query"                # list hook points
    anyi2v-lab batch jobs.jsonl --out runs/batch                     # many jobs, resumable
    anyi2v-lab evaluate cases.jsonl --out runs/eval                  # ObjMC over a manifest, resumable
    torchrun --nproc_per_node 2 -m anyi2v_lab.cli batch jobs.jsonl --out runs/batch   # one process a GPU

Every input (config values, condition images and masks, trajectory, output folder, model paths) is
checked before a model is loaded. Exit codes:

    0    done
    1    a failure while running (one line ``error: ...``; ``--debug`` shows the traceback),
         or, for ``batch``, some jobs failed (listed in <out>/failed/)
    2    bad input or usage (the message names the argument or key, the value and the fix), an output
         that is taken or being written by another process
    130  interrupted (Ctrl-C); outputs are written atomically, so nothing half-written is left
    143  terminated (SIGTERM), cleaned up as for Ctrl-C
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

EXIT_FAILURE, EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_TERMINATED = 1, 2, 130, 143

EPILOG = """exit codes: 0 done; 1 a failure while running (rerun with --debug for the traceback; batch: some
jobs failed); 2 bad input or usage; 130 interrupted (Ctrl-C); 143 terminated (SIGTERM). `anyi2v-lab
config` lists the method's settings (keys for --set KEY=VALUE and for --config files) with their types,
defaults and meaning."""


OVERWRITE_HELP = ("replace an earlier run in --out (a folder holding only what this tool wrote, as its run.json "
                  "lists); a folder holding anything else is never replaced")


class UsageError(ValueError):
    """A bad argument of the command line (exit 2)."""


# ------------------------------------------------------------------ arguments
def _model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model (default: the embedded toy model, offline)")
    g.add_argument("--model", help="SD1.5-family diffusers folder or hub id; 'tiny' for a tiny random model")
    g.add_argument("--checkpoint", help="single-file personalised checkpoint (.safetensors; .ckpt weights-only)")
    g.add_argument("--motion-adapter", help="AnimateDiff motion adapter: folder, hub id or single file")
    g.add_argument("--lora", action="append", default=[], metavar="PATH[:SCALE]", help="LoRA file to merge")
    g.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    g.add_argument("--dtype", help="float32, float16, bfloat16 (default: fp16 on CUDA, fp32 on CPU)")
    g.add_argument("--allow-pickle", action="store_true", help="allow full unpickling of .ckpt files (unsafe: "
                   "it runs code stored in them); only this flag allows it, never a file such as run.json")


def _config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML or JSON config file (defaults are the paper's; see `anyi2v-lab config`)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, e.g. --set lr=0.02 (keys: `anyi2v-lab config`)")


def model_spec(args) -> dict:
    return {"model": args.model, "checkpoint": args.checkpoint, "motion_adapter": args.motion_adapter,
            "loras": [_lora(item) for item in args.lora], "device": args.device, "dtype": args.dtype,
            "allow_pickle": args.allow_pickle}


def _has_scale(item: str) -> bool:
    """``path:scale`` (not just ``path``)."""
    _, sep, scale = item.rpartition(":")
    try:
        return bool(sep) and float(scale) == float(scale)
    except ValueError:
        return False


def _lora(item: str) -> list:
    """``path`` or ``path:scale``."""
    path, sep, scale = item.rpartition(":")
    try:
        return [path, float(scale)] if sep else [item, 1.0]
    except ValueError:
        return [item, 1.0]


# ------------------------------------------------------------------ checks before any model is loaded
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
_WEIGHT_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")
_DTYPES = ("float32", "fp32", "float16", "fp16", "half", "bfloat16", "bf16")


def _missing(flag: str, value: str) -> UsageError:
    from .io import missing_path_message
    return UsageError(missing_path_message(f"{flag} {value!r}", value))


def check_model_paths(spec: dict) -> None:
    """The model sources of a spec (as saved in run.json) exist and fit together, before any weight is
    read. Hub ids (``owner/name``) are left to the loader, which fails fast offline."""
    def local_or_hub(flag: str, value, hub_ok: bool) -> None:
        if value is None or Path(value).expanduser().exists():
            return
        if not (hub_ok and _HUB_ID.fullmatch(str(value)) and not str(value).endswith(_WEIGHT_SUFFIXES)):
            raise _missing(flag, str(value))

    local_or_hub("--model", None if spec.get("model") == "tiny" else spec.get("model"), hub_ok=True)
    local_or_hub("--checkpoint", spec.get("checkpoint"), hub_ok=False)
    local_or_hub("--motion-adapter", spec.get("motion_adapter"), hub_ok=True)
    for path, scale in spec.get("loras") or []:
        if not Path(path).expanduser().is_file():
            raise _missing("--lora", path) if not Path(path).expanduser().exists() else UsageError(
                f"--lora {path!r} is a folder; give the LoRA's .safetensors file")
    model = spec.get("model")
    if model is not None and model != "tiny" and Path(model).expanduser().is_file():
        raise UsageError(f"--model {model!r} is a file: give a diffusers folder (unet/, vae/, text_encoder/, "
                         f"tokenizer/); a single-file SD1.x model goes in --checkpoint, next to such a --model")
    if model == "tiny":
        extra = [f for f, k in (("--checkpoint", "checkpoint"), ("--motion-adapter", "motion_adapter"),
                                ("--lora", "loras")) if spec.get(k)]
        if extra:
            raise UsageError(f"--model tiny builds a tiny random model from scratch and takes no {', '.join(extra)}; "
                             f"give --model a diffusers folder to use them")
    dtype = spec.get("dtype")
    if dtype is not None and str(dtype).lower().removeprefix("torch.") not in _DTYPES:
        raise UsageError(f"--dtype {dtype!r} is unknown; use float32, float16 or bfloat16")
    device = spec.get("device")
    if device is not None:
        import torch
        try:
            kind = torch.device(device).type
        except (RuntimeError, TypeError):
            raise UsageError(f"--device {device!r} is not a torch device; use cpu, cuda or cuda:N") from None
        if kind == "cuda" and not torch.cuda.is_available():
            raise UsageError(f"--device {device!r} but CUDA is not available here; use --device cpu")


def _config(args):
    from .method.config import AnyI2VConfig, ConfigError
    if args.config:  # the file and --set together: --set may mend what the file alone would break
        return AnyI2VConfig.load(args.config, overrides=args.set)
    try:
        return AnyI2VConfig().with_overrides(args.set)
    except ConfigError as e:
        raise ConfigError(f"--set: {e}") from None


def _is_feature_file(path: Path) -> bool:
    """A features file ``invert`` wrote (its safetensors metadata says so)."""
    try:
        from safetensors import safe_open
        with safe_open(str(path), framework="pt") as f:
            return "anyi2v_lab.features" in (f.metadata() or {})
    except Exception:  # noqa: BLE001 - any file safetensors cannot read is not one of ours
        return False


def _check_output_file(out: str, overwrite: bool) -> Path:
    """Where ``invert --out`` writes (a symbolic link followed): refused, before any work, if it is a folder,
    a file ``invert`` did not write, an earlier result without ``--overwrite``, or in an unwritable place."""
    from .io import followed
    path = followed(out)
    if path.is_dir():
        raise UsageError(f"--out {out!r} is a folder; give a file name, e.g. {str(Path(out) / 'features.safetensors')!r}")
    if path.exists() and not _is_feature_file(path):
        raise UsageError(f"--out {out!r} exists and is not a features file written by anyi2v-lab, so it is never "
                         f"replaced; choose another --out")
    if path.exists() and not overwrite:
        raise UsageError(f"--out {out!r} exists (features written earlier); choose another --out or pass "
                         f"--overwrite to replace it")
    parent = next((p for p in path.absolute().parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise UsageError(f"--out {out!r}: {str(parent)!r} is a file, not a folder")
    if parent is not None and not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(f"--out {out!r}: {str(parent)!r} is not writable; choose another --out")
    return path


def _trajectory(path, fmt=None, conditions=(), timing=None):
    """Our trajectory file, the reference's or a peer method's (``fmt``, else detected); a peer's pixel
    coordinates are read against the first condition image's size unless the file brings its own.
    ``timing`` (None: the format's own) says which path point is which frame."""
    if not path:
        return None
    from .conditions import image_file_size
    from .interop import read_trajectory
    size = image_file_size(conditions[0]) if conditions else None
    traj = read_trajectory(path, format=fmt, default_image_size=size)
    return traj if timing is None else traj.with_timing(timing)


def _reference_source(args, example) -> str | None:
    """What gave a trajectory in the reference format's 512x512 pixels (said in a note), or None."""
    if args.trajectory:
        from .interop import detect_format
        fmt = args.trajectory_format or detect_format(args.trajectory)
        return f"--trajectory {args.trajectory}" if fmt == "reference" else None
    return f"--example {example.name}'s trajectory" if example is not None else None


def _check_trajectory(trajectory, cfg, conditions, reference: str | None):
    """The trajectory, checked before any model is loaded: it gives every frame a point and is drawn on
    the condition image (or on the canvas --set width/height name). One in the reference format
    (``reference`` says what gave it) is stretched onto the condition image, with a note: the reference
    stretches any input image to 512x512 before it reads the trajectory."""
    if trajectory is None:
        return None
    from .conditions import image_file_size
    from .geometry import ResizeMap
    from .trajectory import frame_paths
    frame_paths(trajectory, cfg.num_frames)
    size = image_file_size(conditions[0])
    (w, h), (cw, ch) = trajectory.image_size, size
    if reference and trajectory.image_size != size:
        print(f"note: {reference} is in the reference format's {w}x{h} pixels (the reference stretches its input "
              f"to that size); mapped onto the {cw}x{ch} condition image", file=sys.stderr)
        return trajectory.rescaled(ResizeMap(trajectory.image_size, size, "stretch"))
    canvas = (cfg.width, cfg.height) if cfg.width and cfg.height else None
    if trajectory.image_size in (size, canvas):
        return trajectory
    raise UsageError(f"the trajectory's image_size is {w}x{h} but the condition image {conditions[0]!r} is {cw}x{ch}"
                     + (f" and the canvas (--set width/height) {canvas[0]}x{canvas[1]}" if canvas else "")
                     + f"; draw the trajectory on the condition image, rescale it to {cw}x{ch} (in Python: "
                     f"Trajectory.rescaled(ResizeMap(({w}, {h}), ({cw}, {ch}), 'stretch'))), or, if it is drawn on "
                     f"the model canvas, give --set width={w} --set height={h}")


def _example(args):
    """The shipped example of ``--example``, its values filled in where the command line gives none."""
    from .examples import load_example
    ex = load_example(args.example)
    if args.config:
        raise UsageError(f"--example {ex.name} brings its own config; change its values with --set KEY=VALUE "
                         f"instead of --config")
    if not args.condition:
        if not args.reference_checkout:
            raise UsageError(f"--example {ex.name} needs its condition image, which is not shipped (the reference "
                             f"repository has no licence): give --reference-checkout PATH (a clone of "
                             f"FudanCVL/AnyI2V) or --condition PATH/{Path(ex.condition).name}")
        args.condition = [str(ex.condition_path(args.reference_checkout))]
    args.lora = [item if _has_scale(item) else f"{item}:{ex.lora_alpha}" for item in args.lora]
    w = ex.weights
    missing = [f"{flag} {w[key]}" for flag, key in (("--checkpoint", "checkpoint"), ("--motion-adapter", "motion_adapter"),
                                                     ("--lora", "lora")) if w.get(key) and not getattr(args, key)]
    if missing and args.model != "tiny":
        print(f"note: the reference ran {ex.name} with {', '.join(missing)}; without them this is another model's "
              f"video", file=sys.stderr)
    return ex


def _check_conditions(images, masks) -> None:
    from .conditions import check_condition_files
    if not images:
        raise UsageError("--condition is required (an image path; repeat it with --mask for mixed conditions)")
    check_condition_files(images, masks)


def load_model(spec: dict):
    """Build the pipeline a model spec (as saved in run.json) names."""
    if spec.get("model") == "tiny":
        from .models.tiny import tiny_pipeline
        return tiny_pipeline(seed=spec.get("tiny_seed", 0))
    from .models.loading import load_pipeline
    return load_pipeline(spec.get("model"), checkpoint=spec.get("checkpoint"),
                         motion_adapter=spec.get("motion_adapter"), loras=[tuple(x) for x in spec.get("loras", [])],
                         dtype=spec.get("dtype"), device=spec.get("device"), allow_pickle=spec.get("allow_pickle", False))


# ------------------------------------------------------------------ commands
_NONE = type(None)
# run.json's fields and model fields: (types, what the message says they must be); the other fields
# (versions, timings, losses, files) are records, not read back
_RUN_FIELDS = {"prompt": (str, "a string"), "negative_prompt": ((str, _NONE), "a string or null"),
               "seed": (int, "an integer"), "config": (dict, "an object of config keys"),
               "model": (dict, "an object (the model spec)"), "condition": (str, "a file name in the run's folder"),
               "trajectory": ((str, _NONE), "a file name in the run's folder or null"),
               "trajectory_timing": ((str, _NONE), "a timing name or null"), "threads": ((dict, _NONE), "an object")}
_MODEL_FIELDS = {"model": ((str, _NONE), "a path, hub id, 'tiny' or null"),
                 "checkpoint": ((str, _NONE), "a path or null"), "motion_adapter": ((str, _NONE), "a path or null"),
                 "loras": ((list, _NONE), "a list of [path, scale] pairs"), "device": ((str, _NONE), "a device or null"),
                 "dtype": ((str, _NONE), "a dtype name or null"), "allow_pickle": (bool, "true or false"),
                 "tiny_seed": (int, "an integer")}
_REQUIRED_RUN_FIELDS = ("prompt", "seed", "config", "model", "condition")


@dataclass(frozen=True)
class SavedRun:
    """What ``--from-run`` redoes: a run.json's fields, checked; paths made absolute."""

    config: object          # AnyI2VConfig, with --set on top
    model: dict             # the model spec; allow_pickle from the command line only
    prompt: str
    negative_prompt: str
    seed: int
    condition: str
    trajectory: str | None
    threads: dict | None    # as recorded (startup.thread_settings)
    versions: dict | None


def _is_a(value, types) -> bool:
    types = types if isinstance(types, tuple) else (types,)
    return isinstance(value, types) and not (isinstance(value, bool) and bool not in types)


def _check_fields(d: dict, fields: dict, where: str, prefix: str = "") -> None:
    for key, (types, must) in fields.items():
        if key in d and not _is_a(d[key], types):
            raise UsageError(f"{where}: field {prefix + key!r} is {d[key]!r} ({type(d[key]).__name__}); it must be "
                             f"{must}. Fix the file or make the run again")


def _check_run_json(run, where: str) -> None:
    """Every field ``--from-run`` reads has its type (exit 2 naming the field, before a model loads)."""
    if not isinstance(run, dict):
        raise UsageError(f"{where} is not a run.json written by anyi2v-lab (not a JSON object)")
    missing = [k for k in _REQUIRED_RUN_FIELDS if k not in run]
    if missing:
        raise UsageError(f"{where} has no field {missing[0]!r}; is it a run.json written by anyi2v-lab?")
    _check_fields(run, _RUN_FIELDS, where)
    if not 0 <= run["seed"] < 2**64:
        raise UsageError(f"{where}: field 'seed' is {run['seed']}; it must lie in 0..2**64-1")
    model = run["model"]
    unknown = sorted(set(model) - set(_MODEL_FIELDS))
    if unknown:
        raise UsageError(f"{where}: field 'model' has unknown keys {unknown}; a model spec has {sorted(_MODEL_FIELDS)}")
    _check_fields(model, _MODEL_FIELDS, where, prefix="model.")
    for item in model.get("loras") or []:
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str) and _is_a(item[1], (int, float))):
            raise UsageError(f"{where}: field 'model.loras' holds {item!r}; each LoRA is [path, scale]")


def _in_run_folder(folder: Path, name: str, key: str, where: str) -> str:
    """``folder / name``, which must stay inside ``folder`` (a run.json names its own files)."""
    path = folder / name
    if Path(name).is_absolute() or not path.resolve().is_relative_to(folder.resolve()):
        raise UsageError(f"{where}: field {key!r} is {name!r}, which leaves the run's folder; a run.json names "
                         f"files of its own folder (condition.png, trajectory.json)")
    return str(path)


def _from_run(args) -> SavedRun:
    """The saved run of ``--from-run``, every field checked. Nothing in the file widens what is trusted:
    unpickling is allowed by ``--allow-pickle`` on this command line only, whatever run.json says."""
    from .method.config import AnyI2VConfig, ConfigError, parse_overrides
    run_path, where = Path(args.from_run), f"--from-run {args.from_run!r}"
    if not run_path.is_file():
        raise UsageError(f"{where} " + ("is a folder; give its run.json" if run_path.is_dir() else "does not exist"))
    try:
        run = json.loads(run_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise UsageError(f"{where} is not a run.json written by anyi2v-lab ({e})") from None
    _check_run_json(run, where)
    try:
        cfg = AnyI2VConfig.from_dict({**run["config"], **parse_overrides(args.set)})
    except ConfigError as e:
        raise ConfigError(f"{where}" + (" with --set" if args.set else "") + f": {e}") from None
    if run["model"].get("allow_pickle") and not args.allow_pickle:
        print(f"note: {run_path} says allow_pickle: true; ignored: only --allow-pickle on the command line allows "
              f"unpickling (it runs code stored in the file), so pass it if you trust the model files it names",
              file=sys.stderr)
    folder = run_path.parent
    return SavedRun(config=cfg, model={**run["model"], "allow_pickle": args.allow_pickle}, prompt=run["prompt"],
                    negative_prompt=run.get("negative_prompt") or "", seed=run["seed"],
                    condition=_in_run_folder(folder, run["condition"], "condition", where),
                    trajectory=_in_run_folder(folder, run["trajectory"], "trajectory", where)
                    if run.get("trajectory") else None,
                    threads=run.get("threads"), versions=run.get("versions"))


def _reproducibility_note(saved: SavedRun) -> None:
    """Say so where this process cannot redo the saved run bit for bit: another thread count or versions."""
    from .outputs import versions
    from .startup import thread_settings
    now, was = thread_settings()["torch"], (saved.threads or {}).get("torch")
    changed = [f"{was} CPU threads, here {now}"] if was is not None and was != now else []
    old = saved.versions if isinstance(saved.versions, dict) else {}
    current = versions()
    changed += [f"{k} {v}, here {current[k]}" for k, v in old.items() if current.get(k, v) != v]
    if changed:
        print(f"note: the saved run used {'; '.join(changed)}: a rerun is bit-identical only at the same thread "
              f"count (OMP_NUM_THREADS), on the same machine and library versions", file=sys.stderr)


def cmd_generate(args) -> int:
    from .outputs import check_output_folder, claim_output_folder

    check_output_folder(args.out, args.overwrite)  # at once; claimed below, before the model loads
    example = saved = None
    if args.from_run and args.example:
        raise UsageError("--from-run and --example both say what to run; give one of them")
    if args.from_run:
        saved = _from_run(args)
        cfg, spec, prompt, negative, seed = saved.config, saved.model, saved.prompt, saved.negative_prompt, saved.seed
        args.condition, args.trajectory, args.mask = [saved.condition], saved.trajectory, []
    else:
        if args.example:
            example = _example(args)
        elif args.reference_checkout:
            raise UsageError("--reference-checkout is where --example finds its condition image; give --example")
        prompt = args.prompt if args.prompt is not None else example.prompt if example else None
        if not prompt:
            raise UsageError("--prompt is required (or --example, or --from-run)")
        negative = args.negative_prompt if args.negative_prompt is not None else example.negative_prompt if example else ""
        seed = args.seed if args.seed is not None else example.seed if example else 0
        spec = model_spec(args)
    from .method.config import check_seed
    check_seed(seed, f"--from-run {args.from_run!r}: seed" if args.from_run else "--seed")
    check_model_paths(spec)
    _check_conditions(args.condition, args.mask)
    timing = args.trajectory_timing
    if args.trajectory or example is None:
        if timing and not args.trajectory:
            raise UsageError("--trajectory-timing says how to read --trajectory; give --trajectory (or --example)")
        trajectory = _trajectory(args.trajectory, args.trajectory_format, args.condition, timing)
    else:
        trajectory = example.trajectory if timing is None else example.trajectory.with_timing(timing)
    if not args.from_run:
        cfg = _config(args) if example is None else _example_config(example, args.set)
    trajectory = _check_trajectory(trajectory, cfg, args.condition, _reference_source(args, example))
    from .resources import check_spec_fits  # Runtime()'s estimate is the eager calls' (runtime=None)
    check_spec_fits(spec, cfg, trajectory=trajectory is not None, memory_check=not args.no_memory_check)

    with claim_output_folder(args.out, args.overwrite) as out:  # a second process on --out is refused from here
        from .accel import Runtime
        from .conditions import condition_from_files
        from .method import generate
        from .method.generation import model_size
        from .outputs import write_run
        if saved is not None:
            _reproducibility_note(saved)
        pipe = load_model(spec)
        h, w = model_size(pipe, cfg)
        condition = condition_from_files(args.condition, args.mask, size=(w, h), policy=cfg.resize_policy)
        result = generate(pipe, condition, prompt, trajectory, cfg, negative_prompt=negative, seed=seed,
                          keep_masks=trajectory is not None, runtime=Runtime(),
                          memory_check=not args.no_memory_check)
        extra = {} if example is None else {"example.yaml": lambda p: p.write_bytes(example.file.read_bytes())}
        write_run(result, out, model=spec, extra_files=extra)
    print(f"wrote {out}/video.mp4, video.gif, overlay.mp4, frames/, run.json" + (", example.yaml" if extra else ""))
    return 0


def _example_config(example, overrides):
    """The example's config with ``--set`` on top."""
    from .method.config import AnyI2VConfig, ConfigError, parse_overrides
    try:
        return AnyI2VConfig.from_dict({**example.config, **parse_overrides(overrides)})
    except ConfigError as e:
        raise ConfigError(f"--set: {e}") from None


def cmd_invert(args) -> int:
    out = _check_output_file(args.out, args.overwrite)
    spec = model_spec(args)
    check_model_paths(spec)
    _check_conditions(args.condition, args.mask)
    cfg = _config(args)

    from .io import exclusive_claim, parents_made
    named = f"--out {args.out!r}"
    with parents_made(out, named), exclusive_claim(out, named=named):  # a second process is refused from here
        _check_output_file(str(out), args.overwrite)  # again: no other process of ours can change it now
        from .conditions import condition_from_files
        from .method.generation import model_size
        from .method.inversion import invert_cached
        pipe = load_model(spec)
        h, w = model_size(pipe, cfg)
        cond = condition_from_files(args.condition, args.mask, size=(w, h), policy=cfg.resize_policy)
        embeds = pipe.encode_prompt(args.prompt, pipe.unet.device, 1, False)[0]
        bank = invert_cached(pipe, cond.pixels, args.prompt, embeds, cfg)
        bank.save(out, overwrite=args.overwrite)  # atomic; replaces nothing that appeared meanwhile
    print(f"wrote {out} ({bank.nbytes / 2**20:.2f} MiB, {len(bank.residuals)} residuals, {len(bank.queries)} queries)")
    return 0


def cmd_points(args) -> int:
    if args.model not in (None, "sd15"):
        check_model_paths(model_spec(args))
    from .hooks import hook_points, list_hook_points
    if args.model in (None, "sd15"):
        from .models.tiny import sd15_motion_unet
        unet = sd15_motion_unet()
    else:
        unet = load_model(model_spec(args)).unet
    chosen = set(list_hook_points(unet, pattern=args.pattern))
    if not chosen:
        raise UsageError(_no_point_message(args.pattern, [p.name for p in hook_points(unet)]))
    for p in hook_points(unet):
        if p.name in chosen:
            print(f"{p.name:<60} {p.short:<15} {p.kind:<16} {p.layout:<6} C={p.channels:<5} 1/{p.downscale}")
    return 0


def _no_point_message(pattern: str, names: list[str]) -> str:
    """--pattern matched nothing: the pattern with each unknown part replaced by the closest known one (if
    that matches), else the closest names; and the prefixes the names start with."""
    import difflib
    import fnmatch
    parts = {part for n in names for part in n.split(".")}
    fixed = ".".join(part if any(c in part for c in "*?[") or part in parts
                     else next(iter(difflib.get_close_matches(part, parts, n=1)), part) for part in pattern.split("."))
    hits = [n for n in names if fnmatch.fnmatchcase(n, fixed)] if fixed != pattern else []
    close = [fixed] if hits else difflib.get_close_matches(pattern, names, n=3, cutoff=0.5)
    prefixes = sorted({".".join(n.split(".")[:2]) if n.split(".")[1:2] and n.split(".")[1].isdigit()
                       else n.split(".")[0] for n in names})  # up_blocks.1, mid_block, ...
    return (f"--pattern {pattern!r} matches no hook point"
            + (f"; did you mean {fixed!r} ({len(hits)} points)?" if hits else
               f"; closest: {', '.join(close)}" if close else "")
            + f"; names start with {', '.join(prefixes)} (a glob: * matches any part, e.g. 'up_blocks.1.*.query'; "
            "`anyi2v-lab points` lists them all)")


def cmd_demo(args) -> int:
    from .outputs import check_output_folder
    out = check_output_folder(args.out, args.overwrite)  # before the video is computed, not after
    from .demo import run_demo
    run_demo(out, overwrite=args.overwrite, tiny=args.tiny, fast=args.fast)
    return 0


def cmd_config(args) -> int:
    """The method's settings: key, type, default (or the value --config/--set give) and meaning."""
    from .method.config import AnyI2VConfig, config_keys
    chosen = _config(args).to_dict() if (args.config or args.set) else None
    if args.json:
        print(json.dumps(chosen or AnyI2VConfig().to_dict(), indent=2))
        return 0

    def show(v) -> str:
        return "none" if v is None else (",".join(v) if isinstance(v, list) else str(v).lower() if isinstance(v, bool)
                                         else str(v))
    rows = []
    for key, kind, default, meaning in config_keys():
        value = show(default)
        if chosen is not None and chosen[key] != default:
            value = f"{show(chosen[key])} (default {value})"
        if len(value) > 24:  # the layer lists: listed below the table
            value = value[:21] + "..."
        rows.append((key, kind, value, meaning))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    print(f"{'KEY':<{widths[0]}}  {'TYPE':<{widths[1]}}  {'VALUE' if chosen else 'DEFAULT':<{widths[2]}}  MEANING")
    for r in rows:
        print(f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}")
    layers = {k: v for k, v in (chosen or AnyI2VConfig().to_dict()).items() if isinstance(v, list)}
    print("\nlayer lists:\n" + "\n".join(f"  {k}: {', '.join(v) or '(empty)'}" for k, v in layers.items()))
    print("\nset a key with --set KEY=VALUE (e.g. --set lr=0.02 --set pca_dim=none --set opt_layers=a,b) or in a "
          "YAML/JSON --config file; `anyi2v-lab config --set ... --json` prints a config file")
    return 0


RUNTIMES = ("default", "fast", "baseline", "low-memory")


def _runtime(name: str):
    from .accel import Runtime
    return {"default": Runtime(), "fast": Runtime.fast(), "baseline": Runtime.baseline(),
            "low-memory": Runtime.low_mem()}[name]


def cmd_batch(args) -> int:
    jobs, out = Path(args.jobs), Path(args.out)
    if not jobs.is_file():
        raise UsageError(f"jobs file {args.jobs!r} " + ("is a folder" if jobs.is_dir() else "does not exist"))
    if out.exists() and not out.is_dir():  # an existing folder is resumed
        raise UsageError(f"--out {args.out!r} is a file; give a folder (a rerun resumes it)")
    spec = model_spec(args)
    check_model_paths(spec)
    cfg = _config(args)
    from .batch import main_batch
    return main_batch(args, load_model, cfg, _runtime(args.runtime), spec)


def cmd_evaluate(args) -> int:
    spec = model_spec(args)
    check_model_paths(spec)
    cfg = _config(args)
    from .evaluation import main_evaluate
    return main_evaluate(args, load_model, cfg, _runtime(args.runtime), spec)


# ------------------------------------------------------------------ parser and entry point
def _trajectory_formats() -> list[str]:
    from .interop import FORMATS
    return sorted(FORMATS)


def _example_names() -> list[str]:
    from .examples import example_names
    return example_names()


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(prog="anyi2v-lab", description="Training-free trajectory-controlled "
                                     "image-to-video with AnimateDiff (AnyI2V).", epilog=EPILOG, formatter_class=fmt)
    sub = parser.add_subparsers(dest="command", required=True)
    debug = argparse.ArgumentParser(add_help=False)
    debug.add_argument("--debug", action="store_true", help="show the traceback of a failure")

    def command(name: str, help: str):
        return sub.add_parser(name, help=help, description=help, epilog=EPILOG, formatter_class=fmt,
                              parents=[debug])

    p = command("generate", "generate a video from condition image(s), a prompt and trajectories")
    p.add_argument("--condition", action="append", default=[], help="condition image (repeat for mixed conditions)")
    p.add_argument("--mask", action="append", default=[], help="mask of the matching --condition (mixed conditions)")
    p.add_argument("--trajectory", help="trajectory file: ours, the reference's or a peer method's (see "
                   "--trajectory-format); none: injection only")
    p.add_argument("--trajectory-format", choices=_trajectory_formats(), default=None,
                   help="format of --trajectory (default: detected from the file)")
    from .trajectory import TIMINGS
    p.add_argument("--trajectory-timing", choices=TIMINGS, default=None,
                   help="which path point is which frame: resample spreads the whole path over the frames; "
                   "first-frames makes point i frame i (the reference's rule: a longer path keeps its first "
                   "points). Default: the file's own, first-frames for the reference's format, else resample")
    p.add_argument("--example", choices=_example_names(), default=None,
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
    _config_args(p)
    _model_args(p)
    p.set_defaults(func=cmd_generate)

    p = command("invert", "save the inverted features of a condition image (safetensors)")
    p.add_argument("--condition", action="append", default=[])
    p.add_argument("--mask", action="append", default=[])
    p.add_argument("--prompt", required=True)
    p.add_argument("--out", required=True, help="output file (written atomically; a symbolic link is followed)")
    p.add_argument("--overwrite", action="store_true", help="replace features written earlier by invert (never "
                   "another file)")
    _config_args(p)
    _model_args(p)
    p.set_defaults(func=cmd_invert)

    p = command("demo", "the main job: a toy scene, a trajectory, the full method on CPU")
    p.add_argument("--out", default="outputs/demo", help="output folder (default outputs/demo; written atomically)")
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    p.add_argument("--tiny", action="store_true", help="use the tiny random model (no toy weights needed)")
    p.add_argument("--fast", action="store_true", help="fewer steps, for a quick look")
    p.set_defaults(func=cmd_demo)

    p = command("config", "list the method's settings: key, type, default, meaning (for --set and --config)")
    _config_args(p)
    p.add_argument("--json", action="store_true", help="print the config as JSON (usable as a --config file)")
    p.set_defaults(func=cmd_config)

    p = command("batch", "run the generation jobs of a JSONL file (resumable; one process a GPU under torchrun "
                "or accelerate launch)")
    p.add_argument("jobs", help="JSONL, one job a line: condition, trajectory, prompt, seed (see anyi2v_lab.batch)")
    p.add_argument("--out", required=True, help="one folder a job, plus failed/ and summary.json")
    p.add_argument("--runtime", choices=RUNTIMES, default="default",
                   help="fast: compiled blocks (compiles once per process); low-memory: for 12 GB GPUs")
    _config_args(p)
    _model_args(p)
    p.set_defaults(func=cmd_batch)

    p = command("evaluate", "ObjMC (DragAnything's motion-control metric) of the method over a manifest of "
                "cases: generate, track, report (resumable; an offline tracker)")
    p.add_argument("manifest", help="JSONL, one case a line: image, mask, trajectory, prompt, seed; or a "
                   "VIPSeg-style folder (see anyi2v_lab.evaluation.manifest)")
    p.add_argument("--out", required=True, help="cases/<id>.json a case, failed/, summary.json (a rerun resumes)")
    p.add_argument("--tracker", choices=("lucas-kanade", "cotracker"), default="lucas-kanade",
                   help="lucas-kanade: OpenCV, no weights (default); cotracker: needs --cotracker-checkpoint")
    p.add_argument("--cotracker-checkpoint", help="path of CoTracker weights on this machine (never downloaded)")
    p.add_argument("--runtime", choices=RUNTIMES, default="default")
    _config_args(p)
    _model_args(p)
    p.set_defaults(func=cmd_evaluate)

    p = command("points", "list the hook points of a model (default: SD1.5 shape, no weights)")
    p.add_argument("--pattern", help="glob, e.g. 'up_blocks.1.*.query'")
    _model_args(p)
    p.set_defaults(func=cmd_points)
    return parser


def _is_bad_input(e: BaseException) -> bool:
    """Our validation errors (ValueError subclasses of this package: ConfigError, ConditionError,
    TrajectoryError, ModelLoadError, JobError, ...) and file errors about the user's paths."""
    if isinstance(e, (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError, PermissionError)):
        return True
    return isinstance(e, ValueError) and any(c.__module__.startswith("anyi2v_lab.") for c in type(e).__mro__)


def main(argv: list[str] | None = None) -> int:
    from .startup import Terminated, prepare_process, sigterm_as_interrupt, silence_library_warnings
    prepare_process()  # before torch is imported (the commands import it)
    silence_library_warnings()
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    args = build_parser().parse_args(argv)  # usage errors: argparse prints them and exits 2
    with sigterm_as_interrupt():  # SIGTERM cleans up as Ctrl-C does
        try:
            return args.func(args)
        except KeyboardInterrupt as e:
            if args.debug:
                raise
            terminated = isinstance(e, Terminated)
            print("\nterminated" if terminated else "\ninterrupted", file=sys.stderr)
            return EXIT_TERMINATED if terminated else EXIT_INTERRUPTED
        except Exception as e:  # noqa: BLE001 - the one place that turns exceptions into exit codes
            if args.debug:
                raise
            message = " ".join(str(e).split()) or type(e).__name__
            if _is_bad_input(e):
                print(f"error: {message}", file=sys.stderr)
                return EXIT_BAD_INPUT
            print(f"error: {type(e).__name__}: {message}\n(a failure while running; rerun with --debug for the "
                  f"traceback)", file=sys.stderr)
            return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
