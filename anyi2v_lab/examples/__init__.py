"""Example runs shipped as config files: the AnyI2V reference's own example, reproducible with one flag.

>>> ex = load_example("horse-canny")
>>> ex.prompt, ex.seed, ex.trajectory.timing
('A majestic horse running across a grassy field, ...', 4162228652802886667, 'first-frames')

``anyi2v-lab generate --example horse-canny --reference-checkout PATH/TO/AnyI2V --model SD15_FOLDER
--checkpoint realisticVision.safetensors --motion-adapter v3_sd15_mm.ckpt --out runs/horse`` runs it:
the prompt, negative prompt, seed, trajectory (with its timing) and config come from the file
(``examples/reference/<name>.yaml``; each file says where its values come from); the weights are the
user's, since nothing is downloaded. A condition image the reference's licence does not let us ship is
named by its path inside a checkout of the reference.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from pathlib import Path

from ..trajectory import Trajectory, TrajectoryError

FOLDER = Path(__file__).parent / "reference"
_KEYS = {"name", "source", "prompt", "negative_prompt", "seed", "condition", "trajectory", "config", "weights"}
_WEIGHT_KEYS = {"model", "checkpoint", "motion_adapter", "lora", "lora_alpha"}


class ExampleError(ValueError):
    """An unknown example name, a broken example file, or an example's input that cannot be found."""


@dataclass(frozen=True)
class Example:
    """One shipped example: what to generate and with which settings; ``weights`` names what the
    reference loaded (``model``, ``checkpoint``, ``motion_adapter``, ``lora``) and ``lora_alpha``, the
    strength for a LoRA given without one."""

    name: str
    source: str
    prompt: str
    negative_prompt: str
    seed: int
    condition: str  # a path inside a checkout of the reference
    trajectory: Trajectory
    config: dict = field(default_factory=dict)
    weights: dict = field(default_factory=dict)
    file: Path | None = None

    @property
    def lora_alpha(self) -> float:
        return float(self.weights.get("lora_alpha", 1.0))

    def condition_path(self, checkout) -> Path:
        """The condition image inside a checkout of the reference; a clear error when it is not there."""
        root = Path(checkout).expanduser()
        path = root / self.condition
        if not path.is_file():
            what = "is not a folder" if not root.is_dir() else f"has no {self.condition}"
            raise ExampleError(f"--reference-checkout {str(checkout)!r} {what}; give a clone of FudanCVL/AnyI2V "
                               f"(git clone https://github.com/FudanCVL/AnyI2V) or the image itself with --condition")
        return path


def example_names() -> list[str]:
    return sorted(p.stem for p in FOLDER.glob("*.yaml"))


def load_example(name: str) -> Example:
    """The shipped example ``name`` (see :func:`example_names`), validated."""
    path = FOLDER / f"{name}.yaml"
    if name not in example_names():
        raise ExampleError(f"example {name!r} is unknown; shipped examples: {', '.join(example_names())}")
    return read_example(path)


def read_example(path) -> Example:
    """Read and check an example file; errors name the file and the field."""
    import yaml

    path = Path(path)

    def bad(key: str, why: str) -> ExampleError:
        return ExampleError(f"example file {str(path)!r}: {key} {why}")
    try:
        d = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise ExampleError(f"example file {str(path)!r} cannot be read: {e}") from None
    if not isinstance(d, dict):
        raise ExampleError(f"example file {str(path)!r} must hold a mapping of {sorted(_KEYS)}")
    if set(d) != _KEYS:
        raise bad("keys", f"are {sorted(d)}; expected exactly {sorted(_KEYS)}")
    for key in ("name", "source", "prompt", "negative_prompt", "condition"):
        if not isinstance(d[key], str):
            raise bad(key, f"= {d[key]!r} must be a string")
    if d["name"] != path.stem:
        raise bad("name", f"= {d['name']!r} differs from the file name {path.stem!r}")
    seed = d["seed"]
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed < 2**64:
        raise bad("seed", f"= {seed!r} must be an integer in 0..2**64-1")
    traj = d["trajectory"]
    if not isinstance(traj, dict) or "timing" not in traj:
        raise bad("trajectory", "must be the reference's trajectory mapping plus its timing")
    traj = dict(traj)
    timing = traj.pop("timing")
    try:
        trajectory = Trajectory.from_json(traj, timing=timing)
    except TrajectoryError as e:
        raise bad("trajectory", f"is not valid: {e}") from None
    from ..method.config import AnyI2VConfig
    if not isinstance(d["config"], dict):
        raise bad("config", "must be a mapping of AnyI2VConfig keys")
    AnyI2VConfig.from_dict(d["config"])  # ConfigError names the key
    weights = d["weights"]
    if not isinstance(weights, dict) or set(weights) != _WEIGHT_KEYS:
        raise bad("weights", f"must be a mapping of exactly {sorted(_WEIGHT_KEYS)}")
    alpha = weights["lora_alpha"]
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real):
        raise bad("weights.lora_alpha", f"= {alpha!r} must be a number")
    return Example(name=d["name"], source=d["source"], prompt=d["prompt"], negative_prompt=d["negative_prompt"],
                   seed=int(seed), condition=d["condition"], trajectory=trajectory, config=dict(d["config"]),
                   weights=dict(weights), file=path)


__all__ = ["Example", "ExampleError", "example_names", "load_example", "read_example"]
