"""Single weight files: safe reading, telling layouts apart, converting the original layouts.

Two original layouts are converted, with diffusers' own pure converters (``diffusers.loaders.single_file_utils``)
and configs given here, so nothing is ever fetched from the hub (``from_single_file`` would fetch configs for
``stable-diffusion-v1-5`` or ``guoyww/animatediff-motion-adapter-*`` unless handed a local ``config``):

* SD1.x checkpoints in the LDM layout: ``model.diffusion_model.*`` (UNet), ``first_stage_model.*`` (VAE),
  ``cond_stage_model.transformer.*`` (CLIP text encoder), any subset of the three.
* AnimateDiff motion modules in the original layout: ``*.motion_modules.N.temporal_transformer.*``.
"""
from __future__ import annotations

import pickle
import re
from pathlib import Path

import torch

from .errors import ModelLoadError

WEIGHT_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")
LDM_PREFIXES = {"unet": "model.diffusion_model.", "vae": "first_stage_model.",
                "text_encoder": "cond_stage_model.transformer."}
LAYOUT_HINTS = {
    "motion_original": "an AnimateDiff motion module: pass it as motion_adapter=",
    "motion_diffusers": "a motion adapter (diffusers keys): pass it as motion_adapter=",
    "lora": "a LoRA: pass it in loras=",
    "ldm": "an SD1.x checkpoint: pass it as checkpoint=",
    "ldm_sd2": "an SD2.x checkpoint (OpenCLIP text encoder); only SD1.x-family checkpoints fit SD1.5 AnimateDiff",
    "ldm_sdxl": "an SDXL checkpoint; only SD1.x-family checkpoints fit SD1.5 AnimateDiff",
    "diffusers": "one diffusers model's own weights: give its whole diffusers folder as base= instead",
    "unknown": "of a layout not recognised here",
}
# AnimateDiff's temporal attention always had 8 heads; head counts are not visible in the weights.
ANIMATEDIFF_HEADS = 8


def read_state_dict(path: Path, *, allow_pickle: bool = False, role: str = "checkpoint") -> dict[str, torch.Tensor]:
    """Every tensor of a weights file, unwrapped from ``{"state_dict": ...}`` as Lightning checkpoints store it.

    ``.safetensors`` is read with safetensors; ``.ckpt/.pt/.pth/.bin`` with ``torch.load(weights_only=True)``,
    and with a full (code-running) unpickle only when ``allow_pickle``.
    """
    suffix = path.suffix.lower()
    if suffix not in WEIGHT_SUFFIXES:
        raise ModelLoadError(f"{role}={str(path)!r}: unsupported file type {suffix or '(none)'!r}; "
                             f"give one of {', '.join(WEIGHT_SUFFIXES)}")
    with open(path, "rb") as f:
        if f.read(24).startswith(b"version https://git-lfs"):
            raise ModelLoadError(f"{role}={str(path)!r} is a git-lfs pointer, not the weights: run `git lfs pull` "
                                 f"in its repository or download the file itself")
    if suffix == ".safetensors":
        from safetensors.torch import load_file
        try:
            sd = load_file(str(path))
        except Exception as e:  # truncated file, bad header
            raise ModelLoadError(f"{role}={str(path)!r} is not a readable safetensors file: {e}") from e
    else:
        sd = _torch_load(path, allow_pickle, role)
    while isinstance(sd, dict) and isinstance(sd.get("state_dict"), dict):
        sd = sd["state_dict"]
    tensors = {k: v for k, v in sd.items() if isinstance(v, torch.Tensor)} if isinstance(sd, dict) else {}
    if not tensors:
        raise ModelLoadError(f"{role}={str(path)!r} holds no named tensors (got {type(sd).__name__}); "
                             f"give a state-dict file")
    return tensors


def _torch_load(path: Path, allow_pickle: bool, role: str):
    try:
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as e:
            if "mmap" not in str(e):  # only the legacy (pre-zip) format can't be memory-mapped
                raise
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if allow_pickle:
            return torch.load(path, map_location="cpu", weights_only=False)
        found = re.search(r"Unsupported global: (\S+ \S+)", str(e))
        raise ModelLoadError(
            f"{role}={str(path)!r} holds Python objects besides tensors"
            f"{' (' + found.group(1) + ')' if found else ''}, so the safe torch.load(weights_only=True) refuses "
            f"it. Unpickling it fully runs code stored in the file: only if you trust its source, pass "
            f"allow_pickle=True (--allow-pickle on the command line; unsafe), or convert it once to "
            f".safetensors.") from e
    except Exception as e:
        raise ModelLoadError(f"{role}={str(path)!r} is not a readable torch file: {e}") from e


def read_single(path: Path, role: str, want: str, allow_pickle: bool) -> dict:
    """``read_state_dict`` plus a check that the layout is ``want`` (ldm, motion or lora), else an error
    that says what the file is and where it goes."""
    what = {"ldm": "an SD1.x checkpoint in the LDM layout", "motion": "an AnimateDiff motion module",
            "lora": "a LoRA"}[want]
    if path.is_dir():
        raise ModelLoadError(f"{role}={str(path)!r} is a folder; {role}= expects a single file ({what})")
    sd = read_state_dict(path, allow_pickle=allow_pickle, role=role)
    layout = describe_layout(sd)
    if layout != want and not (want == "motion" and layout.startswith("motion_")):
        raise ModelLoadError(f"{role}={str(path)!r} is {LAYOUT_HINTS[layout]} (first keys: "
                             f"{', '.join(sorted(sd)[:3])}); {role}= expects {what}")
    return sd


def describe_layout(keys) -> str:
    """What a state dict is, from its key names alone.

    One of ``lora``, ``ldm_sdxl``, ``ldm_sd2``, ``ldm`` (SD1.x), ``motion_original``, ``motion_diffusers``,
    ``diffusers`` (a single diffusers model's own keys) or ``unknown``.
    """
    keys = list(keys)
    if any(re.search(r"lora_(down|up|A|B)\b|\.lora\.(down|up)|_lora\.(down|up)|^lora_(unet|te\d?)_", k) for k in keys):
        return "lora"
    if any(k.startswith("conditioner.embedders.") for k in keys):
        return "ldm_sdxl"
    if any(k.startswith("cond_stage_model.model.") for k in keys):
        return "ldm_sd2"
    if any(k.startswith(p) for k in keys for p in LDM_PREFIXES.values()):
        return "ldm"
    if any(".motion_modules." in k for k in keys):
        return "motion_original" if any(".temporal_transformer." in k for k in keys) else "motion_diffusers"
    if any(k.startswith(("conv_in.", "encoder.conv_in.", "embeddings.", "text_model.")) for k in keys):
        return "diffusers"
    return "unknown"


def ldm_parts(keys) -> tuple[str, ...]:
    """Which of unet / vae / text_encoder an LDM checkpoint holds, in that order."""
    keys = list(keys)
    return tuple(p for p, pre in LDM_PREFIXES.items() if any(k.startswith(pre) for k in keys))


def convert_ldm_part(sd: dict, part: str, config: dict, flat_clip: bool = True) -> dict[str, torch.Tensor]:
    """One component's diffusers state dict out of an LDM checkpoint. ``config`` is the component's diffusers
    config (UNet and VAE converters need block counts); ``flat_clip`` drops CLIP's ``text_model.`` level,
    which transformers >= 5.6 no longer has."""
    from diffusers.loaders import single_file_utils as sfu

    prefix = LDM_PREFIXES[part]
    own = {k: v for k, v in sd.items() if k.startswith(prefix)}
    if part == "unet":
        return sfu.convert_ldm_unet_checkpoint(own, dict(config))
    if part == "vae":
        return sfu.convert_ldm_vae_checkpoint(own, dict(config))
    out = sfu.convert_ldm_clip_checkpoint(own)
    out = {k: v for k, v in out.items() if not k.endswith("position_ids")}  # a buffer, not a weight
    if flat_clip:
        out = {k.removeprefix("text_model."): v for k, v in out.items()}
    return out


def convert_motion_original(sd: dict) -> dict:
    """Original AnimateDiff keys to diffusers ``MotionAdapter`` keys (diffusers' converter; it drops the
    positional encodings)."""
    from diffusers.loaders.single_file_utils import convert_animatediff_checkpoint_to_diffusers

    return convert_animatediff_checkpoint_to_diffusers(sd)


def motion_state_dict(sd: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """``(weights, config)`` of a ``MotionAdapter`` from motion-module tensors in the original AnimateDiff or the
    diffusers layout. The config is read off the tensors (channels, layer counts, mid block, positional length);
    heads and norm groups are not visible in weights and are left to the caller."""
    pe = next((v for k, v in sd.items() if k.endswith(("pos_encoder.pe", "pos_embed.pe"))), None)
    if any(".temporal_transformer." in k for k in sd):
        weights = convert_motion_original(sd)
        # keep the file's encodings (what the reference's load_state_dict uses; diffusers' converter drops them
        # and recomputes): each original attention block holds a copy, diffusers one per transformer block
        weights |= {k.replace(".temporal_transformer", "").replace(".attention_blocks.0.pos_encoder.", ".pos_embed."): v
                    for k, v in sd.items() if k.endswith(".attention_blocks.0.pos_encoder.pe")}
    else:
        weights = dict(sd)
    pat = re.compile(r"(down_blocks\.\d+|mid_block)\.motion_modules\.(\d+)\.transformer_blocks\.(\d+)\.")
    layers: dict[str, set] = {}
    blocks: dict[str, set] = {}
    for k in weights:
        m = pat.match(k)
        if m:
            layers.setdefault(m.group(1), set()).add(int(m.group(2)))
            blocks.setdefault(m.group(1), set()).add(int(m.group(3)))
    down = sorted((b for b in layers if b.startswith("down")), key=lambda b: int(b.split(".")[1]))
    if not down:
        raise ModelLoadError("no down_blocks.N.motion_modules.M.* keys: not an AnimateDiff motion module")
    per_block = [len(layers[b]) for b in down]
    config = dict(
        block_out_channels=tuple(weights[f"{b}.motion_modules.0.norm.weight"].shape[0] for b in down),
        motion_layers_per_block=per_block[0] if len(set(per_block)) == 1 else tuple(per_block),
        motion_transformer_layers_per_block=len(blocks[down[0]]),
        use_motion_mid_block="mid_block" in layers,
        motion_mid_block_layers_per_block=len(layers.get("mid_block", {0})),
        motion_transformer_layers_per_mid_block=len(blocks.get("mid_block", {0})),
        motion_max_seq_length=int(pe.shape[1]) if pe is not None else 32,
    )
    return weights, config


def assign_weights(model: torch.nn.Module, sd: dict, *, dtype: torch.dtype, what: str) -> torch.nn.Module:
    """Fill a model built under ``accelerate.init_empty_weights`` with ``sd`` (cast to ``dtype``), by assignment.

    Every parameter must be given with its shape; buffers that are computed at construction (AnimateDiff's
    positional encodings) may be absent. Mismatches raise a ``ModelLoadError`` naming a few keys and shapes.
    """
    expected = model.state_dict()
    missing = [k for k in expected if k not in sd and expected[k].is_meta]
    extra = [k for k in sd if k not in expected]
    shapes = [f"{k}: file {tuple(sd[k].shape)} vs model {tuple(v.shape)}" for k, v in expected.items()
              if k in sd and tuple(sd[k].shape) != tuple(v.shape)]
    if missing or extra or shapes:
        parts = [f"{len(missing)} weights missing (e.g. {', '.join(missing[:3])})" if missing else "",
                 f"{len(extra)} unexpected (e.g. {', '.join(extra[:3])})" if extra else "",
                 f"{len(shapes)} of other shape (e.g. {'; '.join(shapes[:3])})" if shapes else ""]
        raise ModelLoadError(f"{what}: {', '.join(p for p in parts if p)}")
    cast = {k: v.to(dtype) if v.is_floating_point() else v for k, v in sd.items()}
    model.load_state_dict(cast, strict=False, assign=True)
    for module in model.modules():  # computed buffers left out of sd; ModelMixin.to(dtype) would warn
        for name, buf in module._buffers.items():
            if buf is not None and buf.is_floating_point() and buf.dtype != dtype:
                module._buffers[name] = buf.to(dtype)
    return model.eval()
