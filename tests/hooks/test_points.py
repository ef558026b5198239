"""Short hook point names: one bijective short form, accepted wherever a full name is."""
import pytest
import torch

from anyi2v_lab.hooks import full_name, hook_points, hooked, list_hook_points, run_with_cache, short_name

Q = "up_blocks.1.attentions.0.transformer_blocks.0.attn1.query"


@pytest.mark.parametrize("unet_fixture", ["sd15_unet", "tiny_unet"])
def test_short_names_round_trip_over_every_point_and_module(unet_fixture, request):
    points = hook_points(request.getfixturevalue(unet_fixture))
    names = [p.name for p in points] + sorted({p.module for p in points if p.module})
    shorts = [short_name(n) for n in names]
    assert [full_name(s) for s in shorts] == names
    assert len(set(shorts)) == len(names)  # no two points share a short form
    assert all(s != n and "_" not in s for s, n in zip(shorts, names) if n != "output")
    assert full_name(short_name("output")) == "output" and [full_name(n) for n in names] == names
    assert max(map(len, shorts)) <= 15 < min(len(n) for n in names if n != "output")


def test_short_forms_read_as_documented():
    assert short_name(Q) == "up1.a0.t0.q"
    assert short_name("up_blocks.1.attentions.0.transformer_blocks.0.attn2.probs") == "up1.a0.t0.x.p"
    assert short_name("mid_block.resnets.1.residual") == "mid.r1.res"
    assert short_name("down_blocks.0.motion_modules.1.input") == "down0.m1.in"
    assert short_name("up_blocks.2.attentions.1.transformer_blocks.0.attn1") == "up2.a1.t0"
    assert full_name("up2.a1.t0.x") == "up_blocks.2.attentions.1.transformer_blocks.0.attn2"
    # outside the scheme: unchanged, so a lookup reports the name as typed
    assert short_name("conv_in.weight") == "conv_in.weight" and full_name("up1.a0.t0.qq") == "up1.a0.t0.qq"


def test_patterns_match_short_names(tiny_unet):
    assert list_hook_points(tiny_unet, pattern="up2.*.q") == list_hook_points(tiny_unet, pattern="up_blocks.2.*.query")
    assert list_hook_points(tiny_unet, pattern="up1.a0.t0.q") == [Q]
    assert [p.short for p in hook_points(tiny_unet) if p.name == Q] == ["up1.a0.t0.q"]


def test_capture_by_short_name_equals_capture_by_full_name(tiny_unet, unet_inputs):
    sample, t, ehs = unet_inputs
    full_names = [Q, "mid_block.resnets.0.output"]
    _, by_full = run_with_cache(tiny_unet, sample, t, encoder_hidden_states=ehs, names=full_names)
    _, by_short = run_with_cache(tiny_unet, sample, t, encoder_hidden_states=ehs, names=["up1.a0.t0.q", "mid.r0.o"])
    assert sorted(by_short) == sorted(by_full) == sorted(full_names)  # the cache is keyed by full names
    for name in by_full:
        assert torch.equal(by_short[name], by_full[name])
    # and the cache is read by either name
    assert "up1.a0.t0.q" in by_full and "up9.a0.t0.q" not in by_full
    assert torch.equal(by_full["up1.a0.t0.q"], by_full[Q]) and by_full.timesteps("mid.r0.o") == by_full.timesteps(
        "mid_block.resnets.0.output")


def test_edits_and_stops_accept_short_names(tiny_unet, unet_inputs):
    sample, t, ehs = unet_inputs
    seen = []
    with torch.no_grad(), hooked(tiny_unet, edits={"up1.a0.t0.q": lambda x, ctx: seen.append(ctx.name)},
                                 stop_after=["up1.a0.t0.q"]) as session:
        assert session.forward(sample, t, encoder_hidden_states=ehs) is None
    assert seen == [Q] and session.stopped == 1


def test_unknown_short_name_suggests_the_close_one(tiny_unet, unet_inputs):
    sample, t, ehs = unet_inputs
    with pytest.raises(KeyError, match=r"'up1\.a0\.t0\.qq' is not a hook point.*did you mean.*up1\.a0\.t0\.q"):
        run_with_cache(tiny_unet, sample, t, encoder_hidden_states=ehs, names=["up1.a0.t0.qq"])


def test_points_command_prints_the_short_form(capsys):
    from anyi2v_lab.cli import main

    assert main(["points", "--pattern", "up1.*.q"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and lines[0].split()[:2] == [Q, "up1.a0.t0.q"]
