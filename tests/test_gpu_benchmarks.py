"""The GPU benchmark scripts' CPU checks (``--tiny``): they run end to end and report what they claim."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}


def _run(args, tmp_path):
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=600, env=ENV, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_pipeline_benchmark_stages_and_equivalence(tmp_path):
    out = tmp_path / "pipe.json"
    _run([str(ROOT / "benchmarks" / "gpu_pipeline.py"), "--tiny", "--quick", "--device", "cpu",
          "--stages", "baseline,fast,nograph,lowmem", "--out", str(out)], tmp_path)
    report = json.loads(out.read_text())
    stages = report["stages"]
    for name in ("baseline", "fast_eager", "fast_nograph", "low_memory"):
        assert stages[name]["finite"] and stages[name]["phases_s"]["optimisation"] > 0
    assert stages["fast_nograph"]["runtime"]["graph_optimisation"] is False
    # on a CPU nothing is graphed or compiled: truncation alone must reproduce the baseline exactly
    for name in ("fast_eager", "fast_nograph"):
        assert report["comparison"][f"{name}_vs_baseline"]["max_abs"] == 0.0


def test_opt_pass_benchmark_reports_wall_and_kernel_split(tmp_path):
    out = tmp_path / "opt.json"
    _run([str(ROOT / "benchmarks" / "opt_pass.py"), "--tiny", "--variants", "eager", "--reps", "1", "--out", str(out)],
         tmp_path)
    row = json.loads(out.read_text())["variants"]["eager"]
    assert row["compiled_blocks"] == 0
    assert row["forward_ms"] > 0 and row["forward_backward_ms"] > 0
    assert set(row["forward_backward_profile"]) == {"kernel_ms", "kernels", "ms_by_category"}
