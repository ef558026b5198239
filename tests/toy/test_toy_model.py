"""The toy model: offline tokenizer, SD1.5-shaped builders, and the committed weights (when present)."""

import pytest
import torch

from anyi2v_lab.toy import model as tm
from anyi2v_lab.toy import world
from anyi2v_lab.toy.tokenizer import build_tokenizer, learn_merges

WEIGHTS = tm.WEIGHTS_DIR
have_weights = pytest.mark.skipif(not (WEIGHTS / "unet").is_dir(), reason="toy weights not trained yet")


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer()


def test_every_caption_word_is_one_token(tok):
    for w in world.CAPTION_WORDS:
        assert len(tok.tokenize(w)) == 1, w
    c = world.make_case(3)
    for text in (c.caption, c.modality_caption("segmentation")):
        ids = tok(text).input_ids
        assert ids[0] == tok.bos_token_id and ids[-1] == tok.eos_token_id
        assert len(ids) - 2 == len(text.replace(",", " ,").split())
        assert tok.decode(ids, skip_special_tokens=True).replace(" ,", ",") == text


def test_unknown_words_fall_back_to_characters(tok):
    toks = tok.tokenize("a zebra")
    assert toks[0] == "a</w>" and "".join(toks[1:]) == "zebra</w>"
    assert tok.model_max_length == 77
    assert len(tok("x " * 200, truncation=True, padding="max_length").input_ids) == 77


def test_tokenizer_round_trips_through_save(tok, tmp_path):
    from transformers import CLIPTokenizer
    tok.save_pretrained(tmp_path)
    again = CLIPTokenizer.from_pretrained(tmp_path)
    text = world.make_case(4).caption
    assert again(text).input_ids == tok(text).input_ids and len(again) == len(tok)


def test_learn_merges_is_deterministic_and_complete():
    words = ["red", "green", "greenish", "reed", "a"]
    m = learn_merges(words)
    assert m == learn_merges(list(reversed(words)))
    t = build_tokenizer(tuple(words))
    assert all(len(t.tokenize(w)) == 1 for w in words)
    with pytest.raises(ValueError, match="lower-case"):
        learn_merges(["Red"])


def test_unet_has_sd15_block_order_and_names():
    unet = tm.build_unet()
    assert unet.config.down_block_types == ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D")
    assert unet.config.up_block_types == ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D")
    names = dict(unet.named_modules())
    for b in (1, 2):
        for i in (0, 1):
            assert f"up_blocks.{b}.attentions.{i}.transformer_blocks.0.attn1" in names
            assert f"up_blocks.{b}.resnets.{i}.conv2" in names
    assert not hasattr(unet.up_blocks[0], "attentions")
    # feature sizes the AnyI2V defaults see for a 64 px frame: 8x8 and 16x16
    sizes = {}
    for b in (1, 2):
        unet.up_blocks[b].resnets[0].register_forward_hook(lambda m, i, o, b=b: sizes.__setitem__(b, o.shape[-1]))
    with torch.no_grad():
        unet(torch.zeros(1, 4, 16, 16), 10, torch.zeros(1, 77, 128))
    assert sizes == {1: 8, 2: 16}


def test_motion_unet_splits_back_exactly():
    unet, adapter = tm.build_unet(), tm.build_motion_adapter(zero_out=False)
    mu = tm.motion_unet(unet, adapter)
    names = dict(mu.named_modules())
    assert "up_blocks.2.attentions.1" in names and "up_blocks.2.motion_modules.1" in names
    u2, a2 = tm.split_motion_unet(mu)
    for k, v in unet.state_dict().items():
        assert torch.equal(v, u2.state_dict()[k]), k
    for k, v in adapter.state_dict().items():
        assert torch.equal(v, a2.state_dict()[k]), k


def test_fresh_adapter_leaves_the_image_model_unchanged():
    """Zero-initialised motion modules: the motion UNet equals the image UNet frame by frame."""
    from anyi2v_lab.hooks import bypass_motion
    torch.manual_seed(0)
    unet = tm.build_unet().eval()
    mu = tm.motion_unet(unet, tm.build_motion_adapter(zero_out=True)).eval()
    z, emb = torch.randn(1, 4, 3, 16, 16), torch.randn(1, 77, 128)
    with torch.no_grad():
        ref = torch.stack([unet(z[:, :, f], 500, emb).sample for f in range(3)], 2)
        out = mu(z, 500, emb.repeat_interleave(3, 0)).sample
        with bypass_motion(mu):
            one = mu(z[:, :, :1], 500, emb).sample
    assert torch.allclose(out, ref, atol=1e-4) and torch.allclose(one[:, :, 0], ref[:, :, 0], atol=1e-4)


def test_grown_adapter_computes_what_the_old_one_did_and_splits_back():
    """Growing motion modules to two transformer layers: same outputs at the start (new layers are
    identities), every old weight kept, and the deeper motion UNet splits back exactly."""
    torch.manual_seed(0)
    unet, adapter = tm.build_unet().eval(), tm.build_motion_adapter(zero_out=False)
    grown = tm.grow_motion_adapter(adapter, 2)
    assert (tm.motion_depth(adapter.config), tm.motion_depth(grown.config)) == (1, 2)
    assert (tm.state_motion_depth(adapter.state_dict()), tm.state_motion_depth(grown.state_dict())) == (1, 2)
    assert tm.count_params(grown) > 1.8 * tm.count_params(adapter)
    for k, v in adapter.state_dict().items():
        assert torch.equal(v, grown.state_dict()[k]), k
    new = [k for k in grown.state_dict() if ".transformer_blocks.1." in k and "to_out.0.weight" in k]
    assert new and all(grown.state_dict()[k].abs().sum() == 0 for k in new)
    z, emb = torch.randn(1, 4, 3, 16, 16), torch.randn(3, 77, 128)
    mu, mu2 = tm.motion_unet(unet, adapter).eval(), tm.motion_unet(unet, grown).eval()
    assert tm.motion_depth(mu2.config) == 2
    with torch.no_grad():
        ref, out = mu(z, 500, emb).sample, mu2(z, 500, emb).sample
    assert ref.abs().mean() > 0 and torch.allclose(out, ref, atol=1e-5)
    _, a2 = tm.split_motion_unet(mu2)
    assert all(torch.equal(v, a2.state_dict()[k]) for k, v in grown.state_dict().items())
    with pytest.raises(ValueError, match="can only grow"):
        tm.grow_motion_adapter(grown, 1)


def test_scheduler_is_the_reference_ddim():
    s = tm.build_scheduler().config
    assert (s.beta_start, s.beta_end, s.beta_schedule, s.steps_offset, s.clip_sample, s.timestep_spacing,
            s.set_alpha_to_one, s.prediction_type) == (0.00085, 0.012, "linear", 1, False, "leading", True, "epsilon")


@have_weights
def test_committed_weights_load_offline_and_fit_the_budget():
    from diffusers import AutoencoderKL, DDIMScheduler, MotionAdapter, UNet2DConditionModel
    from safetensors import safe_open
    from transformers import CLIPTextModel, CLIPTokenizer
    files = [p for p in WEIGHTS.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) <= 30e6
    for st in [p for p in files if p.suffix == ".safetensors"]:
        with safe_open(st, "pt") as f:
            assert all(f.get_slice(k).get_dtype() == "F16" for k in f.keys()), st
    assert {p.name for p in WEIGHTS.iterdir()} >= {*tm.COMPONENTS, "README.md", "samples.png"}
    unet = UNet2DConditionModel.from_pretrained(WEIGHTS / "unet")
    assert tuple(unet.config.up_block_types) == ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D")
    MotionAdapter.from_pretrained(WEIGHTS / "motion_adapter")
    vae = AutoencoderKL.from_pretrained(WEIGHTS / "vae")
    assert vae.config.scaling_factor != 0.18215 and 0.05 < vae.config.scaling_factor < 20
    CLIPTextModel.from_pretrained(WEIGHTS / "text_encoder")
    tok = CLIPTokenizer.from_pretrained(WEIGHTS / "tokenizer")
    assert all(len(tok.tokenize(w)) == 1 for w in world.CAPTION_WORDS)
    assert DDIMScheduler.from_pretrained(WEIGHTS / "scheduler").config.set_alpha_to_one is True


@have_weights
def test_default_pipeline_samples_a_short_video():
    pipe = tm.build_pipeline()
    pipe.set_progress_bar_config(disable=True)
    out = pipe(prompt="a large red circle on a plain background", num_frames=4, num_inference_steps=2,
               guidance_scale=4.0, generator=torch.Generator().manual_seed(0), output_type="np").frames
    assert out.shape == (1, 4, 64, 64, 3) and 0 <= out.min() and out.max() <= 1
