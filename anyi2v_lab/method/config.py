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
from dataclasses import MISSING, dataclass, field, fields
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Literal

RES_LAYERS = ("up_blocks.1.resnets.0", "up_blocks.1.resnets.1", "up_blocks.2.resnets.0", "up_blocks.2.resnets.1")
ATTN_LAYERS = tuple(f"up_blocks.{b}.attentions.{j}.transformer_blocks.0.attn1" for b in (1, 2) for j in (0, 1))
OPT_LAYERS = ("up_blocks.1.attentions.1.transformer_blocks.0.attn1",
              "up_blocks.2.attentions.0.transformer_blocks.0.attn1")
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


# Upper bounds a config can be checked against before any model loads. A loaded model may allow fewer
# frames (its motion module's ``motion_max_seq_length``); generation checks that bound too.
MAX_FRAMES = 32
MAX_STEPS = 1000
MAX_SIDE = 2048
LIMITS = {
    "num_frames": (MAX_FRAMES, f"an AnimateDiff motion module embeds at most {MAX_FRAMES} frame positions "
                               f"(v2/v3; paper: 16)"),
    "num_inference_steps": (MAX_STEPS, f"DDIM takes at most one step per training timestep of the scheduler "
                                       f"({MAX_STEPS}; paper: 25)"),
    "fast_inversion_steps": (MAX_STEPS, f"inversion takes at most one step per training timestep of the "
                                        f"scheduler ({MAX_STEPS})"),
}
SEED_RANGE = (0, 2**64 - 1)  # what torch.Generator.manual_seed takes without wrapping negative seeds


# The groups a setting belongs to, by what it changes. A cache or a captured graph of work that depends
# on a group keys on :meth:`AnyI2VConfig.key` of it, so a new field joins the keys of its group.
GROUPS = {
    "size": "the video's frames and canvas",
    "sampling": "the denoising loop: steps, guidance, noise, and the last step of injection and of optimisation",
    "inversion": "how the condition image is inverted (the inversion cache keys on it)",
    "injection": "what the injection edits do (the captured optimisation passes key on it)",
    "optimisation": "how the latent is updated towards the trajectory",
    "loss": "what the trajectory loss computes (the captured loss keys on it)",
}


def setting(default: Any, group: str, help: str):
    """A config field: its ``default``, its ``group`` (one of :data:`GROUPS`) and what it means (``help``,
    shown by ``anyi2v-lab config`` and in conversion errors)."""
    if group not in GROUPS:
        raise ValueError(f"group={group!r} is not one of {list(GROUPS)}")
    return field(default=default, metadata={"group": group, "help": help})


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
    negative, and within ``0..num_inference_steps - 1`` while their mechanism is on. Each field's
    metadata holds its group (:data:`GROUPS`) and its meaning (:data:`HELP`).
    """

    num_frames: int = setting(16, "size", "frames of the video, 1..32 (the motion module's positions)")
    num_inference_steps: int = setting(25, "sampling", "DDIM denoising steps, 1..1000 (paper: 25)")
    guidance_scale: float = setting(8.0, "sampling", "classifier-free guidance scale; 1 turns CFG off")
    height: int | None = setting(None, "size", "canvas height in pixels, a multiple of 8 up to 2048; none: the "
                                               "model's native size")
    width: int | None = setting(None, "size", "canvas width in pixels, a multiple of 8 up to 2048; none: the "
                                              "model's native size")
    resize_policy: ResizePolicy = setting("stretch", "size", "how a condition image reaches the canvas size")
    # inversion (docs/method.md §1)
    inversion_timestep: int = setting(201, "inversion", "DDIM inversion runs up to this timestep (paper: 201)")
    inversion_schedule: InversionSchedule = setting("reference", "inversion", "reference: every timestep up to "
                                                    "inversion_timestep; fast: fast_inversion_steps steps")
    fast_inversion_steps: int = setting(10, "inversion", "inversion steps of the fast schedule, 1..1000")
    # the reference samples the posterior (unseeded); we use its mean
    vae_sample: bool = setting(False, "inversion", "sample the VAE posterior as the reference does (unseeded) "
                                                   "instead of its mean")
    # injection (docs/method.md §2)
    injection: bool = setting(True, "injection", "inject the condition's features (false: no inversion, no "
                                                 "injection, no shared K/V)")
    load_feature_step: int = setting(3, "sampling", "last denoising step (0-based) that injects the inverted features")
    res_layers: tuple[str, ...] = setting(RES_LAYERS, "injection", "ResNet blocks whose residuals are injected "
                                                                   "(AdaIN-debiased)")
    attn_layers: tuple[str, ...] = setting(ATTN_LAYERS, "injection", "self-attentions whose queries are injected "
                                                                     "and whose K/V frame 0 shares")
    inject_residual: bool = setting(True, "injection", "inject the inverted ResNet residuals into frame 0")
    inject_query: bool = setting(True, "injection", "inject the inverted self-attention queries into frame 0")
    kv_consistency: bool = setting(True, "injection", "frames 1.. use frame 0's keys and values")
    # False: inverted residuals replace frame 0's raw (the paper's "w/o debias", Fig. 10)
    debias: bool = setting(True, "injection", "AdaIN the injected residuals onto the current statistics (false: "
                                              "paper's 'w/o debias')")
    # None: global AdaIN (the paper's Fig. 10 comparison)
    adain_patch: int | None = setting(4, "injection", "AdaIN window in latent pixels; none: global AdaIN")
    adain_eps: float = setting(1e-6, "injection", "AdaIN's variance epsilon")
    inject_uncond: bool = setting(False, "injection", "inject into the unconditional CFG branch too (ours; the "
                                                      "paper: cond only)")
    # trajectory optimisation (docs/method.md §3)
    optimisation: bool = setting(True, "optimisation", "optimise the latent towards the trajectory (false: a "
                                                       "trajectory is kept, unused)")
    opt_step: int = setting(5, "sampling", "last denoising step (0-based) with trajectory optimisation")
    opt_iters: int = setting(5, "optimisation", "optimisation iterations per optimised step")
    lr: float = setting(0.01, "optimisation", "learning rate of the latent optimisation")
    opt_layers: tuple[str, ...] = setting(OPT_LAYERS, "loss", "self-attentions whose queries the trajectory loss "
                                                              "aligns")
    opt_res_layers: tuple[str, ...] = setting(OPT_RES_LAYERS, "loss", "ResNet blocks aligned when "
                                                                      "opt_target=residual")
    opt_target: OptTarget = setting("query", "loss", "features the trajectory loss aligns: attention queries or "
                                                     "ResNet residuals")
    pca_dim: int | None = setting(64, "loss", "PCA components of the aligned features; none: raw features")
    pca_method: PcaMethod = setting("eigh", "loss", "eigh: exact PCA; lowrank: randomised (faster on big maps)")
    compress_factor: int = setting(4, "loss", "downsampling of the features before PCA and the loss")
    mask: MaskKind = setting("semantic", "loss", "loss mask: semantic (from the features), static (boxes) or none")
    optimizer: Optimizer = setting("fresh_adamw", "optimisation", "fresh_adamw: a new AdamW each step, as the "
                                                                  "reference; adam: one Adam throughout")
    loss_scale: float | None = setting(65536.0, "optimisation", "the optimisation backward runs on the loss times "
                                       "this, unscaled at the latent: the reference's GradScaler (65536); a power "
                                       "of two, or none")
    # our own options, off by default (not in the reference)
    update_region: UpdateRegion = setting("all", "optimisation", "all: the gradient updates the whole latent; "
                                                                 "boxes: only around the boxes (ours)")
    region_margin: float = setting(0.25, "optimisation", "margin around the boxes for update_region=boxes, in box "
                                                         "sizes (ours)")
    background_weight: float = setting(0.0, "loss", "weight of a loss keeping the background still (ours; 0: off)")
    # sampling noise (DDIM's eta): 0 is the paper's deterministic DDIM, 1 re-noises every step as DDPM
    # does; stochastic steps correct a video's temporal glitches (the toy model: 10.2 % -> 5.1 % of frames)
    eta: float = setting(0.0, "sampling", "DDIM eta: 0 deterministic (paper), 1 DDPM-like re-noising (ours)")

    def __post_init__(self):
        for f in fields(self):  # types first: the range checks below compare numbers
            object.__setattr__(self, f.name, convert(f.name, getattr(self, f.name), parsing=False, cls=type(self)))
        for name in ("opt_iters", "compress_factor"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)!r} must be a positive integer")
        for name, (top, why) in LIMITS.items():
            if not 1 <= getattr(self, name) <= top:
                raise ConfigError(f"{name}={getattr(self, name)!r} must lie in 1..{top}: {why}")
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
            if v is not None and (v <= 0 or v % 8 or v > MAX_SIDE):
                raise ConfigError(f"{name}={v} must be a multiple of 8 (the VAE downsamples by 8) in 8..{MAX_SIDE} "
                                  f"(4x SD1.5's native 512); sizes that do not fit this device's memory are "
                                  f"refused when the run starts")
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

    def key(self, *groups: str) -> tuple:
        """``(name, value)`` of every field in ``groups`` (:data:`GROUPS`), in field order: a hashable key for
        work that depends on those settings, which a new field of the group joins by itself."""
        unknown = [g for g in groups if g not in GROUPS]
        if unknown:
            raise ValueError(f"groups {unknown} are not config groups; use some of {list(GROUPS)}")
        return tuple((f.name, getattr(self, f.name)) for f in fields(self) if f.metadata["group"] in groups)

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
        return cls(**{k: convert(k, v, cls=cls) for k, v in data.items()})

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


HELP = {f.name: f.metadata["help"] for f in fields(AnyI2VConfig)}  # key -> meaning, from the fields


# ------------------------------------------------------------------ types and conversion
_NONE_WORDS = {"none", "null", "~", ""}
_TRUE_WORDS = {"true", "yes", "on", "1"}
_FALSE_WORDS = {"false", "no", "off", "0"}
_BAD = object()  # a parser's "not of this type"


@dataclass(frozen=True)
class _Kind:
    """How a user writes one type: its name in ``anyi2v-lab config``, what an error says it expects, and
    ``parse(value, text, parsing)``, the value as that type or ``_BAD``."""

    name: str
    expected: str
    parse: Callable[[Any, str | None, bool], Any]


def _parse_text(to: Callable[[str], Any], text: str | None) -> Any:
    if text is None:
        return _BAD
    try:
        return to(text)
    except ValueError:
        return _BAD


def _to_bool(value, text: str | None, parsing: bool):
    if isinstance(value, bool) or (type(value).__module__ == "numpy" and type(value).__name__ in ("bool_", "bool")):
        return bool(value)
    if text is not None and text.lower() in _TRUE_WORDS | _FALSE_WORDS:
        return text.lower() in _TRUE_WORDS
    return _BAD


def _to_int(value, text: str | None, parsing: bool):
    if isinstance(value, numbers.Integral):
        return int(value)
    if parsing and isinstance(value, float) and value.is_integer():  # JSON writers may give 8.0
        return int(value)
    return _parse_text(int, text)


def _to_float(value, text: str | None, parsing: bool):
    number = float(value) if isinstance(value, numbers.Real) else _parse_text(float, text)
    return number if number is not _BAD and math.isfinite(number) else _BAD


def _to_names(value, text: str | None, parsing: bool):
    if text is not None:
        value = [] if not text else [part.strip() for part in text.split(",")]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v.strip() for v in value):
        return _BAD
    return tuple(v.strip() for v in value)


_KINDS = {
    bool: _Kind(name="bool", expected="true or false", parse=_to_bool),
    int: _Kind(name="int", expected="an integer", parse=_to_int),
    float: _Kind(name="float", expected="a finite number", parse=_to_float),
}
_NAMES = _Kind(name="list of layer names", expected="a list of layer names (e.g. [a, b] or a,b)", parse=_to_names)


def _kind(hint) -> _Kind:
    """The :class:`_Kind` of a field's type without its ``None``: a Literal's choices, a tuple of names, or
    bool, int, float."""
    if typing.get_origin(hint) is Literal:
        choices = typing.get_args(hint)
        return _Kind(name="one of " + "|".join(choices), expected="one of " + ", ".join(map(repr, choices)),
                     parse=lambda value, text, parsing: value if isinstance(value, str) and value in choices else _BAD)
    if typing.get_origin(hint) is tuple:
        return _NAMES
    return _KINDS[hint]


@lru_cache(maxsize=None)
def _field_kinds(cls: type) -> dict[str, tuple[_Kind, bool]]:
    """``name -> (kind, optional)`` of every field of ``cls``, read from its type hints; a field declared
    without :func:`setting` is refused here, at the first construction."""
    hints, out = typing.get_type_hints(cls), {}
    for f in fields(cls):
        if f.metadata.get("group") not in GROUPS or not f.metadata.get("help"):
            raise TypeError(f"{cls.__name__}.{f.name} has no group and help: declare it with setting(default, group, "
                            f"help), group one of {list(GROUPS)}")
        args = typing.get_args(hints[f.name])
        optional = typing.get_origin(hints[f.name]) in (typing.Union, types.UnionType) and type(None) in args
        base = next(a for a in args if a is not type(None)) if optional else hints[f.name]
        out[f.name] = (_kind(base), optional)
    return out


def type_name(name: str, cls: type = AnyI2VConfig) -> str:
    """The field's type as the user writes it: ``int``, ``int or none``, ``one of a|b``, ``list of names``."""
    kind, optional = _field_kinds(cls)[name]
    return f"{kind.name} or none" if optional else kind.name


def convert(name: str, value: Any, parsing: bool = True, cls: type = AnyI2VConfig) -> Any:
    """``value`` as field ``name``'s type, or a :class:`ConfigError` naming the key, the value and the
    type. ``parsing``: also accept text (``"0.5"``, ``"none"``, ``"yes"``, ``"a,b"``), as files and
    ``--set`` give it; construction in Python takes typed values only."""
    kind, optional = _field_kinds(cls)[name]
    text = value.strip() if parsing and isinstance(value, str) else None
    if optional and (value is None or (text is not None and text.lower() in _NONE_WORDS)):
        return None
    # True is an int to Python, not to a user
    out = _BAD if isinstance(value, bool) and kind is not _KINDS[bool] else kind.parse(value, text, parsing)
    if out is _BAD:
        f = next(f for f in fields(cls) if f.name == name)
        shown = f"{len(f.default)} layers, `anyi2v-lab config` lists them" if isinstance(f.default, tuple) \
            else repr(f.default)
        expected = f"{kind.expected} or none" if optional else kind.expected
        raise ConfigError(f"{name}={value!r} is not {expected} (default: {shown}; {name}: {f.metadata['help']})")
    return out


def check_num_frames(num_frames: int, limit: int | None, model: str) -> None:
    """``num_frames`` within a model's own bound (its motion module's ``motion_max_seq_length``, which
    may be below :data:`MAX_FRAMES`), else a :class:`ConfigError` naming ``model``."""
    if limit is not None and num_frames > limit:
        raise ConfigError(f"num_frames={num_frames} must lie in 1..{limit}: {model} embeds at most {limit} "
                          f"frame positions (motion_max_seq_length)")


def check_seed(seed, what: str = "seed") -> int:
    """``seed`` as an int in ``SEED_RANGE``, the seeds torch's generator takes; else a :class:`ConfigError`
    naming ``what`` (``--seed`` on the command line), the value and the range."""
    low, high = SEED_RANGE
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not low <= seed <= high:
        raise ConfigError(f"{what}={seed!r} must be an integer in {low}..{high} (2**64 - 1), the seeds torch's "
                          f"random generator takes")
    return int(seed)


def config_keys() -> list[tuple[str, str, Any, str]]:
    """``(key, type, default, meaning)`` of every field, in the dataclass's order (``anyi2v-lab config``)."""
    out = []
    for f in fields(AnyI2VConfig):
        default = f.default if f.default is not MISSING else None
        out.append((f.name, type_name(f.name), list(default) if isinstance(default, tuple) else default,
                    f.metadata["help"]))
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
