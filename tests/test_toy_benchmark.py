"""The 5-case version of the toy trajectory benchmark, on the CPU (the full run is on a GPU)."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_ci_benchmark_runs_and_reports(tmp_path):
    out = tmp_path / "toy.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "toy_trajectory.py"), "--ci", "--out", str(out)],
                          capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["cases_evaluated"] == 5 and report["size"] == 64
    for variant in ("full", "no_control"):
        r = report["results"][variant]
        assert np.isfinite(r["objmc_px"]) and 0 <= r["frame0_iou"] <= 1 and np.isfinite(r["fd_vae"])
        assert len(r["objmc_per_case"]) == 5
    assert "| full |" in proc.stdout and "Floors" in proc.stdout
