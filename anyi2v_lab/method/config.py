"""The method's configuration: one frozen, validated object whose defaults are the paper's.

Every field is a hyper-parameter of the reference (``hyper_params.yaml``, docs/method.md, switches) or an ablation
switch of the paper (Table 2) or one of our own, clearly marked options. Layer lists are diffusers
module paths, not the reference's counters (docs/method.md maps them).

Values are checked twice. Constructing ``AnyI2VConfig(...)`` in Python takes values of the field's type
(an int where a float is asked for, a list where a tuple is). Parsing (``--set key=value``, YAML/JSON
files, :meth:`AnyI2VConfig.from_dict`) also converts text: ``"0.02"`` for a float, ``"none"`` for an
optional int, ``yes``/``no`` for a bool, ``a,b`` for a layer list. Anything else raises
:class:`ConfigError` naming the key, the value and the type expected. ``anyi2v-lab config`` lists the keys.
"""
from __future__ import annotations

import json
import math
import numbers
import types
import typing
from dataclasses import MISSING, dataclass, fields
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

RES_LAYERS = ("up_blocks.1.resnets.0", "up_blocks.1.resnets.1", "up_blocks.2.resnets.0", "up_blocks.2.resnets.1")
ATTN_LAYERS = tuple(f"up_blocks.{b}.attentions.{j}.transformer_blocks.0.attn1" for b in (1, 2) for j in (0, 1))
OPT_LAYERS = ("up_blocks.1.attentions.1.transformer_blocks.0.attn1", "up_blocks.2.attentions.0.transformer_blocks.0.attn1")
# Our choice for the "optimise residual hidden" ablation: the ResNets just before the two optimised
# attentions. The paper does not say which residuals it used.
OPT_RES_LAYERS = ("up_blocks.1.resnets.1", "up_blocks.2.resnets.0")

ResizePolicy = Literal["stretch", "crop", "pad"]
InversionSchedule = Literal["reference", "fast"]
OptTarget = Literal["query", "residual"]
PcaMethod = Literal["eigh", "lowrank"]
MaskKind = Literal["semantic", "static", "none"]
Optimizer = Literal["fresh_adamw", "adam"]
UpdateRegion = Literal["all", "boxes"]


class ConfigError(ValueError):
    """An impossible or unknown configuration value."""


@dataclass(frozen=True)
class AnyI2VConfig:
    """AnyI2V settings. Defaults reproduce the paper and its reference code.

    Sampling: ``num_frames`` 16, ``num_inference_steps`` 25 (timesteps 961 ... 1), ``guidance_scale`` 8.
    ``height``/``width`` ``None`` take the model's native size (512 for SD1.5).

    Two switches turn a mechanism off: ``injection=False`` (no inversion, no injected features, no
    shared K/V) and ``optimisation=False`` (a trajectory is kept but never optimised towards). With
    both off it is plain AnimateDiff sampling. Within injection, ``inject_residual``, ``inject_query``
    and ``kv_consistency`` choose its parts (the paper's ablations). The windows ``load_feature_step``
    and ``opt_step`` are the last step index (0-based) of injection and of optimisation: never
    negative, and within ``0..num_inference_steps - 1`` while their mechanism is on. ``HELP`` says what
    each field means.
    """

    # generation
    num_frames: int = 16
    num_inference_steps: int = 25
    guidance_scale: float = 8.0
    height: int | None = None
    width: int | None = None
    resize_policy: ResizePolicy = "stretch"
    # inversion (docs/method.md §1)
    inversion_timestep: int = 201
    inversion_schedule: InversionSchedule = "reference"
    fast_inversion_steps: int = 10
    vae_sample: bool = False  # the reference samples the posterior (unseeded); we use its mean
    # injection (docs/method.md §2)
    injection: bool = True
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
    # trajectory optimisation (docs/method.md §3)
    optimisation: bool = True
    opt_step: int = 5
    opt_iters: int = 5
    lr: float = 0.01
    opt_layers: tuple[str, ...] = OPT_LAYERS
    opt_res_layers: tuple[str, ...] = OPT_RES_LAYERS
    opt_target: OptTarget = "query"
    pca_dim: int | None = 64
    pca_method: PcaMethod = "eigh"
    compress_factor: int = 4
    mask: MaskKind = "semantic"
    optimizer: Optimizer = "fresh_adamw"
    loss_scale: float | None = 65536.0  # the reference's GradScaler scale (a power of two: exact)
    # our own options, off by default (not in the reference)
    update_region: UpdateRegion = "all"
    region_margin: float = 0.25  # of the box size, for update_region="boxes"
    background_weight: float = 0.0
    # sampling noise (DDIM's eta): 0 is the paper's deterministic DDIM, 1 re-noises every step as DDPM
    # does; stochastic steps correct a video's temporal glitches (the toy model: 10.2 % -> 5.1 % of frames)
    eta: float = 0.0

    def __post_init__(self):
        for f in fields(self):  # types first: the range checks below compare numbers
            object.__setattr__(self, f.name, convert(f.name, getattr(self, f.name), parsing=False))
        positive = ("num_frames", "num_inference_steps", "opt_iters", "compress_factor", "fast_inversion_steps")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)!r} must be a positive integer")
        last = self.num_inference_steps - 1
        # a window only counts while its mechanism is on, but a negative one never means "off": the switch does
        for name, what, switch in (("load_feature_step", "feature injection", "injection"),
                                   ("opt_step", "trajectory optimisation", "optimisation")):
            v = getattr(self, name)
            if v < 0 or (getattr(self, switch) and v > last):
                raise ConfigError(f"{name}={v} must lie in 0..{last}: it is the last denoising step (0-based) of "
                                  f"{what}, and num_inference_steps={self.num_inference_steps}; to turn {what} "
                                  f"off, set {switch}=false")
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
        for name in ("lr", "adain_eps"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name}={getattr(self, name)} must be > 0")
        for name in ("background_weight", "region_margin"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name}={getattr(self, name)} must be >= 0")
        if not 0 <= self.eta <= 1:
            raise ConfigError(f"eta={self.eta} must lie in [0, 1] (0: deterministic DDIM, the paper's; 1: DDPM-like)")
        if self.opt_target == "query" and not self.opt_layers:
            raise ConfigError("opt_layers is empty: name at least one self-attention layer to align")
        if self.loss_scale is not None and not (self.loss_scale > 0 and math.log2(self.loss_scale).is_integer()):
            raise ConfigError(f"loss_scale={self.loss_scale} must be a power of two (the reference's 65536), "
                              f"or none to leave the loss unscaled")

    # ---------------------------------------------------------------- helpers
    @property
    def injects(self) -> bool:
        """Whether any injection edit runs."""
        return self.injection and (self.inject_residual or self.inject_query or self.kv_consistency)

    @property
    def inverts(self) -> bool:
        """Whether injection needs inverted features (K/V consistency alone does not)."""
        return self.injection and (self.inject_residual or self.inject_query)

    @property
    def align_layers(self) -> tuple[str, ...]:
        """Module paths whose features the trajectory loss aligns."""
        return self.opt_layers if self.opt_target == "query" else self.opt_res_layers

    def replace(self, **changes) -> "AnyI2VConfig":
        """A copy with ``changes``, checked and converted as a parsed config is (unknown keys named with
        close matches; lists, as YAML gives them, become tuples)."""
        return self.from_dict({**self.to_dict(), **changes})

    def to_dict(self) -> dict[str, Any]:
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "AnyI2VConfig":
        """A config from parsed values (YAML, JSON, ``--set``): each converted to its field's type."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            import difflib
            hints = {u: difflib.get_close_matches(u, known, n=1) for u in unknown}
            raise ConfigError(f"unknown config keys {unknown}" + "".join(
                f"; {u!r}: did you mean {h[0]!r}?" for u, h in hints.items() if h) +
                "; `anyi2v-lab config` lists the keys")
        return cls(**{k: convert(k, v) for k, v in data.items()})

    @classmethod
    def load(cls, path: str | Path, overrides: list[str] = ()) -> "AnyI2VConfig":
        """Read YAML or JSON (by suffix). A file may hold the config itself or ``{"config": {...}}``
        (the ``run.json`` written next to every output). ``overrides``: ``key=value`` strings applied
        to the file's values before they are checked together. Errors name the file."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {str(path)!r} " + ("is a folder" if path.is_dir() else "does not exist"))
        try:
            text = path.read_text(encoding="utf-8")
            if path.suffix in (".yaml", ".yml"):
                import yaml
                data = yaml.safe_load(text) or {}
            else:
                data = json.loads(text)
        except Exception as e:  # YAMLError, JSONDecodeError, UnicodeDecodeError, OSError
            mark, problem = getattr(e, "problem_mark", None), getattr(e, "problem", None)
            why = f"line {mark.line + 1}, column {mark.column + 1}: {problem}" if mark and problem else str(e)
            raise ConfigError(f"config file {str(path)!r} cannot be read: {why}") from None
        if isinstance(data, dict) and isinstance(data.get("config"), dict):
            data = data["config"]
        if not isinstance(data, dict):
            raise ConfigError(f"config file {str(path)!r}: expected a mapping of settings, got {type(data).__name__}")
        try:
            return cls.from_dict({**data, **parse_overrides(list(overrides))})
        except ConfigError as e:
            raise ConfigError(f"config file {str(path)!r}" + (" with --set" if overrides else "") + f": {e}") from None

    def with_overrides(self, overrides: list[str]) -> "AnyI2VConfig":
        """Apply ``key=value`` strings (values parsed as YAML, then converted to the field's type:
        ``lr=0.02``, ``pca_dim=none``, ``opt_layers=[a, b]``)."""
        return self.replace(**parse_overrides(overrides))


HELP = {
    "num_frames": "frames of the video",
    "num_inference_steps": "DDIM denoising steps (paper: 25)",
    "guidance_scale": "classifier-free guidance scale; 1 turns CFG off",
    "height": "canvas height in pixels, a multiple of 8; none: the model's native size",
    "width": "canvas width in pixels, a multiple of 8; none: the model's native size",
    "resize_policy": "how a condition image reaches the canvas size",
    "inversion_timestep": "DDIM inversion runs up to this timestep (paper: 201)",
    "inversion_schedule": "reference: every timestep up to inversion_timestep; fast: fast_inversion_steps steps",
    "fast_inversion_steps": "inversion steps of the fast schedule",
    "vae_sample": "sample the VAE posterior as the reference does (unseeded) instead of its mean",
    "injection": "inject the condition's features (false: no inversion, no injection, no shared K/V)",
    "load_feature_step": "last denoising step (0-based) that injects the inverted features",
    "res_layers": "ResNet blocks whose residuals are injected (AdaIN-debiased)",
    "attn_layers": "self-attentions whose queries are injected and whose K/V frame 0 shares",
    "inject_residual": "inject the inverted ResNet residuals into frame 0",
    "inject_query": "inject the inverted self-attention queries into frame 0",
    "kv_consistency": "frames 1.. use frame 0's keys and values",
    "debias": "AdaIN the injected residuals onto the current statistics (false: paper's 'w/o debias')",
    "adain_patch": "AdaIN window in latent pixels; none: global AdaIN",
    "adain_eps": "AdaIN's variance epsilon",
    "inject_uncond": "inject into the unconditional CFG branch too (ours; the paper: cond only)",
    "optimisation": "optimise the latent towards the trajectory (false: a trajectory is kept, unused)",
    "opt_step": "last denoising step (0-based) with trajectory optimisation",
    "opt_iters": "optimisation iterations per optimised step",
    "lr": "learning rate of the latent optimisation",
    "opt_layers": "self-attentions whose queries the trajectory loss aligns",
    "opt_res_layers": "ResNet blocks aligned when opt_target=residual",
    "opt_target": "features the trajectory loss aligns: attention queries or ResNet residuals",
    "pca_dim": "PCA components of the aligned features; none: raw features",
    "pca_method": "eigh: exact PCA; lowrank: randomised (faster on big maps)",
    "compress_factor": "downsampling of the features before PCA and the loss",
    "mask": "loss mask: semantic (from the features), static (boxes) or none",
    "optimizer": "fresh_adamw: a new AdamW each step, as the reference; adam: one Adam throughout",
    "loss_scale": "the optimisation backward runs on the loss times this, unscaled at the latent: the "
                  "reference's GradScaler (65536); a power of two, or none",
    "update_region": "all: the gradient updates the whole latent; boxes: only around the boxes (ours)",
    "region_margin": "margin around the boxes for update_region=boxes, in box sizes (ours)",
    "background_weight": "weight of a loss keeping the background still (ours; 0: off)",
    "eta": "DDIM eta: 0 deterministic (paper), 1 DDPM-like re-noising (ours)",
}


# ------------------------------------------------------------------ types and conversion
_NONE_WORDS = {"none", "null", "~", ""}
_TRUE_WORDS = {"true", "yes", "on", "1"}
_FALSE_WORDS = {"false", "no", "off", "0"}
_BAD = object()  # _convert's "not of this type"


@lru_cache(maxsize=None)
def _hints() -> dict[str, Any]:
    return typing.get_type_hints(AnyI2VConfig)


def _split_optional(hint) -> tuple[Any, bool]:
    args = typing.get_args(hint)
    if (typing.get_origin(hint) in (typing.Union, types.UnionType)) and type(None) in args:
        return next(a for a in args if a is not type(None)), True
    return hint, False


def type_name(name: str) -> str:
    """The field's type as the user writes it: ``int``, ``int or none``, ``one of a|b``, ``list of names``."""
    base, optional = _split_optional(_hints()[name])
    if typing.get_origin(base) is Literal:
        text = "one of " + "|".join(typing.get_args(base))
    elif typing.get_origin(base) is tuple:
        text = "list of layer names"
    else:
        text = {int: "int", float: "float", bool: "bool"}[base]
    return f"{text} or none" if optional else text


def _expected(base, optional: bool) -> str:
    if typing.get_origin(base) is Literal:
        text = "one of " + ", ".join(map(repr, typing.get_args(base)))
    elif typing.get_origin(base) is tuple:
        text = "a list of layer names (e.g. [a, b] or a,b)"
    else:
        text = {int: "an integer", float: "a finite number", bool: "true or false"}[base]
    return f"{text} or none" if optional else text


def convert(name: str, value: Any, parsing: bool = True) -> Any:
    """``value`` as field ``name``'s type, or a :class:`ConfigError` naming the key, the value and the
    type. ``parsing``: also accept text (``"0.5"``, ``"none"``, ``"yes"``, ``"a,b"``), as files and
    ``--set`` give it; construction in Python takes typed values only."""
    base, optional = _split_optional(_hints()[name])
    text = value.strip() if parsing and isinstance(value, str) else None
    if optional and (value is None or (text is not None and text.lower() in _NONE_WORDS)):
        return None
    out = _convert(base, value, text, parsing)
    if out is _BAD:
        default = next(f.default for f in fields(AnyI2VConfig) if f.name == name)
        shown = f"{len(default)} layers, `anyi2v-lab config` lists them" if isinstance(default, tuple) else repr(default)
        raise ConfigError(f"{name}={value!r} is not {_expected(base, optional)} (default: {shown}; "
                          f"{name}: {HELP[name]})")
    return out


def _convert(base, value, text: str | None, parsing: bool):
    if isinstance(value, bool) and base is not bool:  # True is an int to Python, not to a user
        return _BAD
    if base is bool:
        if isinstance(value, bool) or (type(value).__module__ == "numpy" and type(value).__name__ in ("bool_", "bool")):
            return bool(value)
        if text is not None and text.lower() in _TRUE_WORDS | _FALSE_WORDS:
            return text.lower() in _TRUE_WORDS
        return _BAD
    if base is int:
        if isinstance(value, numbers.Integral):
            return int(value)
        if parsing and isinstance(value, float) and value.is_integer():  # JSON writers may give 8.0
            return int(value)
        if text is not None:
            try:
                return int(text)
            except ValueError:
                return _BAD
        return _BAD
    if base is float:
        if isinstance(value, numbers.Real):
            f = float(value)
        elif text is not None:
            try:
                f = float(text)
            except ValueError:
                return _BAD
        else:
            return _BAD
        return f if math.isfinite(f) else _BAD
    if typing.get_origin(base) is Literal:
        return value if isinstance(value, str) and value in typing.get_args(base) else _BAD
    # tuple of layer names
    if text is not None:
        value = [] if not text else [part.strip() for part in text.split(",")]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v.strip() for v in value):
        return _BAD
    return tuple(v.strip() for v in value)


def config_keys() -> list[tuple[str, str, Any, str]]:
    """``(key, type, default, meaning)`` of every field, in the dataclass's order (``anyi2v-lab config``)."""
    out = []
    for f in fields(AnyI2VConfig):
        default = f.default if f.default is not MISSING else None
        out.append((f.name, type_name(f.name), list(default) if isinstance(default, tuple) else default, HELP[f.name]))
    return out


def overrides_from_json(value) -> tuple[str, ...]:
    """A jobs file's or manifest's ``set`` field, a ``{key: value}`` map or a list of ``"key=value"``
    strings, as ``--set`` strings (``None``: none)."""
    if value is None:
        return ()
    if isinstance(value, dict):
        return tuple(f"{k}={json.dumps(v)}" for k, v in value.items())
    if isinstance(value, list) and all(isinstance(v, str) and "=" in v for v in value):
        return tuple(value)
    raise ConfigError(f"set = {value!r} must be a {{key: value}} map or a list of 'key=value'")


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """``["lr=0.02", "pca_dim=null"]`` -> ``{"lr": 0.02, "pca_dim": None}`` (values parsed as YAML;
    :meth:`AnyI2VConfig.from_dict` converts them to the fields' types)."""
    import yaml

    changes = {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key=value (`anyi2v-lab config` lists the keys)")
        key, value = item.split("=", 1)
        try:
            changes[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as e:
            problem = getattr(e, "problem", None) or "not valid YAML"
            raise ConfigError(f"override {item!r}: the value {value!r} cannot be parsed ({problem}); "
                              f"write a list as [a, b] or a,b") from None
    return changes
