"""AnyI2V on a Wan video transformer: the configuration (experimental).

PROVISIONAL DEFAULTS. Which blocks to inject into and align, and at which noise level to take the
condition's features, are a measurement not yet made (a per-block, per-time study of frame-to-frame
correspondence, as DiffTrack does for DiTs). The defaults below are placeholders in the middle of Wan 2.1
1.3B's 30 blocks at the UNet version's noise level; docs/method.md, "AnyI2V on a video transformer
(experimental)", lists them with every deviation from the UNet version.
"""
from __future__ import annotations

from dataclasses import dataclass

from ...causal_frames import WAN_TEMPORAL, latent_frame_count
from ..config import ConfigError, MaskKind, Optimizer, PcaMethod


@dataclass(frozen=True)
class WanAnyI2VConfig:
    """Everything :func:`~anyi2v_lab.method.wan.generate_wan` reads. Frames are video frames (``4k + 1``);
    blocks are indices of ``transformer.blocks``; the windows ``inject_steps`` and ``opt_steps`` count the
    first sampling steps (0: off).

    Provisional (not measured yet): ``inject_blocks``, ``align_blocks``, ``inversion_sigma``,
    ``inject_steps`` and ``opt_steps``.
    """

    num_frames: int = 17
    height: int = 480
    width: int = 832
    num_inference_steps: int = 50   # Wan 2.1's default
    guidance_scale: float = 5.0     # Wan 2.1's default
    max_sequence_length: int = 512  # text tokens, as WanPipeline pads them
    # inversion: Euler steps of the inverse flow ODE from sigma 0 to inversion_sigma, where features are taken
    inversion_sigma: float = 0.2    # provisional: the UNet's t_alpha = 201 of 1000
    inversion_steps: int = 10
    # injection into latent frame 0's tokens
    inject_blocks: tuple[int, ...] = (12, 14, 16, 18)  # provisional
    inject_steps: int = 4           # provisional: the UNet's load_feature_step 3 (steps 0..3)
    inject_output: bool = True      # block outputs, patch-AdaIN'd onto the current ones
    inject_query: bool = True
    inject_kv: bool = True          # frame 0's keys and values (the UNet's K/V consistency has no analogue)
    inject_uncond: bool = False
    adain_patch: int | None = 2     # window in tokens (a token is 2x2 latent pixels); None: global AdaIN
    adain_eps: float = 1e-6
    # trajectory optimisation on the aligned blocks' self-attention queries
    align_blocks: tuple[int, ...] = (14, 18)  # provisional
    opt_steps: int = 6              # provisional: the UNet's opt_step 5 (steps 0..5)
    opt_iters: int = 5
    lr: float = 0.01
    optimizer: Optimizer = "fresh_adamw"
    loss_scale: float | None = None
    pca_dim: int | None = 64
    pca_method: PcaMethod = "eigh"
    compress_factor: int = 4        # alignment grid = image / compress_factor
    mask: MaskKind = "semantic"
    background_weight: float = 0.0

    def __post_init__(self):
        _check(self.num_frames >= 1 and (self.num_frames - 1) % WAN_TEMPORAL == 0, "num_frames", self.num_frames,
               f"Wan's causal VAE needs 4k + 1 video frames (e.g. {(self.num_frames - 1) // 4 * 4 + 1 or 1}, 17, 81)")
        for name in ("height", "width"):
            _check(getattr(self, name) % 16 == 0 and getattr(self, name) > 0, name, getattr(self, name),
                   "use a positive multiple of 16 (VAE x8, then 2x2 patches)")
        for name in ("num_inference_steps", "inversion_steps", "opt_iters", "compress_factor", "max_sequence_length"):
            _check(getattr(self, name) >= 1, name, getattr(self, name), "use 1 or more")
        for name in ("inject_steps", "opt_steps"):
            _check(0 <= getattr(self, name) <= self.num_inference_steps, name, getattr(self, name),
                   f"use 0 (off) .. num_inference_steps={self.num_inference_steps}")
        _check(0 < self.inversion_sigma < 1, "inversion_sigma", self.inversion_sigma, "use a noise level in (0, 1)")
        _check(self.guidance_scale >= 1, "guidance_scale", self.guidance_scale, "use >= 1 (1 turns CFG off)")
        _check(self.adain_patch is None or self.adain_patch >= 2, "adain_patch", self.adain_patch,
               "use >= 2 tokens, or None for global AdaIN")
        _check(self.pca_dim is None or self.pca_dim >= 1, "pca_dim", self.pca_dim, "use >= 1, or None")
        for name in ("inject_blocks", "align_blocks"):
            blocks = getattr(self, name)
            _check(isinstance(blocks, tuple) and all(isinstance(b, int) and b >= 0 for b in blocks), name, blocks,
                   "use a tuple of block indices >= 0")
        _check(self.lr > 0, "lr", self.lr, "use a learning rate > 0")

    @property
    def latent_frames(self) -> int:
        return latent_frame_count(self.num_frames)

    @property
    def injects(self) -> bool:
        return self.inject_steps > 0 and bool(self.inject_blocks) and (
            self.inject_output or self.inject_query or self.inject_kv)

    def check_model(self, transformer) -> None:
        """Blocks within the model's, before any work."""
        n = len(transformer.blocks)
        for name in ("inject_blocks", "align_blocks"):
            bad = [b for b in getattr(self, name) if b >= n]
            _check(not bad, name, getattr(self, name), f"this transformer has blocks 0..{n - 1}")


def _check(ok: bool, name: str, value, fix: str) -> None:
    if not ok:
        raise ConfigError(f"{name}={value!r}: {fix}")


# The tiny random Wan (2 blocks, see anyi2v_lab.models.tiny_wan) at a size it runs in seconds on a CPU
TINY_WAN_SETTINGS = dict(num_frames=9, height=64, width=64, num_inference_steps=4, guidance_scale=2.0,
                         max_sequence_length=16, inversion_steps=2, inject_blocks=(0, 1), align_blocks=(1,),
                         inject_steps=1, opt_steps=1, opt_iters=1)


def wan_config(overrides: list[str] = (), base: dict | None = None) -> WanAnyI2VConfig:
    """``WanAnyI2VConfig(**base)`` with ``key=value`` strings on top (``--set``), each value converted to its
    field's type: ``inject_blocks=10,12`` or ``[10, 12]``, ``adain_patch=none``, ``inject_kv=no``."""
    from dataclasses import fields

    from ..config import parse_overrides

    known = {f.name: f for f in fields(WanAnyI2VConfig)}
    values = dict(base or {})
    for key, value in parse_overrides(list(overrides)).items():
        if key not in known:
            raise ConfigError(f"unknown Wan config key {key!r}; the keys: {', '.join(known)}")
        values[key] = _converted(key, value, known[key])
    return WanAnyI2VConfig(**values)


def _converted(key: str, value, field):
    """``value`` (as YAML parsed it) as the type ``field`` is annotated with; ``None`` where the annotation
    allows it."""
    default, kind = field.default, str(field.type).split(" | ")[0]
    if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
        if "None" in str(field.type):
            return None
        raise ConfigError(f"{key}=none: {key} takes no none (default {default!r})")
    try:
        if kind.startswith("tuple"):
            parts = value.split(",") if isinstance(value, str) else value if isinstance(value, list) else [value]
            return tuple(int(p) for p in parts if str(p).strip() != "")
        if kind == "bool":
            if not isinstance(value, bool):
                raise ValueError
            return value
        if kind == "int":
            if isinstance(value, bool) or float(value) != int(value):
                raise ValueError
            return int(value)
        if kind == "float":
            return float(value)
        return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key}={value!r} is not a value of {key}'s type (default {default!r})") from None
