"""Tiny random AnimateDiff-family models, built offline in well under a second.

They keep SD1.5's block order and module names (``down_blocks.0..2`` with cross-attention,
``down_blocks.3`` without; ``up_blocks.0`` without, ``up_blocks.1..3`` with; two layers a down block,
three an up block), so every hook point name and every layer default of the method exists on them
exactly as on the real model, at toy channel counts. ``sd15_motion_unet`` builds the real SD1.5 +
AnimateDiff v3 shape on the ``meta`` device for naming and memory estimates without any weights.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers import AutoencoderKL, MotionAdapter, UNet2DConditionModel, UNetMotionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from .scheduler import ddim_scheduler

SD15_DOWN = ("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",)
SD15_UP = ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3


@dataclass(frozen=True)
class TinySpec:
    """Sizes of a tiny model. ``latent_size`` 16 keeps ``up_blocks.1`` at 4x4, the smallest map that
    patch AdaIN with p=4 accepts, so the method's defaults run unchanged on it."""

    channels: tuple[int, int, int, int] = (16, 32, 32, 32)
    text_dim: int = 32
    heads: int = 2
    norm_groups: int = 8
    latent_size: int = 16
    vae_channels: tuple[int, ...] = (8, 8, 16, 16)

    @property
    def image_size(self) -> int:
        return self.latent_size * 2 ** (len(self.vae_channels) - 1)


def offline_tokenizer(model_max_length: int = 77) -> CLIPTokenizer:
    """A character-level CLIP tokenizer built in memory (no files, no hub)."""
    from tokenizers.pre_tokenizers import ByteLevel

    alphabet = sorted(ByteLevel.alphabet())
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for suffix in ("", "</w>"):  # CLIP marks word ends with </w>
        for ch in alphabet:
            vocab.setdefault(ch + suffix, len(vocab))
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=model_max_length)


def tiny_unet2d(spec: TinySpec = TinySpec()) -> UNet2DConditionModel:
    return UNet2DConditionModel(
        sample_size=spec.latent_size,
        in_channels=4,
        out_channels=4,
        block_out_channels=spec.channels,
        layers_per_block=2,
        down_block_types=SD15_DOWN,
        up_block_types=SD15_UP,
        cross_attention_dim=spec.text_dim,
        attention_head_dim=spec.heads,
        norm_num_groups=spec.norm_groups,
    )


def tiny_motion_adapter(spec: TinySpec = TinySpec(), mid_block: bool = False) -> MotionAdapter:
    """Shaped like AnimateDiff v3 (no mid-block motion module) unless ``mid_block``."""
    return MotionAdapter(
        block_out_channels=spec.channels,
        motion_layers_per_block=2,
        motion_num_attention_heads=spec.heads,
        motion_norm_num_groups=spec.norm_groups,
        motion_max_seq_length=32,
        use_motion_mid_block=mid_block,
    )


def tiny_vae(spec: TinySpec = TinySpec()) -> AutoencoderKL:
    n = len(spec.vae_channels)
    return AutoencoderKL(
        block_out_channels=spec.vae_channels,
        down_block_types=("DownEncoderBlock2D",) * n,
        up_block_types=("UpDecoderBlock2D",) * n,
        latent_channels=4,
        norm_num_groups=spec.norm_groups,
        sample_size=spec.image_size,
    )


def tiny_text_encoder(tokenizer: CLIPTokenizer, spec: TinySpec = TinySpec()) -> CLIPTextModel:
    config = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=spec.text_dim,
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=2,
        max_position_embeddings=77,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return CLIPTextModel(config)


def tiny_components(seed: int = 0, spec: TinySpec = TinySpec()) -> dict:
    """All parts of a tiny AnimateDiff pipeline with seeded random weights.

    Returns a dict with ``unet`` (UNet2DConditionModel), ``motion_adapter``, ``vae``, ``text_encoder``,
    ``tokenizer`` and ``scheduler`` (the reference's DDIM configuration).
    """
    torch.manual_seed(seed)
    tokenizer = offline_tokenizer()
    parts = dict(
        unet=tiny_unet2d(spec),
        motion_adapter=tiny_motion_adapter(spec),
        vae=tiny_vae(spec),
        text_encoder=tiny_text_encoder(tokenizer, spec),
        tokenizer=tokenizer,
        scheduler=ddim_scheduler(),
    )
    for name in ("unet", "motion_adapter", "vae", "text_encoder"):
        parts[name].eval()
    return parts


def tiny_pipeline(seed: int = 0, spec: TinySpec = TinySpec()):
    """A ready ``AnimateDiffPipeline`` on tiny random weights (CPU, fp32)."""
    from diffusers import AnimateDiffPipeline

    parts = tiny_components(seed, spec)
    unet = UNetMotionModel.from_unet2d(parts.pop("unet"), parts["motion_adapter"]).eval()
    pipe = AnimateDiffPipeline(unet=unet, **parts)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def sd15_motion_unet(device: str | torch.device = "meta") -> UNetMotionModel:
    """The SD1.5 UNet with AnimateDiff v3 motion modules, shaped as the real model (1.28 B parameters).

    On ``meta`` (the default) nothing is allocated: use it for hook point names and memory estimates.
    """
    with torch.device(device):
        unet2d = UNet2DConditionModel(
            sample_size=64,
            block_out_channels=(320, 640, 1280, 1280),
            layers_per_block=2,
            down_block_types=SD15_DOWN,
            up_block_types=SD15_UP,
            cross_attention_dim=768,
            attention_head_dim=8,
        )
        adapter = MotionAdapter(
            block_out_channels=(320, 640, 1280, 1280),
            motion_layers_per_block=2,
            motion_num_attention_heads=8,
            motion_norm_num_groups=32,
            motion_max_seq_length=32,
            use_motion_mid_block=False,
        )
        return UNetMotionModel.from_unet2d(unet2d, adapter, load_weights=device != "meta")


# AnimateDiff's original-layout motion files do not store their head count; loaders assume its 8 heads.
ORIGINAL_LAYOUT_SPEC = TinySpec(heads=8)


def write_tiny_weights(folder, seed: int = 0, spec: TinySpec = ORIGINAL_LAYOUT_SPEC) -> dict:
    """The seeded tiny model written to ``folder`` as real weights come: an SD1.5-style diffusers base
    folder (``base/``), a single-file checkpoint in the original LDM layout holding UNet, VAE and text
    encoder (``checkpoint.safetensors``, as RealisticVision's), and the motion module in AnimateDiff's
    original layout (``motion_module.safetensors``, as ``v3_sd15_mm.ckpt``). Returns the three paths as
    ``base``, ``checkpoint`` and ``motion_adapter``, the arguments of ``load_pipeline``, so code written
    for real weights can run offline on this model. Nothing is downloaded."""
    from pathlib import Path

    from safetensors.torch import save_file
    from transformers.utils import logging as transformers_logging

    from .original_formats import adapter_to_original, pipeline_to_ldm, save_base

    folder = Path(folder)
    parts = tiny_components(seed, spec)
    bars = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()  # save_pretrained would print a bar per part
    try:
        base = save_base(parts, folder / "base")
    finally:
        if bars:
            transformers_logging.enable_progress_bar()
    checkpoint, adapter = folder / "checkpoint.safetensors", folder / "motion_module.safetensors"
    save_file(pipeline_to_ldm(parts["unet"], parts["vae"], parts["text_encoder"]), checkpoint)
    save_file(adapter_to_original(parts["motion_adapter"].state_dict()), adapter)
    return {"base": base, "checkpoint": checkpoint, "motion_adapter": adapter}
