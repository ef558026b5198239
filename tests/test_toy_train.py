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
