"""Diffusers models written back in the layouts users and the AnyI2V reference hand over: SD1.x LDM
checkpoints, AnimateDiff motion modules, and the SD1.5 folder layout of 2022.

The state-dict writers are the inverse of diffusers' ``convert_ldm_*_checkpoint`` and
``convert_animatediff_checkpoint_to_diffusers``, written from the LDM naming (as diffusers'
``scripts/convert_diffusers_to_original_stable_diffusion.py`` has it) for any SD1.x-shaped UNet
(``layers_per_block`` down layers, one more up) and any VAE depth. The loader tests and the reference
benchmarks use them to hand the same weights over in every layout.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import torch

_RESNET = (("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("norm2", "out_layers.0"), ("conv2", "out_layers.3"),
           ("time_emb_proj", "emb_layers.1"), ("conv_shortcut", "skip_connection"))
_UNET_TOP = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
             "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2"}


def _resnet(rest: str) -> str:
    head, _, tail = rest.partition(".")
    return dict(_RESNET).get(head, head) + "." + tail


def unet_key_to_ldm(key: str, layers: int = 2, up_has_attn=lambda i: i > 0) -> str:
    """One diffusers UNet2DConditionModel key in the LDM layout (without the ``model.diffusion_model.`` prefix)."""
    for old, new in _UNET_TOP.items():
        if key.startswith(old + "."):
            return new + key[len(old):]
    m = re.match(r"(down_blocks|up_blocks)\.(\d+)\.(resnets|attentions|downsamplers|upsamplers)\.(\d+)\.(.*)", key)
    if m:
        kind, i, part, j, rest = m.group(1), int(m.group(2)), m.group(3), int(m.group(4)), m.group(5)
        if kind == "down_blocks":
            if part == "downsamplers":
                return f"input_blocks.{(layers + 1) * (i + 1)}.0.op.{rest.removeprefix('conv.')}"
            idx = (layers + 1) * i + j + 1
            return f"input_blocks.{idx}.0.{_resnet(rest)}" if part == "resnets" else f"input_blocks.{idx}.1.{rest}"
        idx = (layers + 1) * i + j  # up blocks have layers + 1 resnets
        if part == "upsamplers":
            return f"output_blocks.{(layers + 1) * i + layers}.{2 if up_has_attn(i) else 1}.{rest}"
        return f"output_blocks.{idx}.0.{_resnet(rest)}" if part == "resnets" else f"output_blocks.{idx}.1.{rest}"
    m = re.match(r"mid_block\.(resnets|attentions)\.(\d+)\.(.*)", key)
    if m:
        j = int(m.group(2))
        if m.group(1) == "resnets":
            return f"middle_block.{2 * j}.{_resnet(m.group(3))}"
        return f"middle_block.1.{m.group(3)}"
    raise KeyError(key)


def unet_to_ldm(sd: dict, layers: int = 2) -> dict:
    up_attn = {int(k.split(".")[1]) for k in sd if k.startswith("up_blocks.") and ".attentions." in k}
    return {"model.diffusion_model." + unet_key_to_ldm(k, layers, up_attn.__contains__): v for k, v in sd.items()}


def vae_to_ldm(sd: dict) -> dict:
    n_up = 1 + max(int(k.split(".")[2]) for k in sd if k.startswith("decoder.up_blocks."))
    out = {}
    for k, v in sd.items():
        new = re.sub(r"^encoder\.down_blocks\.(\d+)\.resnets\.", r"encoder.down.\1.block.", k)
        new = re.sub(r"^encoder\.down_blocks\.(\d+)\.downsamplers\.0\.", r"encoder.down.\1.downsample.", new)
        new = re.sub(r"^decoder\.up_blocks\.(\d+)\.(resnets|upsamplers\.0)\.",
                     lambda m: f"decoder.up.{n_up - 1 - int(m.group(1))}."
                               f"{'block' if m.group(2) == 'resnets' else 'upsample'}.", new)
        new = re.sub(r"mid_block\.resnets\.(\d+)\.", lambda m: f"mid.block_{int(m.group(1)) + 1}.", new)
        new = new.replace("conv_shortcut", "nin_shortcut").replace("conv_norm_out", "norm_out")
        if ".mid_block.attentions.0." in new:
            new = new.replace("mid_block.attentions.0.", "mid.attn_1.")
            for old, ldm in (("group_norm.", "norm."), ("to_q.", "q."), ("to_k.", "k."), ("to_v.", "v."),
                             ("to_out.0.", "proj_out.")):
                new = new.replace(old, ldm)
            if v.ndim == 2:  # LDM keeps its attention projections as 1x1 convs
                v = v[:, :, None, None]
        out["first_stage_model." + new] = v
    return out


def clip_to_ldm(sd: dict) -> dict:
    """A flat (transformers >= 5.6) CLIPTextModel state dict as SD1.x stores it, position_ids buffer included."""
    out = {"cond_stage_model.transformer.text_model." + k.removeprefix("text_model."): v for k, v in sd.items()}
    n = next(v for k, v in sd.items() if k.endswith("position_embedding.weight")).shape[0]
    out["cond_stage_model.transformer.text_model.embeddings.position_ids"] = torch.arange(n)[None]
    return out


def pipeline_to_ldm(unet2d, vae=None, text_encoder=None) -> dict:
    """An SD1.x single-file checkpoint of whichever parts are given."""
    sd = unet_to_ldm(unet2d.state_dict(), unet2d.config.layers_per_block) if unet2d is not None else {}
    sd.update(vae_to_ldm(vae.state_dict()) if vae is not None else {})
    sd.update(clip_to_ldm(text_encoder.state_dict()) if text_encoder is not None else {})
    return {k: v.contiguous() for k, v in sd.items()}


def motion_key_to_original(key: str) -> str:
    key = re.sub(r"(motion_modules\.\d+)\.", r"\1.temporal_transformer.", key)
    for new, old in ((".norms.0", ".norm1"), (".norms.1", ".norm2"), (".ff_norm", ".norm3"),
                     (".attention_blocks.0", ".attn1"), (".attention_blocks.1", ".attn2")):
        key = key.replace(old + ".", new + ".")
    return key


def adapter_to_original(sd: dict) -> dict:
    """A diffusers MotionAdapter state dict in AnimateDiff's layout: ``temporal_transformer``, ``norms.N``,
    ``attention_blocks.N``, and a ``pos_encoder.pe`` on each of the two attention blocks."""
    out = {}
    for k, v in sd.items():
        if k.endswith(".pos_embed.pe"):
            stem = motion_key_to_original(k[: -len("pos_embed.pe")])
            for a in (0, 1):
                out[f"{stem}attention_blocks.{a}.pos_encoder.pe"] = v.clone()
        else:
            out[motion_key_to_original(k)] = v
    return {k: v.contiguous() for k, v in out.items()}


# --- the 2022-era diffusers folder layout (diffusers 0.11, transformers 4.25), as the AnyI2V reference reads it
_VAE_ATTN_011 = (("to_q.", "query."), ("to_k.", "key."), ("to_v.", "value."), ("to_out.0.", "proj_attn."))
# Only the keys an SD1.5 folder of that time has: newer keys (mid_block_type "UNetMidBlock2DCrossAttn",
# addition_embed_type, ...) are passed to the old constructors, which reject or mis-read them.
UNET_CONFIG_011 = ("act_fn", "attention_head_dim", "block_out_channels", "center_input_sample", "cross_attention_dim",
                   "down_block_types", "downsample_padding", "flip_sin_to_cos", "freq_shift", "in_channels",
                   "layers_per_block", "mid_block_scale_factor", "norm_eps", "norm_num_groups", "out_channels",
                   "sample_size", "up_block_types")
VAE_CONFIG_011 = ("act_fn", "block_out_channels", "down_block_types", "in_channels", "latent_channels",
                  "layers_per_block", "norm_num_groups", "out_channels", "sample_size", "up_block_types")
CLIP_CONFIG_425 = ("attention_dropout", "bos_token_id", "eos_token_id", "hidden_act", "hidden_size",
                   "initializer_factor", "initializer_range", "intermediate_size", "layer_norm_eps",
                   "max_position_embeddings", "num_attention_heads", "num_hidden_layers", "pad_token_id",
                   "projection_dim", "vocab_size")


def vae_to_diffusers011(sd: dict) -> dict:
    """A current AutoencoderKL state dict with its mid-block attention under the old names
    (``query/key/value/proj_attn``), as diffusers 0.11's ``AttentionBlock`` has them."""
    out = {}
    for k, v in sd.items():
        if ".mid_block.attentions." in k:
            for new, old in _VAE_ATTN_011:
                k = k.replace(new, old)
        out[k] = v
    return out


def clip_to_transformers425(sd: dict) -> dict:
    """A flat (transformers >= 5.6) CLIPTextModel state dict with the ``text_model.`` prefix and the
    ``position_ids`` buffer that transformers 4.25 stores."""
    out = {("" if k.startswith("text_model.") else "text_model.") + k: v for k, v in sd.items()}
    n = out["text_model.embeddings.position_embedding.weight"].shape[0]
    out.setdefault("text_model.embeddings.position_ids", torch.arange(n)[None])
    return out


def config_011(config: dict, keys: tuple[str, ...], class_name: str) -> dict:
    """``config`` cut to ``keys``, stamped as an old diffusers/transformers config."""
    out = {k: (list(v) if isinstance(v, tuple) else v) for k, v in config.items() if k in keys}
    out["_class_name"] = class_name
    return out


# --- whole folders
def save_base(parts: dict, folder: Path) -> Path:
    """A diffusers SD1.5-style folder: unet/, vae/, text_encoder/, tokenizer/ (no scheduler: the loader's own)."""
    for name in ("unet", "vae", "text_encoder", "tokenizer"):
        parts[name].save_pretrained(folder / name)
    return folder


def save_reference_base(parts: dict, folder: Path) -> Path:
    """The same weights as :func:`save_base` in the SD1.5 folder layout of 2022 (diffusers 0.11,
    transformers 4.25), which the AnyI2V reference's pinned environment reads: old UNet/VAE/CLIP configs,
    the VAE attention under its old names, ``text_model.``-prefixed CLIP keys, and a slow-tokenizer
    ``vocab.json`` + ``merges.txt`` (the in-memory tokenizer has no merges)."""
    from safetensors.torch import save_file

    def write(sub: str, config: dict, weights: dict, weights_name: str) -> None:
        (folder / sub).mkdir(parents=True, exist_ok=True)
        (folder / sub / "config.json").write_text(json.dumps(config, indent=2))
        save_file({k: v.detach().contiguous() for k, v in weights.items()}, str(folder / sub / weights_name),
                  metadata={"format": "pt"})  # transformers 4.25 refuses a file without it

    write("unet", {**config_011(dict(parts["unet"].config), UNET_CONFIG_011, "UNet2DConditionModel"),
                   "_diffusers_version": "0.6.0"},
          parts["unet"].state_dict(), "diffusion_pytorch_model.safetensors")
    write("vae", {**config_011(dict(parts["vae"].config), VAE_CONFIG_011, "AutoencoderKL"),
                  "_diffusers_version": "0.6.0"},
          vae_to_diffusers011(parts["vae"].state_dict()), "diffusion_pytorch_model.safetensors")
    te = parts["text_encoder"].config.to_dict()
    write("text_encoder", {**{k: te[k] for k in CLIP_CONFIG_425 if k in te}, "architectures": ["CLIPTextModel"],
                           "model_type": "clip_text_model", "torch_dtype": "float32", "transformers_version": "4.25.1"},
          clip_to_transformers425(parts["text_encoder"].state_dict()), "model.safetensors")
    tok = parts["tokenizer"]
    (folder / "tokenizer").mkdir(parents=True, exist_ok=True)
    vocab = dict(sorted(tok.get_vocab().items(), key=lambda kv: kv[1]))
    (folder / "tokenizer" / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    (folder / "tokenizer" / "merges.txt").write_text("#version: 0.2\n")
    special = {k: str(getattr(tok, k)) for k in ("bos_token", "eos_token", "unk_token", "pad_token")}
    (folder / "tokenizer" / "tokenizer_config.json").write_text(json.dumps(
        {**special, "model_max_length": tok.model_max_length, "do_lower_case": True, "errors": "replace",
         "tokenizer_class": "CLIPTokenizer"}, indent=2))
    return folder
