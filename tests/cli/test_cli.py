"""The command line: every output written on the tiny model, a rerun from run.json bit-identical; every bad
input refused with exit 2 before a model loads; failures 1, Ctrl-C 130."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from anyi2v_lab import cli
from anyi2v_lab.cli import main

SET = ["--set", "num_frames=4", "--set", "num_inference_steps=3", "--set", "inversion_timestep=21",
       "--set", "opt_step=1", "--set", "opt_iters=2", "--set", "load_feature_step=2"]


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
    traj = Trajectory.load(inputs / "t.json", image_size=(300, 200), timing="resample")  # 2 points, 4 frames
    traj.save(inputs / "ours.json", overwrite=True)
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


def test_existing_output_is_never_overwritten(inputs, tmp_path, capsys, no_model):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "mine.txt").write_text("user data")
    rc = main(["generate", "--model", "tiny", "--condition", str(inputs / "sketch.png"), "--prompt", "x",
               "--out", str(out), *SET])
    assert rc == 2 and "exists and is not empty" in capsys.readouterr().err
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


def test_python_m_answers_bad_input_with_exit_2(tmp_path):
    """``python -m anyi2v_lab.cli`` (as torchrun starts it) maps bad input to exit 2, as ``anyi2v-lab`` does."""
    argv = [sys.executable, "-m", "anyi2v_lab.cli", "generate", "--prompt", "x", "--out", str(tmp_path / "o")]
    out = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert out.returncode == 2, out.stderr
    assert out.stderr == "error: --condition is required (an image path; repeat it with --mask for mixed conditions)\n"
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------- bad input: exit 2, before any model loads
@pytest.fixture
def no_model(monkeypatch):
    """Loading a model (or running the demo) fails the test: every check must come first."""
    def boom(*a, **k):
        raise AssertionError("a model was loaded before the inputs were checked")
    monkeypatch.setattr("anyi2v_lab.cli.model.load_model", boom)
    import anyi2v_lab.demo
    monkeypatch.setattr(anyi2v_lab.demo, "run_demo", boom)


def _refused(argv, capsys) -> str:
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    return err


@pytest.mark.parametrize("override,message", [
    ("pca_dim=abc", "pca_dim='abc' is not an integer or none"),      # int | None
    ("lr=fast", "lr='fast' is not a finite number"),                 # float
    ("guidance_scale=abc", "guidance_scale='abc' is not a finite number"),
    ("opt_step=abc", "opt_step='abc' is not an integer"),            # int
    ("inject_query=nope", "inject_query='nope' is not true or false"),  # bool
    ("mask=nope", "mask='nope' is not one of 'semantic', 'static', 'none'"),  # choices
    ("opt_layers=[1, 2]", "opt_layers=[1, 2] is not a list of layer names"),  # layer names
    ("opt_step=-1", "opt_step=-1 must lie in 0..24"),                # windows
    ("lrr=0.1", "did you mean 'lr'?"),
])
def test_bad_set_values_are_refused(override, message, inputs, tmp_path, capsys, no_model):
    err = _refused(["generate", "--model", "tiny", "--condition", str(inputs / "sketch.png"), "--prompt", "x",
                    "--out", str(tmp_path / "o"), "--set", override], capsys)
    assert message in err and err.startswith("error: --set: ")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("name,text,message", [
    ("c.yaml", "pca_dim: abc\n", "pca_dim='abc' is not an integer or none"),
    ("c.json", '{"inject_query": "nope"}', "inject_query='nope' is not true or false"),
    ("c.yml", "opt_layers: 3\n", "opt_layers=3 is not a list of layer names"),
    ("c.yaml", "lr: [0.1\n", "cannot be read: line 2, column 1"),
])
def test_bad_config_files_are_refused(name, text, message, inputs, tmp_path, capsys, no_model):
    (tmp_path / name).write_text(text)
    err = _refused(["invert", "--model", "tiny", "--condition", str(inputs / "sketch.png"), "--prompt", "x",
                    "--out", str(tmp_path / "f.safetensors"), "--config", str(tmp_path / name)], capsys)
    assert f"config file '{tmp_path / name}'" in err and message in err


def test_bad_files_are_refused_before_loading(inputs, tmp_path, capsys, no_model):
    (tmp_path / "notes.png").write_text("not an image")
    (tmp_path / "adapter.ckpt").write_bytes(b"\0")
    base = ["generate", "--condition", str(inputs / "sketch.png"), "--prompt", "x", "--out", str(tmp_path / "o")]
    cases = [
        (["generate", "--model", "tiny", "--condition", str(tmp_path / "notes.png"), "--prompt", "x",
          "--out", str(tmp_path / "o")], "cannot read the condition image"),
        ([*base, "--mask", str(tmp_path / "nomask.png")], "mask not found"),
        ([*base, "--mask", str(tmp_path / "notes.png")], "cannot read the mask"),
        ([*base, "--model", "tiny", "--motion-adapter", str(tmp_path / "nope.ckpt")],
         f"--motion-adapter '{tmp_path / 'nope.ckpt'}' does not exist"),
        ([*base, "--model", "tiny", "--motion-adapter", str(tmp_path / "adapter.ckpt")],
         "--model tiny builds a tiny random model from scratch and takes no --motion-adapter"),
        ([*base, "--model", str(tmp_path / "sd15")], f"--model '{tmp_path / 'sd15'}' does not exist"),
        ([*base, "--model", str(tmp_path / "adapter.ckpt")], "is a file: give a diffusers folder"),
        ([*base, "--checkpoint", str(tmp_path / "rv.safetensors")], "--checkpoint"),
        ([*base, "--lora", f"{tmp_path / 'style.safetensors'}:0.8"], f"--lora '{tmp_path / 'style.safetensors'}'"),
        ([*base, "--dtype", "int8"], "--dtype 'int8' is unknown"),
        (base[:3] + base[5:], "--prompt is required"),
        (["generate", "--prompt", "x", "--out", str(tmp_path / "o")], "--condition is required"),
        (["generate", "--from-run", str(tmp_path / "run.json"), "--out", str(tmp_path / "o")], "does not exist"),
        (["batch", str(tmp_path / "jobs.jsonl"), "--out", str(tmp_path / "b")], "jobs file"),
        (["points", "--model", str(tmp_path / "nope")], "does not exist"),
    ]
    for argv, message in cases:
        assert message in _refused(argv, capsys), argv
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("extra,message", [
    (["--set", "num_inference_steps=100000"], "num_inference_steps=100000 must lie in 1..1000: DDIM takes at most"),
    (["--set", "num_frames=100000"], "num_frames=100000 must lie in 1..32: an AnimateDiff motion module embeds"),
    (["--set", "height=8192", "--set", "width=8192"], "height=8192 must be a multiple of 8 (the VAE downsamples by "
                                                      "8) in 8..2048"),
    (["--seed", str(2**64)], "--seed=18446744073709551616 must be an integer in 0..18446744073709551615 (2**64 - 1)"),
    (["--seed", "-1"], "--seed=-1 must be an integer in 0..18446744073709551615"),
])
def test_limits_and_seeds_are_refused_before_loading(extra, message, inputs, tmp_path, capsys, no_model):
    err = _refused(["generate", "--model", "tiny", "--condition", str(inputs / "sketch.png"), "--prompt", "x",
                    "--out", str(tmp_path / "o"), *extra], capsys)
    assert message in err
    assert not (tmp_path / "o").exists()


def test_a_size_that_cannot_fit_is_refused_before_loading_unless_told(inputs, tmp_path, capsys, monkeypatch,
                                                                      no_model):
    import anyi2v_lab.resources
    monkeypatch.setattr(anyi2v_lab.resources, "available_memory", lambda device: (2**30, "available RAM"))
    argv = ["generate", "--model", "tiny", "--condition", str(inputs / "sketch.png"), "--prompt", "x", "--out",
            str(tmp_path / "o"), "--set", "height=2048", "--set", "width=2048", "--set", "num_frames=32"]
    err = _refused(argv, capsys)
    assert "height=2048, width=2048, num_frames=32 need an estimated ~" in err and "GiB" in err
    assert "but cpu has 1.0 GiB of available RAM: " in err and "--no-memory-check" in err
    assert not (tmp_path / "o").exists()

    class Loaded(Exception):
        pass

    def load(spec):
        raise Loaded
    monkeypatch.setattr("anyi2v_lab.cli.model.load_model", load)
    with pytest.raises(Loaded):  # past every check, to the model
        main([*argv, "--no-memory-check", "--debug"])


def test_a_pickled_model_folder_is_refused_before_any_weight_is_read(tmp_path, inputs, capsys, monkeypatch):
    import torch
    from safetensors.torch import load_file

    from anyi2v_lab.models import loading
    from helpers.tiny_files import save_tiny
    base, adapter, _ = save_tiny(tmp_path)
    unet = base / "unet" / "diffusion_pytorch_model.safetensors"
    torch.save(load_file(unet), unet.with_suffix(".bin"))
    unet.unlink()
    capsys.readouterr()  # the writers' progress bars
    monkeypatch.setattr(loading, "_load_part", lambda *a, **k: pytest.fail("a weight was read"))
    err = _refused(["generate", "--model", str(base), "--motion-adapter", str(adapter), "--condition",
                    str(inputs / "sketch.png"), "--prompt", "x", "--out", str(tmp_path / "o")], capsys)
    assert f"'{unet.with_suffix('.bin')}' is a pickled weights file" in err and "(--allow-pickle)" in err
    assert not (tmp_path / "o").exists()


def test_existing_outputs_are_refused_before_any_work(inputs, tmp_path, capsys, no_model):
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "mine.txt").write_text("user data")
    assert "exists and is not empty" in _refused(["demo", "--out", str(taken)], capsys)  # run_demo not called
    assert "exists and is not empty" in _refused(["demo", "--tiny", "--fast", "--out", str(taken)], capsys)
    (tmp_path / "feats.safetensors").write_bytes(b"mine")
    assert "is not a features file written by anyi2v-lab, so it is never replaced" in _refused(
        ["invert", "--model", "tiny", "--condition", str(inputs / "sketch.png"), "--prompt", "x",
         "--out", str(tmp_path / "feats.safetensors")], capsys)
    (tmp_path / "file").write_text("x")
    assert "is a file" in _refused(["batch", str(tmp_path / "file"), "--out", str(tmp_path / "file")], capsys)
    assert "is a file" in _refused(["demo", "--out", str(tmp_path / "file" / "demo")], capsys)
    assert (taken / "mine.txt").read_text() == "user data" and (tmp_path / "feats.safetensors").read_bytes() == b"mine"


def test_demo_checks_its_folder_then_runs(tmp_path, monkeypatch):
    calls = []
    import anyi2v_lab.demo
    monkeypatch.setattr(anyi2v_lab.demo, "run_demo", lambda out, **kw: calls.append((out, kw)))
    (tmp_path / "empty").mkdir()  # an empty folder is fine
    assert main(["demo", "--out", str(tmp_path / "empty"), "--fast"]) == 0
    assert calls == [(tmp_path / "empty", {"overwrite": False, "tiny": False, "fast": True})]


# ---------------------------------------------------------------- exit codes 1 and 130
def test_failure_while_running_is_one_line_and_exit_1(inputs, tmp_path, capsys, monkeypatch):
    def fails(spec):
        raise RuntimeError("CUDA out of memory\n(details)")
    monkeypatch.setattr("anyi2v_lab.cli.model.load_model", fails)
    argv = ["generate", "--model", "tiny", "--condition", str(inputs / "sketch.png"), "--prompt", "x",
            "--out", str(tmp_path / "o")]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.splitlines()[0] == "error: RuntimeError: CUDA out of memory (details)" and "--debug" in err
    assert "Traceback" not in err and len(err.splitlines()) == 2
    with pytest.raises(RuntimeError, match="out of memory"):  # --debug: the traceback
        main([*argv, "--debug"])


def test_ctrl_c_is_one_line_exit_130_and_leaves_nothing(inputs, tmp_path, capsys, monkeypatch):
    def interrupted(spec):
        raise KeyboardInterrupt
    monkeypatch.setattr("anyi2v_lab.cli.model.load_model", interrupted)
    assert main(["invert", "--model", "tiny", "--condition", str(inputs / "sketch.png"), "--prompt", "x",
                 "--out", str(tmp_path / "f.safetensors")]) == 130
    assert capsys.readouterr().err.strip() == "interrupted"
    assert list(tmp_path.iterdir()) == []


def test_interrupted_output_folder_leaves_nothing(tmp_path):
    from anyi2v_lab.outputs import atomic_folder
    with pytest.raises(KeyboardInterrupt):
        with atomic_folder(tmp_path / "run") as tmp:
            (tmp / "video.mp4").write_bytes(b"half")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_output_folders_get_the_umask_permissions(tmp_path, umask):
    from anyi2v_lab.outputs import atomic_folder
    old = os.umask(umask)
    try:
        with atomic_folder(tmp_path / "run") as tmp:
            (tmp / "frames").mkdir()
    finally:
        os.umask(old)
    assert (tmp_path / "run").stat().st_mode & 0o777 == 0o777 & ~umask  # not mkdtemp's 0700
    assert (tmp_path / "run" / "frames").stat().st_mode & 0o777 == 0o777 & ~umask


# ---------------------------------------------------------------- anyi2v-lab config, --help, start-up
def test_config_lists_every_key_with_type_default_and_meaning(capsys, tmp_path):
    from anyi2v_lab.method.config import config_keys
    assert main(["config"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["KEY", "TYPE", "DEFAULT", "MEANING"]
    rows = {line.split()[0]: line for line in lines[1:len(config_keys()) + 1]}
    assert list(rows) == [k for k, *_ in config_keys()]
    assert rows["pca_dim"].split()[1:5] == ["int", "or", "none", "64"] and "PCA" in rows["pca_dim"]
    assert rows["mask"].split()[1:3] == ["one", "of"] and rows["inject_query"].split()[1:3] == ["bool", "true"]
    assert main(["config", "--set", "lr=0.02", "--set", "pca_dim=none"]) == 0
    text = capsys.readouterr().out
    assert "0.02 (default 0.01)" in text and "none (default 64)" in text and "VALUE" in text
    assert main(["config", "--set", "lr=0.02", "--json"]) == 0  # a config file
    (tmp_path / "c.json").write_text(capsys.readouterr().out)
    from anyi2v_lab.method.config import AnyI2VConfig
    assert AnyI2VConfig.load(tmp_path / "c.json") == AnyI2VConfig(lr=0.02)
    assert "lr='x' is not a finite number" in _refused(["config", "--set", "lr=x"], capsys)


def test_help_documents_exit_codes_and_config(capsys):
    for argv in (["--help"], ["generate", "--help"]):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 0
        text = " ".join(capsys.readouterr().out.split())
        assert "anyi2v-lab config" in text and "2 bad input or usage" in text and "130 interrupted" in text
    assert all(f"{code} " in cli.__doc__ for code in ("1", "2", "130", "143"))
    with pytest.raises(SystemExit) as e:  # argparse's own usage errors are 2 as well
        main(["generate", "--out", "x", "--bogus"])
    assert e.value.code == 2


def test_command_line_sets_openmp_before_torch_loads(tmp_path):
    code = ("import os, sys\n"
            "import anyi2v_lab.cli\n"
            "assert 'torch' not in sys.modules\n"
            "from anyi2v_lab.startup import prepare_process, usable_cpus\n"
            "prepare_process()\n"
            "print(os.environ['OMP_WAIT_POLICY'], os.environ['OMP_NUM_THREADS'], usable_cpus())")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    policy, threads, cpus = out.split()
    assert policy == "PASSIVE" and threads == cpus and int(cpus) >= 1
    env["OMP_NUM_THREADS"] = "1"  # the user's (or torchrun's) choice stands
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split()[1] == "1"


def test_library_noise_is_silenced_and_nothing_else():
    import logging

    from anyi2v_lab.startup import silence_library_warnings
    silence_library_warnings()
    silence_library_warnings()  # idempotent
    seen = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    loggers = [logging.getLogger(n) for n in ("transformers.utils.import_utils", "diffusers.models.modeling_utils")]
    # the libraries' loggers may not propagate to the root, and may be set to ERROR: listen on them, at ERROR
    for lg in loggers:
        lg.addHandler(handler)
    try:
        loggers[0].error("`CLIPImageProcessor` requires torchvision (not installed); falling back")
        loggers[1].error("There are modules in UNetMotionModel that should be kept in float32: []")
        loggers[0].error("something the user should see")
    finally:
        for lg in loggers:
            lg.removeHandler(handler)
    assert seen == ["something the user should see"]


def test_a_peer_methods_trajectory_runs_in_ours(tmp_path):
    """SG-I2V's traj.npy (pixels of its img.png) drives a generation; run.json keeps it in our format."""
    from pathlib import Path
    sample = Path(__file__).parents[1] / "data" / "interop" / "sgi2v"
    out = tmp_path / "run"
    rc = main(["generate", "--model", "tiny", "--condition", str(sample / "img.png"), "--trajectory",
               str(sample / "traj.npy"), "--trajectory-format", "sgi2v", "--prompt", "two boxes",
               "--out", str(out), *SET])
    assert rc == 0
    saved = json.loads((out / "trajectory.json").read_text())
    assert saved["schema"] == "anyi2v-lab/trajectory" and len(saved["objects"]) == 2


def test_a_malformed_peer_trajectory_is_refused_before_loading(inputs, tmp_path, capsys, no_model):
    bad = tmp_path / "tracks.json"
    bad.write_text(json.dumps({"tracking_points": "not a list"}))
    err = _refused(["generate", "--model", "tiny", "--condition", str(inputs / "sketch.png"), "--trajectory",
                    str(bad), "--trajectory-format", "mofa", "--prompt", "x", "--out", str(tmp_path / "o")], capsys)
    assert "tracking_points" in err


def test_evaluate_refuses_a_bad_manifest_before_loading(tmp_path, capsys, no_model):
    manifest = tmp_path / "cases.jsonl"
    manifest.write_text(json.dumps({"id": "a", "image": "a.png", "trajectory": "a.json", "prompt": "x"}) + "\n")
    err = _refused(["evaluate", str(manifest), "--model", "tiny", "--out", str(tmp_path / "eval")], capsys)
    assert "mask" in err


# ---------------------------------------------------------------- the reference's example and trajectory timing
@pytest.fixture(scope="module")
def reference_checkout(tmp_path_factory):
    """A stand-in for a clone of FudanCVL/AnyI2V: its horse-canny image is not shipped with us."""
    root = tmp_path_factory.mktemp("AnyI2V")
    (root / "__assets__" / "image").mkdir(parents=True)
    img = np.zeros((512, 512, 3), np.uint8)
    img[120:270, 110:470] = 255
    img[130:260, 120:460] = 0
    Image.fromarray(img).save(root / "__assets__" / "image" / "horse-canny.jpg")
    return root


def test_the_references_example_runs_with_one_flag(reference_checkout, tmp_path):
    """--example horse-canny: prompt, negative prompt, seed, trajectory and its timing from the shipped file."""
    from anyi2v_lab.examples import load_example
    from anyi2v_lab.trajectory import Trajectory, frame_boxes
    ex = load_example("horse-canny")
    out = tmp_path / "horse"
    assert main(["generate", "--example", "horse-canny", "--reference-checkout", str(reference_checkout),
                 "--model", "tiny", "--out", str(out), *SET]) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["prompt"] == "A majestic horse running across a grassy field, cinematic lighting, high resolution."
    assert run["negative_prompt"].startswith("cartoon, anime, sketches,worst quality")
    assert run["negative_prompt"] == ex.negative_prompt
    assert run["seed"] == 4162228652802886667 and run["config"]["guidance_scale"] == 8.0
    assert run["config"]["num_frames"] == 4  # --set on top of the example's 16
    assert (out / "example.yaml").read_text() == ex.file.read_text()
    saved = Trajectory.load(out / run["trajectory"])
    assert saved.timing == "first-frames"
    # the reference's rule at 4 frames: points 0..3 of the path, 167 -> 193 = 26 px of 512, on our 128 px canvas
    boxes = frame_boxes(saved, 4)[0]
    assert saved.image_size == (128, 128) and boxes[-1, 0] - boxes[0, 0] == pytest.approx(26 * 128 / 512)


@pytest.mark.parametrize("extra,message", [
    ([], "needs its condition image, which is not shipped"),
    (["--reference-checkout", "{tmp}/nowhere"], "is not a folder"),
    (["--reference-checkout", "{tmp}"], "has no __assets__/image/horse-canny.jpg"),
    (["--reference-checkout", "{checkout}", "--config", "{tmp}/c.yaml"], "brings its own config"),
    (["--reference-checkout", "{checkout}", "--set", "num_frames=20"],
     "path has 16 points but 20 frames need 20 under timing 'first-frames'"),
    (["--reference-checkout", "{checkout}", "--from-run", "{tmp}/run.json"], "give one of them"),
])
def test_example_inputs_are_refused_before_loading(extra, message, reference_checkout, tmp_path, capsys, no_model):
    (tmp_path / "c.yaml").write_text("lr: 0.02\n")
    argv = [a.format(tmp=tmp_path, checkout=reference_checkout) for a in extra]
    err = _refused(["generate", "--example", "horse-canny", "--model", "tiny", "--out", str(tmp_path / "o"), *argv],
                   capsys)
    assert message in err


def test_trajectory_timing_flag(inputs, tmp_path, capsys, no_model):
    """A reference file of 2 points cannot give 4 frames a point each by the reference's rule: refused
    before loading, naming the flag that resamples; the flag needs a trajectory."""
    base = ["generate", "--model", "tiny", "--condition", str(inputs / "sketch.png"), "--prompt", "x",
            "--out", str(tmp_path / "o"), *SET]
    err = _refused([*base, "--trajectory", str(inputs / "t.json")], capsys)
    assert "path has 2 points but 4 frames need 4 under timing 'first-frames'" in err
    assert "--trajectory-timing resample" in err
    err = _refused([*base, "--trajectory-timing", "resample"], capsys)
    assert "--trajectory-timing says how to read --trajectory" in err
    assert "--reference-checkout is where --example finds" in _refused([*base, "--reference-checkout", "x"], capsys)


def test_trajectory_timing_resample_and_example_lora_strength(inputs, reference_checkout, tmp_path, monkeypatch):
    """--trajectory-timing resample reaches the generation; a --lora without :SCALE gets the example's alpha."""
    seen = {}

    def stop(spec):
        seen["spec"] = spec
        raise RuntimeError("stop before loading")
    monkeypatch.setattr("anyi2v_lab.cli.model.load_model", stop)
    import anyi2v_lab.method
    monkeypatch.setattr(anyi2v_lab.method, "generate", lambda *a, **k: seen.setdefault("trajectory", a[3]))
    (tmp_path / "sd15").mkdir()
    (tmp_path / "style.safetensors").write_bytes(b"")
    style = str(tmp_path / "style.safetensors")
    for lora, scale in ((style, 0.8), (style + ":0.5", 0.5)):
        rc = main(["generate", "--example", "horse-canny", "--reference-checkout", str(reference_checkout), "--model",
                   str(tmp_path / "sd15"), "--lora", lora, "--out", str(tmp_path / "o"),
                   "--no-memory-check"])  # SD1.5 at 512 px and 16 frames needs ~31 GiB on CPU
        assert rc == 1 and seen["spec"]["loras"] == [[str(tmp_path / "style.safetensors"), scale]]
    monkeypatch.setattr("anyi2v_lab.cli.model.load_model", lambda spec: None)
    monkeypatch.setattr(sys.modules["anyi2v_lab.method.generation"], "model_size", lambda pipe, cfg: (64, 64))
    monkeypatch.setattr("anyi2v_lab.conditions.condition_from_files", lambda *a, **k: None)
    main(["generate", "--model", "tiny", "--condition", str(inputs / "sketch.png"), "--prompt", "x", "--trajectory",
          str(inputs / "t.json"), "--trajectory-timing", "resample", "--out", str(tmp_path / "o2"), *SET])
    assert seen["trajectory"].timing == "resample" and len(seen["trajectory"].objects[0].path) == 2


# ---------------------------------------------------------------- bad images, trajectories and formats: exit 2 up front
def test_bad_condition_images_are_refused_before_loading(tmp_path, capsys, no_model):
    """A decompression bomb (refused from its header, with the limit) and a folder (named as one)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", 20000, 20000, 8, 0, 0, 0, 0)
    (tmp_path / "bomb.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b""))
    (tmp_path / "conds").mkdir()
    Image.new("L", (64, 64)).save(tmp_path / "conds" / "edge.png")
    base = ["generate", "--model", "tiny", "--prompt", "x", "--out", str(tmp_path / "o")]
    err = _refused([*base, "--condition", str(tmp_path / "bomb.png")], capsys)
    assert f"condition image '{tmp_path / 'bomb.png'}' is too large: Image size (400000000 pixels)" in err
    assert "at most 67,108,864 pixels (8192x8192) are allowed; downscale it first" in err
    err = _refused([*base, "--condition", str(tmp_path / "conds")], capsys)
    assert f"condition image '{tmp_path / 'conds'}' is a folder; give an image file (PNG, JPEG, ...), such as " \
           f"'{tmp_path / 'conds' / 'edge.png'}'" in err
    assert not (tmp_path / "o").exists()


def test_a_trajectory_drawn_on_another_image_size_is_refused_before_loading(tmp_path, capsys, no_model):
    from anyi2v_lab.trajectory import Trajectory
    Image.new("RGB", (64, 64)).save(tmp_path / "c.png")
    Trajectory.single((10, 10, 40, 40), [(25, 25), (60, 60)], (100, 100)).save(tmp_path / "t.json")
    base = ["generate", "--model", "tiny", "--condition", str(tmp_path / "c.png"), "--trajectory",
            str(tmp_path / "t.json"), "--prompt", "x", "--out", str(tmp_path / "o"), *SET]
    err = _refused(base, capsys)
    assert f"the trajectory's image_size is 100x100 but the condition image '{tmp_path / 'c.png'}' is 64x64" in err
    assert "rescale it to 64x64" in err and "give --set width=100 --set height=100" in err
    err = _refused([*base, "--set", "width=96", "--set", "height=96"], capsys)
    assert "is 64x64 and the canvas (--set width/height) 96x96" in err
    assert not (tmp_path / "o").exists()


def test_a_reference_file_is_stretched_onto_a_smaller_condition(tmp_path, capsys):
    """The reference format is in 512x512 pixels (the reference stretches its input to 512x512): on a 64 px
    condition its coordinates are mapped, with a note giving both sizes, never read as 64 px ones."""
    Image.new("RGB", (64, 32)).save(tmp_path / "c.png")
    (tmp_path / "r.json").write_text(json.dumps({"bounding_box": [[128, 256, 384, 512]], "center_traj": [[[256, 384]]],
                                                 "target_box": [None], "query_point": [[]]}))
    from anyi2v_lab.cli.trajectory_input import check_trajectory, reference_source, trajectory_file
    from anyi2v_lab.method.config import AnyI2VConfig
    args = cli.build_parser().parse_args(["generate", "--trajectory", str(tmp_path / "r.json"), "--out", "o"])
    traj = check_trajectory(trajectory_file(args.trajectory), AnyI2VConfig(num_frames=4), [str(tmp_path / "c.png")],
                            reference_source(args.trajectory, args.trajectory_format, None))
    assert traj.image_size == (64, 32) and traj.objects[0].box == (16, 16, 48, 32)
    err = capsys.readouterr().err
    assert "in the reference format's 512x512 pixels" in err and "mapped onto the 64x32 condition image" in err


@pytest.mark.parametrize("kind", ["bare-list", "text-npy", "corrupt-mask"])
def test_malformed_peer_files_are_refused_before_loading(kind, inputs, tmp_path, capsys, no_model):
    if kind == "bare-list":
        path = tmp_path / "drags.json"
        path.write_text("[[[10, 10], [30, 12]]]")
        expected = ["drags.json is a bare JSON list, which does not say its format", "--trajectory-format mofa"]
    elif kind == "text-npy":
        path = tmp_path / "traj.npy"
        path.write_text("1 2 3\n")
        expected = ["traj.npy: is not a NumPy .npy file", "it is a text file beginning '1 2 3\\n'"]
    else:
        path = tmp_path / "demo.json"
        path.write_text(json.dumps({"1": {"mask_name": "1_car.png", "trajectory": [[20, 20], [40, 30]]}}))
        (tmp_path / "1_car.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
        expected = ["demo.json: 1.mask_name names a mask that cannot be used",
                    f"cannot read the mask '{tmp_path / '1_car.png'}'"]
    err = _refused(["generate", "--model", "tiny", "--condition", str(inputs / "sketch.png"), "--trajectory", str(path),
                    "--prompt", "x", "--out", str(tmp_path / "o"), *SET], capsys)
    assert all(e in err for e in expected) and "pickled" not in err


def test_points_pattern_without_a_match_is_exit_2_with_the_closest(capsys):
    err = _refused(["points", "--pattern", "up_block.1.*.querry"], capsys)
    assert ("--pattern 'up_block.1.*.querry' matches no hook point; did you mean 'up_blocks.1.*.query' (3 points)?"
            in err)
    err = _refused(["points", "--pattern", "zzz"], capsys)
    assert "names start with down_blocks.0," in err and "mid_block" in err and "up_blocks.3" in err
    assert capsys.readouterr().out == ""


def test_points_of_wan_1_3b_without_weights(capsys):
    assert main(["points", "--model", "wan", "--pattern", "b29.*"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split()[:3] for line in lines[:2]] == [["blocks.29.attn1.input", "b29.sa.in", "self_attention"],
                                                         ["blocks.29.attn1.query", "b29.sa.q", "self_attention"]]
    assert len(lines) == 10 and lines[-1].split()[:2] == ["blocks.29.output", "b29.o"]
    assert "C=1536" in lines[1] and "heads=12" in lines[1]


def test_points_of_wan_pattern_without_a_match_suggests_the_closest(capsys):
    err = _refused(["points", "--model", "wan", "--pattern", "blocks.3.attn3.*"], capsys)
    assert "did you mean 'blocks.3.attn2.*' (2 points)?" in err and "blocks.0 .. blocks.29" in err
