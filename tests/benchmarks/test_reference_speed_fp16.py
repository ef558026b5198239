"""reference_speed.py and fp16_underflow.py: their pieces against independent computations (CPU, no reference run)."""
import json
import subprocess
import sys

import pytest
import torch

from helpers import load_benchmark


@pytest.fixture(scope="module")
def speed():
    return load_benchmark("reference_speed")


@pytest.fixture(scope="module")
def underflow():
    return load_benchmark("fp16_underflow")


def test_xformers_stand_in_is_attention(speed, tmp_path):
    # the stand-in must compute softmax(q k^T / sqrt(d)) v for xformers' 3-D and 4-D layouts, and say it is 0.0.27
    folder = speed.write_xformers_shim(tmp_path)
    code = ("import importlib.metadata as m, torch, xformers.ops as o\n"
            "g = torch.Generator().manual_seed(0)\n"
            "for shape in ((3, 10, 8), (2, 10, 4, 8)):\n"
            "    q, k, v = (torch.randn(shape, generator=g, dtype=torch.float64) for _ in range(3))\n"
            "    qh, kh, vh = ((x, x.transpose(1, 2))[len(shape) == 4] for x in (q, k, v))\n"
            "    ref = torch.softmax(qh @ kh.transpose(-1, -2) / 8 ** 0.5, -1) @ vh\n"
            "    ref = ref if len(shape) == 3 else ref.transpose(1, 2)\n"
            "    out = o.memory_efficient_attention(q, k, v) if len(shape) == 3 else \\\n"
            "        o.memory_efficient_attention(q.transpose(1, 2), k.transpose(1, 2),\n"
            "                                     v.transpose(1, 2)).transpose(1, 2)\n"
            "    assert (out - ref).abs().max() < 1e-12, shape\n"
            "print(m.version('xformers'))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={"PYTHONPATH": str(folder)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "0.0.27"


def test_reference_config_is_its_shipped_example_twice(speed, tmp_path):
    ref = tmp_path / "AnyI2V"
    (ref / "configs" / "prompts").mkdir(parents=True)
    (ref / speed.EXAMPLE).write_text('- seed: [42]\n  prompt: ["a horse"]\n  n_prompt: ["ugly"]\n'
                                     '  trajectory: ["__assets__/t.json"]\n  image_path: ["__assets__/i.jpg"]\n')
    cfg = json.loads(speed.write_reference_config(tmp_path, ref, 2).read_text())[0]
    assert cfg["seed"] == [42, 42] and cfg["prompt"] == ["a horse"] * 2 and cfg["n_prompt"] == ["ugly"]
    assert cfg["image_path"] == [str(ref / "__assets__/i.jpg")] * 2
    assert cfg["motion_module"] == str(tmp_path / "mm.ckpt")


def test_ratios_pair_first_and_warm_videos(speed):
    runs = {"reference_xformers": {"videos_s": [40.0, 30.0]},
            "ours": {"default_s": [10.0, 6.0], "baseline": {"wall_s": 15.0}, "fast": {"skipped": "budget"}}}
    assert speed.ratios(runs) == {"reference_xformers/default_first": 4.0, "reference_xformers/default_warm": 5.0,
                                  "reference_xformers/baseline_warm": 2.0}


def test_underflow_counts_against_fp32(underflow):
    n = underflow.NORMAL
    g32 = torch.tensor([0.0, 1e-9, 0.5 * n, 2 * n, 2 * n, 1.0, 1.0])
    g16 = torch.tensor([0.0, 0.0, 0.0, 0.0, 0.5 * n, 1.0, -1.0])      # two normal fp32 values underflow, one is lost
    g16s = torch.tensor([0.0, 0.0, 3e4, 2 * n * 65536, 2 * n * 65536, float("inf"), 65536.0])
    c = underflow.counts(g16, g16s, g32)
    assert c == {"elements": 7, "fp32_nonzero": 6, "fp32_normal": 4, "fp32_below_normal": 2, "underflow": 2, "lost": 3,
                 "scaled_underflow": 1, "scaled_lost": 1, "scaled_overflow": 1}  # 1e-9 x 65536 is normal, 0 is not
    s = underflow.sign_counts(g16, g16s, g32)
    assert s == {"latent_elements": 7, "sign_differs": 4, "scaled_sign_differs": 1, "fp32_zero": 1}
    assert underflow.fractions({**c, **s})["underflow_of_fp32_normal"] == 0.5
    assert underflow.fractions(c)["scaled_underflow_of_fp32_nonzero"] == 1 / 6
