"""The parity harness's parts that need no reference checkout: the 2022-layout weight writer and the
exact two-means it can put in place of kmeans_pytorch. The comparison itself runs only with
``ANYI2V_REFERENCE`` (a checkout) and ``ANYI2V_REFERENCE_PYTHON`` (its environment's interpreter)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from anyi2v_lab.models.original_formats import UNET_CONFIG_011, save_reference_base
from anyi2v_lab.models.tiny import TinySpec, tiny_components

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
import reference_parity as rp  # noqa: E402


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    parts = tiny_components(0, TinySpec(**rp.SPEC))
    return parts, save_reference_base(parts, tmp_path_factory.mktemp("ref") / "base_ref")


def test_reference_layout_holds_the_same_weights(written):
    parts, folder = written
    unet = load_file(folder / "unet" / "diffusion_pytorch_model.safetensors")
    assert unet.keys() == parts["unet"].state_dict().keys()
    assert all(torch.equal(unet[k], v) for k, v in parts["unet"].state_dict().items())
    vae = load_file(folder / "vae" / "diffusion_pytorch_model.safetensors")
    back = {k.replace(".query.", ".to_q.").replace(".key.", ".to_k.").replace(".value.", ".to_v.")
             .replace(".proj_attn.", ".to_out.0."): v for k, v in vae.items()}
    assert back.keys() == parts["vae"].state_dict().keys()
    assert all(torch.equal(back[k], v) for k, v in parts["vae"].state_dict().items())
    assert any(".mid_block.attentions.0.query." in k for k in vae)
    te = load_file(folder / "text_encoder" / "model.safetensors")
    assert all(k.startswith("text_model.") for k in te)
    for k, v in parts["text_encoder"].state_dict().items():
        assert torch.equal(te["text_model." + k.removeprefix("text_model.")], v)


def test_reference_layout_configs_are_2022_ones(written):
    parts, folder = written
    unet = json.loads((folder / "unet" / "config.json").read_text())
    assert "mid_block_type" not in unet and set(unet) <= {*UNET_CONFIG_011, "_class_name", "_diffusers_version"}
    assert unet["block_out_channels"] == list(rp.SPEC["channels"])
    vocab = json.loads((folder / "tokenizer" / "vocab.json").read_text())
    assert vocab == parts["tokenizer"].get_vocab()
    assert (folder / "tokenizer" / "merges.txt").read_text().startswith("#version")


def test_exact_two_means_is_the_best_split():
    g = torch.Generator().manual_seed(3)
    x = torch.cat([torch.rand(40, generator=g) * 0.3, 0.6 + torch.rand(25, generator=g) * 0.4])[:, None]
    ids, centers = rp.exact_two_means(x)
    v = x[:, 0].double()

    def sse(mask):
        return sum(float(((v[m] - v[m].mean()) ** 2).sum()) for m in (mask, ~mask) if m.any())
    best = min(sse(v >= t) for t in v.unique()[1:])
    assert sse(ids.bool()) == pytest.approx(best)
    assert int(torch.argmax(centers)) == 1 and ids.sum() == 25


def test_diff_reports_relative_and_noise():
    a = torch.ones(10, dtype=torch.float64)
    d = rp.diff(a + 1e-7, a)
    assert d["noise"] and d["max_abs"] == pytest.approx(1e-7, rel=1e-3)
    assert not rp.diff(a * 1.1, a)["noise"]


@pytest.mark.skipif(not (os.environ.get("ANYI2V_REFERENCE") and os.environ.get("ANYI2V_REFERENCE_PYTHON")),
                    reason="set ANYI2V_REFERENCE (an AnyI2V checkout) and ANYI2V_REFERENCE_PYTHON (its environment)")
def test_injection_matches_the_reference(tmp_path):
    out = tmp_path / "parity.json"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "reference_parity.py"), os.environ["ANYI2V_REFERENCE"],
                    "--run", "injection_only", "--out", str(out)], check=True)
    runs = {r["variant"]: r["stages"] for r in json.loads(out.read_text())["runs"]}
    # with AnimateDiff's per-frame motion-module GroupNorm, every stage is float noise
    stages = runs["per_frame_motion_norm"]
    assert all(s["noise"] for s in stages), [s["stage"] for s in stages if not s["noise"]]
    # diffusers' all-frames GroupNorm: the inversion (motion modules bypassed) agrees, the sampling does not
    default = {s["stage"]: s["noise"] for s in runs["ours_default"]}
    assert default["inverted feature t=201 attn3"] and not default["final latent"]
