"""The command line on the tiny model: every output written, and a rerun from run.json is bit-identical."""
import json

import numpy as np
import pytest
from PIL import Image

from anyi2v_lab.cli import main

SET = ["--set", "num_frames=4", "--set", "num_inference_steps=3", "--set", "inversion_timestep=21",
       "--set", "opt_step=1", "--set", "opt_iters=2"]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("inputs")
    img = np.zeros((200, 300, 3), np.uint8)  # not the model size: the resize policy maps the trajectory
    img[50:150, 60:160] = 255
    Image.fromarray(img).save(d / "sketch.png")
    traj = {"bounding_box": [[60, 50, 160, 150]], "target_box": [[60, 50, 160, 150]],
            "center_traj": [[[110, 100], [200, 110]]], "query_point": [[[110, 100]]]}
    (d / "t.json").write_text(json.dumps(traj))
    return d


def test_generate_writes_everything_and_reruns_bit_identically(inputs, tmp_path):
    out = tmp_path / "run"
    # the reference format is in 512x512 pixels unless told: draw ours in the image's own pixels
    from anyi2v_lab.trajectory import Trajectory
    Trajectory.load(inputs / "t.json", image_size=(300, 200)).save(inputs / "ours.json", overwrite=True)
    rc = main(["generate", "--model", "tiny", "--condition", str(inputs / "sketch.png"), "--trajectory",
               str(inputs / "ours.json"), "--prompt", "a white square", "--seed", "5", "--out", str(out), *SET])
    assert rc == 0
    for name in ("video.mp4", "video.gif", "overlay.mp4", "overlay.gif", "run.json", "condition.png",
                 "trajectory.json", "frames/000.png", "frames/003.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    run = json.loads((out / "run.json").read_text())
    assert run["seed"] == 5 and run["config"]["opt_iters"] == 2 and run["versions"]["diffusers"].startswith("0.42")
    assert np.isfinite(run["losses"]).all()
    assert main(["generate", "--from-run", str(out / "run.json"), "--out", str(tmp_path / "again")]) == 0
    for i in range(4):
        a = np.asarray(Image.open(out / "frames" / f"{i:03d}.png"))
        b = np.asarray(Image.open(tmp_path / "again" / "frames" / f"{i:03d}.png"))
        assert np.array_equal(a, b)


def test_existing_output_is_never_overwritten(inputs, tmp_path, capsys):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "mine.txt").write_text("user data")
    with pytest.raises(SystemExit, match="exists"):
        main(["generate", "--model", "tiny", "--condition", str(inputs / "sketch.png"), "--prompt", "x",
              "--out", str(out), *SET])
    assert (out / "mine.txt").read_text() == "user data"


def test_bad_trajectory_fails_before_loading(tmp_path, inputs, capsys):
    (tmp_path / "bad.json").write_text('{"schema": "anyi2v-lab/trajectory", "version": 1, "image_size": [64, 64], '
                                       '"objects": [{"box": [10, 10, 5, 20], "path": [[1, 1]]}]}')
    rc = main(["generate", "--model", "does/not-exist", "--condition", str(inputs / "sketch.png"), "--prompt", "x",
               "--trajectory", str(tmp_path / "bad.json"), "--out", str(tmp_path / "o")])
    assert rc == 2 and "x1 > x0" in capsys.readouterr().err


def test_invert_and_points(inputs, tmp_path, capsys):
    out = tmp_path / "f.safetensors"
    assert main(["invert", "--model", "tiny", "--condition", str(inputs / "sketch.png"), "--prompt", "x",
                 "--out", str(out), "--set", "inversion_timestep=11"]) == 0
    from anyi2v_lab.method import FeatureBank
    assert len(FeatureBank.load(out).queries) == 4
    assert main(["points", "--pattern", "up_blocks.1.*.attn1.query"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 + 1 and "C=1280" in lines[-1]


def test_help_lists_subcommands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert all(c in text for c in ("generate", "invert", "demo", "points"))
