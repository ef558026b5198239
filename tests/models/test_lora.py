"""LoRA merging: W += factor * up @ down checked against a hand computation on chosen layers, for every key
layout read (kohya diffusers- and sgm-named, peft, AnimateDiff motion), both conventions, and clear errors."""
import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from anyi2v_lab.models.errors import ModelLoadError
from anyi2v_lab.models.loading import load_pipeline
from anyi2v_lab.models.lora import LoraSpec, lora_delta, merge_lora
from anyi2v_lab.models.original_formats import pipeline_to_ldm, unet_key_to_ldm
from anyi2v_lab.models.tiny import tiny_pipeline
from helpers.tiny_files import frames, save_tiny

# (target, module): a Linear, a 1x1 conv (proj_in without linear projection), a 3x3 conv (LoCon), CLIP's q_proj
SPATIAL = [("unet", "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q"),
           ("unet", "up_blocks.2.attentions.1.proj_in"),
           ("unet", "up_blocks.1.resnets.0.conv1"),
           ("text_encoder", "encoder.layers.0.self_attn.q_proj")]
# AnimateDiff original names -> the diffusers layer they must reach
MOTION = {"down_blocks.0.motion_modules.0.temporal_transformer.transformer_blocks.0.attention_blocks.0.processor.to_q":
          "down_blocks.0.motion_modules.0.transformer_blocks.0.attn1.to_q",
          "up_blocks.1.motion_modules.2.temporal_transformer.transformer_blocks.0.attention_blocks.1.processor.to_out":
          "up_blocks.1.motion_modules.2.transformer_blocks.0.attn2.to_out.0"}
RANK, ALPHA = 4, 2.0


@pytest.fixture
def pipe():
    return tiny_pipeline(0)


def models(pipe):
    return {"unet": pipe.unet, "text_encoder": pipe.text_encoder}


def lora_weights(pipe, layers, seed=0):
    """{(target, module): (down, up)}: rank-4 factors shaped for each layer (conv down keeps the kernel)."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for target, name in layers:
        w = models(pipe)[target].get_submodule(name).weight
        down_shape = (RANK, *w.shape[1:]) if w.ndim == 2 or w.shape[2] > 1 else (RANK, w.shape[1], 1, 1)
        up_shape = (w.shape[0], RANK) if w.ndim == 2 else (w.shape[0], RANK, 1, 1)
        out[(target, name)] = torch.randn(down_shape, generator=g) * 0.3, torch.randn(up_shape, generator=g) * 0.3
    return out


def kohya(weights, sgm=False):
    sd = {}
    for (target, name), (down, up) in weights.items():
        if target == "unet":
            stem = "lora_unet_" + (
                unet_key_to_ldm(name + ".weight")[: -len(".weight")] if sgm else name).replace(".", "_")
        else:
            stem = "lora_te_text_model_" + name.replace(".", "_")  # kohya names CLIP with its text_model level
        sd |= {f"{stem}.lora_down.weight": down, f"{stem}.lora_up.weight": up, f"{stem}.alpha": torch.tensor(ALPHA)}
    return sd


def peft(weights):
    sd = {}
    for (target, name), (down, up) in weights.items():
        stem = f"unet.{name}" if target == "unet" else f"text_encoder.text_model.{name}"
        sd |= {f"{stem}.lora_A.weight": down, f"{stem}.lora_B.weight": up, f"{stem}.alpha": torch.tensor(ALPHA)}
    return sd


def expected(pipe, weights, factor):
    """W + factor * up @ down, computed here layer by layer."""
    out = {}
    for (target, name), (down, up) in weights.items():
        w = models(pipe)[target].get_submodule(name).weight.detach().clone()
        out[(target, name)] = w + factor * (up.flatten(1) @ down.flatten(1)).reshape(w.shape)
    return out


def merged(pipe, weights):
    return {(t, n): models(pipe)[t].get_submodule(n).weight.detach() for t, n in weights}


@pytest.mark.parametrize("convention, factor", [("scaled", 0.7 * ALPHA / RANK), ("animatediff", 0.7)])
def test_kohya_spatial_merge_equals_hand_computation(pipe, tmp_path, convention, factor):
    weights = lora_weights(pipe, SPATIAL)
    want = expected(pipe, weights, factor)
    save_file(kohya(weights), tmp_path / "style.safetensors")
    report = merge_lora(models(pipe), LoraSpec(tmp_path / "style.safetensors", 0.7, convention=convention))
    assert report.kind == "spatial" and report.layers == len(SPATIAL)
    for key, w in merged(pipe, weights).items():
        torch.testing.assert_close(w, want[key], atol=1e-6, rtol=0)


@pytest.mark.parametrize("layout", ["peft", "kohya_sgm"])
def test_other_layouts_merge_like_kohya(tmp_path, layout):
    a, b = tiny_pipeline(0), tiny_pipeline(0)
    weights = lora_weights(a, SPATIAL)
    save_file(kohya(weights), tmp_path / "kohya.safetensors")
    save_file(peft(weights) if layout == "peft" else kohya(weights, sgm=True), tmp_path / "other.safetensors")
    assert any("input_blocks" in k or "output_blocks" in k for k in kohya(weights, sgm=True))
    merge_lora(models(a), (tmp_path / "kohya.safetensors", 0.5))
    merge_lora(models(b), (tmp_path / "other.safetensors", 0.5))
    assert all(torch.equal(merged(a, weights)[k], merged(b, weights)[k]) for k in weights)


def test_motion_lora_in_animatediff_layout(pipe, tmp_path):
    layers = [("unet", v) for v in MOTION.values()]
    weights = lora_weights(pipe, layers)
    want = expected(pipe, weights, 0.8)
    sd = {}
    for original, (_, name) in zip(MOTION, layers):
        down, up = weights[("unet", name)]
        sd |= {f"{original}_lora.down.weight": down, f"{original}_lora.up.weight": up}
    torch.save(sd, tmp_path / "v2_lora_tiny.ckpt")  # AnimateDiff ships motion LoRAs as .ckpt
    report = merge_lora(models(pipe), LoraSpec(tmp_path / "v2_lora_tiny.ckpt", 0.8, kind="motion"))
    assert report.kind == "motion" and report.layers == 2
    for key, w in merged(pipe, weights).items():
        torch.testing.assert_close(w, want[key], atol=1e-6, rtol=0)


def test_loras_through_load_pipeline_change_the_output(tmp_path):
    base, adapter, _ = save_tiny(tmp_path, 0)
    probe = tiny_pipeline(0)
    ref = frames(probe)
    save_file(kohya(lora_weights(probe, SPATIAL)), tmp_path / "spatial.safetensors")
    motion = lora_weights(probe, [("unet", v) for v in MOTION.values()])
    save_file({f"unet.{n}.lora_{ab}.weight": t for (_, n), pair in motion.items() for ab, t in zip("AB", pair)},
              tmp_path / "motion.safetensors")
    pipe = load_pipeline(base, motion_adapter=adapter, loras=[tmp_path / "spatial.safetensors"], progress=False)
    assert [m.kind for m in pipe.load_report.loras] == ["spatial"]
    assert np.abs(frames(pipe) - ref).max() > 1e-3
    pipe = load_pipeline(base, motion_adapter=adapter, progress=False,
                         loras=[(tmp_path / "spatial.safetensors", 0.0), LoraSpec(tmp_path / "motion.safetensors")])
    assert [m.kind for m in pipe.load_report.loras] == ["spatial", "motion"]  # spatial at scale 0: a no-op
    motion_only = frames(pipe)
    assert np.abs(motion_only - ref).max() > 1e-3
    merge_lora(models(probe), tmp_path / "motion.safetensors")
    assert np.abs(frames(probe) - motion_only).max() == 0
    with pytest.raises(ModelLoadError, match="loras=.*spatail.safetensors' does not exist; did you mean"):
        load_pipeline(base, motion_adapter=adapter, loras=[tmp_path / "spatail.safetensors"])
    save_file(pipeline_to_ldm(None, None, probe.text_encoder), tmp_path / "te.safetensors")
    with pytest.raises(ModelLoadError, match="is an SD1.x checkpoint: pass it as checkpoint="):
        load_pipeline(base, motion_adapter=adapter, loras=[tmp_path / "te.safetensors"])


def test_delta_shapes_linear_and_conv():
    down, up = torch.randn(2, 5), torch.randn(3, 2)
    assert torch.equal(lora_delta(down, up, (3, 5)), up @ down)
    down3, up3 = torch.randn(2, 5, 3, 3), torch.randn(4, 2, 1, 1)
    assert torch.allclose(lora_delta(down3, up3, (4, 5, 3, 3)), torch.einsum("or,rikl->oikl", up3[:, :, 0, 0], down3))
    with pytest.raises(ModelLoadError, match=r"up \(3, 2\) @ down \(2, 5\) does not give a weight of shape \(3, 6\)"):
        lora_delta(down, up, (3, 6))


def test_errors_name_the_problem(pipe, tmp_path):
    weights = lora_weights(pipe, SPATIAL[:1])
    bad = kohya(weights) | {"lora_unet_down_blocks_9_nothing_here.lora_down.weight": torch.zeros(1, 1),
                            "lora_unet_down_blocks_9_nothing_here.lora_up.weight": torch.zeros(1, 1)}
    save_file(bad, tmp_path / "bad.safetensors")
    with pytest.raises(ModelLoadError, match="1 of 2 LoRA layers match no Linear/Conv2d.*down_blocks_9_nothing_here"):
        merge_lora(models(pipe), tmp_path / "bad.safetensors")
    save_file(kohya(weights) | {"lora_unet_x.hada_w1_a": torch.zeros(1)}, tmp_path / "loha.safetensors")
    with pytest.raises(ModelLoadError, match="lora_unet_x.hada_w1_a.*LyCORIS"):
        merge_lora(models(pipe), tmp_path / "loha.safetensors")
    save_file(kohya(weights), tmp_path / "style.safetensors")
    with pytest.raises(ModelLoadError, match="LoraSpec\\(kind='motion'\\) but .*style.safetensors' targets spatial"):
        merge_lora(models(pipe), LoraSpec(tmp_path / "style.safetensors", kind="motion"))
    before = {k: w.clone() for k, w in merged(pipe, weights).items()}
    wrong = kohya(weights) | kohya({SPATIAL[1]: (torch.zeros(RANK, 3, 1, 1), torch.zeros(32, RANK, 1, 1))})
    save_file(wrong, tmp_path / "wrong.safetensors")
    with pytest.raises(ModelLoadError,
                       match=r"up \(32, 4, 1, 1\) @ down \(4, 3, 1, 1\) .*unet.up_blocks.2.attentions.1.proj_in"):
        merge_lora(pipe, tmp_path / "wrong.safetensors")
    assert all(torch.equal(w, before[k]) for k, w in merged(pipe, weights).items())  # nothing half-merged
    for field, kw in (("kind", dict(kind="temporal")), ("convention", dict(convention="kohya")),
                      ("scale", dict(scale=float("nan")))):
        with pytest.raises(ModelLoadError, match=f"LoraSpec.{field}="):
            LoraSpec("x.safetensors", **kw)
