"""Memory a generation needs, estimated from shapes before any model loads, and the check that refuses a
run that cannot fit the device.

The estimate is a formula over the UNet's config (``block_out_channels`` C_l, ``layers_per_block`` n)
and the run's size. With ``e`` bytes an element (4 for float32, 2 for half), ``B`` = 2 under CFG (else 1),
``F`` frames, a latent of ``h x w`` (the image over the VAE's factor 8) and
``U_l = C_l * (h / 2**l) * (w / 2**l) * F`` the feature map of UNet level ``l``::

    sampling      = e * B * (SKIPS * sum_l (n + 1) * U_l + WORKING * max_l U_l)
                    # the down path's outputs, kept for the up path, and the widest layer's working set
    layers        = sum_l n * U_l + U_mid + sum_{up blocks up to where the forward stops} (n + 1) * U_l
    optimisation  = e * GRAPH * layers
                    # cond only; autograd keeps every layer's tensors up to where the forward stops
                    # (after the last aligned layer unless the runtime says otherwise); with the
                    # runtime's checkpointing: e * (CHECKPOINTED * layers + GRAPH * max_l U_l)
    decode        = e * DECODE * c_vae * H * W * chunk + 12 * F * H * W
                    # the VAE decoder's widest maps at full size for the frames decoded at once (the
                    # runtime's chunk, 4 by default); the video as float32
    features      = e * (sum over the injected layers of one frame's map)
    peak          = weights + features + max(sampling, optimisation, decode)
                    # weights: the model's weight files on disk before it loads; 0 once it is loaded

``generate`` checks the estimate against the device's free memory before any work
(``memory_check=False`` skips it); the command line checks it before the model loads
(``--no-memory-check`` skips it).

Attention adds no ``N**2`` term: it runs fused (SDPA) on CPU and GPU, forward and backward. The constants
are upper estimates of the tensors each layer keeps (a ResNet, a spatial transformer with its GEGLU
feed-forward and a motion module per layer); tests/test_resources.py holds them to measured peaks (the toy
model on CPU, SD1.5 on an H100): the estimate lies 8 % below (the toy model at 64 px, where fixed costs
weigh most) to 20 % above them.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

SKIPS = 2          # tensors a layer of the down path leaves for the up path (its output; the up path's concat)
WORKING = 16       # the widest layer's live tensors: input, norm, q/k/v, GEGLU's 8C projection, output
GRAPH = 64         # tensors autograd saves for one layer (ResNet + spatial transformer + motion module)
CHECKPOINTED = 4   # tensors a layer keeps when each of its blocks is checkpointed (their inputs and output)
DECODE = 8         # live maps of c_vae channels at full size in the decoder's last up block
CHUNK = 4          # frames the VAE decodes at once without a runtime (EagerCalls.decode_chunk)
SD15_UNET = {"block_out_channels": (320, 640, 1280, 1280), "layers_per_block": 2, "sample_size": 64}
SD15_VAE = {"block_out_channels": (128, 256, 512, 512)}
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".ckpt", ".pt", ".pth")
_LEVEL = re.compile(r"(down_blocks|up_blocks)\.(\d+)|mid_block")


class MemoryLimitError(ValueError):
    """A run whose estimated memory exceeds what the device has free (exit 2 from the command line)."""


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes of each part of a generation's peak (see the module docstring) and what it was made for."""

    weights: int
    features: int
    sampling: int
    optimisation: int
    decode: int
    size: str  # what it was made for: "height=..., width=..., num_frames=..."

    @property
    def total(self) -> int:
        return self.weights + self.features + max(self.sampling, self.optimisation, self.decode)

    def describe(self) -> str:
        parts = {"weights": self.weights, "sampling": self.sampling, "optimisation": self.optimisation,
                 "decode": self.decode}
        return f"~{gib(self.total)} (" + ", ".join(f"{k} {gib(v)}" for k, v in parts.items() if v) + ")"


def gib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 / 10 else f"{n / 2**20:.1f} MiB"


def _level(name: str, levels: int) -> int | None:
    """The UNet level (0: full latent size) a module path sits at."""
    m = _LEVEL.match(name)
    if m is None:
        return None
    if m.group(0) == "mid_block":
        return levels - 1
    index = int(m.group(2))
    return index if m.group(1) == "down_blocks" else levels - 1 - index


def estimate_generation(unet_config: Mapping, config, image_hw: tuple[int, int], *, element_size: int = 4,
                        trajectory: bool = True, vae_config: Mapping | None = None, runtime=None,
                        weights: int = 0) -> MemoryEstimate:
    """The peak memory of one generation (:class:`MemoryEstimate`, the module docstring's formula) of
    ``config`` (an :class:`~anyi2v_lab.method.AnyI2VConfig`) at ``image_hw`` pixels on a UNet of
    ``unet_config``; ``trajectory``: whether the latent is optimised; ``runtime``: the
    :class:`~anyi2v_lab.accel.Runtime` it runs with (its truncation, checkpointing and decode chunk; None:
    the eager calls); ``weights``: bytes the model will add."""
    channels = tuple(unet_config["block_out_channels"])
    n, levels, frames = int(unet_config["layers_per_block"]), len(channels), config.num_frames
    vae_channels = tuple((vae_config or SD15_VAE)["block_out_channels"])
    scale = 2 ** (len(vae_channels) - 1)
    h, w = math.ceil(image_hw[0] / scale), math.ceil(image_hw[1] / scale)
    tokens = [math.ceil(h / 2**lv) * math.ceil(w / 2**lv) for lv in range(levels)]
    maps = [c * t * frames for c, t in zip(channels, tokens)]
    branches = 2 if config.guidance_scale > 1 else 1
    sampling = element_size * branches * (SKIPS * (n + 1) * sum(maps) + WORKING * max(maps))
    optimisation = 0
    if trajectory and config.optimisation:
        truncate = getattr(runtime, "truncate", True)
        stops = config.align_layers if truncate is True else (truncate,) if isinstance(truncate, str) else ()
        lowest = min((lv for lv in (_level(x, levels) for x in stops) if lv is not None), default=0)
        layers = n * sum(maps) + maps[-1] + (n + 1) * sum(maps[lowest:])  # up blocks run down to level `lowest`
        if getattr(runtime, "low_memory", False):
            optimisation = element_size * (CHECKPOINTED * layers + GRAPH * max(maps))
        else:
            optimisation = element_size * GRAPH * layers
    chunk = runtime.decode_chunk_size(frames) if hasattr(runtime, "decode_chunk_size") else min(frames, CHUNK)
    decode = element_size * DECODE * vae_channels[0] * image_hw[0] * image_hw[1] * chunk
    decode += 3 * 4 * frames * image_hw[0] * image_hw[1]
    injected = (*config.res_layers, *config.attn_layers) if config.injects else ()
    features = element_size * sum(channels[lv] * tokens[lv] for lv in (_level(x, levels) for x in injected)
                                  if lv is not None)
    return MemoryEstimate(weights=weights, features=features, sampling=sampling, optimisation=optimisation,
                          decode=decode, size=f"height={image_hw[0]}, width={image_hw[1]}, num_frames={frames}")


# ------------------------------------------------------------------ free memory of a device
def available_memory(device) -> tuple[int, str] | None:
    """``(bytes free, what they are)`` on ``device`` (a torch device or its name), or None if unknown:
    free CUDA memory from ``torch.cuda.mem_get_info``; on CPU the RAM the kernel reports available
    (psutil, else /proc/meminfo), within the cgroup's limit where one is set."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            return None
        free, _ = torch.cuda.mem_get_info(device)
        return int(free), "free GPU memory"
    if device.type != "cpu":
        return None
    ram = _available_ram()
    if ram is None:
        return None
    limit = _cgroup_room()
    return (min(ram, limit), "available RAM") if limit is not None else (ram, "available RAM")


def _available_ram() -> int | None:
    try:
        import psutil
        return int(psutil.virtual_memory().available)
    except ImportError:
        pass
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_room() -> int | None:
    """Bytes left under a cgroup v2 memory limit, or None where there is none."""
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text())
    except (OSError, ValueError):
        return None
    return None if limit == "max" else max(int(limit) - used, 0)


SKIP_HINT = "pass --no-memory-check (Python: generate(..., memory_check=False))"


def check_memory(estimate: MemoryEstimate, device) -> None:
    """Refuse (:class:`MemoryLimitError`) an ``estimate`` over the memory ``device`` has free. Nothing is
    refused where the free memory is unknown."""
    room = available_memory(device)
    if room is None or estimate.total <= room[0]:
        return
    free, what = room
    raise MemoryLimitError(f"{estimate.size} need an estimated {estimate.describe()}, but {device} has "
                           f"{gib(free)} of {what}: lower height, width or num_frames (--set KEY=VALUE), or "
                           f"{SKIP_HINT} to run anyway")


# ------------------------------------------------------------------ shapes of a model before it loads
def _read_config(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _weight_bytes(paths) -> int:
    total = 0
    for path in paths:
        path = Path(path).expanduser()
        files = path.rglob("*") if path.is_dir() else [path]
        total += sum(f.stat().st_size for f in files if f.is_file() and f.name.endswith(_WEIGHT_SUFFIXES))
    return total


def model_footprint(model: str | None, *, checkpoint=None, motion_adapter=None, loras=()) -> dict:
    """What the estimate needs of a model that is not loaded yet, read from its config files and weight
    sizes on disk: ``{"unet": config, "vae": config, "weights": bytes, "max_frames": int | None}``. ``model``
    is a diffusers folder, ``"tiny"``, None (the embedded toy model) or a hub id (SD1.5's shape, weights
    not counted)."""
    if model == "tiny":
        from .models.tiny import TinySpec
        spec = TinySpec()
        return {"unet": {"block_out_channels": spec.channels, "layers_per_block": 2, "sample_size": spec.latent_size},
                "vae": {"block_out_channels": spec.vae_channels}, "weights": 0, "max_frames": None}
    if model is None:
        from .models.loading import default_model_dir
        folder = default_model_dir()
    else:
        folder = Path(model).expanduser()
    adapter = Path(motion_adapter).expanduser() if motion_adapter else folder / "motion_adapter"
    adapter_config = _read_config(adapter / "config.json") if adapter.is_dir() else None
    parts = [folder / p for p in ("unet", "vae", "text_encoder")] if folder.is_dir() else []
    sources = [*parts, *([adapter] if adapter.exists() else []), *([checkpoint] if checkpoint else []),
               *(path for path, _ in loras)]
    return {"unet": _read_config(folder / "unet" / "config.json") or SD15_UNET,
            "vae": _read_config(folder / "vae" / "config.json") or SD15_VAE,
            "weights": _weight_bytes(sources),
            "max_frames": (adapter_config or {}).get("motion_max_seq_length")}


def check_spec_fits(spec: Mapping, config, *, trajectory: bool, runtime=None, memory_check: bool = True) -> None:
    """Before a model spec (as saved in run.json) loads: ``config.num_frames`` within its motion module's
    bound, and (``memory_check``) the run's estimate under ``runtime`` within the free memory of the
    device it will use."""
    import torch

    from .method.config import check_num_frames

    footprint = model_footprint(spec.get("model"), checkpoint=spec.get("checkpoint"),
                                motion_adapter=spec.get("motion_adapter"), loras=spec.get("loras") or ())
    check_num_frames(config.num_frames, footprint["max_frames"], "the model's motion module")
    if not memory_check:
        return
    device = torch.device(spec.get("device") or ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype = str(spec.get("dtype") or ("float16" if device.type == "cuda" else "float32")).lower()
    element_size = 4 if dtype.removeprefix("torch.") in ("float32", "fp32") else 2
    scale = 2 ** (len(footprint["vae"]["block_out_channels"]) - 1)
    native = int(footprint["unet"].get("sample_size", 64)) * scale
    image_hw = (config.height or native, config.width or native)
    check_memory(estimate_generation(footprint["unet"], config, image_hw, element_size=element_size,
                                     trajectory=trajectory, vae_config=footprint["vae"], runtime=runtime,
                                     weights=footprint["weights"]), device)
