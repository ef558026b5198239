"""The training options: one frozen dataclass, the single place each option is declared.

Every field is also a command-line option (``--field-name``), built by :func:`build_parser` from the
field's default and its ``help`` metadata, so the script, the checkpoint's record and the tests read
the same names. Per-phase options are dicts (``--lr joint=2e-4,image=5e-4`` updates the given phases);
tuples are comma lists; booleans are flags.
"""
from __future__ import annotations

import argparse
from dataclasses import MISSING, dataclass, field, fields, replace

from anyi2v_lab.toy.scene import check_object_probs

# "decoder" fine-tunes the VAE decoder alone: the encoder, hence the latent space the UNet learned, stays
# fixed, so it can sharpen a trained model's decoding without touching its UNet.
PHASES = ("vae", "image", "motion", "joint", "decoder")


def option(default=None, help: str = "", *, factory=None, parse=None):
    """A field with its command-line help and the parser of one value (a dict's values, a tuple's items)."""
    meta = {"help": help, "parse": parse}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def _per_phase(values: dict):
    return lambda: dict(values)


@dataclass(frozen=True)
class TrainConfig:
    out: str = option("outputs/toy", "run folder: train.log, ckpt.pt, summary.json, weights/", parse=str)
    export: str | None = option(None, "folder for the fp16 weights (default <out>/weights)", parse=str)
    seed: int = option(0, "seed of rank 0 (rank r uses seed + 1000 r)", parse=int)
    device: str = option("auto", "auto, cpu, cuda or cuda:N", parse=str)
    phases: tuple = option(("vae", "image", "motion", "joint"), f"phases to run, from {PHASES}", parse=str)
    seconds: dict = option(help="per-phase time budgets, e.g. vae=50,image=110", parse=float,
                           factory=_per_phase({"vae": 120, "image": 100, "motion": 150, "joint": 150, "decoder": 0}))
    max_steps: dict = option(help="per-phase step caps, e.g. vae=3,image=3", parse=int,
                             factory=_per_phase({p: 10**9 for p in PHASES}))
    batch: dict = option(help="per-phase batch sizes (per rank)", parse=int,
                         factory=_per_phase({"vae": 256, "image": 512, "motion": 64, "joint": 64, "decoder": 64}))
    lr: dict = option(help="per-phase learning rates", parse=float,
                      factory=_per_phase({"vae": 1e-3, "image": 5e-4, "motion": 5e-4, "joint": 2e-4, "decoder": 3e-4}))
    cond_fraction: float = option(0.3, "image batches: share of condition images (captions tagged)", parse=float)
    caption_dropout: float = option(0.1, "share of empty captions, for classifier-free guidance", parse=float)
    image_every: int = option(4, "joint phase: every n-th step is an image batch (motion bypassed)", parse=int)
    joint_text: bool = option(False, "joint phase: train the text encoder too")
    # posterior samples (1) leave this small VAE a noisy channel that loses shape detail
    vae_noise: float = option(0.1, "posterior noise scale in the VAE and decoder phases (1 = samples)", parse=float)
    ema: float = option(0.999, "EMA decay of the trained parameters", parse=float)
    warmup: int = option(100, "linear lr warm-up steps", parse=int)
    lr_final: float = option(0.1, "cosine-decay each phase's lr to this fraction over its budget", parse=float)
    deadline: float | None = option(None, "seconds after start: checkpoint, exit 0, continue later with --resume",
                                    parse=float)
    ckpt_every: float = option(120.0, "seconds between checkpoints (and at each phase end)", parse=float)
    resume: bool = option(False, "continue from <out>/ckpt.pt")
    no_eval: bool = option(False, "skip the held-out evaluation after export")
    eval_videos: int = option(128, "held-out captions sampled by the evaluation", parse=int)
    eval_cfg: tuple = option((3.0, 5.0, 7.5), "CFG scales of the evaluation", parse=float)
    eval_steps: int = option(25, "DDIM steps of the evaluation", parse=int)
    grid_cfg: float = option(7.5, "CFG scale of samples.png", parse=float)
    init_from: str | None = option(None, "warm start from an exported weights folder (fp16 is fine)", parse=str)
    motion_depth: int | None = option(None, "transformer layers per motion module; grows a warm start's adapter "
                                            "(new layers start as identities)", parse=int)
    object_probs: tuple | None = option(None, "training scenes' chances of 1, 2, 3 objects, e.g. 0.1,0.3,0.6 "
                                              "(default: the world's); evaluation never changes", parse=float)
    feature_consistency: float = option(0.0, "joint phase: weight of the term that pulls a condition image's "
                                             "injected features towards its RGB frame's (training.consistency); "
                                             "0 = off", parse=float)
    consistency_centred: bool = option(False, "compare those features less each channel's spatial mean: where "
                                              "things are, not their look")
    tiny: bool = option(False, "a few tiny steps of every phase (a CPU check of the whole script)")

    def __post_init__(self):
        for name in ("seconds", "max_steps", "batch", "lr"):
            bad = set(getattr(self, name)) - set(PHASES)
            if bad:
                raise ValueError(f"{name} has unknown phases {sorted(bad)}; phases are {PHASES}")
        if set(self.phases) - set(PHASES):
            raise ValueError(f"phases must be taken from {PHASES}, got {self.phases}")
        if not 0 <= self.cond_fraction <= 1 or not 0 <= self.caption_dropout < 1:
            raise ValueError("cond_fraction must be in [0, 1] and caption_dropout in [0, 1)")
        object.__setattr__(self, "object_probs", check_object_probs(self.object_probs))
        if self.feature_consistency < 0:
            raise ValueError(f"feature_consistency must be >= 0, got {self.feature_consistency}")
        if self.motion_depth is not None and self.motion_depth < 1:
            raise ValueError(f"motion_depth must be None or >= 1, got {self.motion_depth}")


# --tiny: every phase for two steps of tiny batches, and a two-video evaluation
TINY = dict(max_steps={p: 2 for p in PHASES}, batch={"vae": 8, "image": 8, "motion": 2, "joint": 2, "decoder": 8},
            eval_steps=2, ckpt_every=0.0, eval_videos=2, eval_cfg=(3.0,), grid_cfg=3.0)


def _default(f):
    return f.default_factory() if f.default is MISSING else f.default


def _kv(text: str, parse) -> dict:
    out = {}
    for item in filter(None, text.split(",")):
        k, sep, v = item.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"expected phase=value pairs, got {item!r}")
        out[k.strip()] = parse(v)
    return out


def build_parser(description: str | None = None) -> argparse.ArgumentParser:
    """One option per :class:`TrainConfig` field; an option not given is absent from the namespace."""
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter,
                                argument_default=argparse.SUPPRESS)
    for f in fields(TrainConfig):
        flag, default, parse = "--" + f.name.replace("_", "-"), _default(f), f.metadata["parse"]
        help_ = f"{f.metadata['help']} (default: {default})"
        if isinstance(default, bool):
            p.add_argument(flag, action="store_true", help=help_)
        elif isinstance(default, dict):
            p.add_argument(flag, type=lambda s, parse=parse: _kv(s, parse), help=help_)
        elif isinstance(default, tuple) or f.name == "object_probs":
            p.add_argument(flag, type=lambda s, parse=parse: tuple(parse(x) for x in s.split(",") if x),
                           help=help_)
        else:
            p.add_argument(flag, type=parse, help=help_)
    return p


def parse_config(argv=None, description: str | None = None) -> TrainConfig:
    """The command line as a :class:`TrainConfig`: defaults (or ``--tiny``'s), then the options given;
    a per-phase option updates only the phases it names."""
    parser = build_parser(description)
    given = vars(parser.parse_args(argv))
    try:
        cfg = TrainConfig(tiny=given.get("tiny", False))
        if cfg.tiny:
            cfg = replace(cfg, **TINY)
        for name, value in given.items():
            if isinstance(value, dict):
                given[name] = {**getattr(cfg, name), **value}
        return replace(cfg, **given)
    except ValueError as e:
        parser.error(str(e))          # exit code 2: bad input
