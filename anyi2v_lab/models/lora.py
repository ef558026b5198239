"""LoRA files merged straight into the weights (no peft): ``W += factor * up @ down``.

Key layouts read:

* kohya: ``lora_unet_<module>`` / ``lora_te_<module>`` with ``.lora_down.weight``, ``.lora_up.weight``,
  ``.alpha``; module names either diffusers-style (as kohya trains SD1.x) or sgm-style (``input_blocks_4_1``,
  mapped with diffusers' ``_maybe_map_sgm_blocks_to_diffusers``).
* diffusers / peft: ``unet.<module>.lora_A.weight`` / ``lora_B.weight`` (also ``text_encoder.``), and the older
  attention-processor form ``<attn>.processor.to_q_lora.down.weight``.
* AnimateDiff motion LoRAs: the processor form on original motion-module names
  (``...motion_modules.0.temporal_transformer.transformer_blocks.0.attention_blocks.0.processor.to_q_lora``),
  renamed with diffusers' AnimateDiff converter.

Linear layers take ``up (out, r) @ down (r, in)``; conv layers the same on flattened kernels, so 1x1 and 3x3
(LoCon: down ``(r, in, 3, 3)``, up ``(out, r, 1, 1)``) both work.

Conventions (``LoraSpec.convention``):

* ``"scaled"`` (kohya, peft, diffusers): ``factor = scale * alpha / rank`` when the file stores an alpha,
  ``scale`` otherwise.
* ``"animatediff"`` (the AnimateDiff / AnyI2V reference merge, the reference's merge): ``factor = scale``,
  ignoring the file's alpha. The reference's ``lora_alpha: 0.8`` is ``scale=0.8`` here. Both agree when alpha
  is absent or equals the rank; a diffusers ``lora_scale`` is the ``"scaled"`` convention.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from ..method.finite import NonFiniteError, first_non_finite
from .errors import ModelLoadError
from .singlefile import convert_motion_original, read_state_dict

KINDS = ("auto", "spatial", "motion")
CONVENTIONS = ("scaled", "animatediff")
_KOHYA_ROLES = {"lora_down.weight": "down", "lora_up.weight": "up", "alpha": "alpha"}
_DOTTED_ROLES = ((".lora_linear_layer.down.weight", "down"), (".lora_linear_layer.up.weight", "up"),
                 ("_lora.down.weight", "down"), ("_lora.up.weight", "up"),
                 (".lora.down.weight", "down"), (".lora.up.weight", "up"),
                 (".lora_down.weight", "down"), (".lora_up.weight", "up"),
                 (".lora_A.weight", "down"), (".lora_B.weight", "up"), (".alpha", "alpha"))
# LDM names inside blocks, for sgm-named kohya files (after diffusers' block renumbering)
_LDM_RENAMES = (("input_blocks_0_0", "conv_in"), ("out_2", "conv_out"), ("time_embed_0", "time_embedding_linear_1"),
                ("time_embed_2", "time_embedding_linear_2"), ("input_blocks_", "down_blocks_"),
                ("middle_block_", "mid_block_"), ("output_blocks_", "up_blocks_"), ("in_layers_2", "conv1"),
                ("out_layers_3", "conv2"), ("emb_layers_1", "time_emb_proj"), ("skip_connection", "conv_shortcut"),
                ("downsamplers_0_op", "downsamplers_0_conv"))


@dataclass(frozen=True)
class LoraSpec:
    """One LoRA file to merge. ``kind``: ``auto`` (read from the keys), ``spatial`` or ``motion`` (checked);
    ``convention``: ``scaled`` or ``animatediff`` (module docstring)."""

    path: str | os.PathLike
    scale: float = 1.0
    kind: str = "auto"
    convention: str = "scaled"

    def __post_init__(self):
        object.__setattr__(self, "path", Path(self.path).expanduser())
        if not isinstance(self.scale, (int, float)) or not math.isfinite(self.scale):
            raise ModelLoadError(f"LoraSpec.scale={self.scale!r} for {str(self.path)!r}: give a finite number")
        if self.kind not in KINDS:
            raise ModelLoadError(f"LoraSpec.kind={self.kind!r}: use one of {KINDS}")
        if self.convention not in CONVENTIONS:
            raise ModelLoadError(f"LoraSpec.convention={self.convention!r}: use one of {CONVENTIONS}")


@dataclass(frozen=True)
class LoraPair:
    """One layer's LoRA: ``module`` in ``target`` (``unet`` or ``text_encoder``), ``down (r, ...)``,
    ``up (out, r, ...)``, the file's ``alpha`` or None."""

    target: str
    module: str
    down: torch.Tensor
    up: torch.Tensor
    alpha: float | None


@dataclass(frozen=True)
class MergedLora:
    path: str
    kind: str  # spatial | motion | mixed
    scale: float
    convention: str
    layers: int


def as_lora_spec(item) -> LoraSpec:
    """``LoraSpec``, ``(path, scale)`` or a path."""
    if isinstance(item, LoraSpec):
        return item
    if isinstance(item, tuple) and len(item) == 2:
        return LoraSpec(item[0], float(item[1]))
    if isinstance(item, (str, os.PathLike)):
        return LoraSpec(item)
    raise ModelLoadError(f"loras entry {item!r}: give a LoraSpec, a (path, scale) tuple or a path")


def _split_key(key: str) -> tuple[str, str, str | None]:
    """``(target, stem, role)``: kohya stems keep their ``lora_unet_``/``lora_te_`` prefix, dotted stems lose
    ``unet.``/``text_encoder.``/``base_model.model.``."""
    if key.startswith(("lora_unet_", "lora_te_", "lora_te1_")):
        stem, _, rest = key.partition(".")
        return ("unet" if stem.startswith("lora_unet_") else "text_encoder"), stem, _KOHYA_ROLES.get(rest)
    stem, role = key, None
    for suffix, r in _DOTTED_ROLES:
        if key.endswith(suffix):
            stem, role = key[: -len(suffix)], r
            break
    stem = stem.removeprefix("base_model.model.")
    if stem.startswith("text_encoder."):
        return "text_encoder", stem.removeprefix("text_encoder."), role
    return "unet", stem.removeprefix("unet."), role


def _candidates(stem: str) -> list[str]:
    """Module names a dotted stem may mean, most literal first."""
    s = re.sub(r"\.processor\.to_(q|k|v|out)$", r".to_\1", stem)
    s = next(iter(convert_motion_original({s: None}) or {s: None}))  # temporal_transformer, attention_blocks.N
    out = [s, s + ".0"] if s.endswith(".to_out") else [s]
    return out + [c.removeprefix("text_model.") for c in out if c.startswith("text_model.")]


def _ldm_renamed(name: str) -> str:
    for old, new in _LDM_RENAMES:
        name = re.sub(rf"(^|_){old}", rf"\g<1>{new}", name)
    return name


def resolve_lora(sd: dict, models: dict, *, source: str = "lora") -> list[LoraPair]:
    """Map a LoRA state dict onto ``models`` (``{"unet": ..., "text_encoder": ...}``) without changing them.

    Raises a ``ModelLoadError`` listing a few keys that match no Linear/Conv2d layer, or unsupported
    (LyCORIS / DoRA) tensors.
    """
    if any(re.match(r"lora_unet_(input_blocks|middle_block|output_blocks)_", k) for k in sd):
        from diffusers.loaders.lora_conversion_utils import _maybe_map_sgm_blocks_to_diffusers

        try:
            sd = _maybe_map_sgm_blocks_to_diffusers(dict(sd), models["unet"].config)
        except (ValueError, IndexError) as e:
            raise ModelLoadError(
                f"{source}: sgm-named (input_blocks/output_blocks) keys could not be mapped: {e}") from e
    groups: dict[tuple[str, str], dict] = {}
    odd = []
    for key, value in sd.items():
        target, stem, role = _split_key(key)
        if role is None:
            odd.append(key)
        else:
            groups.setdefault((target, stem), {})[role] = value
    if odd:
        raise ModelLoadError(f"{source}: {len(odd)} keys are not LoRA down/up/alpha tensors (e.g. "
                             f"{', '.join(odd[:4])}); LyCORIS (LoHa/LoKr), DoRA and Tucker-conv files are not "
                             f"supported: give a plain LoRA")
    index = {t: dict(m.named_modules()) for t, m in models.items()}
    kohya = {t: {n.replace(".", "_"): n for n in idx if n} for t, idx in index.items()}
    pairs, unknown = [], []
    for (target, stem), roles in groups.items():
        if stem.startswith("lora_"):
            name = re.sub(r"^lora_(unet|te\d?)_", "", stem)
            tries = [kohya[target].get(n) for n in (name, _ldm_renamed(name), name.removeprefix("text_model_"))]
        else:
            tries = _candidates(stem)
        layer = next((n for n in tries if isinstance(index[target].get(n), (torch.nn.Linear, torch.nn.Conv2d))), None)
        if layer is None or "down" not in roles or "up" not in roles:
            unknown.append(f"{target}:{stem}" + ("" if "down" in roles and "up" in roles else " (down/up incomplete)"))
            continue
        alpha = roles.get("alpha")
        pairs.append(LoraPair(target=target, module=layer, down=roles["down"], up=roles["up"],
                              alpha=None if alpha is None else float(alpha)))
    if unknown:
        raise ModelLoadError(f"{source}: {len(unknown)} of {len(groups)} LoRA layers match no Linear/Conv2d layer of "
                             f"the model (e.g. {', '.join(sorted(unknown)[:4])}). Is it for another architecture "
                             f"(SD2/SDXL), or a motion LoRA for another AnimateDiff version?")
    return pairs


def _check_shapes(down: torch.Tensor, up: torch.Tensor, shape, where: str = "") -> None:
    if up.flatten(1).shape[1] != down.shape[0] or up.shape[0] * down.flatten(1).shape[1] != math.prod(shape):
        raise ModelLoadError(f"LoRA up {tuple(up.shape)} @ down {tuple(down.shape)} does not give a weight of "
                             f"shape {tuple(shape)}{where}")


def lora_delta(down: torch.Tensor, up: torch.Tensor, shape) -> torch.Tensor:
    """``up @ down`` in float32, shaped like the weight: (out, in) or (out, in, kh, kw)."""
    _check_shapes(down, up, shape)
    return (up.float().flatten(1) @ down.float().flatten(1)).reshape(shape)


def _kind(pairs) -> str:
    motion = {".motion_modules." in f".{p.module}" for p in pairs}
    return "mixed" if len(motion) > 1 else ("motion" if motion == {True} else "spatial")


@torch.no_grad()
def merge_lora(models, spec, *, allow_pickle: bool = False, sd: dict | None = None) -> MergedLora:
    """Merge one LoRA file into a pipeline, or ``{"unet": ..., "text_encoder": ...}``, in place.

    Each layer gets ``W += factor * up @ down`` computed in float32 and cast back to W's dtype. ``sd``: the file's
    tensors if already read. A file holding a NaN or an infinity raises
    :class:`~anyi2v_lab.method.finite.NonFiniteError` before any weight changes; a merge that overflows the
    weights' dtype raises it after (the model is then changed).
    """
    if hasattr(models, "unet"):  # a pipeline
        models = {"unet": models.unet, "text_encoder": models.text_encoder}
    spec = as_lora_spec(spec)
    sd = read_state_dict(spec.path, allow_pickle=allow_pickle, role="lora") if sd is None else sd
    pairs = resolve_lora(sd, models, source=f"lora {str(spec.path)!r}")
    kind = _kind(pairs)
    if spec.kind != "auto" and kind != spec.kind:
        odd = next(p.module for p in pairs if (".motion_modules." in f".{p.module}") != (spec.kind == "motion"))
        raise ModelLoadError(f"LoraSpec(kind={spec.kind!r}) but {str(spec.path)!r} targets {kind} layers "
                             f"(e.g. {odd}); use kind='auto' or the right file")
    for p in pairs:  # every shape is checked before any weight changes
        _check_shapes(p.down, p.up, models[p.target].get_submodule(p.module).weight.shape,
                      f" ({p.target}.{p.module} in {str(spec.path)!r})")
    _check_factors(pairs, spec)
    for p in pairs:
        weight = models[p.target].get_submodule(p.module).weight
        factor = spec.scale
        if spec.convention == "scaled" and p.alpha is not None:
            factor *= p.alpha / p.down.shape[0]
        delta = lora_delta(p.down, p.up, weight.shape).to(weight.device)
        weight.copy_((weight.float() + factor * delta).to(weight.dtype))
    merged = [(f"{p.target}.{p.module}.weight", models[p.target].get_submodule(p.module).weight) for p in pairs]
    if (bad := first_non_finite(merged)) is not None:
        raise NonFiniteError(f"lora {str(spec.path)!r} at scale {spec.scale}: merging it made {bad} non-finite "
                             f"(the sum overflows {merged[0][1].dtype}); the model's weights are changed: reload it "
                             f"and use a smaller scale")
    return MergedLora(path=str(spec.path), kind=kind, scale=spec.scale, convention=spec.convention, layers=len(pairs))


def _check_factors(pairs: list[LoraPair], spec: LoraSpec) -> None:
    """Raise :class:`NonFiniteError` naming the first layer whose factors or alpha hold a NaN or an infinity."""
    named = [(f"{p.target}.{p.module} ({role})", t) for p in pairs for role, t in (("down", p.down), ("up", p.up))]
    bad = first_non_finite(named)
    bad = bad or next((f"{p.target}.{p.module} (alpha)" for p in pairs
                       if p.alpha is not None and not math.isfinite(p.alpha)), None)
    if bad is not None:
        raise NonFiniteError(f"lora {str(spec.path)!r}: non-finite values (NaN or infinity) in the factors of {bad}; "
                             f"nothing was merged. The file is damaged or was saved from a diverged training run: "
                             f"use another file")
