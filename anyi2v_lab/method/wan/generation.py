"""AnyI2V on a Wan video transformer, end to end (experimental; docs/method.md, "AnyI2V on a video
transformer").

::

    features = invert_flow(condition, prompt)                 # inverse flow ODE to inversion_sigma, no CFG
    z = noise(latent frames)                                  # seeded, as WanPipeline draws it
    for i, t in enumerate(timesteps):                         # flow matching, diffusers' scheduler
        if trajectory and i < opt_steps: z = optimise(z, t)   # sign steps on Eq. 8 over the aligned queries
        v = cfg(transformer(z, t, inject if i < inject_steps))  # frame 0's tokens injected, cond branch
        z = scheduler.step(v, t, z)
    video = vae.decode(z * std + mean)

With injection and optimisation off it is diffusers' ``WanPipeline`` step for step.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ...conditions import Condition, load_condition
from ...hooks import hooked
from ...trajectory import Trajectory
from ..alignment import Alignment, to_model_space
from ..config import ConfigError, check_seed
from ..finite import check_finite
from ..optimize import optimise_latents
from .alignment import WanPassInputs, wan_alignment, wan_passes
from .config import WanAnyI2VConfig
from .injection import injection_edits
from .inversion import WanFeatures, encode_condition, invert_flow, latent_stats


@dataclass(kw_only=True)
class WanRecord:
    """What a run did: the sampling ``timesteps`` and ``sigmas``, the injected hook points, the binned
    model-pixel boxes ``(O, latent frames, 4)`` and their grid cells, and one entry per optimisation
    iteration (``step_index``, ``iteration``, ``loss``, ``count``: the loss's mask weight, 0 = skipped)."""

    timesteps: list[float] = field(default_factory=list)
    sigmas: list[float] = field(default_factory=list)
    injected: list[str] = field(default_factory=list)
    boxes: np.ndarray | None = None
    grid_boxes: np.ndarray | None = None
    iterations: list[dict] = field(default_factory=list)


@dataclass(kw_only=True)
class WanGenerationResult:
    """``video`` ``(F, H, W, 3)`` float in [0, 1] (``frames`` as uint8); ``latents`` the final
    ``(1, 16, latent frames, h, w)``; ``features`` the inverted ones (``None``: no injection)."""

    video: np.ndarray
    latents: torch.Tensor
    record: WanRecord
    config: WanAnyI2VConfig
    seed: int
    features: WanFeatures | None

    @property
    def frames(self) -> np.ndarray:
        return (self.video * 255).round().clip(0, 255).astype(np.uint8)


@dataclass(kw_only=True)
class _Run:
    config: WanAnyI2VConfig
    cond: torch.Tensor
    uncond: torch.Tensor | None
    edits: dict
    alignment: Alignment | None
    record: WanRecord

    def optimises(self, i: int) -> bool:
        return self.alignment is not None and i < self.config.opt_steps and self.alignment.aligned_frames > 0


def token_hw(pipe, config: WanAnyI2VConfig) -> tuple[int, int]:
    """The token grid ``(h, w)`` of one latent frame, checked against the model and ``adain_patch``."""
    s, p = pipe.vae_scale_factor_spatial, pipe.transformer.config.patch_size[1]
    for name in ("height", "width"):
        if getattr(config, name) % (s * p):
            raise ConfigError(f"{name}={getattr(config, name)} must be a multiple of {s * p} for this model "
                              f"(VAE x{s}, {p}x{p} patches)")
    hw = (config.height // (s * p), config.width // (s * p))
    a = config.adain_patch
    if config.injects and config.inject_output and a is not None and (hw[0] % a or hw[1] % a):
        raise ConfigError(f"adain_patch={a} does not tile the {hw[0]}x{hw[1]} token grid of {config.width}x"
                          f"{config.height}; choose a patch dividing both, or adain_patch=None")
    return hw


def generate_wan(pipe, condition, prompt: str, trajectory: Trajectory | None = None,
                 config: WanAnyI2VConfig = WanAnyI2VConfig(), *, negative_prompt: str = "", seed: int = 0,
                 inject: bool = True) -> WanGenerationResult:
    """Generate ``config.num_frames`` frames on a ``WanPipeline`` from a condition image (path, PIL image,
    array or :class:`~anyi2v_lab.conditions.Condition` at ``config``'s size), a prompt and an optional
    trajectory (drawn on the condition or the canvas). ``inject=False`` turns injection off (with no
    trajectory: plain ``WanPipeline`` sampling, bit for bit). Experimental: the defaults are provisional."""
    check_seed(seed)
    config.check_model(pipe.transformer)
    grid = token_hw(pipe, config)
    condition = _canvas_condition(condition, config)
    device, record = pipe.transformer.device, WanRecord()
    alignment = None
    if trajectory is not None:
        alignment, record.boxes = wan_alignment(to_model_space(trajectory, condition), config, grid, device)
        record.grid_boxes = alignment.boxes.numpy()
    guided = config.guidance_scale > 1
    with torch.no_grad():  # as WanPipeline: the text encoder's grad-mode kernels round differently
        cond, uncond = pipe.encode_prompt(prompt, negative_prompt, do_classifier_free_guidance=guided,
                                          max_sequence_length=config.max_sequence_length, device=device)
    features = None
    if inject and config.injects:
        latent = encode_condition(pipe.vae, condition.pixels)
        features = invert_flow(pipe.transformer, latent.to(device), cond, config,
                               pipe.scheduler.config.num_train_timesteps)
    edits = injection_edits(features, config)
    record.injected = sorted(edits)
    z = initial_latents(pipe, config, seed, record)
    run = _Run(config=config, cond=cond, uncond=uncond, edits=edits, alignment=alignment, record=record)
    z = sample(pipe, z, run)
    check_finite(z, "the final latents", "a step overflowed: run the transformer in float32 or bfloat16, or lower lr")
    return WanGenerationResult(video=decode(pipe, z), latents=z, record=record, config=config, seed=seed,
                               features=features)


def _canvas_condition(condition, config: WanAnyI2VConfig) -> Condition:
    if not isinstance(condition, Condition):
        condition = load_condition(condition, size=(config.width, config.height))
    if tuple(condition.size) != (config.width, config.height):
        raise ConfigError(f"the condition is {condition.size[0]}x{condition.size[1]} but the canvas is "
                          f"{config.width}x{config.height}; load it with size=(width, height) of the config")
    return condition


def initial_latents(pipe, config: WanAnyI2VConfig, seed: int, record: WanRecord) -> torch.Tensor:
    """Set the schedule (kept in ``record``) and draw the fp32 starting latent as ``WanPipeline`` does."""
    device = pipe.transformer.device
    pipe.scheduler.set_timesteps(config.num_inference_steps, device=device)
    pipe.scheduler.set_begin_index(0)
    record.timesteps = [float(t) for t in pipe.scheduler.timesteps]
    record.sigmas = [float(s) for s in pipe.scheduler.sigmas[:-1]]
    generator = torch.Generator(device="cpu").manual_seed(seed)
    return pipe.prepare_latents(1, pipe.transformer.config.in_channels, config.height, config.width,
                                config.num_frames, torch.float32, device, generator)


def sample(pipe, z: torch.Tensor, run: _Run) -> torch.Tensor:
    """The sampling loop: before each of the first ``opt_steps`` steps the latent optimisation, then a CFG
    flow-matching step whose conditional call injects into frame 0 in the first ``inject_steps`` steps."""
    model, config = pipe.transformer, run.config
    with hooked(model, edits=run.edits, phase="sampling") as session:
        for i, t in enumerate(pipe.scheduler.timesteps):
            if run.optimises(i):
                with session.suspended():
                    z = optimise_step(model, z, run, i, t)
            with torch.no_grad():
                x, ts = z.to(model.dtype), t.expand(z.shape[0])
                with session.calling(step_index=i, branches=("cond",)):
                    v = session.forward(x, ts, run.cond, return_dict=False)[0]
                if run.uncond is not None:
                    with session.calling(step_index=i, branches=("uncond",)):
                        v_u = session.forward(x, ts, run.uncond, return_dict=False)[0]
                    v = v_u + config.guidance_scale * (v - v_u)
                z = pipe.scheduler.step(v, t, z, return_dict=False)[0]
    return z


def optimise_step(model, z: torch.Tensor, run: _Run, step_index: int, t: torch.Tensor) -> torch.Tensor:
    """``config.opt_iters`` sign steps on the alignment loss before sampling step ``step_index``."""
    inputs = WanPassInputs(transformer=model, edits=run.edits, alignment=run.alignment, config=run.config,
                           embeds=run.cond, timestep=t.expand(1), step_index=step_index)

    def record(it: int, parts, skipped, previews, z_new) -> None:
        run.record.iterations.append(dict(step_index=step_index, iteration=it, loss=float(parts.loss.detach()),
                                          count=float(parts.count)))

    with wan_passes(inputs) as passes:
        return optimise_latents(z.float(), passes, run.config, None, record)


@torch.no_grad()
def decode(pipe, z: torch.Tensor) -> np.ndarray:
    """The final latent through Wan's VAE as ``WanPipeline`` decodes it: ``(F, H, W, 3)`` float32 in [0, 1]."""
    vae = pipe.vae
    z = z.to(vae.device, vae.dtype)
    mean, std = latent_stats(vae, z)
    video = vae.decode(z / (1.0 / std) + mean, return_dict=False)[0]
    check_finite(video, "the decoded frames", "the VAE's decode overflowed: decode in float32")
    return np.asarray(pipe.video_processor.postprocess_video(video, output_type="np")[0], dtype=np.float32)
