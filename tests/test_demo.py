"""The README's main job: the demo on the embedded toy model, offline, on the CPU."""
import json

import numpy as np
import pytest

from anyi2v_lab.cli import main
from anyi2v_lab.demo import DEMO_NOISE_SEED


@pytest.mark.slow
def test_demo_writes_video_overlay_and_path_plot(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out)]) == 0
    for name in ("video.mp4", "video.gif", "overlay.mp4", "path.png", "run.json", "demo.json", "condition.png"):
        assert (out / name).stat().st_size > 0, name
    summary = json.loads((out / "demo.json").read_text())
    assert summary["model"] == "embedded toy model" and np.isfinite(summary["objmc_px"])
    run = json.loads((out / "run.json").read_text())
    assert run["config"]["inversion_schedule"] == "fast" and run["config"]["opt_iters"] == 5
    assert not run["config"]["inject_uncond"] and run["seed"] == DEMO_NOISE_SEED  # saved, so the run can be redone
    assert "ObjMC" in capsys.readouterr().out


def test_toy_settings_name_the_finest_self_attentions_and_the_demo_runs_the_papers():
    """``toy.settings.FINE_ALIGN_SETTINGS`` names exactly the decoder's self-attentions at the toy UNet's
    finest level (16 x 16 for a 64 px frame) and makes a valid config; the demo runs the paper's settings
    with the fast inversion schedule alone, plus whatever ``TOY_METHOD_SETTINGS`` holds (none now)."""
    from anyi2v_lab.demo import DEMO_OVERRIDES
    from anyi2v_lab.hooks.points import hook_points
    from anyi2v_lab.method import AnyI2VConfig
    from anyi2v_lab.toy.model import LATENT_SIZE, build_unet
    from anyi2v_lab.toy.settings import FINE_ALIGN_SETTINGS, TOY_METHOD_SETTINGS

    queries = [p for p in hook_points(build_unet()) if p.kind == "self_attention" and p.site == "query"]
    finest = [p.module for p in queries if p.downscale == 1 and p.module.startswith("up_blocks")]
    assert sorted(FINE_ALIGN_SETTINGS["opt_layers"]) == sorted(finest) and LATENT_SIZE == 16
    fine = AnyI2VConfig(**FINE_ALIGN_SETTINGS)
    assert fine.opt_layers == FINE_ALIGN_SETTINGS["opt_layers"] and fine.inject_uncond
    assert AnyI2VConfig(**DEMO_OVERRIDES) == AnyI2VConfig(inversion_schedule="fast").replace(**TOY_METHOD_SETTINGS)
    assert TOY_METHOD_SETTINGS == {}
