"""The toy model's training script end to end on the CPU: tiny phases, a deadline exit, a resume."""
import json

import pytest

from anyi2v_lab.toy import model as tm
from training.train import main


@pytest.mark.slow
def test_deadline_checkpoint_then_resume_finishes_every_phase(tmp_path):
    out = tmp_path / "run"
    args = ["--tiny", "--out", str(out), "--no-eval", "--phases", "vae,image,motion,joint"]
    with pytest.raises(SystemExit) as stop:
        main(args + ["--deadline", "0"])  # stops at its first step, leaving a checkpoint
    assert stop.value.code == 0 and (out / "ckpt.pt").exists() and not (out / "summary.json").exists()
    main(args + ["--resume"])
    summary = json.loads((out / "summary.json").read_text())
    assert {p: summary["phases"][p]["steps"] for p in ("vae", "image", "motion", "joint")} == \
        {"vae": 2, "image": 2, "motion": 2, "joint": 2}
    log = (out / "train.log").read_text()
    assert "deadline of 0 s reached" in log and "resumed from" in log
    parts = tm.load_components(out / "weights")
    assert set(parts) >= set(tm.COMPONENTS)


@pytest.mark.slow
def test_warm_start_grows_motion_modules_and_resumes_at_depth(tmp_path):
    """--init-from with --motion-depth 2: a deeper adapter is trained, checkpointed, resumed and exported."""
    from training.config import TrainConfig
    from training.trainer import Log, Trainer
    src = tmp_path / "src"
    Trainer(TrainConfig(out=str(src), device="cpu"), Log(tmp_path / "log.txt")).export(src)
    out = tmp_path / "grown"
    args = ["--tiny", "--out", str(out), "--no-eval", "--phases", "joint", "--init-from", str(src),
            "--motion-depth", "2"]
    with pytest.raises(SystemExit):
        main(args + ["--deadline", "0"])
    main(args + ["--resume"])
    adapter = tm.load_components(out / "weights")["motion_adapter"]
    assert tm.motion_depth(adapter.config) == 2
    assert "grown from 1 to 2" in (out / "train.log").read_text()


def test_every_option_comes_from_the_config_and_parses_back():
    """The parser is built from TrainConfig's fields: each field is an option, per-phase options update
    the phases they name, and bad values are refused naming the field (exit code 2)."""
    from dataclasses import fields

    from training.config import TINY, TrainConfig, build_parser, parse_config

    help_text = build_parser().format_help()
    for f in fields(TrainConfig):
        assert "--" + f.name.replace("_", "-") in help_text, f.name
    assert parse_config([]) == TrainConfig()
    cfg = parse_config(["--lr", "joint=4e-4", "--object-probs", "0.1,0.3,0.6", "--joint-text",
                        "--eval-cfg", "7.5", "--phases", "joint", "--deadline", "330"])
    assert cfg.lr == {**TrainConfig().lr, "joint": 4e-4} and cfg.object_probs == (0.1, 0.3, 0.6)
    assert cfg.joint_text and cfg.eval_cfg == (7.5,) and cfg.phases == ("joint",) and cfg.deadline == 330.0
    tiny = parse_config(["--tiny", "--batch", "image=4"])
    assert tiny.max_steps == TINY["max_steps"] and tiny.batch == {**TINY["batch"], "image": 4}
    for bad in (["--lr", "jointt=1e-4"], ["--feature-consistency", "-1"], ["--phases", "vae,video"]):
        with pytest.raises(SystemExit) as stop:
            parse_config(bad)
        assert stop.value.code == 2
