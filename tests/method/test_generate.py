"""The generation loop on the tiny model: equivalence with diffusers, inversion, injection, optimisation."""
import numpy as np
import pytest
import torch

from anyi2v_lab.hooks import Capture, bypass_motion, capture_bytes, hook_points, run_with_cache
from anyi2v_lab.method import AnyI2VConfig, ConfigError, FeatureBank, generate
from anyi2v_lab.method.config import ATTN_LAYERS, RES_LAYERS
from anyi2v_lab.method.feature_bank import InversionCache
from anyi2v_lab.method.inversion import capture_names, encode_image, invert, invert_cached
from anyi2v_lab.models.scheduler import ddim_inverse_scheduler
from anyi2v_lab.trajectory import ObjectTrack, Trajectory

SMALL = dict(num_frames=4, num_inference_steps=3, inversion_timestep=21, load_feature_step=2, opt_step=2)


def test_plain_loop_equals_diffusers_pipeline(tiny_pipe, image):
    cfg = AnyI2VConfig(**SMALL, guidance_scale=7.5, inject_residual=False, inject_query=False, kv_consistency=False)
    ours = generate(tiny_pipe, image, "a red square", None, cfg, seed=3, negative_prompt="blurry", progress=False)
    ref = tiny_pipe(prompt="a red square", negative_prompt="blurry", num_frames=4, num_inference_steps=3,
                    guidance_scale=7.5, height=128, width=128, output_type="np",
                    generator=torch.Generator().manual_seed(3)).frames[0]
    assert ours.video.shape == (4, 128, 128, 3)
    assert np.abs(ref - ours.video).max() <= 1e-5
    assert ours.features is None  # nothing to inject: no inversion ran


def test_eta_loop_equals_diffusers_pipeline_and_is_seeded(tiny_pipe, image):
    """eta=1: the noise drawn up front is the noise diffusers draws step by step from the same generator."""
    cfg = AnyI2VConfig(**SMALL, guidance_scale=7.5, inject_residual=False, inject_query=False,
                       kv_consistency=False, eta=1.0)
    ours = generate(tiny_pipe, image, "a red square", None, cfg, seed=3, progress=False)
    ref = tiny_pipe(prompt="a red square", num_frames=4, num_inference_steps=3, eta=1.0, guidance_scale=7.5,
                    height=128, width=128, output_type="np", generator=torch.Generator().manual_seed(3)).frames[0]
    assert np.abs(ref - ours.video).max() <= 1e-5
    again = generate(tiny_pipe, image, "a red square", None, cfg, seed=3, progress=False)
    det = generate(tiny_pipe, image, "a red square", None, cfg.replace(eta=0.0), seed=3, progress=False)
    assert np.array_equal(again.video, ours.video) and np.abs(det.video - ours.video).max() > 0.01


def test_inversion_equals_a_direct_diffusers_loop(tiny_pipe, image):
    from anyi2v_lab.conditions import load_condition

    cfg = AnyI2VConfig(**SMALL)
    cond = load_condition(image, size=(128, 128))
    latent = encode_image(tiny_pipe.vae, cond.pixels)
    embeds = tiny_pipe.encode_prompt("a red square", "cpu", 1, False)[0]
    ours = invert(tiny_pipe, latent, embeds, cfg, progress=False)

    unet, inverse = tiny_pipe.unet, ddim_inverse_scheduler(tiny_pipe.scheduler)
    inverse.set_timesteps(999)
    x = latent.clone()
    with torch.no_grad(), bypass_motion(unet):
        for t in inverse.timesteps:
            if int(t) == 21:
                break
            x = inverse.step(unet(x, t, encoder_hidden_states=embeds).sample, t, x).prev_sample
        assert torch.equal(ours.latent, x)
        _, cache = run_with_cache(unet, x, 21, encoder_hidden_states=embeds, names=capture_names(cfg))
    assert ours.calls == 21
    for layer in RES_LAYERS:
        assert torch.equal(ours.bank.residuals[layer], cache[f"{layer}.residual"][0, 0])
    for layer in ATTN_LAYERS:
        assert torch.equal(ours.bank.queries[layer], cache[f"{layer}.query"][0, 0])
    fast = invert(tiny_pipe, latent, embeds, cfg.replace(inversion_schedule="fast", fast_inversion_steps=4),
                  progress=False)
    assert fast.calls == 5 and fast.bank.queries.keys() == ours.bank.queries.keys()


def test_feature_cache_and_bank_round_trip(tiny_pipe, image, tmp_path):
    from anyi2v_lab.conditions import load_condition

    cfg = AnyI2VConfig(**SMALL)
    pixels = load_condition(image, size=(128, 128)).pixels
    embeds = tiny_pipe.encode_prompt("a red square", "cpu", 1, False)[0]
    cache = InversionCache()
    a = invert_cached(tiny_pipe, pixels, "a red square", embeds, cfg, cache=cache, progress=False)
    b = invert_cached(tiny_pipe, pixels, "a red square", embeds, cfg, cache=cache, progress=False)
    assert a is b and len(cache) == 1
    invert_cached(tiny_pipe, pixels, "another prompt", embeds, cfg, cache=cache, progress=False)
    assert len(cache) == 2
    a.save(tmp_path / "f.safetensors")
    back = FeatureBank.load(tmp_path / "f.safetensors")
    assert back.timestep == 21 and all(torch.equal(back.queries[k], v) for k, v in a.queries.items())


def test_sd15_bank_fits_16mb(sd15_unet):
    points = {p.name: p for p in hook_points(sd15_unet)}
    names = capture_names(AnyI2VConfig())
    size = capture_bytes([points[n] for n in names], Capture(tuple(names), branch="cond", frames=(0,)),
                         batch=1, num_frames=1, latent_hw=(64, 64), default_dtype=torch.float16)
    assert size == 3_932_160 * 2 <= 16 * 2**20


def test_kv_consistency_later_frames_attend_to_frame0(tiny_pipe, image):
    layer = ATTN_LAYERS[1]
    names = [f"{layer}.{s}" for s in ("query", "key", "value", "output")]
    cfg = AnyI2VConfig(**SMALL)
    res = generate(tiny_pipe, image, "a red square", None, cfg, seed=0, progress=False,
                   capture=Capture(tuple(names), steps=0, branch="cond"))
    q, k, v, out = (res.cache[n][0] for n in names)  # (F, N, C)
    attn = tiny_pipe.unet.get_submodule(layer)

    def heads(x):
        return x.view(x.shape[0], -1, attn.heads, x.shape[-1] // attn.heads).transpose(1, 2)
    for j in range(1, 4):
        assert torch.equal(k[j], k[0]) and torch.equal(v[j], v[0])
        mixed = torch.nn.functional.scaled_dot_product_attention(heads(q[j:j + 1]), heads(k[:1]), heads(v[:1]))
        with torch.no_grad():
            expected = attn.to_out[0](mixed.transpose(1, 2).flatten(2))[0]
        torch.testing.assert_close(out[j], expected, rtol=1e-5, atol=1e-6)
    # frame 0's query is the inverted one
    assert torch.equal(q[0], res.features.queries[layer])


def test_injection_only_in_early_steps_and_cond_branch(tiny_pipe, image):
    name = f"{RES_LAYERS[0]}.residual"
    cfg = AnyI2VConfig(**{**SMALL, "load_feature_step": 0})
    edited = generate(tiny_pipe, image, "a red square", None, cfg, seed=0, progress=False, capture=[name])
    plain = generate(tiny_pipe, image, "a red square", None, cfg, seed=0, progress=False, capture=[name], inject=False)
    e0, p0 = edited.cache.get(name, step=0), plain.cache.get(name, step=0)  # (2, F, C, h, w)
    assert torch.equal(e0[0], p0[0])  # uncond branch untouched
    assert not torch.equal(e0[1, 0], p0[1, 0])  # cond frame 0 injected
    assert torch.equal(e0[1, 1:], p0[1, 1:])  # other frames keep their residuals at this layer
    assert not np.array_equal(edited.video, plain.video)


def two_objects():
    return Trajectory(objects=(
        ObjectTrack(box=(16, 16, 56, 56), path=((36, 36), (60, 40), (84, 44)), query_points=((36, 36),), name="a"),
        ObjectTrack(box=(70, 70, 110, 110), path=((90, 90), (80, 70)), query_points=((90, 90), (100, 95)), name="b"),
    ), image_size=(128, 128))


def test_optimisation_loss_falls_and_masks_are_per_object(tiny_pipe, image):
    cfg = AnyI2VConfig(**{**SMALL, "opt_step": 1, "opt_iters": 4})
    res = generate(tiny_pipe, image, "a red square", two_objects(), cfg, seed=0, progress=False, keep_masks=True,
                   keep_pca=True, keep_latents=True)
    losses = res.record.losses()
    assert losses.shape == (2, 4)
    assert np.all(np.isfinite(losses))
    assert losses[0, -1] < losses[0, 0] and losses[1, -1] < losses[1, 0]
    it = res.record.iterations[0]
    assert not it.skipped and len(it.masks) == 2 and len(it.masks[0]) == 4
    assert it.masks[0][0].shape != it.masks[1][0].shape or not torch.equal(it.masks[0][0], it.masks[1][0])
    assert it.pca[cfg.opt_layers[0]].shape[:2] == (4, 3)
    assert res.record.boxes.shape == (2, 4, 4)
    # each kept latent is one sign step away from the previous one: |dz| <= lr (plus the 1e-4 decay)
    lat = [it.latent for it in res.record.iterations[:4]]
    for a, b in zip(lat, lat[1:]):
        step = (b - a).abs()
        assert float(step.max()) <= cfg.lr * (1 + 1e-3) + 1e-4 * float(a.abs().max()) and float(step.mean()) > 0


@pytest.mark.slow
def test_ablation_switches_run(tiny_pipe, image):
    traj = Trajectory.single((20, 20, 60, 60), [(40, 40), (80, 40)], image_size=(128, 128), query_points=[(40, 40)])
    base = AnyI2VConfig(**{**SMALL, "opt_step": 0, "opt_iters": 2})
    variants = [dict(kv_consistency=False), dict(pca_dim=None), dict(pca_dim=8), dict(mask="static"),
                dict(mask="none"), dict(opt_target="residual"), dict(adain_patch=None), dict(debias=False),
                dict(update_region="boxes"),
                dict(background_weight=1.0), dict(optimizer="adam"), dict(pca_method="lowrank"),
                dict(inject_uncond=True)]
    videos = []
    for v in variants:
        res = generate(tiny_pipe, image, "a red square", traj, base.replace(**v), seed=0, progress=False)
        assert np.isfinite(res.video).all() and np.isfinite(res.record.losses()).all(), v
        videos.append(res.video)
    assert len({v.tobytes() for v in videos}) == len(videos)  # every switch changes something


def test_update_region_covers_the_boxes_only():
    from anyi2v_lab.method.alignment import box_region

    boxes = np.array([[[8, 8, 40, 40], [40, 8, 72, 40]]])  # latent cells 1..4, then 5..8 in x
    region = box_region(boxes, 0.0, (128, 128), (16, 16))
    expected = torch.zeros(2, 16, 16)
    expected[0, 1:5, 1:5] = 1
    expected[1, 1:5, 5:9] = 1
    assert torch.equal(region[0, 0], expected)
    wide = box_region(boxes, 0.25, (128, 128), (16, 16))
    assert wide.sum() > region.sum() and torch.all(wide >= region)


def test_bad_inputs_fail_before_work(tiny_pipe, image):
    with pytest.raises(ConfigError, match="adain_patch=8"):
        generate(tiny_pipe, image, "x", None, AnyI2VConfig(**SMALL, adain_patch=8), progress=False)
    with pytest.raises(ConfigError, match="not spatial self-attentions"):
        generate(tiny_pipe, image, "x", None, AnyI2VConfig(**SMALL, attn_layers=("up_blocks.9.x",)), progress=False)
    with pytest.raises(ConfigError, match="multiple of"):
        generate(tiny_pipe, image, "x", None, AnyI2VConfig(**SMALL, height=120, width=128), progress=False)
    from diffusers import EulerDiscreteScheduler
    euler_scheduler = EulerDiscreteScheduler.from_config(tiny_pipe.scheduler.config)
    euler = type(tiny_pipe)(**{**tiny_pipe.components, "scheduler": euler_scheduler})
    with pytest.raises(ConfigError, match="eta=1.0 needs a DDIM scheduler"):
        generate(euler, image, "x", None, AnyI2VConfig(**SMALL, eta=1.0), progress=False)
    traj = Trajectory.single((10, 10, 20, 20), [(15, 15)], image_size=(300, 200))
    with pytest.raises(ValueError, match="matches neither"):
        generate(tiny_pipe, image, "x", traj, AnyI2VConfig(**SMALL), progress=False)


def test_keep_x0_records_every_phase_and_changes_nothing(tiny_pipe, image):
    """x0 of each step: the scheduler's pred_original_sample decoded; the video is the same with it on."""
    from anyi2v_lab.accel import Runtime

    cfg = AnyI2VConfig(**{**SMALL, "opt_step": 0, "opt_iters": 2})
    traj = Trajectory.single((20, 20, 60, 60), [(40, 40), (80, 40)], image_size=(128, 128), query_points=[(40, 40)])
    plain = generate(tiny_pipe, image, "a red square", traj, cfg, seed=1, progress=False)
    res = generate(tiny_pipe, image, "a red square", traj, cfg, seed=1, progress=False, keep_x0=True)
    assert np.array_equal(plain.video, res.video) and plain.record.x0 == []
    phases = [(x.phase, x.step_index) for x in res.record.x0]
    assert phases == [("inversion", k) for k in range(20)] + [("optimisation", 0), ("sampling", 0), ("sampling", 1),
                                                             ("sampling", 2)]
    assert res.record.x0[0].frames.shape == (1, 128, 128, 3)
    assert res.record.x0_video("sampling").shape == (3, 4, 128, 128, 3)
    # the last step's x0 is (nearly) the final video: DDIM's last step lands on its own x0 estimate
    last = res.record.x0_video("sampling")[-1].astype(float)
    assert np.abs(last - res.frames.astype(float)).mean() < 2.0
    # the optimisation entry differs from its sampling entry by the latent's change only
    opt, samp = res.record.x0[20].frames, res.record.x0[21].frames
    assert opt.shape == samp.shape and not np.array_equal(opt, samp)
    fast = generate(tiny_pipe, image, "a red square", traj, cfg, seed=1, progress=False, keep_x0=True,
                    runtime=Runtime())
    assert [(x.phase, x.step_index) for x in fast.record.x0] == phases
    assert np.abs(fast.record.x0_video().astype(int) - res.record.x0_video().astype(int)).max() <= 2
    with pytest.raises(ValueError, match="keep_x0=True"):
        plain.record.x0_video()


def test_x0_of_a_sampling_step_equals_a_direct_scheduler_step(tiny_pipe, image):
    """Without injection or trajectory, step 0's x0 is DDIM's (z - sqrt(1-a) eps) / sqrt(a) of a plain UNet call."""
    from anyi2v_lab.layout import per_frame

    cfg = AnyI2VConfig(**SMALL, guidance_scale=1.0, inject_residual=False, inject_query=False, kv_consistency=False)
    res = generate(tiny_pipe, image, "a red square", None, cfg, seed=2, progress=False, keep_x0=True)
    tiny_pipe.scheduler.set_timesteps(3)
    t = int(tiny_pipe.scheduler.timesteps[0])
    z = tiny_pipe.prepare_latents(1, 4, 4, 128, 128, torch.float32, "cpu", torch.Generator().manual_seed(2))
    cond = tiny_pipe.encode_prompt("a red square", "cpu", 1, False)[0]
    with torch.no_grad():
        eps = tiny_pipe.unet(z, t, encoder_hidden_states=per_frame(cond, 4)).sample
        a = tiny_pipe.scheduler.alphas_cumprod[t]
        x0 = (z - (1 - a).sqrt() * eps) / a.sqrt()
        video = tiny_pipe.video_processor.postprocess_video(video=tiny_pipe.decode_latents(x0), output_type="np")[0]
    expected = (np.asarray(video) * 255).round().clip(0, 255).astype(np.uint8)
    assert res.record.x0[0].phase == "sampling" and res.record.x0[0].timestep == t
    assert np.abs(res.record.x0[0].frames.astype(int) - expected.astype(int)).max() <= 1
