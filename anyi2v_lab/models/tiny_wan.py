"""Tiny random Wan 2.1 models, built offline in well under a second, and the 1.3B shape on ``meta``.

The tiny transformer keeps Wan's structure and module names (``blocks.i.attn1``, ``attn2``, ``ffn``;
3D RoPE, q/k RMS norms, patch 1x2x2) at toy widths, so every hook point name exists on it as on the real
model. The pipeline's parts follow diffusers' own tiny ``WanPipeline`` (a 16-channel causal VAE with 4x
temporal and 8x spatial compression, a T5 encoder), with an in-memory tokenizer instead of a download.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanTransformer3DModel
from transformers import PreTrainedTokenizerFast, T5Config, T5EncoderModel

# Wan2.1-T2V-1.3B's transformer config (Wan-AI/Wan2.1-T2V-1.3B-Diffusers, transformer/config.json)
WAN_1_3B = dict(patch_size=(1, 2, 2), num_attention_heads=12, attention_head_dim=128, in_channels=16,
                out_channels=16, text_dim=4096, freq_dim=256, ffn_dim=8960, num_layers=30, cross_attn_norm=True,
                qk_norm="rms_norm_across_heads", eps=1e-6, rope_max_seq_len=1024)


@dataclass(frozen=True)
class TinyWanSpec:
    """Sizes of a tiny Wan. ``head_dim`` 12 is the smallest that splits into RoPE's t/h/w parts (4 each)."""

    layers: int = 2
    heads: int = 2
    head_dim: int = 12
    text_dim: int = 32
    ffn_dim: int = 32
    text_len: int = 16


def wan_1_3b_transformer(device: str | torch.device = "meta") -> WanTransformer3DModel:
    """Wan 2.1 T2V 1.3B's transformer (30 blocks, width 1536, 12 heads), shaped as the real model. On
    ``meta`` (the default) nothing is allocated: use it for hook point names and memory estimates."""
    with torch.device(device):
        return WanTransformer3DModel(**WAN_1_3B)


def tiny_wan_transformer(spec: TinyWanSpec = TinyWanSpec()) -> WanTransformer3DModel:
    return WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=spec.heads, attention_head_dim=spec.head_dim, in_channels=16,
        out_channels=16, text_dim=spec.text_dim, freq_dim=32, ffn_dim=spec.ffn_dim, num_layers=spec.layers,
        cross_attn_norm=True, qk_norm="rms_norm_across_heads", rope_max_seq_len=32)


def tiny_wan_vae() -> AutoencoderKLWan:
    return AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                            temperal_downsample=[False, True, True])


def offline_t5_tokenizer(max_length: int = 512) -> PreTrainedTokenizerFast:
    """A character-level tokenizer that ends each text with ``</s>`` as T5's does, built in memory."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2}
    for ch in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab.setdefault(ch, len(vocab))
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
                                   model_max_length=max_length)


def tiny_t5(vocab_size: int, spec: TinyWanSpec = TinyWanSpec()) -> T5EncoderModel:
    config = T5Config(vocab_size=vocab_size, d_model=spec.text_dim, d_ff=37, d_kv=8, num_layers=2, num_heads=4,
                      relative_attention_num_buckets=8, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
    return T5EncoderModel(config)


def tiny_wan_components(seed: int = 0, spec: TinyWanSpec = TinyWanSpec()) -> dict:
    """All parts of a tiny ``WanPipeline`` with seeded random weights: ``transformer``, ``vae``,
    ``text_encoder``, ``tokenizer`` and ``scheduler`` (flow matching, Wan 480p's shift 3)."""
    torch.manual_seed(seed)
    tokenizer = offline_t5_tokenizer()
    parts = dict(transformer=tiny_wan_transformer(spec), vae=tiny_wan_vae(),
                 text_encoder=tiny_t5(len(tokenizer), spec), tokenizer=tokenizer,
                 scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0))
    for name in ("transformer", "vae", "text_encoder"):
        parts[name].eval()
    return parts


def tiny_wan_pipeline(seed: int = 0, spec: TinyWanSpec = TinyWanSpec()):
    """A ready ``WanPipeline`` on tiny random weights (CPU, fp32). Pass ``max_sequence_length=spec.text_len``
    when calling it: the real 512 text tokens only slow a tiny model down."""
    from diffusers import WanPipeline

    pipe = WanPipeline(**tiny_wan_components(seed, spec))
    pipe.set_progress_bar_config(disable=True)
    return pipe
