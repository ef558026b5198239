"""Configs and builders of the toy AnimateDiff-family model (VAE, UNet, motion adapter, text encoder).

The UNet keeps SD1.5's block order and module names at a third of its depth: down blocks
(CrossAttnDown, CrossAttnDown, Down), up blocks (Up, CrossAttnUp, CrossAttnUp), one layer per block,
so ``up_blocks.1`` and ``up_blocks.2`` hold ``attentions.0/1`` and ``resnets.0/1`` exactly where the
AnyI2V layer defaults look for them. At 64 px with the x4 VAE the latent is 16x16, ``up_blocks.1``
runs at 8x8 and ``up_blocks.2`` at 16x16 (image/8 and image/4).
"""
from __future__ import annotations

import math
import re
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDIMScheduler, MotionAdapter, UNet2DConditionModel, UNetMotionModel
from transformers import CLIPTextConfig, CLIPTextModel

from anyi2v_lab.toy.tokenizer import build_tokenizer

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
COMPONENTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler", "motion_adapter")

IMAGE_SIZE = 64
LATENT_SIZE = 16  # IMAGE_SIZE / 4: the VAE downsamples twice

VAE_CONFIG = dict(
    in_channels=3, out_channels=3, latent_channels=4, sample_size=IMAGE_SIZE,
    down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
    block_out_channels=(32, 64, 64), layers_per_block=1, norm_num_groups=16,
)

UNET_CONFIG = dict(
    sample_size=LATENT_SIZE, in_channels=4, out_channels=4,
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    block_out_channels=(64, 128, 128), layers_per_block=1, norm_num_groups=16,
    cross_attention_dim=128,
    attention_head_dim=8,  # diffusers' legacy name: this is the number of heads, as in SD1.5's config
)

MOTION_CONFIG = dict(
    block_out_channels=UNET_CONFIG["block_out_channels"], motion_layers_per_block=1,
    motion_num_attention_heads=4,
    # must equal the UNet's groups: UNetMotionModel.save_motion_modules rebuilds the adapter from them
    motion_norm_num_groups=UNET_CONFIG["norm_num_groups"],
    motion_max_seq_length=32, use_motion_mid_block=True,
)

TEXT_CONFIG = dict(hidden_size=128, intermediate_size=256, num_attention_heads=4, num_hidden_layers=2,
                   max_position_embeddings=77, projection_dim=128)

# The AnyI2V reference scheduler (docs/method.md §4); training uses the same betas with epsilon prediction.
SCHEDULER_CONFIG = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                        beta_schedule="linear", steps_offset=1, clip_sample=False,
                        timestep_spacing="leading", set_alpha_to_one=True, prediction_type="epsilon")


def build_vae() -> AutoencoderKL:
    return AutoencoderKL(**VAE_CONFIG)


def build_unet() -> UNet2DConditionModel:
    return UNet2DConditionModel(**UNET_CONFIG)


def build_motion_adapter(zero_out: bool = True, depth: int = 1) -> MotionAdapter:
    """AnimateDiff zero-initialises each motion module's output projection, so a fresh adapter leaves
    the image model's output unchanged at the start of motion training. ``depth``: transformer layers
    in each motion module (the committed weights have 1)."""
    if depth < 1:
        raise ValueError(f"depth (transformer layers per motion module) must be >= 1, got {depth}")
    adapter = MotionAdapter(**MOTION_CONFIG, motion_transformer_layers_per_block=depth,
                            motion_transformer_layers_per_mid_block=depth)
    if zero_out:
        for name, mod in adapter.named_modules():
            if name.endswith("proj_out") and isinstance(mod, torch.nn.Linear):
                torch.nn.init.zeros_(mod.weight)
                torch.nn.init.zeros_(mod.bias)
    return adapter


def motion_depth(config) -> int:
    """Transformer layers per motion module, from a MotionAdapter's or a UNetMotionModel's config."""
    d = config.get("motion_transformer_layers_per_block", config.get("temporal_transformer_layers_per_block", 1))
    d = set(d) if isinstance(d, (list, tuple)) else {d}
    if len(d) != 1 or not all(isinstance(x, int) for x in d):
        raise ValueError(f"the toy model has one motion depth for every block, got {sorted(map(str, d))}")
    return d.pop()


def _layer(name: str) -> int | None:
    """The transformer layer a parameter or module name belongs to (``...transformer_blocks.1.attn1`` -> 1)."""
    m = re.search(r"transformer_blocks\.(\d+)(\.|$)", name)
    return None if m is None else int(m.group(1))


def state_motion_depth(state_dict) -> int:
    """Transformer layers per motion module, read from a (motion UNet or adapter) state dict's keys."""
    return 1 + max(n for k in state_dict if "motion_modules." in k and (n := _layer(k)) is not None)


def grow_motion_adapter(adapter: MotionAdapter, depth: int) -> MotionAdapter:
    """A copy of ``adapter`` with ``depth`` transformer layers in every motion module. The old layers keep
    their weights; each new layer starts as an identity (its attention and feed-forward output
    projections are zero, so only the residual passes), hence the grown model computes exactly what the
    old one did and training starts from there."""
    old = motion_depth(adapter.config)
    if depth < old:
        raise ValueError(f"depth {depth} is below the adapter's {old}; a motion adapter can only grow")
    new = build_motion_adapter(zero_out=False, depth=depth).to(adapter.dtype)
    missing, unexpected = new.load_state_dict(adapter.state_dict(), strict=False)
    # only the new layers may lack weights
    stray = [k for k in missing if (_layer(k) or 0) < old]
    if unexpected or stray:
        raise ValueError(f"adapter layouts differ beyond depth: missing {stray[:3]}, unexpected {unexpected[:3]}")
    for name, mod in new.named_modules():
        layer = _layer(name)
        if layer is not None and layer >= old and name.endswith(f"transformer_blocks.{layer}"):  # the block itself
            for lin in (mod.attn1.to_out[0], mod.attn2.to_out[0], mod.ff.net[2]):
                torch.nn.init.zeros_(lin.weight)
                torch.nn.init.zeros_(lin.bias)
    return new


def build_text_encoder(vocab_size: int | None = None) -> CLIPTextModel:
    tok = build_tokenizer()
    cfg = CLIPTextConfig(vocab_size=vocab_size or len(tok), bos_token_id=tok.bos_token_id,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, **TEXT_CONFIG)
    return CLIPTextModel(cfg)


def build_scheduler() -> DDIMScheduler:
    return DDIMScheduler(**SCHEDULER_CONFIG)


def motion_unet(unet: UNet2DConditionModel, adapter: MotionAdapter) -> UNetMotionModel:
    """The video UNet AnimateDiffPipeline builds itself from the two saved parts."""
    return UNetMotionModel.from_unet2d(unet, adapter)


def split_motion_unet(model: UNetMotionModel) -> tuple[UNet2DConditionModel, MotionAdapter]:
    """Inverse of ``motion_unet``: the module names of the spatial layers are identical in both classes,
    and the adapter's keys are exactly the ``motion_modules`` keys of the motion UNet."""
    sd = model.state_dict()
    unet = build_unet().to(next(model.parameters()).dtype)
    unet.load_state_dict({k: v for k, v in sd.items() if "motion_modules" not in k}, strict=True)
    adapter = build_motion_adapter(zero_out=False, depth=motion_depth(model.config)).to(unet.dtype)
    adapter.load_state_dict({k: v for k, v in sd.items() if "motion_modules" in k}, strict=True)
    return unet, adapter


def count_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def fit_scaling_factor(latent_std: float) -> float:
    """SD's convention: scale latents to unit standard deviation; rounded so configs stay readable."""
    if not math.isfinite(latent_std) or latent_std <= 0:
        raise ValueError(f"latent_std must be a positive finite number, got {latent_std}")
    return round(1.0 / latent_std, 4)


def load_components(path: str | Path | None = None, dtype: torch.dtype = torch.float32) -> dict:
    """Load the committed toy model (or a folder with the same layout) offline, through each class's
    standard ``from_pretrained``. Returns {"unet", "vae", "text_encoder", "tokenizer", "scheduler",
    "motion_adapter"}."""
    from transformers import CLIPTokenizer

    root = Path(path) if path is not None else WEIGHTS_DIR
    missing = [c for c in COMPONENTS if not (root / c).is_dir()]
    if missing:
        raise FileNotFoundError(f"toy weights folder {root} lacks {missing}; train with `python -m training.train` "
                                "(from the repository root) or pass the folder that holds them")
    return dict(
        unet=UNet2DConditionModel.from_pretrained(root / "unet", torch_dtype=dtype),
        vae=AutoencoderKL.from_pretrained(root / "vae", torch_dtype=dtype),
        text_encoder=CLIPTextModel.from_pretrained(root / "text_encoder", dtype=dtype),
        tokenizer=CLIPTokenizer.from_pretrained(root / "tokenizer"),
        scheduler=DDIMScheduler.from_pretrained(root / "scheduler"),
        motion_adapter=MotionAdapter.from_pretrained(root / "motion_adapter", torch_dtype=dtype),
    )


def build_pipeline(components: dict | None = None):
    """An AnimateDiffPipeline over the toy model (loads the committed weights when none are given)."""
    from diffusers import AnimateDiffPipeline

    c = components if components is not None else load_components()
    return AnimateDiffPipeline(vae=c["vae"], text_encoder=c["text_encoder"], tokenizer=c["tokenizer"],
                               unet=c["unet"], motion_adapter=c["motion_adapter"],
                               scheduler=c["scheduler"])
