"""One call from weights on disk to a ready ``AnimateDiffPipeline`` with a ``UNetMotionModel``.

Sources, checked (paths, kinds, configs, adapter fit, dtype/device) before any weight is loaded:

* ``base``: an SD1.5-family diffusers folder (``unet/ vae/ text_encoder/ tokenizer/``) or hub id; ``None`` is
  the embedded toy model at ``default_model_dir()`` (with its adapter in ``motion_adapter/``).
* ``checkpoint``: one SD1.x file in the original LDM layout (RealisticVision and the like); the parts it holds
  (UNet, VAE, text encoder, any subset) replace the base's, converted with the base folder's configs.
* ``motion_adapter``: AnimateDiff v1/v2/v3 as a diffusers folder, hub id, ``MotionAdapter`` or single file in
  the original layout (``load_motion_adapter``).
* ``loras``: merged into the weights (``anyi2v_lab.models.lora``).

The scheduler is always the reference's DDIM (``ddim_scheduler()``). The adapter's weights live inside
``pipe.unet``; ``pipe.motion_adapter`` is None so that moving the pipeline never copies them twice.
What was loaded is in ``pipe.load_report`` (a ``LoadReport``) and in an INFO log line.
"""
from __future__ import annotations

import json
import logging
import os
import re
import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence
from urllib.parse import urlparse

import torch

from ..io import missing_path_message
from ..method.finite import check_weights, pipeline_parts
from .errors import ModelLoadError
from .lora import LoraSpec, MergedLora, as_lora_spec, merge_lora
from .scheduler import ddim_scheduler
from .singlefile import ANIMATEDIFF_HEADS, assign_weights, convert_ldm_part, ldm_parts, motion_state_dict, read_single

log = logging.getLogger(__name__)

DEFAULT_MODEL_DIR = Path(__file__).resolve().parents[1] / "toy" / "weights"
SD15_HUB_ID = "stable-diffusion-v1-5/stable-diffusion-v1-5"
BASE_PARTS = ("unet", "vae", "text_encoder", "tokenizer")
# Only what is loaded: the SD1.5 repo also holds 4-7 GB root checkpoints and .bin/fp16 duplicates.
_BASE_FILES = ["model_index.json", "*/config.json", "*/diffusion_pytorch_model.safetensors",
               "text_encoder/model.safetensors", "tokenizer/*"]
_ADAPTER_FILES = ["config.json", "diffusion_pytorch_model.safetensors"]
_DTYPES = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16, "fp16": torch.float16,
           "half": torch.float16, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class LoadReport:
    base: str
    checkpoint: str | None
    replaced: tuple[str, ...]  # base parts taken from the checkpoint instead
    motion_adapter: str
    loras: tuple[MergedLora, ...]
    dtype: torch.dtype
    device: str
    seconds: float


def default_model_dir() -> Path:
    """Where the embedded toy model lives (``base=None``): a base folder plus ``motion_adapter/``."""
    return DEFAULT_MODEL_DIR


def _device_dtype(device, dtype, allow_half_on_cpu: bool) -> tuple[torch.device, torch.dtype]:
    try:
        dev = torch.device(device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu"))
    except (RuntimeError, TypeError) as e:
        raise ModelLoadError(f"device={device!r} is not a torch device: use 'cpu' or 'cuda'") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(f"device={device!r} but CUDA is not available here (torch {torch.__version__}, CUDA "
                             f"build: {torch.version.cuda}); use device='cpu' or run on a GPU machine")
    if isinstance(dtype, str):
        dtype = _DTYPES.get(dtype.lower().removeprefix("torch."), dtype)
    dtype = dtype if dtype is not None else (torch.float16 if dev.type == "cuda" else torch.float32)
    if dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise ModelLoadError(f"dtype={dtype!r}: use torch.float32, torch.float16 or torch.bfloat16")
    if dev.type == "cpu" and dtype != torch.float32 and not allow_half_on_cpu:
        raise ModelLoadError(f"dtype={dtype} on device='cpu': half precision on CPU is slow and partly unsupported; "
                             f"use dtype=torch.float32 (the CPU default), or pass allow_half_on_cpu=True")
    return dev, dtype


def _why_no_hub(timeout: float = 3.0) -> str | None:
    """Why nothing can be downloaded, or None. The TCP probe runs in a thread with a timeout: without network,
    a download can stall ~20 s in DNS retries before failing. Behind a proxy the probe is skipped."""
    from huggingface_hub import constants

    env = os.environ.get("HF_HUB_OFFLINE", "").upper()
    if env in {"1", "ON", "YES", "TRUE"} or (env == "" and constants.HF_HUB_OFFLINE):
        return "HF_HUB_OFFLINE=1 is set"
    if os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy"):
        return None
    ok = []

    def probe():
        try:
            socket.create_connection((urlparse(constants.ENDPOINT).hostname, 443), timeout=timeout).close()
            ok.append(True)
        except OSError:
            pass

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout + 1)
    return None if ok else f"{constants.ENDPOINT} cannot be reached (no network)"


def _missing(role: str, path: Path) -> ModelLoadError:
    return ModelLoadError(missing_path_message(f"{role}={str(path)!r}", path))


def _resolve(value, role: str, hub_files: list[str] | None) -> Path:
    """A local path for ``value``: an existing path, or (``hub_files`` given) a hub repo from the local cache or
    downloaded. Hub ids fail fast when offline."""
    path = Path(value).expanduser()
    if path.exists():
        return path
    text = str(value)
    if not re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", text) or text.endswith((".safetensors", ".ckpt", ".pt", ".bin")):
        raise _missing(role, path)
    if hub_files is None:
        raise ModelLoadError(f"{role}={text!r} is not a local file (a hub id?): give the path of a downloaded file")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(text, allow_patterns=hub_files, local_files_only=True))
    except Exception:  # not in the local cache
        pass
    why = _why_no_hub()
    if why:
        raise ModelLoadError(f"{role}={text!r} is not a local path and looks like a Hugging Face Hub id, but {why}: "
                             f"no weights can be downloaded here. Give a local folder or file instead (download it "
                             f"where there is network, e.g. `hf download {text}`)")
    try:
        return Path(snapshot_download(text, allow_patterns=hub_files))
    except Exception as e:
        raise ModelLoadError(f"{role}={text!r}: downloading from the hub failed ({e}); give a local folder") from e


def _config(folder: Path) -> dict:
    try:
        return json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return {}


def _check_base(base: Path) -> dict:
    """The base folder's UNet config, after checking the folder's shape."""
    if base.is_file():
        raise ModelLoadError(f"base={str(base)!r} is a file: give a diffusers folder (unet/, vae/, text_encoder/, "
                             f"tokenizer/); a single-file SD1.x model goes in checkpoint=, next to such a base")
    if _config(base).get("_class_name") == "MotionAdapter":
        raise ModelLoadError(f"base={str(base)!r} is a motion adapter folder: pass it as motion_adapter=")
    missing = [p + "/" for p in BASE_PARTS if not (base / p).is_dir()]
    if missing:
        raise ModelLoadError(f"base={str(base)!r} is not an SD1.5 diffusers folder: it has no {', '.join(missing)} "
                             f"(expected unet/, vae/, text_encoder/, tokenizer/ as in a snapshot of {SD15_HUB_ID})")
    unet_cfg = _config(base / "unet")
    if unet_cfg.get("_class_name") == "UNetMotionModel":
        raise ModelLoadError(f"base={str(base)!r} holds a UNetMotionModel (a saved AnimateDiffPipeline): load it "
                             f"with AnimateDiffPipeline.from_pretrained, or save its UNet2D and adapter separately")
    return unet_cfg


def _check_weights(base: Path, parts, allow_pickle: bool) -> None:
    for part in parts:
        if not any((base / part).glob("*.safetensors")) and not any((base / part).glob("*.bin")):
            raise ModelLoadError(f"base={str(base)!r}: {part}/ has no weights file (.safetensors or .bin)")
        _refuse_pickled(base / part, "base", allow_pickle)


def _refuse_pickled(folder: Path, role: str, allow_pickle: bool) -> None:
    """A folder whose weights are only pickles (``.bin``; diffusers and transformers prefer a
    ``.safetensors`` beside one) is refused before anything is read, unless ``allow_pickle``."""
    pickled = sorted(folder.glob("*.bin"))
    if allow_pickle or not pickled or any(folder.glob("*.safetensors")):
        return
    raise ModelLoadError(f"{role}: {str(pickled[0])!r} is a pickled weights file and {str(folder)!r} has no "
                         f".safetensors; reading a pickle can run code stored in it. Convert it once to "
                         f".safetensors, or, only if you trust its source, pass allow_pickle=True (--allow-pickle)")


def _check_adapter_folder(path: Path) -> dict:
    config = _config(path)
    if config.get("_class_name") != "MotionAdapter":
        hint = "; it looks like a base model folder: pass it as base=" if (path / "unet").is_dir() else ""
        raise ModelLoadError(f"motion_adapter={str(path)!r} is not a MotionAdapter folder (its config.json has no "
                             f"_class_name 'MotionAdapter'){hint}")
    return config


def load_motion_adapter(source, *, num_attention_heads: int | None = None, norm_num_groups: int = 32,
                        dtype: torch.dtype = torch.float32, allow_pickle: bool = False, sd: dict | None = None):
    """A ``MotionAdapter`` from a diffusers folder, hub id, or single file (original AnimateDiff layout or
    diffusers keys). A single file does not record heads or norm groups: ``num_attention_heads`` defaults to
    AnimateDiff's 8, ``norm_num_groups`` to 32 (inside a UNetMotionModel the UNet's own groups are used)."""
    from accelerate import init_empty_weights
    from diffusers import MotionAdapter

    if sd is None:
        path = _resolve(source, "motion_adapter", _ADAPTER_FILES)
        if path.is_dir():
            _check_adapter_folder(path)
            _refuse_pickled(path, "motion_adapter", allow_pickle)
            return MotionAdapter.from_pretrained(path, torch_dtype=dtype).eval()
        sd = read_single(path, "motion_adapter", "motion", allow_pickle)
    weights, config = motion_state_dict(sd)
    heads = num_attention_heads or ANIMATEDIFF_HEADS
    if any(c % heads or c % norm_num_groups for c in config["block_out_channels"]):
        raise ModelLoadError(f"motion_adapter={str(source)!r}: channels {config['block_out_channels']} are not "
                             f"divisible by num_attention_heads={heads} and norm_num_groups={norm_num_groups}; "
                             f"pass the values the adapter was trained with")
    with init_empty_weights():
        adapter = MotionAdapter(**config, motion_num_attention_heads=heads, motion_norm_num_groups=norm_num_groups)
    return assign_weights(adapter, weights, dtype=dtype, what=f"motion_adapter={str(source)!r}")


def _fit(adapter_cfg: dict, unet_cfg: dict, what: str) -> None:
    def layers(cfg, key):
        n = cfg[key]
        return tuple(n) if isinstance(n, (list, tuple)) else (n,) * len(cfg["block_out_channels"])

    a = tuple(adapter_cfg["block_out_channels"]), layers(adapter_cfg, "motion_layers_per_block")
    u = tuple(unet_cfg["block_out_channels"]), layers(unet_cfg, "layers_per_block")
    if a != u:
        raise ModelLoadError(f"motion_adapter={what!r} does not fit the base UNet: adapter block channels {a[0]} "
                             f"with layers {a[1]}, UNet block channels {u[0]} with layers {u[1]}. SD1.5 AnimateDiff "
                             f"adapters (v1/v2/v3) need an SD1.5-family base")


def _load_part(part: str, base: Path, ckpt: dict | None, dtype, ckpt_name: str | None):
    """One of unet / vae / text_encoder: from the checkpoint (converted with the base's config) if it holds
    that part, else from the base folder."""
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    if ckpt is None:
        if part == "text_encoder":
            return CLIPTextModel.from_pretrained(base / part, dtype=dtype).eval()
        cls = UNet2DConditionModel if part == "unet" else AutoencoderKL
        has_plain = any((base / part).glob("diffusion_pytorch_model.safetensors")) or any((base / part).glob("*.bin"))
        variant = None if has_plain or not any((base / part).glob("*.fp16.safetensors")) else "fp16"
        return cls.from_pretrained(base, subfolder=part, torch_dtype=dtype, variant=variant).eval()
    with init_empty_weights():
        if part == "text_encoder":
            model = CLIPTextModel(CLIPTextConfig.from_pretrained(base / part))
        else:
            cls = UNet2DConditionModel if part == "unet" else AutoencoderKL
            model = cls.from_config(cls.load_config(base, subfolder=part))
    config = getattr(model, "config", None)
    weights = convert_ldm_part(ckpt, part, dict(config) if part != "text_encoder" else {},
                               flat_clip=not hasattr(model, "text_model"))
    return assign_weights(model, weights, dtype=dtype,
                          what=f"checkpoint={ckpt_name!r}: its {part} vs {base / part / 'config.json'}")


@contextmanager
def _weight_loading_bars(progress: bool):
    """transformers draws a bar while it loads weights; ``progress=False`` hides it for the load only."""
    from transformers.utils import logging as transformers_logging
    was_on = transformers_logging.is_progress_bar_enabled()
    if not progress:
        transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_on:
            transformers_logging.enable_progress_bar()


def _sources(base, checkpoint, motion_adapter, specs):
    """Where each part comes from, every path checked before any file is read: ``(base folder, checkpoint
    file or None, the adapter as given, the adapter's path or MotionAdapter)``."""
    from diffusers import MotionAdapter

    if base is None:
        base_path = default_model_dir()
        if not base_path.is_dir():
            raise ModelLoadError(f"base=None means the embedded toy model in {str(base_path)!r}, but the default "
                                 f"weights are not installed there; pass base= a local SD1.5 diffusers folder (with "
                                 f"motion_adapter=), or install the toy weights")
    else:
        base_path = _resolve(base, "base", _BASE_FILES)
    ckpt_path = None if checkpoint is None else _resolve(checkpoint, "checkpoint", None)
    for spec in specs:
        if not spec.path.is_file():
            raise _missing("loras", spec.path) if not spec.path.exists() else ModelLoadError(
                f"loras: {str(spec.path)!r} is a folder; give the LoRA's .safetensors file")
    if motion_adapter is None:
        if not (base_path / "motion_adapter").is_dir():
            raise ModelLoadError(f"a motion adapter is required with base={str(base)!r}: pass motion_adapter= an "
                                 f"AnimateDiff v1/v2/v3 folder, hub id or .ckpt/.safetensors file "
                                 f"(e.g. v3_sd15_mm.ckpt)")
        motion_adapter = base_path / "motion_adapter"
    adapter_src = motion_adapter if isinstance(motion_adapter, MotionAdapter) else \
        _resolve(motion_adapter, "motion_adapter", _ADAPTER_FILES)
    return base_path, ckpt_path, motion_adapter, adapter_src


def _assemble(parts: dict, adapter, adapter_src, base_path: Path, dtype):
    """The pipeline of loaded parts: the UNet and the adapter's motion modules made one ``UNetMotionModel``
    (a caller's adapter is cloned, so merging a motion LoRA leaves it unchanged), the reference's DDIM."""
    from accelerate import init_empty_weights
    from diffusers import AnimateDiffPipeline, UNetMotionModel
    from transformers import CLIPTokenizer

    with init_empty_weights():
        unet = UNetMotionModel.from_unet2d(parts["unet"], adapter, load_weights=False)
    # clone a caller's adapter: merging a motion LoRA must not change it
    motion = {k: v.clone() if adapter is adapter_src else v for k, v in adapter.state_dict().items()}
    unet = assign_weights(unet, {**parts["unet"].state_dict(), **motion}, dtype=dtype, what="UNet + motion adapter")
    return AnimateDiffPipeline(vae=parts["vae"], text_encoder=parts["text_encoder"],
                               tokenizer=CLIPTokenizer.from_pretrained(base_path / "tokenizer"), unet=unet,
                               motion_adapter=None, scheduler=ddim_scheduler())


def load_pipeline(base: str | os.PathLike | None = None, *, checkpoint: str | os.PathLike | None = None,
                  motion_adapter=None, loras: Sequence[LoraSpec | tuple | str | os.PathLike] = (),
                  dtype: torch.dtype | str | None = None, device: str | torch.device | None = None,
                  allow_pickle: bool = False, allow_half_on_cpu: bool = False, progress: bool = True):
    """An ``AnimateDiffPipeline`` (``UNetMotionModel``, DDIM of the reference) from the sources in the module
    docstring. ``dtype`` defaults to float16 on CUDA and float32 on CPU; ``device`` to CUDA when available.
    ``allow_pickle=True`` lets ``.ckpt/.pt/.pth/.bin`` files be fully unpickled, which runs code stored in them:
    unsafe, only for trusted files. ``progress=False`` turns the pipeline's progress bars off. Weights holding a
    NaN or an infinity raise :class:`~anyi2v_lab.method.finite.NonFiniteError` naming the first."""
    from diffusers import MotionAdapter

    start = time.perf_counter()
    dev, dtype = _device_dtype(device, dtype, allow_half_on_cpu)
    specs = [as_lora_spec(x) for x in ([loras] if isinstance(loras, (str, os.PathLike, LoraSpec)) else loras)]
    base_path, ckpt_path, motion_adapter, adapter_src = _sources(base, checkpoint, motion_adapter, specs)

    unet_cfg = _check_base(base_path)  # cheap checks first, then the files are read
    if isinstance(adapter_src, MotionAdapter):
        _fit(dict(adapter_src.config), unet_cfg, "MotionAdapter instance")
    elif adapter_src.is_dir():
        _fit(_check_adapter_folder(adapter_src), unet_cfg, str(adapter_src))
        _refuse_pickled(adapter_src, "motion_adapter", allow_pickle)
    ckpt = None if ckpt_path is None else read_single(ckpt_path, "checkpoint", "ldm", allow_pickle)
    replaced = ldm_parts(ckpt) if ckpt is not None else ()
    _check_weights(base_path, [p for p in ("unet", "vae", "text_encoder") if p not in replaced], allow_pickle)
    adapter_sd = None
    if not isinstance(adapter_src, MotionAdapter) and adapter_src.is_file():
        adapter_sd = read_single(adapter_src, "motion_adapter", "motion", allow_pickle)
        _fit(motion_state_dict(adapter_sd)[1], unet_cfg, str(motion_adapter))
    lora_sds = [read_single(s.path, "loras", "lora", allow_pickle) for s in specs]

    with _weight_loading_bars(progress):
        parts = {p: _load_part(p, base_path, ckpt if p in replaced else None, dtype, str(ckpt_path))
                 for p in ("unet", "vae", "text_encoder")}
    if isinstance(adapter_src, MotionAdapter):
        adapter = adapter_src
    else:
        adapter = load_motion_adapter(adapter_src, norm_num_groups=unet_cfg.get("norm_num_groups", 32), dtype=dtype,
                                      allow_pickle=allow_pickle, sd=adapter_sd)
    pipe = _assemble(parts, adapter, adapter_src, base_path, dtype)
    pipe.to(dev)
    sources = f"base={str(base_path)!r}" + (f", checkpoint={str(ckpt_path)!r}" if ckpt_path else "")
    check_weights(pipeline_parts(pipe), f"(loaded from {sources}, motion_adapter={str(motion_adapter)!r})")
    merged = tuple(merge_lora(pipe, s, sd=sd) for s, sd in zip(specs, lora_sds))
    pipe.set_progress_bar_config(disable=not progress)
    adapter_name = "MotionAdapter instance" if adapter is adapter_src else str(motion_adapter)
    pipe.load_report = LoadReport(base=str(base_path), checkpoint=ckpt_path and str(ckpt_path), replaced=replaced,
                                  motion_adapter=adapter_name, loras=merged, dtype=dtype, device=str(dev),
                                  seconds=time.perf_counter() - start)
    log.info("loaded %s%s; motion adapter %s; %d LoRA(s); %s on %s in %.1f s", base_path,
             f" with {', '.join(replaced)} from {ckpt_path}" if replaced else "", adapter_name, len(merged), dtype,
             dev, pipe.load_report.seconds)
    return pipe


def default_or_tiny(device: str = "cpu"):
    """``(pipeline, label)``: the embedded toy model, or the tiny random model (clearly labelled) when
    the toy weights are not installed. For notebooks and docs that must run anywhere."""
    if (default_model_dir() / "unet").is_dir():
        return load_pipeline(device=device, progress=False), "the embedded toy model (trained weights)"
    from .tiny import tiny_pipeline
    return tiny_pipeline(), ("the TINY RANDOM model (toy weights not installed): images are noise, only the "
                             "mechanics mean something")
