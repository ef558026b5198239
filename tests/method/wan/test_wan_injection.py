"""Injection into latent frame 0 on a tiny Wan transformer: what changes and what does not."""
import pytest
import torch

from anyi2v_lab.hooks import Capture, hooked
from anyi2v_lab.method.adain import patch_adain
from anyi2v_lab.method.wan.config import WanAnyI2VConfig
from anyi2v_lab.method.wan.injection import injection_edits
from anyi2v_lab.method.wan.inversion import WanFeatures, feature_names

NAMES = ["blocks.0.output", "blocks.1.attn1.query", "blocks.1.attn1.key", "blocks.1.attn1.value", "blocks.1.output"]


def config(**kw) -> WanAnyI2VConfig:
    return WanAnyI2VConfig(num_frames=9, height=32, width=32, num_inference_steps=4, inject_steps=2, opt_steps=0,
                           inject_blocks=(1,), align_blocks=(1,), **kw)


def features(cfg: WanAnyI2VConfig) -> WanFeatures:
    g = torch.Generator().manual_seed(1)
    # one latent frame of the 4x4-latent input: 2x2 tokens of 24 channels
    return WanFeatures(tensors={n: torch.randn(2, 2, 24, generator=g) for n in feature_names(cfg)}, sigma=0.2,
                       latent=torch.zeros(1))


def forward(model, inputs, edits, step_index=0, branch="cond", phase="sampling") -> dict:
    with hooked(model, edits=edits, capture=Capture(tuple(NAMES)), phase=phase) as session:
        with session.calling(step_index=step_index, branches=(branch,)), torch.no_grad():
            session.forward(*inputs, return_dict=False)
    return {n: session.cache[n][0] for n in NAMES}  # (F, h, w, C)


def test_feature_names_follow_the_switches():
    assert feature_names(config()) == ["blocks.1.output", "blocks.1.attn1.query", "blocks.1.attn1.key",
                                       "blocks.1.attn1.value"]
    assert feature_names(config(inject_kv=False, inject_output=False)) == ["blocks.1.attn1.query"]


def test_injection_changes_only_frame_0_at_the_injected_block(tiny_wan, wan_inputs):
    cfg = config(inject_kv=False)  # queries and block outputs: other frames must not move at all
    bank = features(cfg)
    plain = forward(tiny_wan, wan_inputs, {})
    injected = forward(tiny_wan, wan_inputs, injection_edits(bank, cfg))
    assert torch.equal(plain["blocks.0.output"], injected["blocks.0.output"])  # before the injected block
    for name in ("blocks.1.attn1.query", "blocks.1.output"):
        assert torch.equal(plain[name][1:], injected[name][1:]), name
        assert not torch.allclose(plain[name][0], injected[name][0]), name
    assert torch.equal(injected["blocks.1.attn1.query"][0], bank.tensors["blocks.1.attn1.query"])


def test_block_output_is_patch_adain_of_the_stored_onto_the_current(tiny_wan, wan_inputs):
    cfg = config(inject_query=False, inject_kv=False)
    bank = features(cfg)
    plain = forward(tiny_wan, wan_inputs, {})
    injected = forward(tiny_wan, wan_inputs, injection_edits(bank, cfg))
    current = plain["blocks.1.output"][0].permute(2, 0, 1)  # (C, h, w): per 2x2 token window's statistics
    expected = patch_adain(bank.tensors["blocks.1.output"].permute(2, 0, 1), current, 2, cfg.adain_eps)
    torch.testing.assert_close(injected["blocks.1.output"][0], expected.permute(1, 2, 0))
    assert torch.equal(plain["blocks.1.output"][1:], injected["blocks.1.output"][1:])

def test_keys_and_values_of_frame_0_only(tiny_wan, wan_inputs):
    cfg = config(inject_output=False, inject_query=False)
    bank = features(cfg)
    plain = forward(tiny_wan, wan_inputs, {})
    injected = forward(tiny_wan, wan_inputs, injection_edits(bank, cfg))
    for site in ("query", "key", "value"):
        name = f"blocks.1.attn1.{site}"
        assert torch.equal(plain[name][1:], injected[name][1:]), name
    for site in ("key", "value"):
        assert torch.equal(injected[f"blocks.1.attn1.{site}"][0], bank.tensors[f"blocks.1.attn1.{site}"])
    assert torch.equal(plain["blocks.1.attn1.query"], injected["blocks.1.attn1.query"])
    # every frame attends to frame 0's keys: later frames' outputs move through attention alone
    assert not torch.allclose(plain["blocks.1.output"][1:], injected["blocks.1.output"][1:])


@pytest.mark.parametrize("when", [dict(step_index=2), dict(branch="uncond"), dict(phase="inversion")])
def test_no_injection_outside_its_window_or_on_the_unconditional_branch(tiny_wan, wan_inputs, when):
    cfg = config()  # inject_steps=2: sampling steps 0 and 1
    plain = forward(tiny_wan, wan_inputs, {}, **when)
    injected = forward(tiny_wan, wan_inputs, injection_edits(features(cfg), cfg), **when)
    assert all(torch.equal(plain[n], injected[n]) for n in NAMES)


def test_optimisation_forwards_always_inject(tiny_wan, wan_inputs):
    cfg = config()
    plain = forward(tiny_wan, wan_inputs, {}, step_index=3, phase="optimisation")
    injected = forward(tiny_wan, wan_inputs, injection_edits(features(cfg), cfg), step_index=3, phase="optimisation")
    assert not torch.equal(plain["blocks.1.output"][0], injected["blocks.1.output"][0])
