"""The toy model's training script end to end on the CPU: tiny phases, a deadline exit, a resume."""
import json

import pytest

from anyi2v_lab.toy import model as tm
from anyi2v_lab.toy.train import main


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


def test_warm_start_grows_motion_modules_and_resumes_at_depth(tmp_path):
    """--init-from with --motion-depth 2: a deeper adapter is trained, checkpointed, resumed and exported."""
    from anyi2v_lab.toy.trainer import Log, Trainer
    from anyi2v_lab.toy.train import TrainConfig
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
