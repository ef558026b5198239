"""The command line's trust and output rules: nothing in a file grants unpickling; run.json's fields are
checked before a model loads; --out is claimed before any work (a second process refused with exit 2),
replaced with --overwrite only where it holds an earlier run; SIGTERM cleans up (exit 143)."""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from anyi2v_lab.cli import main

SET = ["--set", "num_frames=4", "--set", "num_inference_steps=3", "--set", "inversion_timestep=21",
       "--set", "opt_step=1", "--set", "opt_iters=2", "--set", "load_feature_step=2"]


@pytest.fixture(scope="module")
def sketch(tmp_path_factory) -> Path:
    img = np.zeros((64, 64, 3), np.uint8)
    img[16:40, 16:40] = 255
    path = tmp_path_factory.mktemp("inputs") / "sketch.png"
    Image.fromarray(img).save(path)
    return path


@pytest.fixture
def no_model(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("a model was loaded before the inputs were checked")
    monkeypatch.setattr("anyi2v_lab.cli.model.load_model", boom)


def _refused(argv, capsys) -> str:
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "error: " in err and "Traceback" not in err
    return err


def _run_folder(folder: Path, sketch: Path, **fields) -> Path:
    """A run.json as write_run leaves it (small settings), with ``fields`` changed."""
    folder.mkdir()
    (folder / "condition.png").write_bytes(sketch.read_bytes())
    run = {"prompt": "a white square", "negative_prompt": "", "seed": 3, "config": {"num_frames": 4},
           "model": {"model": "tiny", "checkpoint": None, "motion_adapter": None, "loras": [], "device": None,
                     "dtype": None, "allow_pickle": False},
           "condition": "condition.png", "trajectory": None, "trajectory_timing": None,
           "versions": {"anyi2v_lab": "0"}, "threads": {"torch": torch.get_num_threads(), "OMP_NUM_THREADS": "1"}}
    for key, value in fields.items():
        if key.startswith("model."):
            run["model"][key[6:]] = value
        else:
            run[key] = value
    (folder / "run.json").write_text(json.dumps(run))
    return folder / "run.json"


# ---------------------------------------------------------------- nothing from a file grants unpickling
class Payload:
    """Unpickling this runs ``open(marker, 'w')``: the marker file says the code ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def test_a_run_json_never_grants_unpickling(sketch, tmp_path, capsys):
    from helpers.tiny_files import save_tiny
    base, adapter, _ = save_tiny(tmp_path / "weights")
    marker = tmp_path / "payload-ran"
    torch.save({"state_dict": Payload(marker)}, tmp_path / "shared.ckpt")
    run_json = _run_folder(tmp_path / "shared", sketch, **{
        "model.model": str(base), "model.motion_adapter": str(adapter),
        "model.checkpoint": str(tmp_path / "shared.ckpt"), "model.allow_pickle": True, "model.device": "cpu"})
    rc = main(["generate", "--from-run", str(run_json), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and not marker.exists() and not (tmp_path / "o").exists()
    assert "says allow_pickle: true; ignored: only --allow-pickle on the command line allows unpickling" in err
    assert "holds Python objects besides tensors" in err
    # the payload is real: the flag typed on the command line (and only that) unpickles it
    main(["generate", "--from-run", str(run_json), "--out", str(tmp_path / "o"), "--allow-pickle"])
    assert marker.exists()


# ---------------------------------------------------------------- run.json's fields, checked before a model loads
@pytest.mark.parametrize("field,value,message", [
    ("seed", "5", "seed = '5' is not an integer; fix the file or make the run again"),
    ("seed", True, "seed = True is not an integer"),
    ("seed", 2**70, "seed = 1180591620717411303424 must lie in 0..2**64-1"),
    ("prompt", 3, "prompt = 3 is not a string"),
    ("config", [1], "config = [1] is not an object of config keys"),
    ("model", "tiny", "model = 'tiny' is not an object (the model spec)"),
    ("condition", 5, "condition = 5 is not a file name in the run's folder"),
    ("condition", "../../sketch.png", "condition = '../../sketch.png' leaves the run's folder"),
    ("trajectory", "/etc/passwd", "trajectory = '/etc/passwd' leaves the run's folder"),
    ("model.loras", "x.safetensors", "model.loras = 'x.safetensors' is not a list of [path, scale] "
                                     "pairs"),
    ("model.loras", [["x.safetensors"]], "model.loras[0] = ['x.safetensors'] is not a [path, scale] pair; give each "
                                         "LoRA as [path, scale]"),
    ("model.allow_pickle", "yes", "model.allow_pickle = 'yes' is not true or false"),
    ("model.trust_remote_code", True, "model has unknown keys ['trust_remote_code']; a model spec has"),
])
def test_tampered_run_json_fields_are_refused_before_loading(field, value, message, sketch, tmp_path, capsys,
                                                             no_model):
    run_json = _run_folder(tmp_path / "r", sketch, **{field: value})
    err = _refused(["generate", "--from-run", str(run_json), "--out", str(tmp_path / "o")], capsys)
    assert f"--from-run '{run_json}': " in err and message in err
    assert not (tmp_path / "o").exists()


def test_a_run_json_missing_a_field_or_not_an_object_is_refused(sketch, tmp_path, capsys, no_model):
    run_json = _run_folder(tmp_path / "r", sketch)
    run = json.loads(run_json.read_text())
    del run["seed"]
    run_json.write_text(json.dumps(run))
    assert "has no field 'seed'" in _refused(["generate", "--from-run", str(run_json), "--out", str(tmp_path / "o")],
                                             capsys)
    run_json.write_text("[1, 2]")
    assert "not a JSON object" in _refused(["generate", "--from-run", str(run_json), "--out", str(tmp_path / "o")],
                                           capsys)


def test_from_run_notes_another_thread_count(sketch, tmp_path, capsys, monkeypatch):
    def stop(spec):
        raise KeyboardInterrupt
    monkeypatch.setattr("anyi2v_lab.cli.model.load_model", stop)
    run_json = _run_folder(tmp_path / "r", sketch, threads={"torch": torch.get_num_threads() + 7,
                                                             "OMP_NUM_THREADS": "99"})
    assert main(["generate", "--from-run", str(run_json), "--out", str(tmp_path / "o")]) == 130
    err = capsys.readouterr().err
    assert (f"note: the saved run used {torch.get_num_threads() + 7} CPU threads, here {torch.get_num_threads()}"
            in err and "bit-identical only at the same thread count (OMP_NUM_THREADS)" in err)
    run_json = _run_folder(tmp_path / "same", sketch)
    run = json.loads(run_json.read_text())
    from anyi2v_lab.outputs import versions
    run_json.write_text(json.dumps({**run, "versions": versions()}))
    assert main(["generate", "--from-run", str(run_json), "--out", str(tmp_path / "o")]) == 130
    assert "note" not in capsys.readouterr().err  # same threads, same versions: nothing to say
    assert list(tmp_path.glob("o*")) == [] and list(tmp_path.glob(".o*")) == []


# ---------------------------------------------------------------- --out: one process, what --overwrite replaces
@pytest.mark.slow  # real command-line processes: seconds each on 2 cores
def test_processes_started_on_one_out_give_one_result(sketch, tmp_path):
    out = tmp_path / "runs" / "a"
    argv = [sys.executable, "-m", "anyi2v_lab.cli", "generate", "--model", "tiny", "--condition", str(sketch),
            "--prompt", "a white square", "--out", str(out), *SET]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    done = [(p.wait(300), *p.communicate()) for p in procs]
    winners = [d for d in done if d[0] == 0]
    losers = [d for d in done if d[0] != 0]
    assert len(winners) == 1 and len(losers) == 1, done
    for rc, _, err in losers:  # refused while the winner works, or after it finished
        assert rc == 2 and ("is being written by another process" in err or "(an earlier run)" in err), err
    assert "wrote" in winners[0][1]
    run = json.loads((out / "run.json").read_text())
    assert run["threads"] == {"torch": 1, "OMP_NUM_THREADS": "1"}
    assert set(run["files"]) == {p.name for p in out.iterdir()} and (out / "frames" / "003.png").is_file()
    assert [p.name for p in out.parent.iterdir()] == ["a"]  # no lock file, no temporary folder


def test_a_busy_out_is_refused_at_once(sketch, tmp_path, capsys, no_model):
    from anyi2v_lab.io import exclusive_claim
    from anyi2v_lab.outputs import claim_output_folder
    out = tmp_path / "a"
    with claim_output_folder(out):
        for argv in (["generate", "--model", "tiny", "--condition", str(sketch), "--prompt", "x"],
                     ["demo", "--tiny", "--fast"]):
            err = _refused([*argv, "--out", str(out)], capsys)
            assert f"output folder '{out}' is being written by another process (pid {os.getpid()})" in err
    with exclusive_claim(tmp_path / "f.safetensors"):
        err = _refused(["invert", "--model", "tiny", "--condition", str(sketch), "--prompt", "x",
                        "--out", str(tmp_path / "f.safetensors")], capsys)
        assert f"--out '{tmp_path / 'f.safetensors'}' is being written by another process" in err
    assert list(tmp_path.iterdir()) == []


def test_overwrite_never_replaces_the_users_files(sketch, tmp_path, capsys, no_model, monkeypatch):
    thesis = tmp_path / "thesis"
    (thesis / "src").mkdir(parents=True)
    (thesis / "thesis.tex").write_text("three years")
    gen = ["generate", "--model", "tiny", "--condition", str(sketch), "--prompt", "x", "--overwrite"]
    for argv in (gen, ["demo", "--tiny", "--overwrite"]):
        err = _refused([*argv, "--out", str(thesis)], capsys)
        assert "it holds src, thesis.tex, which anyi2v-lab did not write and never replaces" in err
        assert "pass --overwrite" not in err
    assert (thesis / "thesis.tex").read_text() == "three years" and (thesis / "src").is_dir()
    monkeypatch.chdir(thesis / "src")
    for out, what in (("/", "the root folder"), (".", "the folder you are working in"),
                      ("..", "a folder holding the one you are working in")):
        err = _refused([*gen, "--out", out], capsys)
        assert f"output folder '{out}' is {what}" in err and "pass --overwrite" not in err
    (tmp_path / "mine.safetensors").write_bytes(b"mine")
    err = _refused(["invert", "--model", "tiny", "--condition", str(sketch), "--prompt", "x", "--overwrite",
                    "--out", str(tmp_path / "mine.safetensors")], capsys)
    assert "is not a features file written by anyi2v-lab, so it is never replaced" in err
    assert (tmp_path / "mine.safetensors").read_bytes() == b"mine"


def test_invert_replaces_its_own_features_only_with_overwrite_and_follows_a_link(sketch, tmp_path, capsys):
    real = tmp_path / "store" / "f.safetensors"
    link = tmp_path / "f.safetensors"
    argv = ["invert", "--model", "tiny", "--condition", str(sketch), "--prompt", "x", "--out", str(link),
            "--set", "inversion_timestep=11"]
    real.parent.mkdir()
    link.symlink_to(real)
    assert main(argv) == 0 and link.is_symlink() and real.is_file()
    assert "features written earlier); choose another --out or pass --overwrite" in _refused(argv, capsys)
    assert main([*argv, "--overwrite"]) == 0 and link.is_symlink()
    assert sorted(p.name for p in real.parent.iterdir()) == ["f.safetensors"]


# ---------------------------------------------------------------- SIGTERM is handled as Ctrl-C
def test_sigterm_while_writing_is_exit_143_and_leaves_nothing(sketch, tmp_path, capsys, monkeypatch):
    import anyi2v_lab.outputs

    def terminated_while_writing(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
    monkeypatch.setattr(anyi2v_lab.outputs, "write_gif", terminated_while_writing)
    (tmp_path / "runs").mkdir()
    rc = main(["generate", "--model", "tiny", "--condition", str(sketch), "--prompt", "x",
               "--out", str(tmp_path / "runs" / "a"), *SET])
    assert rc == 143 and capsys.readouterr().err.splitlines()[-1] == "terminated"
    assert list((tmp_path / "runs").iterdir()) == []  # no hidden temporary folder, no lock file
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
