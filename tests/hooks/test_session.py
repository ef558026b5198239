"""The hook session's safety nets: an early stop ends the UNet forward and never escapes the ``with`` block;
a point that never fires says which diffusers version the hooks were tested with."""
import pytest
import torch

from anyi2v_lab.hooks import StopForward, hooked

Q = "up_blocks.1.attentions.0.transformer_blocks.0.attn1.query"


def test_stop_after_ends_a_direct_call_quietly(tiny_unet, unet_inputs):
    sample, t, ehs = unet_inputs
    ran_after = []
    handle = tiny_unet.up_blocks[3].register_forward_hook(lambda *a: ran_after.append(1))
    try:
        with torch.no_grad(), hooked(tiny_unet, capture=[Q], stop_after=[Q]) as session:
            tiny_unet(sample, t, encoder_hidden_states=ehs)  # the UNet itself, not session.forward
            pytest.fail("the forward should have stopped after the captured point")
    finally:
        handle.remove()
    assert session.stopped == 1 and not ran_after
    assert session.cache[Q].shape[:2] == (1, 6)
    assert tiny_unet.get_submodule(Q.rsplit(".", 1)[0]).processor.__class__.__name__ != "HookedAttnProcessor"


def test_another_sessions_stop_is_not_swallowed(tiny_unet):
    with pytest.raises(StopForward):
        with hooked(tiny_unet, capture=[Q]) as session:
            raise StopForward(Q, object())
    assert session.stopped == 0


def test_a_point_that_never_fires_names_the_tested_diffusers_version(tiny_unet, unet_inputs):
    from importlib.metadata import version

    from anyi2v_lab.hooks import HookPointNotFired

    sample, t, ehs = unet_inputs
    block = tiny_unet.get_submodule(Q.rsplit(".", 2)[0])
    block.forward = lambda hidden_states, *a, **k: hidden_states  # a diffusers upgrade that skips attn1
    try:
        with pytest.raises(HookPointNotFired) as err:
            with torch.no_grad(), hooked(tiny_unet, edits={Q: lambda x, ctx: None}):
                tiny_unet(sample, t, encoder_hidden_states=ehs)
    finally:
        del block.forward
    assert "constraints.txt" in str(err.value) and f"this one is {version('diffusers')}" in str(err.value)
