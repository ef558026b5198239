"""The README's main job: the demo on the embedded toy model, offline, on the CPU."""
import json

import numpy as np
import pytest

from anyi2v_lab.cli import main


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
    assert "ObjMC" in capsys.readouterr().out
