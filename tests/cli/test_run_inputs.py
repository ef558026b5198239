"""``generate`` reads its inputs into one frozen, keyword-only record (``RunInputs``) from the command line, a
shipped example or a saved run.json, and leaves the parsed arguments as they were."""
import dataclasses
import json

import pytest
from PIL import Image

from anyi2v_lab.cli import build_parser
from anyi2v_lab.cli.generate import RunInputs, run_inputs


@pytest.fixture
def condition(tmp_path) -> str:
    Image.new("RGB", (64, 64)).save(tmp_path / "c.png")
    return str(tmp_path / "c.png")


def _read(argv):
    args = build_parser().parse_args(["generate", "--model", "tiny", "--out", "o", *argv])
    given = dict(vars(args))
    inputs = run_inputs(args)
    assert vars(args) == given  # nothing written back into the namespace
    return inputs


def test_the_command_line_alone(condition):
    inputs = _read(["--condition", condition, "--prompt", "a cat", "--set", "lr=0.02"])
    assert (inputs.conditions, inputs.masks, inputs.trajectory) == ((condition,), (), None)
    assert (inputs.prompt, inputs.negative_prompt, inputs.seed) == ("a cat", "", 0)
    assert inputs.config.lr == 0.02 and inputs.model["model"] == "tiny" and inputs.model["loras"] == []
    assert inputs.example is None and inputs.saved_run is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        inputs.seed = 1
    with pytest.raises(TypeError):  # keyword-only
        RunInputs((condition,), (), None, "a cat", "", 0, inputs.config, inputs.model)


def test_an_example_fills_what_the_command_line_leaves_out(condition, tmp_path, capsys):
    from anyi2v_lab.examples import load_example
    example = load_example("horse-canny")
    (tmp_path / "sd15").mkdir()
    (tmp_path / "style.safetensors").write_bytes(b"")
    inputs = _read(["--example", "horse-canny", "--condition", condition, "--model", str(tmp_path / "sd15"),
                    "--lora", str(tmp_path / "style.safetensors"), "--seed", "7"])
    assert inputs.example == example and inputs.prompt == example.prompt and inputs.seed == 7
    assert inputs.model["loras"] == [[str(tmp_path / "style.safetensors"), example.lora_alpha]]
    assert inputs.trajectory.image_size == (64, 64)  # the reference's 512x512 pixels, stretched onto the image
    assert "mapped onto the 64x64 condition image" in capsys.readouterr().err


def test_a_saved_run_is_redone_with_set_on_top(condition, tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "condition.png").write_bytes(open(condition, "rb").read())
    (folder / "run.json").write_text(json.dumps({
        "prompt": "a dog", "negative_prompt": None, "seed": 3, "config": {"lr": 0.05}, "condition": "condition.png",
        "trajectory": None, "model": {"model": "tiny", "loras": [], "allow_pickle": False}}))
    inputs = _read(["--from-run", str(folder / "run.json"), "--set", "opt_iters=2", "--prompt", "ignored"])
    assert (inputs.prompt, inputs.negative_prompt, inputs.seed) == ("a dog", "", 3)
    assert inputs.conditions == (str(folder / "condition.png"),) and inputs.saved_run is not None
    assert inputs.config.lr == 0.05 and inputs.config.opt_iters == 2
    assert inputs.model == {"model": "tiny", "loras": [], "allow_pickle": False}
