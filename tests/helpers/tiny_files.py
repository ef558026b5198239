"""Tiny models written to disk the ways users hand them over, and the one pipeline call the tests compare."""
from __future__ import annotations

from pathlib import Path

import torch

from anyi2v_lab.models.tiny import TinySpec, tiny_components

PROMPT = "a red ball rolls to the left"


def save_base(parts: dict, folder: Path) -> Path:
    """A diffusers SD1.5-style folder: unet/, vae/, text_encoder/, tokenizer/ (no scheduler: the loader's own)."""
    for name in ("unet", "vae", "text_encoder", "tokenizer"):
        parts[name].save_pretrained(folder / name)
    return folder


def save_tiny(root: Path, seed: int = 0, spec: TinySpec = TinySpec()) -> tuple[Path, Path, dict]:
    """``(base folder, adapter folder, components)`` of the seeded tiny model under ``root``."""
    parts = tiny_components(seed, spec)
    base = save_base(parts, root / f"base{seed}")
    parts["motion_adapter"].save_pretrained(root / f"adapter{seed}")
    return base, root / f"adapter{seed}", parts


def frames(pipe):
    """2 DDIM steps, 4 frames at 128 px, seed 0: (4, 128, 128, 3) floats in [0, 1]."""
    g = torch.Generator().manual_seed(0)
    out = pipe(PROMPT, num_frames=4, num_inference_steps=2, height=128, width=128, generator=g, output_type="np")
    return out.frames[0]


def save_reference_base(parts: dict, folder: Path) -> Path:
    """The same weights as :func:`save_base` in the SD1.5 folder layout of 2022 (diffusers 0.11,
    transformers 4.25), which the AnyI2V reference's pinned environment reads: old UNet/VAE/CLIP configs,
    the VAE attention under its old names, ``text_model.``-prefixed CLIP keys, and a slow-tokenizer
    ``vocab.json`` + ``merges.txt`` (the in-memory tokenizer has no merges)."""
    import json

    from safetensors.torch import save_file

    from .original_formats import (CLIP_CONFIG_425, UNET_CONFIG_011, VAE_CONFIG_011, clip_to_transformers425,
                                   config_011, vae_to_diffusers011)

    def write(sub: str, config: dict, weights: dict, weights_name: str) -> None:
        (folder / sub).mkdir(parents=True, exist_ok=True)
        (folder / sub / "config.json").write_text(json.dumps(config, indent=2))
        save_file({k: v.detach().contiguous() for k, v in weights.items()}, str(folder / sub / weights_name),
                  metadata={"format": "pt"})  # transformers 4.25 refuses a file without it

    write("unet", {**config_011(dict(parts["unet"].config), UNET_CONFIG_011, "UNet2DConditionModel"),
                   "_diffusers_version": "0.6.0"},
          parts["unet"].state_dict(), "diffusion_pytorch_model.safetensors")
    write("vae", {**config_011(dict(parts["vae"].config), VAE_CONFIG_011, "AutoencoderKL"), "_diffusers_version": "0.6.0"},
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
