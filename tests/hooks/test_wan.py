"""Hook points on a Wan transformer: names, the token grid, bit-identity with WanPipeline, safety nets."""
import pytest
import torch

from anyi2v_lab.hooks import (
    CallInfo,
    Capture,
    HookContext,
    HookPointNotFired,
    estimate_capture_bytes,
    full_name,
    hook_points,
    hooked,
    list_hook_points,
    run_with_cache,
    short_name,
)

PER_BLOCK = ["attn1.input", "attn1.query", "attn1.key", "attn1.value", "attn1.probs", "attn1.output",
             "attn2.probs", "attn2.output", "ffn.output", "output"]
SHORT = ["sa.in", "sa.q", "sa.k", "sa.v", "sa.p", "sa.o", "x.p", "x.o", "ff.o", "o"]
# 5 frames (2 latent frames) at 32 px: the VAE decode dominates the tiny pipeline's time
PIPE_ARGS = dict(prompt="a red ball rolls", negative_prompt="blur", height=32, width=32, num_frames=5,
                 num_inference_steps=2, guidance_scale=5.0, max_sequence_length=16, output_type="pt")


def call(model, inputs):
    sample, t, ehs = inputs
    with torch.no_grad():
        return model(hidden_states=sample, timestep=t, encoder_hidden_states=ehs, return_dict=False)[0]


def through(x, ctx):
    """A pass-through edit that still reshapes: the frames view and back."""
    return ctx.merge(ctx.frames(x))


def test_points_of_the_1_3b_model_without_weights():
    from anyi2v_lab.models.tiny_wan import wan_1_3b_transformer

    model = wan_1_3b_transformer()
    points = hook_points(model)
    assert [p.name for p in points] == [f"blocks.{i}.{s}" for i in range(30) for s in PER_BLOCK] + ["output"]
    assert [p.short for p in points[:10]] == [f"b0.{s}" for s in SHORT]
    byname = {p.name: p for p in points}
    q, xp = byname["blocks.29.attn1.query"], byname["blocks.3.attn2.probs"]
    assert (q.channels, q.heads, q.downscale, q.layout) == (1536, 12, 2, "sequence")
    # 17 frames at 480x832: 5 latent frames of 60x104, 30x52 tokens a frame; 512 text tokens
    assert q.shape(2, 5, (60, 104)) == (2, 5 * 30 * 52, 1536)
    assert xp.shape(1, 5, (60, 104), text_len=512) == (1, 12, 5 * 30 * 52, 512)
    assert byname["blocks.0.attn1.probs"].shape(1, 5, (60, 104))[-2:] == (7800, 7800)
    assert byname["output"].shape(1, 5, (60, 104)) == (1, 16, 5, 60, 104)
    # one self-attention's probabilities at 17 frames of 512 px under CFG, fp16: 5 x 32 x 32 tokens
    est = estimate_capture_bytes(model, ["b3.sa.p", "b3.x.p"], num_frames=17)["per_name"]
    assert est == {"blocks.3.attn1.probs": 2 * 12 * 5120 ** 2 * 2, "blocks.3.attn2.probs": 2 * 12 * 5120 * 512 * 2}


def test_short_names_round_trip_and_select(tiny_wan):
    points = hook_points(tiny_wan)
    names = [p.name for p in points] + sorted({p.module for p in points if p.module})
    shorts = [short_name(n) for n in names]
    assert [full_name(s) for s in shorts] == names and len(set(shorts)) == len(names)
    assert list_hook_points(tiny_wan, pattern="b1.sa.q") == ["blocks.1.attn1.query"]
    assert list_hook_points(tiny_wan, pattern="b?.o") == ["blocks.0.output", "blocks.1.output"]
    assert list_hook_points(tiny_wan, kind="cross_attention") == [
        f"blocks.{i}.attn2.{s}" for i in (0, 1) for s in ("probs", "output")]


def test_frames_lay_tokens_on_the_latent_grid_and_merge_back(tiny_wan, wan_inputs):
    sample = wan_inputs[0]
    with torch.no_grad():
        patches = tiny_wan.patch_embedding(sample)  # (B, C, F, h, w): the grid, computed independently
    seq = patches.flatten(2).transpose(1, 2)  # the model's own flattening into tokens
    points = {p.name: p for p in hook_points(tiny_wan)}
    ctx = HookContext(points["blocks.0.attn1.input"], CallInfo(num_frames=3, grid=(3, 2, 2)))
    assert torch.equal(ctx.frames(seq), patches.permute(0, 2, 3, 4, 1))
    assert torch.equal(ctx.merge(ctx.frames(seq)), seq)
    probs = torch.randn(1, 2, 12, 12)  # (B, heads, L, L)
    pctx = HookContext(points["blocks.0.attn1.probs"], CallInfo(num_frames=3, grid=(3, 2, 2)))
    per_frame = pctx.frames(probs)
    assert per_frame.shape == (1, 3, 2, 4, 12) and torch.equal(per_frame[0, 1, 0], probs[0, 0, 4:8])
    assert torch.equal(pctx.merge(per_frame), probs)
    with pytest.raises(ValueError, match="grid"):
        HookContext(points["blocks.0.attn1.input"], CallInfo(num_frames=3)).frames(seq)


def test_pass_through_edits_on_every_point_are_bit_identical_to_wan_pipeline(tiny_wan_pipe):
    ref = tiny_wan_pipe(**PIPE_ARGS, generator=torch.Generator().manual_seed(0)).frames
    model = tiny_wan_pipe.transformer
    every = [n for n in list_hook_points(model) if not n.endswith(".probs")]
    out, cache = run_with_cache(tiny_wan_pipe, **PIPE_ARGS, generator=torch.Generator().manual_seed(0),
                                names=["b1.sa.q", "b0.o"], edits={n: through for n in every})
    assert torch.equal(out.frames, ref)
    # the pipeline's two CFG calls a step are told apart, with their step and timestep
    entries = cache.entries("blocks.1.attn1.query")
    assert [(e.step_index, e.branches) for e in entries] == [(0, ("cond",)), (0, ("uncond",)),
                                                             (1, ("cond",)), (1, ("uncond",))]
    assert [e.timestep for e in entries[::2]] == tiny_wan_pipe.scheduler.timesteps.tolist()
    assert entries[0].tensor.shape == (1, 2, 2, 2, 24)  # (B, latent frames, h, w, C)
    assert all(type(p).__name__ == "WanAttnProcessor" for p in model.attn_processors.values())
    assert "cache_context" not in model.__dict__


def test_edits_act_where_they_sit(tiny_wan, wan_inputs):
    ref = call(tiny_wan, wan_inputs)
    with hooked(tiny_wan, edits={"output": lambda x, ctx: 2 * x}):
        assert torch.equal(call(tiny_wan, wan_inputs), 2 * ref)

    def frame0(x, ctx):
        grid = ctx.frames(x).clone()
        grid[:, 1:] = grid[:, :1]  # every latent frame's tokens become frame 0's
        return ctx.merge(grid)

    with hooked(tiny_wan, edits={"b1.o": frame0}):
        out = call(tiny_wan, wan_inputs)
    # the last block's output goes through a per-token head: equal tokens give equal frames
    assert torch.equal(out[:, :, 1], out[:, :, 0]) and torch.equal(out[:, :, 2], out[:, :, 0])
    assert not torch.equal(out, ref)


def test_point_that_never_fires_raises(tiny_wan, wan_inputs):
    block = tiny_wan.blocks[1]
    block.forward = lambda hidden_states, *a, **k: hidden_states  # a "diffusers upgrade" skipping attention
    try:
        with pytest.raises(HookPointNotFired, match=r"did not run.*blocks\.1\.attn1\.query"):
            with hooked(tiny_wan, edits={"b1.sa.q": through, "b0.ff.o": through}):
                call(tiny_wan, wan_inputs)
    finally:
        del block.forward
    assert type(tiny_wan.blocks[1].attn1.processor).__name__ == "WanAttnProcessor"
    sample, t, ehs = wan_inputs
    with pytest.raises(HookPointNotFired, match="stored nothing"):
        run_with_cache(tiny_wan, hidden_states=sample, timestep=t, encoder_hidden_states=ehs, names=["b0.o"],
                       timesteps=[201.0])


def test_stop_early_ends_the_forward_after_the_last_capture(tiny_wan, wan_inputs):
    sample, t, ehs = wan_inputs
    ran = []
    handle = tiny_wan.blocks[1].register_forward_pre_hook(lambda m, a: ran.append(1))
    try:
        out, cache = run_with_cache(tiny_wan, hidden_states=sample, timestep=t, encoder_hidden_states=ehs,
                                    names=["b0.x.o"], stop_early=True)
    finally:
        handle.remove()
    assert out is None and ran == [] and cache["b0.x.o"].shape == (1, 3, 2, 2, 24)
    assert cache.entries("b0.x.o")[0].timestep == 500.0


def test_two_sessions_at_once_both_see_the_branches(tiny_wan_pipe):
    model = tiny_wan_pipe.transformer
    args = {**PIPE_ARGS, "num_inference_steps": 1, "output_type": "latent"}
    with hooked(model, capture=["b0.o"]) as first:
        with hooked(model, capture=["b1.o"]) as second:
            tiny_wan_pipe(**args, generator=torch.Generator().manual_seed(0))
        tiny_wan_pipe(**args, generator=torch.Generator().manual_seed(0))  # the first session still listens
    assert [e.branches for e in second.cache.entries("b1.o")] == [("cond",), ("uncond",)]
    assert [e.branches for e in first.cache.entries("b0.o")] == [("cond",), ("uncond",)] * 2
    assert "cache_context" not in model.__dict__


def test_gradients_through_an_undetached_capture_match_with_checkpointing(tiny_wan, wan_inputs):
    sample, t, ehs = wan_inputs

    runs = []
    counter = tiny_wan.blocks[0].register_forward_pre_hook(lambda m, a: runs.append(1))

    def grad(checkpointing: bool):
        z = sample.clone().requires_grad_(True)
        runs.clear()
        if checkpointing:  # blocks re-run in backward: the edit applies again, nothing is captured twice
            tiny_wan.enable_gradient_checkpointing()
        try:
            with hooked(tiny_wan, edits={"b0.sa.q": lambda x, ctx: 2 * x},
                        capture=Capture(("b1.o",), detach=False)) as session:
                tiny_wan(hidden_states=z, timestep=t, encoder_hidden_states=ehs)
                session.cache["b1.o"][:, 2].pow(2).mean().backward()  # latent frame 2's tokens
        finally:
            tiny_wan.disable_gradient_checkpointing()
        assert len(session.cache.entries("b1.o")) == 1 and len(runs) == 1 + checkpointing
        return z.grad

    try:
        plain, checkpointed = grad(False), grad(True)
    finally:
        counter.remove()
    assert plain.abs().sum() > 0 and torch.isfinite(plain).all()
    torch.testing.assert_close(checkpointed, plain)
