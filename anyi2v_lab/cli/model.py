"""The model a command names: its arguments, its spec (the dict run.json saves), the checks made before
any weight is read, and loading it. A command imports ``load_model`` where it loads (as it imports the
libraries), so that a test replaces loading in this one module."""
from __future__ import annotations

import argparse
import re
from pathlib import Path

from .arguments import UsageError

_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
_WEIGHT_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")
_DTYPES = ("float32", "fp32", "float16", "fp16", "half", "bfloat16", "bf16")


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("model (default: the embedded toy model, offline)")
    g.add_argument("--model", help="SD1.5-family diffusers folder or hub id; 'tiny' for a tiny random model")
    g.add_argument("--checkpoint", help="single-file personalised checkpoint (.safetensors; .ckpt weights-only)")
    g.add_argument("--motion-adapter", help="AnimateDiff motion adapter: folder, hub id or single file")
    g.add_argument("--lora", action="append", default=[], metavar="PATH[:SCALE]", help="LoRA file to merge")
    g.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    g.add_argument("--dtype", help="float32, float16, bfloat16 (default: fp16 on CUDA, fp32 on CPU)")
    g.add_argument("--allow-pickle", action="store_true", help="allow full unpickling of .ckpt files (unsafe: "
                   "it runs code stored in them); only this flag allows it, never a file such as run.json")


def model_spec(args, lora_scale: float | None = None) -> dict:
    """The model the arguments name, as run.json saves it. ``lora_scale``: the strength of a ``--lora`` given
    without one (None: 1.0)."""
    loras = args.lora if lora_scale is None else [item if has_scale(item) else f"{item}:{lora_scale}"
                                                  for item in args.lora]
    return {"model": args.model, "checkpoint": args.checkpoint, "motion_adapter": args.motion_adapter,
            "loras": [_lora(item) for item in loras], "device": args.device, "dtype": args.dtype,
            "allow_pickle": args.allow_pickle}


def has_scale(item: str) -> bool:
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


def _missing(flag: str, value: str) -> UsageError:
    from ..io import missing_path_message
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
    for path, _scale in spec.get("loras") or []:
        if not Path(path).expanduser().is_file():
            raise _missing("--lora", path) if not Path(path).expanduser().exists() else UsageError(
                f"--lora {path!r} is a folder; give the LoRA's .safetensors file")
    name = spec.get("model")
    if name is not None and name != "tiny" and Path(name).expanduser().is_file():
        raise UsageError(f"--model {name!r} is a file: give a diffusers folder (unet/, vae/, text_encoder/, "
                         f"tokenizer/); a single-file SD1.x model goes in --checkpoint, next to such a --model")
    if name == "tiny":
        extra = [f for f, k in (("--checkpoint", "checkpoint"), ("--motion-adapter", "motion_adapter"),
                                ("--lora", "loras")) if spec.get(k)]
        if extra:
            raise UsageError(f"--model tiny builds a tiny random model from scratch and takes no {', '.join(extra)}; "
                             f"give --model a diffusers folder to use them")
    _check_dtype_and_device(spec.get("dtype"), spec.get("device"))


def _check_dtype_and_device(dtype, device) -> None:
    if dtype is not None and str(dtype).lower().removeprefix("torch.") not in _DTYPES:
        raise UsageError(f"--dtype {dtype!r} is unknown; use float32, float16 or bfloat16")
    if device is None:
        return
    import torch
    try:
        kind = torch.device(device).type
    except (RuntimeError, TypeError):
        raise UsageError(f"--device {device!r} is not a torch device; use cpu, cuda or cuda:N") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {device!r} but CUDA is not available here; use --device cpu")


def load_model(spec: dict):
    """Build the pipeline a model spec (as saved in run.json) names."""
    if spec.get("model") == "tiny":
        from ..models.tiny import tiny_pipeline
        return tiny_pipeline(seed=spec.get("tiny_seed", 0))
    from ..models.loading import load_pipeline
    return load_pipeline(spec.get("model"), checkpoint=spec.get("checkpoint"),
                         motion_adapter=spec.get("motion_adapter"), loras=[tuple(x) for x in spec.get("loras", [])],
                         dtype=spec.get("dtype"), device=spec.get("device"),
                         allow_pickle=spec.get("allow_pickle", False))
