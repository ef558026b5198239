"""``anyi2v-lab generate --backbone wan`` on the tiny random Wan: the outputs, and bad input refused first."""
import json

import numpy as np
import pytest
from PIL import Image

from anyi2v_lab.cli import main
from anyi2v_lab.method.config import ConfigError
from anyi2v_lab.method.wan.config import TINY_WAN_SETTINGS, wan_config


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("wan_inputs")
    img = np.zeros((48, 96, 3), np.uint8)  # not the canvas: the trajectory is mapped by the resize
    img[8:32, 10:40] = 255
    Image.fromarray(img).save(d / "sketch.png")
    traj = {"bounding_box": [[10, 8, 40, 32]], "target_box": [[10, 8, 40, 32]],
            "center_traj": [[[25, 20], [70, 26]]], "query_point": [[[25, 20]]]}
    (d / "t.json").write_text(json.dumps(traj))
    return d


def test_generate_with_the_wan_backbone_writes_frames_and_run_json(inputs, tmp_path):
    out = tmp_path / "run"
    rc = main(["generate", "--backbone", "wan", "--model", "tiny", "--condition", str(inputs / "sketch.png"),
               "--trajectory", str(inputs / "t.json"), "--trajectory-timing", "resample",
               "--prompt", "a white box", "--seed", "2",
               "--set", "num_inference_steps=2", "--set", "inject_blocks=0,1", "--set", "num_frames=5",
               "--out", str(out)])
    assert rc == 0
    assert len(list((out / "frames").glob("*.png"))) == 5 and (out / "video.mp4").is_file()
    run = json.loads((out / "run.json").read_text())
    assert run["backbone"] == "wan" and run["seed"] == 2 and run["config"]["num_inference_steps"] == 2
    assert run["config"]["inject_blocks"] == [0, 1] and len(run["iterations"]) == 1
    assert Image.open(out / "frames" / "000.png").size == (64, 64)


@pytest.mark.parametrize("extra, says", [
    (["--lora", "x.safetensors"], "does not take --lora"),
    (["--set", "inject_blocks=0,7"], "inject_blocks=(0, 7): this transformer has blocks 0..1"),
    (["--set", "num_frames=8"], "num_frames=8"),
    (["--set", "inject_block=1"], "unknown Wan config key 'inject_block'"),
])
def test_bad_wan_input_is_refused(inputs, tmp_path, capsys, extra, says):
    rc = main(["generate", "--backbone", "wan", "--model", "tiny", "--condition", str(inputs / "sketch.png"),
               "--prompt", "x", "--out", str(tmp_path / "o"), *extra])
    assert rc != 0 and says in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_wan_config_from_set_values():
    cfg = wan_config(["inject_blocks=[3, 5]", "adain_patch=none", "inject_kv=no", "lr=0.02", "mask=static"])
    assert cfg.inject_blocks == (3, 5) and cfg.adain_patch is None and cfg.inject_kv is False
    assert cfg.lr == 0.02 and cfg.mask == "static"
    assert wan_config([], TINY_WAN_SETTINGS).align_blocks == (1,)
    with pytest.raises(ConfigError, match="opt_iters='many'"):
        wan_config(["opt_iters=many"])
