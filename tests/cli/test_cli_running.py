"""The command line on inputs that pass validation but go wrong, or nearly, while running: weights holding
NaN exit 1 naming them and leave no output folder; a trajectory with nothing to align runs (injection only)."""
import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from anyi2v_lab.cli import main
from anyi2v_lab.trajectory import TrajectoryWarning
from helpers.tiny_files import save_tiny

SET = ["--set", "num_frames=4", "--set", "num_inference_steps=3", "--set", "inversion_timestep=21",
       "--set", "opt_step=1", "--set", "opt_iters=2", "--set", "load_feature_step=2"]
LAYER = "up_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q"


def _condition(folder):
    img = np.zeros((128, 128, 3), np.uint8)
    img[30:70, 30:70] = 255
    Image.fromarray(img).save(folder / "sketch.png")
    return folder / "sketch.png"


def test_a_lora_holding_nan_exits_1_naming_it_and_writes_nothing(tmp_path, capsys):
    base, adapter, parts = save_tiny(tmp_path, 0)
    w = parts["unet"].get_submodule(LAYER).weight
    up = torch.full((w.shape[0], 4), 0.1)
    up[5, 1] = float("nan")
    save_file({f"unet.{LAYER}.lora_A.weight": torch.full((4, w.shape[1]), 0.1), f"unet.{LAYER}.lora_B.weight": up},
              tmp_path / "style.safetensors")
    out = tmp_path / "out"
    rc = main(["generate", "--model", str(base), "--motion-adapter", str(adapter), "--lora",
               str(tmp_path / "style.safetensors"), "--condition", str(_condition(tmp_path)), "--prompt", "x",
               "--out", str(out), *SET])
    err = capsys.readouterr().err
    assert rc == 1, err
    assert "style.safetensors" in err and f"unet.{LAYER} (up)" in err and "non-finite" in err
    assert not out.exists() and not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_num_frames_1_with_a_trajectory_runs_with_injection_only(tmp_path, capsys):
    traj = {"schema": "anyi2v-lab/trajectory", "version": 1, "image_size": [128, 128],
            "objects": [{"box": [30, 30, 70, 70], "path": [[50, 50], [90, 50]]}]}
    (tmp_path / "t.json").write_text(json.dumps(traj))
    out = tmp_path / "out"
    with pytest.warns(TrajectoryWarning, match="num_frames=1: .* nothing to align: the latent optimisation is "
                                               "skipped .* injection only"):
        rc = main(["generate", "--model", "tiny", "--condition", str(_condition(tmp_path)), "--trajectory",
                   str(tmp_path / "t.json"), "--prompt", "x", "--out", str(out), *SET, "--set", "num_frames=1"])
    assert rc == 0, capsys.readouterr().err
    assert sorted(p.name for p in (out / "frames").iterdir()) == ["000.png"]
    assert json.loads((out / "run.json").read_text())["losses"] == []
