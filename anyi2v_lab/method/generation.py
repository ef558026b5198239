"""The AnyI2V generation loop (docs/method.md §§3-4).

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
from typing import Any, Callable

import numpy as np
import torch

from ..conditions import Condition, load_condition
from ..hooks import ActivationCache, Capture, hooked, merge_edits
from ..layout import per_frame
from ..resources import check_memory, estimate_generation
from ..trajectory import Trajectory
from .alignment import Alignment, build_alignment, layer_shapes, to_model_space
from .calls import EagerCalls
from .config import AnyI2VConfig, ConfigError, check_num_frames, check_seed
from .feature_bank import FeatureBank
from .finite import FiniteTrail, check_finite, check_weights, pipeline_parts
from .injection import injection_edits
from .inversion import InversionCache, check_bank, invert_cached, shared_inversion_cache
from .optimize import PassInputs, iteration_recorder, optimise_latents
from .record import InspectionRecord, x0_recorder


@dataclass(kw_only=True)
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
    check_num_frames(config.num_frames, pipe.unet.config.get("motion_max_seq_length"), "this model's motion module")
    if config.inverts and config.inject_residual and config.adain_patch is not None:
        for layer, (h, w) in zip(config.res_layers, layer_shapes(pipe.unet, config.res_layers, latent_hw)):
            if h % config.adain_patch or w % config.adain_patch:
                raise ConfigError(f"adain_patch={config.adain_patch} does not tile {layer}'s {h}x{w} map at "
                                  f"{W}x{H}; choose a patch dividing {h} and {w}, or adain_patch=None")
    if config.injects and (config.inject_query or config.kv_consistency):
        layer_shapes(pipe.unet, config.attn_layers, latent_hw)
    if config.eta and "variance_noise" not in inspect.signature(pipe.scheduler.step).parameters:
        raise ConfigError(f"eta={config.eta} needs a DDIM scheduler, but the pipeline has "
                          f"{type(pipe.scheduler).__name__}; set eta=0 or use DDIMScheduler")
    return latent_hw


def generate(pipe, condition, prompt: str, trajectory: Trajectory | None = None,
             config: AnyI2VConfig = AnyI2VConfig(), *, negative_prompt: str = "", seed: int = 0,
             progress: bool = True, keep_masks: bool = False, keep_pca: bool = False,
             keep_latents: bool = False, keep_x0: bool = False,
             capture: Capture | None = None, edits: dict | None = None,
             features: FeatureBank | None = None, inject: bool = True,
             runtime=None, memory_check: bool = True,
             inversion_cache: InversionCache | None = shared_inversion_cache) -> GenerationResult:
    """Generate a video from a condition image (path, PIL image, array or :class:`Condition`), a
    prompt and optional trajectories.

    ``capture``/``edits`` add the caller's own hook points to the sampling forwards (:mod:`anyi2v_lab.hooks`);
    ``features`` skips inversion with a precomputed bank; ``inject=False`` turns injection off (with no
    trajectory this is plain AnimateDiff sampling). ``runtime`` (:class:`~anyi2v_lab.accel.Runtime`, or
    anything whose ``bind(pipe)`` gives :class:`~anyi2v_lab.method.calls.EagerCalls`' methods) chooses how
    fast and lean to run, never what is computed (``config.loss_scale`` scales the optimisation backward
    either way; a runtime's batched loss equals the plain Eq. 8 to float rounding); ``None`` runs the eager
    calls and records no timings. ``keep_masks``, ``keep_pca`` and ``keep_latents`` store each optimisation
    iteration's loss masks, PCA maps and updated latent in ``record.iterations``; ``keep_x0`` the decoded
    predicted clean video of every inversion, optimisation and sampling step in ``record.x0``
    (:class:`~anyi2v_lab.method.record.X0`), bypassing the feature cache, one VAE decode a kept step.
    ``inversion_cache``: the process's shared cache by default, ``None`` for none
    (:func:`~anyi2v_lab.method.inversion.clear_inversion_cache` empties the shared one).

    A NaN or an infinity in the weights, the inverted features, a loss, the latents or the frames raises
    :class:`~anyi2v_lab.method.finite.NonFiniteError` at the end of that phase, naming where it first
    appeared. A trajectory with nothing to align (one frame, or every box off the image after frame 0)
    warns and runs with injection only. ``memory_check=False`` runs where the estimate of
    :mod:`anyi2v_lab.resources` exceeds the device's free memory (else a ``MemoryLimitError``).
    """
    image_hw, latent_hw = _checked_sizes(pipe, config, seed, trajectory is not None, runtime, memory_check)
    calls = EagerCalls(pipe) if runtime is None else runtime.bind(pipe)
    condition = _canvas_condition(condition, config, image_hw)
    record = InspectionRecord()
    on_step = x0_recorder(record, _frames_decoder(pipe, calls), pipe.scheduler.alphas_cumprod) if keep_x0 else None
    trajectory, alignment = _alignment(pipe, trajectory, condition, config, image_hw, latent_hw, record)
    optimises = alignment is not None and config.optimisation and alignment.aligned_frames > 0
    with calls.phase("total"), calls.running(config, optimises):
        check_weights(pipeline_parts(pipe))
        cond, uncond = pipe.encode_prompt(prompt, pipe.unet.device, 1, config.guidance_scale > 1, negative_prompt)
        z, step_noise = initial_noise(pipe, config, cond.dtype, image_hw, seed, record)
        bank = features if features is None else check_bank(features)
        with calls.phase("inversion"):
            if bank is None and inject and config.inverts:
                bank = invert_cached(pipe, condition.pixels, prompt, cond, config, progress=progress,
                                     denoiser=calls.inversion_denoiser, callback=on_step, cache=inversion_cache)
        inject_edits = injection_edits(bank, config) if inject and config.injects else {}
        run = Sampling(config=config, cond=cond, uncond=uncond, alignment=alignment, bank=bank,
                       inject_edits=inject_edits, edits=edits, capture=capture, step_noise=step_noise, record=record,
                       progress=progress, keep_masks=keep_masks, keep_pca=keep_pca, keep_latents=keep_latents,
                       callback=on_step)
        z, session = denoise(pipe, calls, z, run)
        video = decoded_video(pipe, calls, z)
    record.timings.update(calls.timings())
    record.finalise()
    return GenerationResult(video=video, latents=z, record=record, config=config,
                            seed=seed, prompt=prompt, negative_prompt=negative_prompt, condition=condition,
                            trajectory=trajectory, features=bank, cache=session.cache if capture is not None else None)


def _checked_sizes(pipe, config: AnyI2VConfig, seed: int, has_trajectory: bool, runtime,
                   memory_check: bool) -> tuple[tuple[int, int], tuple[int, int]]:
    """The image and latent ``(h, w)`` of a run, after the checks that need no work: the seed, the sizes
    against the model and, with ``memory_check``, the estimated peak memory (:mod:`anyi2v_lab.resources`)
    against the device's free memory."""
    check_seed(seed)
    image_hw = model_size(pipe, config)
    latent_hw = check_inputs(pipe, config, image_hw)
    if memory_check:
        check_memory(estimate_generation(pipe.unet.config, config, image_hw, element_size=pipe.unet.dtype.itemsize,
                                         trajectory=has_trajectory, vae_config=pipe.vae.config, runtime=runtime),
                     pipe.unet.device)
    return image_hw, latent_hw


def decoded_video(pipe, calls, z: torch.Tensor) -> np.ndarray:
    """The final latent ``(1, 4, F, h, w)`` decoded through the run's decode call: ``(F, H, W, 3)`` float32
    in [0, 1]. Non-finite frames raise :class:`~anyi2v_lab.method.finite.NonFiniteError`."""
    with calls.phase("decode"):
        video = calls.decode(z)
        check_finite(video, "the decoded frames", "the VAE's decode overflowed (in float16, decode in float32)"
                     " or its weights are damaged")
        video = pipe.video_processor.postprocess_video(video=video, output_type="np")[0]
    return np.asarray(video, dtype=np.float32)


def _frames_decoder(pipe, calls) -> Callable[[torch.Tensor], np.ndarray]:
    """``decode(latent (1, 4, F, h, w)) -> (F, H, W, 3)`` uint8, through the run's own decode call."""
    def decode(latent: torch.Tensor) -> np.ndarray:
        video = pipe.video_processor.postprocess_video(video=calls.decode(latent), output_type="np")[0]
        return (np.asarray(video) * 255).round().clip(0, 255).astype(np.uint8)
    return decode


def _alignment(pipe, trajectory: Trajectory | None, condition: Condition, config: AnyI2VConfig, image_hw, latent_hw,
               record: InspectionRecord) -> tuple[Trajectory | None, Alignment | None]:
    """The trajectory in model pixels and its :class:`Alignment` (boxes kept in ``record``), or ``None``s."""
    if trajectory is None:
        return None, None
    trajectory = to_model_space(trajectory, condition)
    shapes = layer_shapes(pipe.unet, config.align_layers, latent_hw)
    alignment, boxes = build_alignment(trajectory, config, image_hw, latent_hw, shapes, pipe.unet.device)
    record.boxes, record.grid_boxes = boxes, alignment.boxes.cpu().numpy()
    record.grid_size = alignment.grid
    return trajectory, alignment


def _canvas_condition(condition, config: AnyI2VConfig, image_hw: tuple[int, int]) -> Condition:
    if not isinstance(condition, Condition):
        condition = load_condition(condition, size=(image_hw[1], image_hw[0]), policy=config.resize_policy)
    if tuple(condition.size) != (image_hw[1], image_hw[0]):
        raise ConfigError(f"the condition is {condition.size[0]}x{condition.size[1]} but the model canvas is "
                          f"{image_hw[1]}x{image_hw[0]}; load it with size=(W, H) of the canvas")
    return condition


def initial_noise(pipe, config: AnyI2VConfig, dtype, image_hw: tuple[int, int], seed: int,
                  record: InspectionRecord) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Set the schedule (``record.timesteps``) and draw the fp32 starting latent as diffusers' pipeline
    does; with ``eta`` also every step's noise, up front from the same CPU generator, so the video is
    the same on every device."""
    device = pipe.unet.device
    pipe.scheduler.set_timesteps(config.num_inference_steps, device=device)
    record.timesteps = [int(t) for t in pipe.scheduler.timesteps]
    generator = torch.Generator(device="cpu").manual_seed(seed)
    z = pipe.prepare_latents(1, pipe.unet.config.in_channels, config.num_frames, image_hw[0], image_hw[1], dtype,
                             device, generator).float()
    if not config.eta:
        return z, None
    return z, torch.randn((len(record.timesteps), *z.shape), generator=generator).to(device)


@dataclass(kw_only=True)
class Sampling:
    """What the sampling loop reads, fixed for a generation: the config, the prompt's embeddings
    ``(1, T, D)``, the alignment (``None``: no trajectory), the inverted features and the injection edits
    made from them, the caller's own ``edits`` and ``capture``, eta's noise per step, the record, and
    ``callback(state)`` called after every sampling step (k-diffusion's callback; see :func:`denoise`),
    and the ``trail`` of finiteness flags the loop notes and :func:`denoise` reads once at its end."""

    config: AnyI2VConfig
    cond: torch.Tensor
    uncond: torch.Tensor | None
    alignment: Alignment | None
    bank: FeatureBank | None
    inject_edits: dict
    edits: dict | None
    capture: Capture | None
    step_noise: torch.Tensor | None
    record: InspectionRecord
    progress: bool = True
    keep_masks: bool = False
    keep_pca: bool = False
    keep_latents: bool = False
    callback: Callable[[dict], None] | None = None
    trail: FiniteTrail = field(default_factory=FiniteTrail)

    @property
    def guided(self) -> bool:
        return self.config.guidance_scale > 1

    def optimises(self, step_index: int) -> bool:
        return (self.config.optimisation and self.alignment is not None and self.alignment.aligned_frames > 0
                and step_index <= self.config.opt_step)


def denoise(pipe, calls, z: torch.Tensor, run: Sampling):
    """The sampling loop (docs/method.md §§3-4): before each of the first ``opt_step + 1`` steps the latent
    optimisation, then a CFG DDIM step with injection up to ``load_feature_step``. Returns the final
    latent and the hook session (whose cache holds ``run.capture``). ``run.callback`` sees each step's
    ``phase`` "sampling", ``step_index``, ``timestep``, ``latent`` (the step's input), ``eps`` (after
    CFG), ``denoised`` (the scheduler's x0) and ``latent_before`` (before the optimisation, or None).
    Raises :class:`~anyi2v_lab.method.finite.NonFiniteError` after the loop if a loss or a latent of it
    became NaN or infinite, naming the first."""
    from tqdm.auto import tqdm

    config = run.config
    embeds = per_frame(torch.cat([run.uncond, run.cond]) if run.guided else run.cond, config.num_frames)
    branches = ("uncond", "cond") if run.guided else ("cond",)
    with hooked(pipe.unet, edits=merge_edits(run.inject_edits, run.edits), capture=run.capture,
                phase="sampling") as session:
        eps_of = calls.sampling_denoiser(session)
        for i, t in enumerate(tqdm(run.record.timesteps, desc="sampling", disable=not run.progress, leave=False)):
            before = z
            if run.optimises(i):
                with calls.phase("optimisation"), session.suspended():
                    z = optimise_step(pipe, calls, z, run, i, t)
            with calls.phase("sampling"), torch.no_grad(), session.calling(timestep=t, step_index=i, branches=branches):
                model_in = pipe.scheduler.scale_model_input(torch.cat([z, z]) if run.guided else z, t)
                eps = eps_of(model_in, t, embeds)
                if run.guided:
                    eps_u, eps_c = eps.chunk(2)
                    eps = eps_u + config.guidance_scale * (eps_c - eps_u)
                noise = None if run.step_noise is None else run.step_noise[i]
                out = pipe.scheduler.step(eps, t, z, eta=config.eta, variance_noise=noise)
            if run.callback is not None:
                run.callback(dict(phase="sampling", step_index=i, timestep=t, latent=z, eps=eps,
                                  denoised=out.pred_original_sample,
                                  latent_before=before if run.optimises(i) else None))
            z = out.prev_sample
            run.trail.add(z, f"the latents after denoising step {i} (timestep {int(t)})")
    run.trail.check()
    return z, session


def optimise_step(pipe, calls, z: torch.Tensor, run: Sampling, step_index: int, t: int) -> torch.Tensor:
    """The latent optimisation before denoising step ``step_index`` (docs/method.md §3), with the passes ``calls``
    makes for it."""
    inputs = PassInputs(unet=pipe.unet, inject=bool(run.inject_edits),
                        features=run.bank if run.inject_edits else None, alignment=run.alignment,
                        config=run.config, embeds=per_frame(run.cond, run.config.num_frames), timestep=t,
                        step_index=step_index, keep_masks=run.keep_masks, keep_pca=run.keep_pca)
    recorder = iteration_recorder(run.record, inputs, run.keep_latents)

    def record(it: int, parts, skipped, previews, z_new: torch.Tensor) -> None:
        recorder(it, parts, skipped, previews, z_new)
        run.trail.add(parts.loss, f"the alignment loss of the optimisation before denoising step {step_index}, "
                                  f"iteration {it}")
        run.trail.add(z_new, f"the latents after the optimisation before denoising step {step_index}, iteration {it}")

    with calls.optimisation_passes(inputs) as passes:
        return optimise_latents(z, passes, run.config, run.alignment.region, record)
