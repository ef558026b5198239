"""Hook points: names, exact captures, edits, cleanup, early stop, motion bypass."""
import pytest
import torch

from anyi2v_lab.hooks import (
    Capture,
    HookError,
    HookPointNotFired,
    bypass_motion,
    estimate_capture_bytes,
    hook_points,
    hooked,
    list_hook_points,
    run_with_cache,
    up_resnets,
    up_self_attention,
)

Q = "up_blocks.1.attentions.0.transformer_blocks.0.attn1"
BLOCK = "up_blocks.1.attentions.0.transformer_blocks.0"


def plain(unet, inputs):
    sample, t, ehs = inputs
    with torch.no_grad():
        return unet(sample, t, encoder_hidden_states=ehs).sample


def test_sd15_layer_table(sd15_unet):
    attn = up_self_attention(sd15_unet)
    res = up_resnets(sd15_unet)
    assert attn == [f"up_blocks.{b}.attentions.{j}.transformer_blocks.0.attn1" for b in (1, 2, 3) for j in range(3)]
    assert res == [f"up_blocks.{b}.resnets.{j}" for b in range(4) for j in range(3)]
    # the reference's ids: load_attn_list [0,1,3,4], opt_attn_list [1,3], load_res_list [3,4,6,7]
    assert [attn[i].rsplit(".", 3)[0] for i in (1, 3)] == ["up_blocks.1.attentions.1", "up_blocks.2.attentions.0"]
    assert [res[i] for i in (3, 4, 6, 7)] == ["up_blocks.1.resnets.0", "up_blocks.1.resnets.1",
                                               "up_blocks.2.resnets.0", "up_blocks.2.resnets.1"]


def test_sd15_shapes(sd15_unet):
    points = {p.name: p for p in hook_points(sd15_unet)}
    q = points["up_blocks.1.attentions.1.transformer_blocks.0.attn1.query"]
    assert q.shape(2, 16, (64, 64)) == (32, 256, 1280)
    r = points["up_blocks.2.resnets.0.residual"]
    assert r.shape(1, 1, (64, 64)) == (1, 640, 32, 32)
    assert points["output"].shape(2, 16, (64, 64)) == (2, 4, 16, 64, 64)


def test_names_are_listed_and_filtered(tiny_unet):
    names = list_hook_points(tiny_unet, pattern="up_blocks.2.*attn1.query")
    assert names == [f"up_blocks.2.attentions.{j}.transformer_blocks.0.attn1.query" for j in range(3)]
    assert list_hook_points(tiny_unet, kind="motion", site="input")[0] == "down_blocks.0.motion_modules.0.input"
    with pytest.raises(ValueError, match="kind="):
        list_hook_points(tiny_unet, kind="nope")


def test_unknown_name_suggests(tiny_unet, unet_inputs):
    with pytest.raises(KeyError, match="did you mean"):
        run_with_cache(tiny_unet, *unet_inputs[:2], encoder_hidden_states=unet_inputs[2], names=[Q + ".querry"])


def test_query_capture_equals_independent_computation(tiny_unet, unet_inputs):
    sample, t, ehs = unet_inputs
    block = tiny_unet.get_submodule(BLOCK)
    seen = {}
    handle = block.norm1.register_forward_hook(lambda m, a, out: seen.setdefault("n", out.detach().clone()))
    try:
        _, cache = run_with_cache(tiny_unet, sample, t, encoder_hidden_states=ehs, names=[Q + ".query", Q + ".input"])
    finally:
        handle.remove()
    expected = block.attn1.to_q(seen["n"]).detach()
    got = cache[Q + ".query"]
    assert got.shape == (1, 6, 16, 32)
    torch.testing.assert_close(got.flatten(0, 1), expected, rtol=0, atol=0)
    torch.testing.assert_close(cache[Q + ".input"].flatten(0, 1), seen["n"], rtol=0, atol=0)


def test_probs_reproduce_layer_output(tiny_unet, unet_inputs):
    sample, t, ehs = unet_inputs
    names = [Q + s for s in (".probs", ".value", ".output")]
    _, cache = run_with_cache(tiny_unet, sample, t, encoder_hidden_states=ehs, names=names)
    probs, v, out = (cache[n].flatten(0, 1) for n in names)  # (BF, h, N, N), (BF, N, C), (BF, N, C)
    attn = tiny_unet.get_submodule(Q)
    torch.testing.assert_close(probs.sum(-1), torch.ones_like(probs.sum(-1)))
    heads = v.view(v.shape[0], v.shape[1], attn.heads, -1).transpose(1, 2)
    mixed = (probs @ heads).transpose(1, 2).flatten(2)
    with torch.no_grad():
        torch.testing.assert_close(attn.to_out[0](mixed), out, rtol=1e-5, atol=1e-6)


def noop(x, ctx):
    return None


def test_noop_hooks_are_bit_identical_and_removed(tiny_unet, unet_inputs):
    ref = plain(tiny_unet, unet_inputs)
    every = [n for n in list_hook_points(tiny_unet) if not n.endswith(".probs")]
    sample, t, ehs = unet_inputs
    with torch.no_grad(), hooked(tiny_unet, edits={n: noop for n in every}, capture=every[::7]) as s:
        out = tiny_unet(sample, t, encoder_hidden_states=ehs).sample
    assert torch.equal(out, ref)
    assert s.calls == 1
    assert torch.equal(plain(tiny_unet, unet_inputs), ref)
    assert all(type(p).__name__ != "HookedAttnProcessor" for p in tiny_unet.attn_processors.values())


def test_cleanup_when_an_edit_raises(tiny_unet, unet_inputs):
    ref = plain(tiny_unet, unet_inputs)
    sample, t, ehs = unet_inputs

    def boom(x, ctx):
        raise RuntimeError("edit failed")

    edits = {Q + ".query": boom, "up_blocks.2.resnets.0.residual": noop, "down_blocks.0.motion_modules.0.input": noop}
    with pytest.raises(RuntimeError, match="edit failed"):
        with torch.no_grad(), hooked(tiny_unet, edits=edits):
            tiny_unet(sample, t, encoder_hidden_states=ehs)
    assert torch.equal(plain(tiny_unet, unet_inputs), ref)
    for module in tiny_unet.modules():
        assert not hasattr(module, "_anyi2v_hook_owner")
        assert not module._forward_hooks and not module._forward_pre_hooks
    with hooked(tiny_unet, edits=edits | {Q + ".query": noop}):  # hookable again
        pass


def test_query_edit_is_visible_downstream(tiny_unet, unet_inputs):
    sample, t, ehs = unet_inputs
    ref = plain(tiny_unet, unet_inputs)

    def zero_frame0(q, ctx):
        q = ctx.frames(q).clone()
        q[:, 0] = 0
        return ctx.merge(q)

    later = "up_blocks.2.resnets.0.output"
    _, base = run_with_cache(tiny_unet, sample, t, encoder_hidden_states=ehs, names=[later])
    out, cache = run_with_cache(tiny_unet, sample, t, encoder_hidden_states=ehs, names=[Q + ".query", later],
                                edits={Q + ".query": zero_frame0})
    assert torch.all(cache[Q + ".query"][:, 0] == 0)
    assert not torch.equal(cache[later], base[later])
    assert not torch.equal(out.sample, ref)


def test_capture_restricted_to_one_timestep(tiny_pipe):
    name = Q + ".query"
    _, cache = run_with_cache(tiny_pipe, prompt="a cat", num_frames=4, num_inference_steps=3, height=128,
                              width=128, output_type="latent", names=[name], timesteps=[334], branch="cond",
                              frames=[0, 2], generator=torch.Generator().manual_seed(0))
    entries = cache.entries(name)
    assert [(e.timestep, e.step_index, e.branches, e.frames) for e in entries] == [(334, 1, ("cond",), (0, 2))]
    assert cache[name].shape == (1, 2, 16, 32)


def test_capture_device_dtype_and_estimate(tiny_unet, unet_inputs):
    sample, t, ehs = unet_inputs
    names = [Q + ".probs", "up_blocks.2.resnets.1.residual"]
    _, cache = run_with_cache(tiny_unet, sample, t, encoder_hidden_states=ehs, names=names,
                              dtype=torch.float16, frames=[1])
    assert all(cache[n].dtype == torch.float16 and cache[n].shape[1] == 1 for n in names)
    est = estimate_capture_bytes(tiny_unet, Capture(tuple(names), frames=(1,)), height=128, width=128,
                                 num_frames=6, batch=1, dtype=torch.float16)
    assert est["total"] == cache.nbytes


def test_memory_estimate_sd15_probs_exceed_16gb(sd15_unet):
    name = "up_blocks.3.attentions.0.transformer_blocks.0.attn1.probs"
    est = estimate_capture_bytes(sd15_unet, [name], height=512, width=512, num_frames=16, batch=2,
                                 dtype=torch.float32)
    assert est["total"] == 32 * 8 * 4096 * 4096 * 4 > 16 * 10**9
    assert estimate_capture_bytes(sd15_unet, [name], dtype=torch.float16)["total"] == est["total"] // 2


def test_max_bytes_refuses_before_running(tiny_unet, unet_inputs):
    sample, t, ehs = unet_inputs
    with pytest.raises(HookError, match="max_bytes"):
        run_with_cache(tiny_unet, sample, t, encoder_hidden_states=ehs, names=[Q + ".probs"], max_bytes=1000)


def test_a_large_capture_without_max_bytes_warns_once_and_one_that_cannot_fit_is_refused(
        tiny_unet, unet_inputs, sd15_unet, monkeypatch):
    """Every attention map of SD1.5 at 512 px, 16 frames and CFG is tens of GiB: past WARN_BYTES a capture
    without max_bytes warns, and a call whose share exceeds the free memory is refused before it runs. The
    tiny UNet stands in with the threshold and the free memory lowered."""
    from anyi2v_lab.hooks import CaptureSizeWarning
    from anyi2v_lab.hooks import session as sessions
    from anyi2v_lab.hooks.session import WARN_BYTES

    every_map = [p.name for p in hook_points(sd15_unet) if p.name.endswith("attn1.probs")]
    assert estimate_capture_bytes(sd15_unet, every_map, dtype=torch.float32)["total"] > 10 * WARN_BYTES
    sample, t, ehs = unet_inputs
    names = [p.name for p in hook_points(tiny_unet) if p.name.endswith("attn1.probs")]
    monkeypatch.setattr(sessions, "WARN_BYTES", 1000)
    with pytest.warns(CaptureSizeWarning, match="has no max_bytes; pass max_bytes= to bound it, or capture less: "
                                                "a narrower pattern") as warned:
        with hooked(tiny_unet, capture=Capture(tuple(names))) as session:
            session.forward(sample, t, encoder_hidden_states=ehs)
            session.forward(sample, t, encoder_hidden_states=ehs)
    assert len([w for w in warned if w.category is CaptureSizeWarning]) == 1 and len(session.cache) == len(names)
    monkeypatch.setattr(sessions, "available_memory", lambda device: (2000, "available RAM"))
    with pytest.raises(HookError, match="over the 0.0 MiB of available RAM on cpu; pass max_bytes=") as e:
        run_with_cache(tiny_unet, sample, t, encoder_hidden_states=ehs, names=names)
    assert "in its next UNet call" in str(e.value)
    _, cache = run_with_cache(tiny_unet, sample, t, encoder_hidden_states=ehs, names=names, max_bytes=10**9)
    assert len(cache) == len(names)  # a bound the caller chose is the caller's decision


def test_double_hook_is_an_error(tiny_unet):
    with hooked(tiny_unet, edits={Q + ".query": noop}):
        with pytest.raises(HookError, match="already hooked"):
            with hooked(tiny_unet, edits={Q + ".key": noop}):
                pass
    with hooked(tiny_unet, edits={Q + ".key": noop}):  # the first session's exit released it
        pass


def test_point_that_never_fires_raises(tiny_unet, unet_inputs):
    sample, t, ehs = unet_inputs
    block = tiny_unet.get_submodule(BLOCK)
    block.forward = lambda hidden_states, *a, **k: hidden_states  # a "diffusers upgrade" skipping attn1
    try:
        with pytest.raises(HookPointNotFired, match="did not run"):
            with torch.no_grad(), hooked(tiny_unet, edits={Q + ".query": noop}):
                tiny_unet(sample, t, encoder_hidden_states=ehs)
    finally:
        del block.forward


def test_capture_filter_matching_nothing_raises(tiny_unet, unet_inputs):
    sample, t, ehs = unet_inputs
    with pytest.raises(HookPointNotFired, match="stored nothing"):
        run_with_cache(tiny_unet, sample, t, encoder_hidden_states=ehs, names=[Q + ".query"], timesteps=[201])


def test_stop_early_skips_the_rest(tiny_unet, unet_inputs):
    sample, t, ehs = unet_inputs
    ran = []
    handle = tiny_unet.up_blocks[3].register_forward_hook(lambda *a: ran.append(1))
    try:
        out, cache = run_with_cache(tiny_unet, sample, t, encoder_hidden_states=ehs, stop_early=True,
                                    names=["up_blocks.2.attentions.0.transformer_blocks.0.attn1.query", Q + ".query"])
    finally:
        handle.remove()
    assert out is None and not ran
    _, full = run_with_cache(tiny_unet, sample, t, encoder_hidden_states=ehs, names=[Q + ".query"])
    assert torch.equal(cache[Q + ".query"], full[Q + ".query"])


def test_gradients_flow_through_undetached_capture(tiny_unet, unet_inputs):
    sample, t, ehs = unet_inputs
    z = sample.clone().requires_grad_(True)
    name = "up_blocks.2.attentions.0.transformer_blocks.0.attn1.query"
    _, cache = run_with_cache(tiny_unet, z, t, encoder_hidden_states=ehs, names=[name], detach=False,
                              stop_early=True)
    cache[name][:, 3].pow(2).mean().backward()
    assert z.grad is not None and torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0


def test_motion_bypass_makes_frames_independent(tiny_unet, unet_inputs):
    sample, t, ehs = unet_inputs
    moved = sample.clone()
    moved[:, :, 0] += 1.0
    with bypass_motion(tiny_unet):
        a, b = plain(tiny_unet, (sample, t, ehs)), plain(tiny_unet, (moved, t, ehs))
    assert torch.equal(a[:, :, 5], b[:, :, 5])
    assert not torch.equal(a[:, :, 0], b[:, :, 0])
    a, b = plain(tiny_unet, (sample, t, ehs)), plain(tiny_unet, (moved, t, ehs))
    assert not torch.equal(a[:, :, 5], b[:, :, 5])  # restored: frames interact again


def test_cache_round_trip(tmp_path, tiny_unet, unet_inputs):
    from anyi2v_lab.hooks import ActivationCache

    sample, t, ehs = unet_inputs
    _, cache = run_with_cache(tiny_unet, sample, t, encoder_hidden_states=ehs,
                              names=[Q + ".query", "up_blocks.1.resnets.0.residual"], branch="cond")
    path = tmp_path / "cache.safetensors"
    cache.save(path)
    back = ActivationCache.load(path)
    for name in cache:
        assert torch.equal(back[name], cache[name])
        assert back.entries(name)[0].timestep == t


def test_embeddings_must_be_per_frame(tiny_unet, unet_inputs):
    sample, t, ehs = unet_inputs
    with pytest.raises(ValueError, match="per_frame"):
        run_with_cache(tiny_unet, sample, t, encoder_hidden_states=ehs[:1], names=[Q + ".query"])


def test_merge_edits_keeps_order_and_accepts_single_functions():
    from anyi2v_lab.hooks import merge_edits

    f, g, h = (lambda x, ctx: x), (lambda x, ctx: x + 1), (lambda x, ctx: x * 2)
    first = {"a": [f], "b": g}
    merged = merge_edits(first, None, {"a": h, "c": [g, h]})
    assert merged == {"a": [f, h], "b": [g], "c": [g, h]}
    assert first == {"a": [f], "b": g}  # the inputs are not changed


def test_capture_frames_slice_or_select_and_never_alias():
    # consecutive frames are sliced (a list index would upload itself with a blocking copy), others
    # selected; either way the stored tensor owns its memory, so later in-place edits cannot reach it
    from anyi2v_lab.hooks import CallInfo

    x = torch.arange(2 * 5 * 3, dtype=torch.float32).reshape(2, 5, 3)
    for frames in [(1, 2, 3), (0,), (4, 1)]:
        cap = Capture(("p",), frames=frames)
        call = CallInfo(timestep=1, step_index=0, branches=("uncond", "cond"))
        stored, branches, got = cap.reduce(x, call)
        assert torch.equal(stored, x[:, list(frames)]) and got == frames and branches == ("uncond", "cond")
        assert stored.untyped_storage().data_ptr() != x.untyped_storage().data_ptr()
