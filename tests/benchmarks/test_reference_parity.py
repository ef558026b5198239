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


def test_measure_counts_flips_and_mask_cells():
    a = torch.zeros(10, dtype=torch.float64)
    b = a.clone()
    b[3], b[7] = 0.006, 0.004  # lr 0.01: a sign step apart is 0.01, half of it 0.005
    m = rp.measure(b, a + 1.0, "latent")
    assert m["max_abs"] == pytest.approx(1.0) and m["rel"] == pytest.approx(float((b - 1).norm() / 10 ** 0.5), rel=1e-3)
    assert rp.measure(b, a, "latent")["flips"] == 1
    assert rp.measure(torch.tensor([1.0, 0.5, 0.0]), torch.tensor([1.0, 0.5004, 1.0]), "mask")["cells"] == 1
    assert rp.measure(torch.ones(3), torch.ones(4))["rel"] is None


def test_reference_weights_follow_its_stored_mask():
    # one object, 3 frames; frame 2 clipped to 2 of 4 columns; one iteration of 3 kmeans calls
    settings = {"frames": 3, "size": 32, "compress_factor": 4}
    boxes = [[[8, 8, 24, 24], [8, 12, 24, 28], [8, 24, 24, 40]]]  # [top, left, bottom, right] px
    assert rp.reference_crop_shapes(boxes[0], settings) == [(4, 4), (4, 4), (4, 2)]
    m0 = torch.tensor([[1.0, 1, 0, 0]] * 4)[..., None]  # (h, w, L=1)
    calls = [m0.reshape(-1), torch.ones(16), torch.ones(8)]
    (cells,) = rp.reference_weights(calls, boxes, settings)
    assert torch.equal(cells[:16], m0.reshape(-1)) and torch.equal(cells[16:32], m0.reshape(-1))
    squeezed = torch.nn.functional.interpolate(m0.permute(2, 0, 1)[None], size=(4, 2), mode="bilinear")[0]
    assert torch.allclose(cells[32:], squeezed.permute(1, 2, 0).reshape(-1))


def test_switched_deviations_are_numbered_as_the_method_document():
    numbers = rp.pv.deviation_numbers()
    assert rp.switched({"kmeans": "exact"}, "per_frame_norm+clip_rules", numbers) == sorted(
        [numbers["kmeans"], numbers["motion_norm"], numbers["clipped_mask"], numbers["query_cell"]])
    assert rp.switched({}, "ours_default", numbers) == []
    assert rp.floor_kernels("AVX2") == "default" and rp.floor_kernels("AVX512") == "avx2"


@pytest.mark.skipif(not (os.environ.get("ANYI2V_REFERENCE") and os.environ.get("ANYI2V_REFERENCE_PYTHON")),
                    reason="set ANYI2V_REFERENCE (an AnyI2V checkout) and ANYI2V_REFERENCE_PYTHON (its environment)")
def test_injection_matches_the_reference(tmp_path):
    out = tmp_path / "parity.json"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "reference_parity.py"), os.environ["ANYI2V_REFERENCE"],
                    "--case", "injection_only", "--out", str(out)], check=True)
    (case,) = json.loads(out.read_text())["cases"]
    runs = {c["ours"]: c["stages"] for c in case["comparisons"]}
    # with AnimateDiff's per-frame motion-module GroupNorm, every stage is at the rounding floor
    assert all(s["verdict"] == "noise" for s in runs["per_frame_norm"].values())
    # diffusers' all-frames GroupNorm: the inversion (motion modules bypassed) agrees, the sampling does not
    default = runs["ours_default"]
    assert default["inverted feature t=201 attn3"]["verdict"] == "noise"
    assert default["final latent"]["verdict"] == f"explained by deviation {rp.pv.deviation_numbers()['motion_norm']}"


RESULTS = ROOT / "benchmarks" / "results"
KERNEL_SETS = (RESULTS / "reference_parity.json", RESULTS / "reference_parity_scalar_kernels.json")


def test_the_committed_reports_verdicts_hold_on_both_kernel_sets():
    a, b = (json.loads(p.read_text()) for p in KERNEL_SETS)
    assert a["machine"]["aten_cpu_capability"] != b["machine"]["aten_cpu_capability"]
    shared = {c["case"] for c in a["cases"]} & {c["case"] for c in b["cases"]}
    assert {"injection_only", "aligned"} <= shared
    va, vb = ({k: v for k, v in rp.verdict_map(r).items() if k.split(" / ")[0] in shared} for r in (a, b))
    assert rp.pv.same_verdicts(va, vb) == []


def test_the_committed_reports_are_judged_with_the_method_documents_numbers():
    numbers = rp.pv.deviation_numbers()
    for report in (json.loads(p.read_text()) for p in KERNEL_SETS):
        assert report["deviation_numbers"] == numbers
        assert report["reference"]["commit"] and report["reference"]["files_as_committed"]
        for case in report["cases"]:
            assert case["open"] or not case["unexplained"], (case["case"], case["unexplained"][:5])
            again = rp.pv.verdicts(case["comparisons"], rp.CHAINS)
            for c in case["comparisons"]:
                assert {s: row["verdict"] for s, row in c["stages"].items()} == {
                    s: v["verdict"] for s, v in again[c["name"]].items()}
