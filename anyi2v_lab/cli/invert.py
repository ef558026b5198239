"""``anyi2v-lab invert``: the inverted features of a condition image, saved as safetensors."""
from __future__ import annotations

from pathlib import Path

from .arguments import (
    UsageError,
    add_command,
    add_condition_arguments,
    add_config_arguments,
    check_conditions,
    config_from_arguments,
)
from .model import add_model_arguments, check_model_paths, model_spec


def register(subparsers) -> None:
    p = add_command(subparsers, "invert", "save the inverted features of a condition image (safetensors)")
    add_condition_arguments(p)
    p.add_argument("--prompt", required=True)
    p.add_argument("--out", required=True, help="output file (written atomically; a symbolic link is followed)")
    p.add_argument("--overwrite", action="store_true", help="replace features written earlier by invert (never "
                   "another file)")
    add_config_arguments(p)
    add_model_arguments(p)
    p.set_defaults(func=run)


def run(args) -> int:
    out = _check_output_file(args.out, args.overwrite)
    spec = model_spec(args)
    check_model_paths(spec)
    check_conditions(args.condition, args.mask)
    cfg = config_from_arguments(args)

    from ..io import exclusive_claim, parents_made
    named = f"--out {args.out!r}"
    with parents_made(out, named), exclusive_claim(out, named=named):  # a second process is refused from here
        _check_output_file(str(out), args.overwrite)  # again: no other process of ours can change it now
        from ..conditions import condition_from_files
        from ..method.generation import model_size
        from ..method.inversion import invert_cached
        from .model import load_model
        pipe = load_model(spec)
        h, w = model_size(pipe, cfg)
        cond = condition_from_files(args.condition, args.mask, size=(w, h), policy=cfg.resize_policy)
        embeds = pipe.encode_prompt(args.prompt, pipe.unet.device, 1, False)[0]
        bank = invert_cached(pipe, cond.pixels, args.prompt, embeds, cfg)
        bank.save(out, overwrite=args.overwrite)  # atomic; replaces nothing that appeared meanwhile
    print(f"wrote {out} ({bank.nbytes / 2**20:.2f} MiB, {len(bank.residuals)} residuals, {len(bank.queries)} queries)")
    return 0


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
    from ..io import check_writable_place, followed
    path = followed(out)
    if path.is_dir():
        raise UsageError(f"--out {out!r} is a folder; give a file name, e.g. "
                         f"{str(Path(out) / 'features.safetensors')!r}")
    if path.exists() and not _is_feature_file(path):
        raise UsageError(f"--out {out!r} exists and is not a features file written by anyi2v-lab, so it is never "
                         f"replaced; choose another --out")
    if path.exists() and not overwrite:
        raise UsageError(f"--out {out!r} exists (features written earlier); choose another --out or pass "
                         f"--overwrite to replace it")
    check_writable_place(path, f"--out {out!r}", UsageError)
    return path
