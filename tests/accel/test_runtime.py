"""Runtime options: the fast paths compute what the baseline computes (tiny model, CPU)."""
import gc
import weakref

import numpy as np
import pytest
import torch

from anyi2v_lab.accel import (
    PhaseTimer,
    Runtime,
    RuntimeOptionError,
    checkpointed_blocks,
    clear_graphs,
    compile_units,
    compiled_regions,
    eligible_units,
    graphs,
    hooked_modules,
    timestep_tensor,
)
from anyi2v_lab.accel.regions import unit_level
from anyi2v_lab.method import AnyI2VConfig, ConfigError, generate
from anyi2v_lab.method.inversion import capture_names
from anyi2v_lab.method.optimize import capture_sites
from anyi2v_lab.trajectory import Trajectory

SMALL = dict(num_frames=4, num_inference_steps=2, inversion_timestep=5, load_feature_step=1, opt_step=0, opt_iters=2)


@pytest.fixture(scope="module")
def traj():
    return Trajectory.single((20, 20, 60, 60), [(40, 40), (80, 40)], image_size=(128, 128), query_points=[(40, 40)])


@pytest.fixture(scope="module")
def baseline(tiny_pipe, image, traj):
    return generate(tiny_pipe, image, "a red square", traj, AnyI2VConfig(**SMALL), seed=1, progress=False,
                    runtime=Runtime.baseline())


@pytest.mark.parametrize("runtime", [Runtime(), Runtime.low_mem(channels_last=False)], ids=["truncated", "low_memory"])
def test_fast_paths_equal_the_baseline(tiny_pipe, image, traj, baseline, runtime):
    res = generate(tiny_pipe, image, "a red square", traj, AnyI2VConfig(**SMALL), seed=1, progress=False,
                   runtime=runtime)
    # truncation stops after the captured layers and checkpointing recomputes the same activations:
    # the latents, and therefore the optimisation, are bit-identical
    assert torch.equal(res.latents, baseline.latents)
    np.testing.assert_array_equal(res.record.losses(), baseline.record.losses())
    # decoding frame by frame changes only the VAE's batch (float rounding)
    np.testing.assert_allclose(res.video, baseline.video, atol=1e-5)
    assert set(res.record.timings) >= {"inversion", "optimisation", "sampling", "decode", "total"}
    assert not any("forward" in m.__dict__ for _, m in compile_units(tiny_pipe.unet))


@pytest.mark.parametrize("truncate", [True, False], ids=["last_aligned_layer", "whole_unet"])
def test_every_truncation_gives_the_baseline(tiny_pipe, image, traj, baseline, truncate):
    # the baseline stops after up_blocks.2 (the reference's rule); what runs after the last aligned
    # layer gets no gradient, so the latents and losses are bit-identical
    calls = {}
    counters = [tiny_pipe.unet.get_submodule(p).register_forward_hook(
        lambda m, a, o, p=p: calls.__setitem__(p, calls.get(p, 0) + 1))
        for p in ("up_blocks.2.upsamplers.0", "up_blocks.3", "conv_out")]
    try:
        runs = {t: generate(tiny_pipe, image, "a red square", traj, AnyI2VConfig(**SMALL), seed=1, progress=False,
                            runtime=Runtime(truncate=t, cuda_graphs=False), keep_latents=True)
                for t in ("up_blocks.2", truncate)}
    finally:
        for h in counters:
            h.remove()
    assert torch.equal(runs[truncate].latents, baseline.latents) and torch.equal(runs["up_blocks.2"].latents,
                                                                                  baseline.latents)
    np.testing.assert_array_equal(runs[truncate].record.losses(), baseline.record.losses())
    # SMALL: 2 sampling steps (CFG, one call each) and 2 optimisation passes at step 0, per run
    passes = SMALL["opt_iters"] * (SMALL["opt_step"] + 1)
    whole = SMALL["num_inference_steps"] + (passes if truncate is False else 0)
    assert calls["up_blocks.3"] == calls["conv_out"] == SMALL["num_inference_steps"] + whole
    # the reference's rule runs up_blocks.2 whole, upsampler included; the last-layer stop does not
    upsampled = 2 * SMALL["num_inference_steps"] + passes + (passes if truncate is False else 0)
    assert calls["up_blocks.2.upsamplers.0"] == upsampled


def test_loss_scaling_keeps_fp16_gradients_that_underflow_unscaled():
    from anyi2v_lab.method.loss_scaling import scaled_forward
    from anyi2v_lab.method.optimize import Passes

    # an fp16 "UNet" whose backward multiplies by 2^-13 twice: the latent's gradient, 2^-26, is below
    # fp16's smallest subnormal (2^-24) and underflows to 0 unscaled; scaled by 2^16 it is 2^-10 inside
    # the fp16 backward and 2^-26 exactly once unscaled in fp32
    passes = Passes(forward=lambda leaf: [leaf.half() * 2 ** -13], fit=lambda captured: None,
                    loss=lambda captured, fits: ((captured[0].float() * 2 ** -13).sum(), []))
    grads = {}
    for scale in (None, 65536.0):
        p = passes if scale is None else passes._replace(forward=scaled_forward(passes.forward, scale))
        leaf = torch.ones(4, requires_grad=True)
        captured = p.forward(leaf)
        loss, _ = p.loss(captured, p.fit(captured))
        assert float(loss.detach()) == 4 * 2 ** -26  # the loss keeps its value
        grads[scale] = torch.autograd.grad(loss, leaf)[0]
    assert torch.equal(grads[None], torch.zeros(4))
    assert torch.equal(grads[65536.0], torch.full((4,), 2.0 ** -26))


def test_loss_scaling_is_the_methods_and_exact_where_nothing_underflows(tiny_pipe, image, traj, baseline):
    """The reference's GradScaler scale is part of the method (``config.loss_scale``): eager generate and
    every runtime scale alike, and a power of two on an fp32 model changes no bit of the latents."""
    config = AnyI2VConfig(**SMALL)
    assert config.loss_scale == 65536.0
    eager = generate(tiny_pipe, image, "a red square", traj, config, seed=1, progress=False)
    eager_unscaled = generate(tiny_pipe, image, "a red square", traj, config.replace(loss_scale=None), seed=1,
                              progress=False)
    unscaled = generate(tiny_pipe, image, "a red square", traj, config.replace(loss_scale=None), seed=1,
                        progress=False, runtime=Runtime.baseline())
    # scaling changes no bit on either path ...
    assert torch.equal(eager.latents, eager_unscaled.latents) and torch.equal(unscaled.latents, baseline.latents)
    # ... and eager (the plain Eq. 8) and the runtime (its batched twin) agree to float rounding, which the
    # sign steps amplify a little (docs/method.md, "the fast twin")
    torch.testing.assert_close(eager.latents, baseline.latents, rtol=0, atol=2e-3)
    np.testing.assert_allclose(eager.record.losses(), baseline.record.losses(), rtol=1e-5)
    assert "loss_scale" not in Runtime().to_dict()  # a runtime never changes what is computed


def test_loss_scaling_runs_in_every_optimisation_pass(tiny_pipe, image, traj, monkeypatch):
    # the eager loop and the bound runtime's passes both go through the method's scaled_forward
    from anyi2v_lab.method import optimize

    scales = []
    real = optimize.scaled_forward
    monkeypatch.setattr(optimize, "scaled_forward", lambda forward, scale: scales.append(scale) or real(forward, scale))
    config = AnyI2VConfig(**SMALL)
    eager, bound = (generate(tiny_pipe, image, "a red square", traj, config, seed=1, progress=False, runtime=runtime)
                    for runtime in (None, Runtime()))
    generate(tiny_pipe, image, "a red square", traj, config.replace(loss_scale=None), seed=1, progress=False)
    assert scales == [65536.0, 65536.0]  # one optimised step (opt_step=0) per scaled run, none unscaled
    # eager and runtime compute the same, scaling included (to float rounding: the plain loss and its twin)
    torch.testing.assert_close(eager.latents, bound.latents, rtol=0, atol=2e-3)
    with pytest.raises(ConfigError, match=r"loss_scale=3(\.0)? must be a power of two .*or none"):
        config.replace(loss_scale=3)


def test_hook_free_steps_are_derived_from_the_session():
    """A sampling step replays as hook-free only where the session captures nothing and every edit says it
    is inactive (the injection edits carry ``active``; an edit without it may change any call)."""
    from types import SimpleNamespace

    from anyi2v_lab.accel.bound import hook_free_steps
    from anyi2v_lab.method.feature_bank import FeatureBank
    from anyi2v_lab.method.injection import injection_edits

    config = AnyI2VConfig(load_feature_step=1, inject_residual=False, inject_query=False)
    bank = FeatureBank(residuals={}, queries={}, timestep=201)
    injection = injection_edits(bank, config)
    timesteps = torch.tensor([961, 921, 881, 841])

    def session(edits, capture=None):
        return SimpleNamespace(edits=edits, capture=capture, default_phase="sampling")

    assert hook_free_steps(session(injection), timesteps) == {881, 841}  # after load_feature_step
    assert hook_free_steps(session({}), timesteps) == {961, 921, 881, 841}
    assert hook_free_steps(session({**injection, "output": [lambda x, ctx: None]}), timesteps) == set()
    assert hook_free_steps(session(injection, capture=object()), timesteps) == set()


def test_truncation_at_a_missing_block_names_the_setting(tiny_pipe):
    with pytest.raises(RuntimeOptionError, match=r"Runtime.truncate='up_blocks.9' is no module.*up_blocks.2"):
        Runtime(truncate="up_blocks.9").bind(tiny_pipe)


def test_compiled_blocks_equal_eager(tiny_pipe, image, traj, baseline):
    # Dynamo's "eager" backend checks the regional plumbing (hooked blocks excluded, guards, grad mode)
    # without Inductor's code generation, which takes minutes on a CPU; the finest level keeps it short.
    rt = Runtime(compile="regional", compile_backend="eager", compile_levels=1, channels_last=False)
    res = generate(tiny_pipe, image, "a red square", traj, AnyI2VConfig(**SMALL), seed=1, progress=False, runtime=rt)
    assert torch.equal(res.latents, baseline.latents)
    assert all(m._compiled_call_impl is None for _, m in compile_units(tiny_pipe.unet))


def test_channels_last_within_float_noise(tiny_pipe, image):
    cfg = AnyI2VConfig(**SMALL)
    runs = [generate(tiny_pipe, image, "a red square", None, cfg, seed=2, progress=False,
                     runtime=Runtime(channels_last=cl)) for cl in (False, True)]
    np.testing.assert_allclose(runs[0].video, runs[1].video, atol=1e-3)  # other conv kernels: float rounding
    from anyi2v_lab.accel import prepare_layout
    prepare_layout(tiny_pipe, Runtime(channels_last=False))  # the session fixture goes back as it was
    assert tiny_pipe.unet.conv_in.weight.is_contiguous()


def test_hooked_blocks_are_never_compiled(sd15_unet):
    cfg = AnyI2VConfig()
    hooked = hooked_modules(sd15_unet, capture_names(cfg) + capture_sites(cfg) + [f"{a}.key" for a in cfg.attn_layers])
    units = eligible_units(sd15_unet, hooked)
    for path, _ in units:
        assert not any(h == path or h.startswith(path + ".") for h in hooked)
    assert {p for p, _ in units} >= {"down_blocks.0.resnets.0", "mid_block.attentions.0",
                                     "up_blocks.3.motion_modules.2"}
    assert "up_blocks.1.attentions.0" not in {p for p, _ in units}
    fine = eligible_units(sd15_unet, hooked, max_levels=2)
    assert fine and all(unit_level(p, 4) < 2 for p, _ in fine) and len(fine) < len(units)
    assert unit_level("up_blocks.3.resnets.0", 4) == 0 and unit_level("mid_block.resnets.0", 4) == 3


def test_regions_and_checkpointing_are_restored_after_errors(tiny_unet):
    rt = Runtime(compile="regional", compile_backend="eager")
    with pytest.raises(KeyError):
        with compiled_regions(tiny_unet, rt, "sampling") as paths, checkpointed_blocks(tiny_unet):
            assert paths and tiny_unet.down_blocks[0].resnets[0]._compiled_call_impl is not None
            raise KeyError("boom")
    for _, m in compile_units(tiny_unet):
        assert m._compiled_call_impl is None and "forward" not in m.__dict__
    with compiled_regions(tiny_unet, Runtime(compile="sampling"), "optimisation") as paths:
        assert paths == []  # compile="sampling" leaves the optimisation passes eager


def test_runtime_validation_names_the_field():
    with pytest.raises(RuntimeOptionError, match="compile='fast'"):
        Runtime(compile="fast")
    with pytest.raises(RuntimeOptionError, match="attention"):
        Runtime(attention="xformers")
    with pytest.raises(RuntimeOptionError, match="low_memory"):
        Runtime(low_memory=True, compile="regional")
    with pytest.raises(RuntimeOptionError, match="cuda_graphs=True needs a CUDA device"):
        Runtime(cuda_graphs=True).check_device("cpu")
    assert Runtime(compile=True).compile == "regional"
    assert Runtime.fast().compiles("sampling") and Runtime.fast().compiles("optimisation")
    sampling_only = Runtime.fast(compile="sampling")
    assert sampling_only.compiles("sampling") and not sampling_only.compiles("optimisation")
    assert Runtime.fast().compiles("inversion") and not Runtime().compiles("inversion")
    assert Runtime.fast().cudnn_benchmark and not Runtime().cudnn_benchmark
    # cuDNN attention builds its kernels at first use: the one-off default avoids it, fast() warms up
    assert Runtime().attention == "flash" and Runtime.fast().attention == Runtime.baseline().attention == "auto"
    assert Runtime().overlaps_pca("cuda") and not Runtime().overlaps_pca("cpu")
    assert not Runtime.low_mem().overlaps_pca("cuda") and not Runtime.baseline().overlaps_pca("cuda")
    assert Runtime.baseline().truncate == "up_blocks.2" and not Runtime.baseline().graphs_on("cuda")
    with pytest.raises(RuntimeOptionError, match="Runtime.truncate=3"):
        Runtime(truncate=3)
    with pytest.raises(RuntimeOptionError, match="Runtime.truncate=''"):
        Runtime(truncate="")
    assert Runtime().graphs_on("cuda") and not Runtime().graphs_on("cpu")
    assert Runtime.low_mem().decode_chunk_size(16) == 1 and Runtime().decode_chunk_size(16) == 4
    assert Runtime.baseline().decode_chunk_size(16) == 16 and Runtime().decode_chunk_size(2) == 2


def test_timer_and_timestep_helpers():
    timer = PhaseTimer("cpu")
    for _ in range(3):
        with timer.phase("a"):
            pass
    with timer.phase("b"):
        sum(range(10000))
    totals = timer.totals()
    assert set(totals) == {"a", "b"} and totals["b"] > 0
    t = timestep_tensor(961, "cpu")
    assert t.dtype == torch.int64 and t.shape == (1,) and int(t) == 961


def test_inversion_compiles_every_level_but_the_bypassed_motion_modules(tiny_unet):
    from anyi2v_lab.hooks import bypass_motion
    from anyi2v_lab.hooks.motion import motion_modules

    rt = Runtime(compile_inversion=True, compile_levels=1, compile_backend="eager")
    motion = [p for p, _ in motion_modules(tiny_unet)]
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 4, 1, 16, 16, generator=g)
    emb = torch.randn(1, 77, tiny_unet.config.cross_attention_dim, generator=g)
    t = timestep_tensor(21, "cpu")
    with torch.no_grad(), bypass_motion(tiny_unet):
        eager = tiny_unet(x, t, encoder_hidden_states=emb).sample
        with compiled_regions(tiny_unet, rt, "inversion", motion) as paths:
            compiled = tiny_unet(x, t, encoder_hidden_states=emb).sample
    levels = {unit_level(p, len(tiny_unet.down_blocks)) for p in paths}
    assert levels == set(range(len(tiny_unet.down_blocks)))  # compile_levels limits sampling, not inversion
    assert not any(p.startswith(m) for p in paths for m in motion)
    assert torch.equal(compiled, eager)
    assert all(m._compiled_call_impl is None for _, m in compile_units(tiny_unet))


def test_fit_starters_see_what_the_capture_stores(tiny_pipe):
    """The observers that start each layer's PCA fit early (on side streams on a GPU) must fit the
    very tensor the capture stores, after the injection edits: a synchronous stand-in checks that."""
    from concurrent.futures import Future

    from anyi2v_lab.accel.overlap import SideStreams, with_fit_starters
    from anyi2v_lab.hooks import Capture, hooked
    from anyi2v_lab.method.alignment import layer_shapes
    from anyi2v_lab.method.grid import layer_fit

    class Inline:  # SideStreams' interface, run at once on the CPU
        def submit(self, fn, *args):
            f = Future()
            f.set_result(fn(*args))
            return f

        def result(self, future):
            return future.result()

    cfg = AnyI2VConfig(**SMALL)
    unet = tiny_pipe.unet
    names = capture_sites(cfg)
    shapes = layer_shapes(unet, cfg.align_layers, (16, 16))
    g = torch.Generator().manual_seed(3)
    z = torch.randn(1, 4, 4, 16, 16, generator=g)
    emb = torch.randn(4, 77, unet.config.cross_attention_dim, generator=g)
    noise = lambda x, ctx: x + 1.0  # an earlier edit on the same point: the starter must see its result  # noqa: E731
    futures: dict = {}
    edits = with_fit_starters({names[0]: [noise]}, names, shapes, cfg, Inline(), futures)
    assert edits[names[0]][0] is noise and len(edits[names[0]]) == 2
    with torch.no_grad(), hooked(unet, edits=edits, capture=Capture(tuple(names), detach=False),
                                 stop_after=names, phase="optimisation") as session:
        with session.calling(timestep=501, step_index=0, branches=("cond",)):
            session.forward(z, timestep_tensor(501, "cpu"), encoder_hidden_states=emb)
    for i, name in enumerate(names):
        stored = session.cache.entries(name)[-1].tensor
        mean, comps = layer_fit(stored, shapes[i], cfg, i)
        early_mean, early_comps = futures[i].result()
        assert torch.equal(mean, early_mean) and torch.equal(comps, early_comps)
    with pytest.raises(ValueError, match="needs a CUDA device"):
        SideStreams("cpu")


def test_graphed_optimisation_plumbing(tiny_pipe, image, traj, baseline, monkeypatch):
    # CUDA graphs need a GPU; a stand-in for make_graphed_callables runs the captured function eagerly,
    # so this checks what is ours: the edits rebuilt on static copies of the inverted features, one
    # capture reused across generations, and a new condition image's features copied in before replay
    from anyi2v_lab.accel import optimisation_graphs

    captures, pools = [], []

    def stand_in(fn, example, **kw):
        captures.append([tuple(x.shape) for x in example])
        pools.append(kw["pool"])
        return fn

    monkeypatch.setattr(optimisation_graphs, "make_graphed", stand_in)
    # CUDA pool handles stand in as labels: the pass goes into the module's shared pool, the loss
    # (replayed between the pass's forward and backward) into one of its own
    monkeypatch.setattr(graphs, "graph_pool", lambda module, shared: "shared" if shared else "own")
    monkeypatch.setattr(Runtime, "graphs_optimisation", lambda self, device: True)
    cfg = AnyI2VConfig(**SMALL)
    try:
        res = generate(tiny_pipe, image, "a red square", traj, cfg, seed=1, progress=False, runtime=Runtime())
        assert torch.equal(res.latents, baseline.latents)
        np.testing.assert_array_equal(res.record.losses(), baseline.record.losses())
        assert len(captures) == 2  # the pass and the loss: one capture each serves every pass
        assert pools == ["shared", "own"]
        assert graphs.graph_memory(tiny_pipe.unet) == {}  # labels are not CUDA pools: nothing to read
        other = np.ascontiguousarray(image[:, ::-1])
        again = generate(tiny_pipe, other, "a red square", traj, cfg, seed=1, progress=False, runtime=Runtime())
        assert len(captures) == 2  # same shapes and trajectory: the captures replay with the new features
        monkeypatch.undo()
        eager = generate(tiny_pipe, other, "a red square", traj, cfg, seed=1, progress=False,
                         runtime=Runtime(graph_optimisation=False))
        assert torch.equal(again.latents, eager.latents) and not torch.equal(again.latents, res.latents)
    finally:
        clear_graphs(tiny_pipe.unet)


def test_graphed_sampling_plumbing(tiny_pipe, image, traj, monkeypatch):
    # a stand-in for the capture runs the function eagerly: checks which steps replay the captured
    # CFG step (only those after the injection window, and never with the caller's own hooks),
    # that one capture serves them all, and that the video is the eager one
    from anyi2v_lab.hooks import Capture

    captures, replays = [], []

    class StandIn:
        def __init__(self, fn, example, warmup=2, pool=None):
            captures.append([tuple(x.shape) for x in example])
            self.fn = fn

        def __call__(self, *inputs):
            replays.append(int(inputs[1]))
            return self.fn(*inputs)

    cfg = AnyI2VConfig(**{**SMALL, "num_inference_steps": 6, "load_feature_step": 1})
    eager = generate(tiny_pipe, image, "a red square", traj, cfg, seed=1, progress=False, runtime=Runtime())
    monkeypatch.setattr(graphs, "GraphedCall", StandIn)
    monkeypatch.setattr(Runtime, "graphs_sampling", lambda self, device: True)
    try:
        res = generate(tiny_pipe, image, "a red square", traj, cfg, seed=1, progress=False, runtime=Runtime())
        assert torch.equal(res.latents, eager.latents)
        assert len(captures) == 1 and replays == res.record.timesteps[2:]  # steps 0 and 1 inject
        replays.clear()
        name = "down_blocks.0.resnets.0.residual"
        hooked_run = generate(tiny_pipe, image, "a red square", traj, cfg, seed=1, progress=False, runtime=Runtime(),
                              capture=Capture((name,)))
        assert replays == [] and len(hooked_run.cache.entries(name)) == 6  # the caller's capture saw every step
    finally:
        clear_graphs(tiny_pipe.unet)


class Stale:
    """Stands in for a CUDA graph that make_graphed_callables left in a reference cycle."""


def test_capture_runs_after_a_collection_and_without_gc(monkeypatch):
    monkeypatch.setattr(graphs, "graph_pool", lambda module, shared: "shared" if shared else "own")
    m = torch.nn.Linear(2, 2)
    seen = []

    def build_cyclic(pool):
        g = Stale()
        g.self = g  # only the cyclic GC can free it
        return g

    graphs.graphed(m, "pass", ("a",), build_cyclic, shared=True)
    stale = weakref.ref(graphs._GRAPHS[m]["pass"][1])

    def build(pool):
        seen.append((stale() is None, gc.isenabled()))
        return object()

    try:
        graphs.graphed(m, "pass", ("b",), build, shared=True)  # a new key: the old graph is dropped
        assert seen == [(True, False)]  # collected before the capture, no GC inside it
        assert gc.isenabled()

        def failing(pool):
            raise RuntimeError("CUDA error: operation failed due to a previous error during capture")

        with pytest.raises(RuntimeError, match="during capture"):
            graphs.graphed(m, "pass", ("c",), failing, shared=True)
        assert gc.isenabled() and "pass" not in graphs._GRAPHS[m]  # nothing half-made is cached
        graphs.graphed(m, "pass", ("c",), build, shared=True)  # and the next capture goes ahead
        assert len(seen) == 2
    finally:
        clear_graphs(m)
