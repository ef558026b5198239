"""load_pipeline: bit-exact round trips through diffusers folders and the original single-file layouts
(SD1.x LDM checkpoints, AnimateDiff motion modules), safe unpickling, and one clear error per bad input."""
import argparse
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import MotionAdapter, UNetMotionModel
from safetensors.torch import save_file

from anyi2v_lab.models import loading
from anyi2v_lab.models.errors import ModelLoadError
from anyi2v_lab.models.loading import default_model_dir, load_motion_adapter, load_pipeline
from anyi2v_lab.models.original_formats import adapter_to_original, pipeline_to_ldm
from anyi2v_lab.models.scheduler import DDIM_CONFIG
from anyi2v_lab.models.tiny import TinySpec, tiny_motion_adapter, tiny_pipeline
from helpers.tiny_files import frames, save_tiny

HEADS8 = TinySpec(heads=8)  # AnimateDiff's 8 motion heads: what an original-layout file implies


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Seed 0 as base + adapter folders and as an LDM checkpoint; a seed-1 base to replace; seed 0's frames."""
    root = tmp_path_factory.mktemp("tiny")
    base0, adapter0, p0 = save_tiny(root, 0)
    base1, _, p1 = save_tiny(root, 1)
    ldm = pipeline_to_ldm(p0["unet"], p0["vae"], p0["text_encoder"])
    save_file(ldm, root / "sd15_like.safetensors")
    return dict(root=root, base0=base0, adapter0=adapter0, base1=base1, p0=p0, p1=p1, ldm=ldm,
                ckpt=root / "sd15_like.safetensors", ref=frames(tiny_pipeline(0)))


def load(*args, **kw):
    return load_pipeline(*args, progress=False, **kw)


def test_diffusers_folders_round_trip_bit_exact(tiny):
    pipe = load(tiny["base0"], motion_adapter=tiny["adapter0"])
    assert isinstance(pipe.unet, UNetMotionModel) and pipe.unet.dtype == torch.float32
    assert pipe.device.type == "cpu" and pipe.motion_adapter is None
    assert {k: pipe.scheduler.config[k] for k in DDIM_CONFIG} == DDIM_CONFIG
    assert pipe.load_report.replaced == () and pipe.load_report.checkpoint is None
    assert np.abs(frames(pipe) - tiny["ref"]).max() == 0


def test_ldm_checkpoint_replaces_unet_vae_and_text_encoder(tiny):
    pipe = load(tiny["base1"], checkpoint=tiny["ckpt"], motion_adapter=tiny["adapter0"])
    assert pipe.load_report.replaced == ("unet", "vae", "text_encoder")
    assert np.abs(frames(pipe) - tiny["ref"]).max() == 0


def test_ckpt_is_read_with_weights_only(tiny, tmp_path, monkeypatch):
    path = tmp_path / "model.ckpt"
    torch.save({"state_dict": tiny["ldm"], "global_step": 7}, path)  # Lightning-style wrapper
    calls = []
    real = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: calls.append(k.get("weights_only")) or real(*a, **k))
    pipe = load(tiny["base1"], checkpoint=path, motion_adapter=tiny["adapter0"])
    assert calls and all(w is True for w in calls)
    assert np.abs(frames(pipe) - tiny["ref"]).max() == 0


def test_pickle_only_ckpt_needs_allow_pickle(tiny, tmp_path):
    path = tmp_path / "old.ckpt"
    torch.save({"state_dict": tiny["ldm"], "hyper_parameters": argparse.Namespace(lr=1e-4)}, path)
    with pytest.raises(ModelLoadError, match="allow_pickle=True") as e:
        load(tiny["base1"], checkpoint=path, motion_adapter=tiny["adapter0"])
    assert str(path) in str(e.value) and "argparse.Namespace" in str(e.value)
    assert "--allow-pickle" in str(e.value)  # the advice names the flag for command-line users too
    pipe = load(tiny["base1"], checkpoint=path, motion_adapter=tiny["adapter0"], allow_pickle=True)
    assert np.abs(frames(pipe) - tiny["ref"]).max() == 0


def test_partial_checkpoint_replaces_only_what_it_holds(tiny, tmp_path):
    path = tmp_path / "unet_only.safetensors"
    save_file(pipeline_to_ldm(tiny["p0"]["unet"]), path)
    pipe = load(tiny["base1"], checkpoint=path, motion_adapter=tiny["adapter0"])
    assert pipe.load_report.replaced == ("unet",)
    unet, p0, p1 = pipe.unet.state_dict(), tiny["p0"], tiny["p1"]
    assert all(torch.equal(unet[k], v) for k, v in p0["unet"].state_dict().items())
    assert all(torch.equal(pipe.vae.state_dict()[k], v) for k, v in p1["vae"].state_dict().items())
    assert all(torch.equal(pipe.text_encoder.state_dict()[k], v) for k, v in p1["text_encoder"].state_dict().items())


@pytest.fixture(scope="module")
def heads8(tmp_path_factory):
    root = tmp_path_factory.mktemp("heads8")
    base, _, parts = save_tiny(root, 0, HEADS8)
    return base, parts, frames(tiny_pipeline(0, HEADS8))


@pytest.mark.parametrize("suffix", [".safetensors", ".ckpt"])
def test_motion_adapter_single_file_in_animatediff_layout(heads8, tmp_path, suffix):
    base, parts, ref = heads8
    original = adapter_to_original(parts["motion_adapter"].state_dict())
    assert any(".temporal_transformer.transformer_blocks.0.attention_blocks.1.pos_encoder.pe" in k for k in original)
    path = tmp_path / f"mm_tiny{suffix}"
    save_file(original, path) if suffix == ".safetensors" else torch.save(original, path)
    pipe = load(base, motion_adapter=path)
    assert np.abs(frames(pipe) - ref).max() == 0


def test_load_motion_adapter_reads_mid_block_and_length_off_the_tensors(tmp_path):
    torch.manual_seed(0)
    adapter = tiny_motion_adapter(mid_block=True)  # v2-shaped: a mid-block motion module
    original = adapter_to_original(adapter.state_dict())
    # the file's own encodings are used, as the reference's load_state_dict does (here: rounded through fp16)
    original = {k: v.half().float() if k.endswith("pos_encoder.pe") else v for k, v in original.items()}
    save_file(original, tmp_path / "mm_v2_tiny.safetensors")
    got = load_motion_adapter(tmp_path / "mm_v2_tiny.safetensors", num_attention_heads=2, norm_num_groups=8)
    assert got.config.use_motion_mid_block and got.config.motion_max_seq_length == 32
    assert got.config.block_out_channels == adapter.config.block_out_channels
    ref = {k: v.half().float() if k.endswith("pos_embed.pe") else v for k, v in adapter.state_dict().items()}
    assert not torch.equal(ref["mid_block.motion_modules.0.transformer_blocks.0.pos_embed.pe"],
                           adapter.state_dict()["mid_block.motion_modules.0.transformer_blocks.0.pos_embed.pe"])
    assert set(got.state_dict()) == set(ref) and all(torch.equal(got.state_dict()[k], v) for k, v in ref.items())


def test_motion_adapter_instance_is_not_changed_by_motion_lora(tiny, tmp_path):
    adapter = MotionAdapter.from_pretrained(tiny["adapter0"])
    before = {k: v.clone() for k, v in adapter.state_dict().items()}
    key = "down_blocks.0.motion_modules.0.transformer_blocks.0.attn1.to_q"
    save_file({f"unet.{key}.lora_A.weight": torch.ones(2, 16), f"unet.{key}.lora_B.weight": torch.ones(16, 2)},
              tmp_path / "motion_lora.safetensors")
    pipe = load(tiny["base0"], motion_adapter=adapter, loras=[tmp_path / "motion_lora.safetensors"])
    assert torch.equal(pipe.unet.get_submodule(key).weight, before[key + ".weight"] + 2)
    assert all(torch.equal(adapter.state_dict()[k], v) for k, v in before.items())


def test_default_model_dir_and_missing_default_weights(monkeypatch, tmp_path):
    assert default_model_dir() == Path(loading.__file__).resolve().parents[1] / "toy" / "weights"
    monkeypatch.setattr(loading, "DEFAULT_MODEL_DIR", tmp_path / "weights")
    with pytest.raises(ModelLoadError, match="default weights are not installed") as e:
        load()
    assert str(tmp_path / "weights") in str(e.value)


@pytest.mark.skipif(not default_model_dir().is_dir(), reason="toy weights not installed")
def test_default_model_loads():
    pipe = load()
    assert isinstance(pipe.unet, UNetMotionModel) and pipe.load_report.base == str(default_model_dir())


# --- errors: each names the value given and the fix -------------------------------------------------------

def test_missing_path_suggests_close_names(tiny):
    with pytest.raises(ModelLoadError, match="does not exist; did you mean") as e:
        load(tiny["root"] / "bsae0", motion_adapter=tiny["adapter0"])
    assert str(tiny["root"] / "bsae0") in str(e.value) and str(tiny["base0"]) in str(e.value)
    with pytest.raises(ModelLoadError, match="nor does its folder"):
        load(tiny["root"] / "no" / "where", motion_adapter=tiny["adapter0"])


@pytest.mark.parametrize("role", ["base", "motion_adapter"])
def test_hub_id_offline_fails_fast_and_says_why(tiny, role, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub = {"base": loading.SD15_HUB_ID, "motion_adapter": "guoyww/animatediff-motion-adapter-v1-5-3"}[role]
    kw = {"base": (hub, tiny["adapter0"]), "motion_adapter": (tiny["base0"], hub)}[role]
    with pytest.raises(ModelLoadError, match="HF_HUB_OFFLINE=1") as e:
        load(kw[0], motion_adapter=kw[1])
    assert f"{role}={hub!r}" in str(e.value) and "no weights can be downloaded" in str(e.value)
    assert "local folder" in str(e.value)


@pytest.mark.parametrize("what, hint", [("motion", "motion_adapter="), ("lora", "loras="), ("unknown", "layout"),
                                        ("sdxl", "SDXL"), ("sd2", "SD2")])
def test_wrong_file_kind_as_checkpoint(tiny, tmp_path, what, hint):
    sd = {"motion": lambda: adapter_to_original(tiny["p0"]["motion_adapter"].state_dict()),
          "lora": lambda: {"lora_unet_conv_in.lora_down.weight": torch.zeros(1)},
          "unknown": lambda: {"foo.weight": torch.zeros(1), "bar.bias": torch.zeros(1)},
          "sdxl": lambda: {"conditioner.embedders.1.model.positional_embedding": torch.zeros(1)},
          "sd2": lambda: {"cond_stage_model.model.token_embedding.weight": torch.zeros(1)}}[what]()
    path = tmp_path / f"{what}.bin"
    torch.save(sd, path)
    with pytest.raises(ModelLoadError, match=hint) as e:
        load(tiny["base0"], checkpoint=path, motion_adapter=tiny["adapter0"])
    assert f"checkpoint={str(path)!r}" in str(e.value)
    if what == "unknown":
        assert "bar.bias" in str(e.value) and "foo.weight" in str(e.value)


def test_checkpoint_of_another_shape_names_the_tensor(tiny, tmp_path):
    ldm = dict(tiny["ldm"])
    ldm["model.diffusion_model.input_blocks.0.0.weight"] = torch.zeros(16, 9, 3, 3)  # inpainting-like conv_in
    save_file(ldm, tmp_path / "inpaint.safetensors")
    with pytest.raises(ModelLoadError, match=r"conv_in.weight: file \(16, 9, 3, 3\) vs model \(16, 4, 3, 3\)"):
        load(tiny["base0"], checkpoint=tmp_path / "inpaint.safetensors", motion_adapter=tiny["adapter0"])


def test_bad_files_and_folders(tiny, tmp_path):
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(ModelLoadError, match="unsupported file type '.txt'"):
        load(tiny["base0"], checkpoint=tmp_path / "notes.txt", motion_adapter=tiny["adapter0"])
    (tmp_path / "lfs.safetensors").write_text("version https://git-lfs.github.com/spec/v1\noid sha256:0\n")
    with pytest.raises(ModelLoadError, match="git-lfs pointer"):
        load(tiny["base0"], checkpoint=tmp_path / "lfs.safetensors", motion_adapter=tiny["adapter0"])
    with pytest.raises(ModelLoadError, match="is a folder; checkpoint= expects a single file"):
        load(tiny["base0"], checkpoint=tiny["base1"], motion_adapter=tiny["adapter0"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="no unet/, vae/, text_encoder/, tokenizer/"):
        load(tmp_path / "empty", motion_adapter=tiny["adapter0"])
    with pytest.raises(ModelLoadError, match="motion adapter folder: pass it as motion_adapter="):
        load(tiny["adapter0"], motion_adapter=tiny["adapter0"])
    with pytest.raises(ModelLoadError, match="not a MotionAdapter folder.*pass it as base="):
        load(tiny["base0"], motion_adapter=tiny["base1"])


def test_motion_adapter_required_for_a_plain_base(tiny):
    with pytest.raises(ModelLoadError, match="a motion adapter is required") as e:
        load(tiny["base0"])
    assert str(tiny["base0"]) in str(e.value) and "motion_adapter=" in str(e.value)


def test_adapter_that_does_not_fit_names_both_shapes(tiny, tmp_path):
    torch.manual_seed(0)
    MotionAdapter(block_out_channels=(32, 64, 64, 64), motion_layers_per_block=2, motion_num_attention_heads=2,
                  motion_norm_num_groups=8).save_pretrained(tmp_path / "wide")
    with pytest.raises(ModelLoadError, match="does not fit the base UNet") as e:
        load(tiny["base0"], motion_adapter=tmp_path / "wide")
    assert "(32, 64, 64, 64)" in str(e.value) and "(16, 32, 32, 32)" in str(e.value)


def test_dtype_and_device_errors(tiny):
    for dtype in (torch.float16, "bf16"):
        with pytest.raises(ModelLoadError, match="use dtype=torch.float32.*allow_half_on_cpu=True"):
            load(tiny["base0"], motion_adapter=tiny["adapter0"], device="cpu", dtype=dtype)
    with pytest.raises(ModelLoadError, match="dtype=torch.int8"):
        load(tiny["base0"], motion_adapter=tiny["adapter0"], dtype=torch.int8)
    if not torch.cuda.is_available():
        with pytest.raises(ModelLoadError, match="device='cuda' but CUDA is not available.*device='cpu'"):
            load(tiny["base0"], motion_adapter=tiny["adapter0"], device="cuda")


def test_half_on_cpu_when_asked(tiny):
    pipe = load(tiny["base0"], motion_adapter=tiny["adapter0"], dtype="bf16", allow_half_on_cpu=True)
    assert {p.dtype for p in pipe.unet.parameters()} == {torch.bfloat16}
    assert pipe.text_encoder.dtype == torch.bfloat16 and pipe.vae.dtype == torch.bfloat16


@pytest.mark.parametrize("part", ["unet", "motion_adapter"])
def test_a_pickled_bin_in_a_model_folder_needs_allow_pickle(tiny, tmp_path, monkeypatch, part):
    """A folder whose weights are only diffusion_pytorch_model.bin is refused naming the file, before any
    weight is read; allow_pickle=True loads it."""
    import shutil

    from safetensors.torch import load_file
    base = shutil.copytree(tiny["base0"], tmp_path / "base")
    adapter = shutil.copytree(tiny["adapter0"], tmp_path / "adapter")
    folder = base / "unet" if part == "unet" else adapter
    weights = folder / "diffusion_pytorch_model.safetensors"
    torch.save(load_file(weights), folder / "diffusion_pytorch_model.bin")
    weights.unlink()
    read = []
    monkeypatch.setattr(loading, "_load_part", lambda *a, **k: read.append(a))
    with pytest.raises(ModelLoadError) as e:
        load(base, motion_adapter=adapter)
    message = str(e.value)
    assert f"'{folder / 'diffusion_pytorch_model.bin'}' is a pickled weights file" in message
    assert "convert it once to .safetensors" in message.lower() and "allow_pickle=True (--allow-pickle)" in message
    assert read == []
    monkeypatch.undo()
    pipe = load(base, motion_adapter=adapter, allow_pickle=True)
    assert np.abs(frames(pipe) - tiny["ref"]).max() == 0
