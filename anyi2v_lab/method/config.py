"""The method's configuration: one frozen, validated object whose defaults are the paper's.

Every field is a hyper-parameter of the reference (``hyper_params.yaml``, spec 5.2) or an ablation
switch of the paper (Table 2) or one of our own, clearly marked options. Layer lists are diffusers
module paths, not the reference's counters (spec 1.2 gives the mapping).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

RES_LAYERS = ("up_blocks.1.resnets.0", "up_blocks.1.resnets.1", "up_blocks.2.resnets.0", "up_blocks.2.resnets.1")
ATTN_LAYERS = tuple(f"up_blocks.{b}.attentions.{j}.transformer_blocks.0.attn1" for b in (1, 2) for j in (0, 1))
OPT_LAYERS = ("up_blocks.1.attentions.1.transformer_blocks.0.attn1", "up_blocks.2.attentions.0.transformer_blocks.0.attn1")
# Our choice for the "optimise residual hidden" ablation: the ResNets just before the two optimised
# attentions. The paper does not say which residuals it used.
OPT_RES_LAYERS = ("up_blocks.1.resnets.1", "up_blocks.2.resnets.0")

CHOICES = {
    "inversion_schedule": ("reference", "fast"),
    "mask": ("semantic", "static", "none"),
    "opt_target": ("query", "residual"),
    "optimizer": ("fresh_adamw", "adam"),
    "update_region": ("all", "boxes"),
    "pca_method": ("eigh", "lowrank"),
    "resize_policy": ("stretch", "crop", "pad"),
}


class ConfigError(ValueError):
    """An impossible or unknown configuration value."""


@dataclass(frozen=True)
class AnyI2VConfig:
    """AnyI2V settings. Defaults reproduce the paper and its reference code.

    Sampling: ``num_frames`` 16, ``num_inference_steps`` 25 (timesteps 961 ... 1), ``guidance_scale`` 8.
    ``height``/``width`` ``None`` take the model's native size (512 for SD1.5).
    """

    # generation
    num_frames: int = 16
    num_inference_steps: int = 25
    guidance_scale: float = 8.0
    height: int | None = None
    width: int | None = None
    resize_policy: str = "stretch"
    # inversion (spec 1.3)
    inversion_timestep: int = 201
    inversion_schedule: str = "reference"
    fast_inversion_steps: int = 10
    vae_sample: bool = False  # the reference samples the posterior (unseeded); we use its mean
    # injection (spec 2)
    load_feature_step: int = 3
    res_layers: tuple[str, ...] = RES_LAYERS
    attn_layers: tuple[str, ...] = ATTN_LAYERS
    inject_residual: bool = True
    inject_query: bool = True
    kv_consistency: bool = True
    debias: bool = True  # False: inverted residuals replace frame 0's raw (the paper's "w/o debias", Fig. 10)
    adain_patch: int | None = 4  # None: global AdaIN (the paper's Fig. 10 comparison)
    adain_eps: float = 1e-6
    inject_uncond: bool = False
    # trajectory optimisation (spec 3)
    opt_step: int = 5
    opt_iters: int = 5
    lr: float = 0.01
    opt_layers: tuple[str, ...] = OPT_LAYERS
    opt_res_layers: tuple[str, ...] = OPT_RES_LAYERS
    opt_target: str = "query"
    pca_dim: int | None = 64
    pca_method: str = "eigh"
    compress_factor: int = 4
    mask: str = "semantic"
    optimizer: str = "fresh_adamw"
    # our own options, off by default (not in the reference)
    update_region: str = "all"
    region_margin: float = 0.25  # of the box size, for update_region="boxes"
    background_weight: float = 0.0
    # sampling noise (DDIM's eta): 0 is the paper's deterministic DDIM, 1 re-noises every step as DDPM
    # does; stochastic steps correct a video's temporal glitches (the toy model: 10.2 % -> 5.1 % of frames)
    eta: float = 0.0

    def __post_init__(self):
        for name, allowed in CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name}={getattr(self, name)!r} is not one of {allowed}")
        positive = ("num_frames", "num_inference_steps", "opt_iters", "compress_factor", "fast_inversion_steps")
        for name in positive:
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)!r} must be a positive integer")
        if not 1 <= self.inversion_timestep <= 999:
            raise ConfigError(f"inversion_timestep={self.inversion_timestep} must lie in 1..999 (paper: 201)")
        if self.adain_patch is not None and self.adain_patch < 2:
            raise ConfigError(f"adain_patch={self.adain_patch} must be >= 2 (a 1-pixel window has no std), "
                              f"or None for global AdaIN")
        if self.pca_dim is not None and self.pca_dim < 1:
            raise ConfigError(f"pca_dim={self.pca_dim} must be >= 1, or None to align raw features")
        for name in ("height", "width"):
            v = getattr(self, name)
            if v is not None and (v <= 0 or v % 8):
                raise ConfigError(f"{name}={v} must be a positive multiple of 8 (the VAE downsamples by 8)")
        if self.guidance_scale < 1:
            raise ConfigError(f"guidance_scale={self.guidance_scale} must be >= 1 (1 turns CFG off)")
        if self.lr <= 0 or self.adain_eps <= 0 or self.background_weight < 0 or self.region_margin < 0:
            raise ConfigError("lr and adain_eps must be > 0; background_weight and region_margin >= 0")
        if not 0 <= self.eta <= 1:
            raise ConfigError(f"eta={self.eta} must lie in [0, 1] (0: deterministic DDIM, the paper's; 1: DDPM-like)")
        if self.opt_target == "query" and not self.opt_layers:
            raise ConfigError("opt_layers is empty: name at least one self-attention layer to align")
        for name in ("res_layers", "attn_layers", "opt_layers", "opt_res_layers"):
            object.__setattr__(self, name, tuple(getattr(self, name)))

    # ---------------------------------------------------------------- helpers
    @property
    def injects(self) -> bool:
        return self.inject_residual or self.inject_query or self.kv_consistency

    @property
    def align_layers(self) -> tuple[str, ...]:
        """Module paths whose features the trajectory loss aligns."""
        return self.opt_layers if self.opt_target == "query" else self.opt_res_layers

    def replace(self, **changes) -> "AnyI2VConfig":
        """A copy with ``changes``, checked as a new config is (unknown keys named with close matches;
        lists, as YAML gives them, become tuples)."""
        return self.from_dict({**self.to_dict(), **changes})

    def to_dict(self) -> dict[str, Any]:
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "AnyI2VConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            import difflib
            hints = {u: difflib.get_close_matches(u, known, n=1) for u in unknown}
            raise ConfigError(f"unknown config keys {unknown}" + "".join(
                f"; {u!r}: did you mean {h[0]!r}?" for u, h in hints.items() if h))
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})

    @classmethod
    def load(cls, path: str | Path) -> "AnyI2VConfig":
        """Read YAML or JSON (by suffix). A file may hold the config itself or ``{"config": {...}}``
        (the ``run.json`` written next to every output)."""
        path = Path(path)
        if not path.exists():
            raise ConfigError(f"config file {path} does not exist")
        text = path.read_text()
        if path.suffix in (".yaml", ".yml"):
            import yaml
            data = yaml.safe_load(text) or {}
        else:
            data = json.loads(text)
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping of settings, got {type(data).__name__}")
        return cls.from_dict(data.get("config", data))

    def with_overrides(self, overrides: list[str]) -> "AnyI2VConfig":
        """Apply ``key=value`` strings (values parsed as YAML: ``lr=0.02``, ``pca_dim=null``,
        ``opt_layers=[a, b]``)."""
        return self.replace(**parse_overrides(overrides))


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """``["lr=0.02", "pca_dim=null"]`` -> ``{"lr": 0.02, "pca_dim": None}`` (values parsed as YAML)."""
    import yaml

    changes = {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key=value")
        key, value = item.split("=", 1)
        changes[key.strip()] = yaml.safe_load(value)
    return changes
