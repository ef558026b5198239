"""The AnyI2V generation loop (spec 3.5).

::

    features = invert(condition, prompt)                       # 201 single-frame UNet calls
    z = noise(16 frames)                                       # seeded, as diffusers' pipeline draws it
    for i, t in enumerate(timesteps):                          # 961 ... 1
        if trajectory and i <= opt_step: z = optimise(z, t)    # 5 sign steps, truncated cond-only UNet
        eps = cfg(unet([z, z], t, inject if i <= load_feature_step))
        z = ddim_step(eps, t, z)
    video = vae.decode(z)

With injection and optimisation off it is diffusers' ``AnimateDiffPipeline`` step for step.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..accel import (PhaseTimer, Runtime, backend_settings, compiled_regions, decode_video, hooked_modules,
                     prepare_layout, timestep_tensor, unet_graph)
from ..conditions import Condition, load_condition
from ..hooks import ActivationCache, CallInfo, Capture, hooked, merge_edits
from ..hooks.cache import names_of
from ..layout import per_frame
from ..trajectory import Trajectory
from .alignment import build_alignment, layer_shapes, to_model_space
from .config import AnyI2VConfig, ConfigError
from .features import FeatureBank
from .injection import injection_active, injection_edits
from .inversion import invert_cached
from .opt_graph import fit_streams
from .optimize import capture_sites, optimise_latents
from .record import InspectionRecord


@dataclass
class GenerationResult:
    """``video`` ``(F, H, W, 3)`` float in [0, 1]; ``frames`` the same as uint8."""

    video: np.ndarray
    latents: torch.Tensor
    record: InspectionRecord
    config: AnyI2VConfig
    seed: int
    prompt: str
    negative_prompt: str
    condition: Condition
    trajectory: Trajectory | None
    features: FeatureBank | None
    cache: ActivationCache | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def frames(self) -> np.ndarray:
        return (self.video * 255).round().clip(0, 255).astype(np.uint8)


def model_size(pipe, config: AnyI2VConfig) -> tuple[int, int]:
    """``(H, W)`` of the canvas: the config's, or the model's native size (512 for SD1.5)."""
    native = pipe.unet.config.sample_size * pipe.vae_scale_factor
    return (config.height or native, config.width or native)


def check_inputs(pipe, config: AnyI2VConfig, image_hw: tuple[int, int]) -> tuple[int, int]:
    """Every cheap check before any expensive work; returns the latent size."""
    H, W = image_hw
    down = pipe.vae_scale_factor * 2 ** (len(pipe.unet.down_blocks) - 1)
    if H % down or W % down:
        raise ConfigError(f"image size {W}x{H} must be a multiple of {down} for this model "
                          f"(VAE x{pipe.vae_scale_factor}, {len(pipe.unet.down_blocks)} UNet levels)")
    latent_hw = (H // pipe.vae_scale_factor, W // pipe.vae_scale_factor)
    if config.inject_residual and config.adain_patch is not None:
        for layer, (h, w) in zip(config.res_layers, layer_shapes(pipe.unet, config.res_layers, latent_hw)):
            if h % config.adain_patch or w % config.adain_patch:
                raise ConfigError(f"adain_patch={config.adain_patch} does not tile {layer}'s {h}x{w} map at "
                                  f"{W}x{H}; choose a patch dividing {h} and {w}, or adain_patch=None")
    if config.inject_query or config.kv_consistency:
        layer_shapes(pipe.unet, config.attn_layers, latent_hw)
    if config.eta and "variance_noise" not in inspect.signature(pipe.scheduler.step).parameters:
        raise ConfigError(f"eta={config.eta} needs a DDIM scheduler, but the pipeline has "
                          f"{type(pipe.scheduler).__name__}; set eta=0 or use DDIMScheduler")
    return latent_hw


def generate(pipe, condition, prompt: str, trajectory: Trajectory | None = None,
             config: AnyI2VConfig = AnyI2VConfig(), *, negative_prompt: str = "", seed: int = 0,
             progress: bool = True, keep_masks: bool = False, keep_pca: bool = False,
             keep_latents: bool = False,
             capture: Capture | None = None, edits: dict | None = None,
             features: FeatureBank | None = None, inject: bool = True,
             runtime: Runtime | None = None) -> GenerationResult:
    """Generate a video from a condition image (path, PIL image, array or :class:`Condition`), a
    prompt and optional trajectories.

    ``capture``/``edits`` add the caller's own hook points to the sampling forwards (see
    :mod:`anyi2v_lab.hooks`); ``features`` skips inversion with a precomputed bank; ``inject=False``
    turns injection off (with no trajectory this is plain AnimateDiff sampling). ``runtime``
    (:class:`~anyi2v_lab.accel.Runtime`) chooses how fast and lean to run, never what is computed.
    ``record.timings`` holds seconds per phase (device time on CUDA) and ``total``. ``keep_masks``,
    ``keep_pca`` and ``keep_latents`` store each optimisation iteration's loss masks, PCA maps and
    updated latent in ``record.iterations`` (for notebooks and plots).
    """
    from tqdm.auto import tqdm

    unet, device = pipe.unet, pipe.unet.device
    runtime = runtime or Runtime()
    runtime.check_device(device)
    image_hw = model_size(pipe, config)
    latent_hw = check_inputs(pipe, config, image_hw)
    if not isinstance(condition, Condition):
        condition = load_condition(condition, size=(image_hw[1], image_hw[0]), policy=config.resize_policy)
    if tuple(condition.size) != (image_hw[1], image_hw[0]):
        raise ConfigError(f"the condition is {condition.size[0]}x{condition.size[1]} but the model canvas is "
                          f"{image_hw[1]}x{image_hw[0]}; load it with size=(W, H) of the canvas")
    record = InspectionRecord()
    alignment = None
    if trajectory is not None:
        trajectory = to_model_space(trajectory, condition)
        shapes = layer_shapes(unet, config.align_layers, latent_hw)
        alignment, boxes = build_alignment(trajectory, config, image_hw, latent_hw, shapes, device)
        record.boxes, record.grid_boxes = boxes, alignment.boxes.cpu().numpy()
        record.grid_size = alignment.grid

    cfg = config.guidance_scale > 1
    prepare_layout(pipe, runtime)
    timer = PhaseTimer(device)
    with timer.phase("total"), backend_settings(runtime, device):
        cond, uncond = pipe.encode_prompt(prompt, device, 1, cfg, negative_prompt)
        # the host waits for the device in these reads, the latents' upload and cuSOLVER's loading:
        # done before the inversion, they do not wait for its queued kernels (CUDA's sync debug mode
        # listed them, benchmarks/results/h100_fresh_profile_syncs.json)
        pipe.scheduler.set_timesteps(config.num_inference_steps, device=device)
        timesteps = [int(t) for t in pipe.scheduler.timesteps]
        generator = torch.Generator(device="cpu").manual_seed(seed)
        F_ = config.num_frames
        z = pipe.prepare_latents(1, unet.config.in_channels, F_, image_hw[0], image_hw[1], cond.dtype, device,
                                 generator).float()
        # eta's noise, drawn up front from the same CPU generator: the video is the same on every device,
        # and no step waits for a host-to-device copy
        step_noise = torch.randn((len(timesteps), *z.shape), generator=generator).to(device) if config.eta else None
        if alignment is not None:
            fit_streams(runtime, config, device)
        bank = features
        needs_bank = inject and (config.inject_residual or config.inject_query)
        with timer.phase("inversion"):
            if bank is None and needs_bank:
                bank = invert_cached(pipe, condition.pixels, prompt, cond, config, progress=progress, runtime=runtime)

        record.timesteps = timesteps
        inject_edits = injection_edits(bank, config) if inject and config.injects else {}
        sample_embeds = per_frame(torch.cat([uncond, cond]) if cfg else cond, F_)
        opt_embeds = per_frame(cond, F_)
        branches = ("uncond", "cond") if cfg else ("cond",)
        all_edits = merge_edits(inject_edits, edits)
        # blocks holding any hook of this run stay eager; the others may run compiled
        hooked_names = [*all_edits, *names_of(capture), *(capture_sites(config) if alignment else [])]
        held = hooked_modules(unet, hooked_names)
        # steps where no hook of this run fires may replay one captured CFG step
        graph_steps = runtime.graphs_sampling(device) and not edits and capture is None
        injecting = injection_active(config)
        with hooked(unet, edits=all_edits, capture=capture, phase="sampling") as session:
            for i, t in enumerate(tqdm(timesteps, desc="sampling", disable=not progress, leave=False)):
                if alignment is not None and i <= config.opt_step:
                    with timer.phase("optimisation"), session.suspended(), \
                            compiled_regions(unet, runtime, "optimisation", held):
                        z = optimise_latents(unet, z, t, i, opt_embeds, inject_edits, alignment, config, record,
                                             keep_masks, keep_pca, runtime=runtime, keep_latents=keep_latents,
                                             bank=bank if inject_edits else None)
                with timer.phase("sampling"), torch.no_grad(), compiled_regions(unet, runtime, "sampling", held), \
                        session.calling(timestep=t, step_index=i, branches=branches):
                    model_in = torch.cat([z, z]) if cfg else z
                    model_in = pipe.scheduler.scale_model_input(model_in, t)
                    args = (model_in.to(unet.dtype), timestep_tensor(t, device), sample_embeds)
                    if graph_steps and not (inject_edits and injecting(CallInfo(step_index=i, phase="sampling"))):
                        with session.suspended():
                            eps = unet_graph(unet, "sampling", args, runtime, "sampling", held)(*args).float()
                    else:
                        eps = unet(args[0], args[1], encoder_hidden_states=args[2]).sample.float()
                    if cfg:
                        eps_u, eps_c = eps.chunk(2)
                        eps = eps_u + config.guidance_scale * (eps_c - eps_u)
                    z = pipe.scheduler.step(eps, t, z, eta=config.eta, variance_noise=None if step_noise is None
                                            else step_noise[i]).prev_sample
        with timer.phase("decode"):
            video = decode_video(pipe, z, runtime.decode_chunk_size(F_))
            video = pipe.video_processor.postprocess_video(video=video, output_type="np")[0]
    record.timings.update(timer.totals())
    record.finalise()
    return GenerationResult(np.asarray(video, dtype=np.float32), z, record, config, seed, prompt, negative_prompt,
                            condition, trajectory, bank, session.cache if capture is not None else None)
