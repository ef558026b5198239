"""The Wan attention processor's points against independent computations from the layer's weights."""
import torch

from anyi2v_lab.hooks import hooked, run_with_cache
from anyi2v_lab.hooks.wan_attention import rotate


def capture(model, inputs, names):
    sample, t, ehs = inputs
    return run_with_cache(model, hidden_states=sample, timestep=t, encoder_hidden_states=ehs, names=names)


def test_query_key_value_and_output_equal_the_layer_recomputed(tiny_wan, wan_inputs):
    names = [f"blocks.1.attn1.{s}" for s in ("input", "query", "key", "value", "output")]
    out, cache = capture(tiny_wan, wan_inputs, names)
    x, q, k, v, o = (cache[n].flatten(1, 3) for n in names)  # back to (B, L, C)
    attn = tiny_wan.blocks[1].attn1
    with torch.no_grad():
        assert torch.equal(q, attn.norm_q(attn.to_q(x))) and torch.equal(k, attn.norm_k(attn.to_k(x)))
        assert torch.equal(v, attn.to_v(x))
        rope = tiny_wan.rope(wan_inputs[0])
        qh, kh, vh = (rotate(a.unflatten(2, (2, -1)), *rope) if a is not v else a.unflatten(2, (2, -1))
                      for a in (q, k, v))
        mixed = torch.softmax(qh.transpose(1, 2) @ kh.transpose(1, 2).mT / 12 ** 0.5, -1) @ vh.transpose(1, 2)
        torch.testing.assert_close(attn.to_out[0](mixed.transpose(1, 2).flatten(2)), o, rtol=1e-5, atol=1e-6)
    assert out.sample.shape == wan_inputs[0].shape


def test_probs_sum_to_one_and_reproduce_the_output(tiny_wan, wan_inputs):
    names = ["b0.sa.p", "b0.sa.v", "b0.sa.o", "b0.x.p", "b0.x.o"]
    plain, _ = capture(tiny_wan, wan_inputs, ["b0.x.o"])
    out, cache = capture(tiny_wan, wan_inputs, names)
    sp, sv, so, xp = (cache[n] for n in names[:4])
    assert sp.shape == (1, 3, 2, 4, 12) and xp.shape == (1, 3, 2, 4, 16)  # (B, F, heads, h*w, keys)
    torch.testing.assert_close(sp.sum(-1), torch.ones_like(sp.sum(-1)))
    attn = tiny_wan.blocks[0].attn1
    probs = sp.transpose(1, 2).flatten(2, 3)  # (B, heads, L, L)
    heads = sv.flatten(1, 3).unflatten(2, (2, -1)).transpose(1, 2)
    with torch.no_grad():
        torch.testing.assert_close(attn.to_out[0]((probs @ heads).transpose(1, 2).flatten(2)), so.flatten(1, 3))
    torch.testing.assert_close(out, plain, rtol=1e-4, atol=1e-5)  # explicit softmax, same result


def test_a_probs_edit_steers_attention(tiny_wan, wan_inputs):
    sample, t, ehs = wan_inputs

    def only_first_token(p, ctx):
        one = torch.zeros_like(p)
        one[..., 0] = 1
        return one

    with torch.no_grad(), hooked(tiny_wan, edits={"b0.x.p": only_first_token}, capture=["b0.x.o"]) as s:
        tiny_wan(hidden_states=sample, timestep=t, encoder_hidden_states=ehs)
    attn, block = tiny_wan.blocks[0].attn2, tiny_wan.blocks[0]
    with torch.no_grad():
        context = tiny_wan.condition_embedder.text_embedder(ehs)
        first_value = attn.to_out[0](attn.to_v(context)[:, :1])  # every token now reads text token 0 only
    got = s.cache["b0.x.o"].flatten(1, 3)
    torch.testing.assert_close(got, first_value.expand_as(got), rtol=1e-5, atol=1e-6)
    assert block.attn2.processor.__class__.__name__ == "WanAttnProcessor"


def test_image_to_video_layers_and_fused_projections_stay_bit_identical():
    from diffusers import WanTransformer3DModel

    from anyi2v_lab.hooks import list_hook_points

    torch.manual_seed(0)  # Wan 2.1 I2V's shape: image tokens before the 512 text tokens, extra k/v projections
    model = WanTransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=36,
                                  out_channels=16, text_dim=32, freq_dim=32, ffn_dim=32, num_layers=1, image_dim=4,
                                  added_kv_proj_dim=24, rope_max_seq_len=32).eval()
    g = torch.Generator().manual_seed(0)
    args = dict(hidden_states=torch.randn(1, 36, 2, 4, 4, generator=g), timestep=torch.tensor([500.0]),
                encoder_hidden_states=torch.randn(1, 512, 32, generator=g),
                encoder_hidden_states_image=torch.randn(1, 257, 4, generator=g), return_dict=False)
    every = {n: (lambda x, ctx: ctx.merge(ctx.frames(x))) for n in list_hook_points(model) if not n.endswith("probs")}
    for fused in (False, True):
        if fused:
            model.blocks[0].attn1.fuse_projections()
            model.blocks[0].attn2.fuse_projections()
        with torch.no_grad():
            ref = model(**args)[0]
            with hooked(model, edits=every, capture=["b0.x.o"]) as session:
                assert torch.equal(model(**args)[0], ref)
        assert session.cache["b0.x.o"].shape == (1, 2, 2, 2, 24)
