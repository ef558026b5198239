"""The GPU benchmark scripts' CPU checks (``--tiny``): they run end to end and report what they claim."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}


def _run(args, tmp_path):
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=600, env=ENV, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.mark.slow
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


@pytest.mark.slow
def test_fresh_process_variants_run_each_in_its_own_process(tmp_path):
    # one fresh process per variant (default, an environment variant, a Runtime variant), each video
    # compared with the default one: on a CPU all are the same computation
    out = tmp_path / "fresh.json"
    _run([str(ROOT / "benchmarks" / "gpu_pipeline.py"), "--tiny", "--quick", "--device", "cpu", "--stages", "fresh",
          "--fresh-env", "v7=TORCH_CUDNN_V8_API_DISABLED=1", "--fresh-variant", 'nograph={"graph_optimisation": false}',
          "--out", str(out)], tmp_path)
    report = json.loads(out.read_text())
    stages, comparison = report["stages"], report["comparison"]
    labels = ["fresh", "fresh_v7", "fresh_nograph"]
    assert list(stages) == labels and all(stages[k]["wall_s"] > 0 for k in labels)
    assert stages["fresh_v7"]["env"] == {"TORCH_CUDNN_V8_API_DISABLED": "1"}
    assert stages["fresh_nograph"]["runtime"]["graph_optimisation"] is False
    assert stages["fresh"]["runtime"]["graph_optimisation"] is True
    assert {k: v["max_abs"] for k, v in comparison.items()} == {f"{k}_vs_fresh": 0.0 for k in labels[1:]}


def test_fresh_rounds_interleave_the_variants():
    from argparse import Namespace

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from gpu_pipeline import fresh_plan

    args = Namespace(fresh_env=["v7=A=1,B=2"], fresh_variant=['nograph={"graph_optimisation": false}'],
                     fresh_attention="flash", fresh_repeats=2)
    plan = fresh_plan(args)
    assert [label for label, _, _ in plan] == [f"fresh{v}_r{r}" for r in range(2)
                                               for v in ("", "_v7", "_nograph", "_flash")]
    changes = {label: (c, env) for label, c, env in plan}
    assert changes["fresh_v7_r1"] == ({}, {"A": "1", "B": "2"})
    assert changes["fresh_nograph_r0"] == ({"graph_optimisation": False}, None)
    assert changes["fresh_flash_r1"] == ({"attention": "flash"}, None) and changes["fresh_r0"] == ({}, None)
    one = fresh_plan(Namespace(fresh_env=[], fresh_variant=[], fresh_attention="", fresh_repeats=1))
    assert one == [("fresh", {}, None)]


@pytest.mark.slow
def test_opt_pass_benchmark_reports_wall_and_kernel_split(tmp_path):
    out = tmp_path / "opt.json"
    _run([str(ROOT / "benchmarks" / "opt_pass.py"), "--tiny", "--variants", "eager", "--reps", "1", "--out", str(out)],
         tmp_path)
    row = json.loads(out.read_text())["variants"]["eager"]
    assert row["compiled_blocks"] == 0
    assert row["forward_ms"] > 0 and row["forward_backward_ms"] > 0
    assert set(row["forward_backward_profile"]) == {"kernel_ms", "kernels", "ms_by_category"}


@pytest.mark.slow
def test_step_probe_and_opt_trace_run_and_report(tmp_path):
    out = tmp_path / "probe.json"
    _run([str(ROOT / "benchmarks" / "step_probe.py"), "--tiny", "--variants", "eager", "--reps", "1",
          "--out", str(out)], tmp_path)
    probe = json.loads(out.read_text())
    assert probe["sampling"]["eager"]["step_ms"] > 0 and probe["loss"]["pass_ms"] > 0
    assert probe["eigh"]["default_32_ms"] >= 0
    out = tmp_path / "trace.json"
    _run([str(ROOT / "benchmarks" / "opt_trace.py"), "--tiny", "--iters", "2", "--out", str(out)], tmp_path)
    rows = json.loads(out.read_text())["iterations"]
    assert len(rows) >= 2 and all(r["wall_us"] > 0 and r["gpu_busy_us"] == 0 for r in rows)  # no kernels on a CPU


def test_trace_summary_splits_busy_and_idle_time():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from opt_trace import summarise

    ev = lambda name, cat, ts, dur: {"ph": "X", "name": name, "cat": cat, "ts": ts, "dur": dur}  # noqa: E731
    trace = {"traceEvents": [
        ev("anyi2v.optimisation.forward", "user_annotation", 0, 10),
        ev("anyi2v.optimisation.forward", "user_annotation", 1000, 10),
        # kernels busy 0-400 and 900-1000
        ev("k1", "kernel", 0, 300), ev("k2", "kernel", 250, 150), ev("k3", "kernel", 900, 100),
        ev("aten::fill_", "cpu_op", 350, 600), ev("outer", "cpu_op", 0, 1000)]}
    s = summarise(trace, min_gap_us=300)
    assert s["iterations"] == [{"wall_us": 1000, "gpu_busy_us": 500, "idle_us": 500, "gaps_over_min": 1, "gap_us": 500}]
    assert s["idle_by_host_op_us"] == {"aten::fill_": 500}  # the innermost op covering the gap's start


def test_first_use_excess_is_first_call_minus_median_of_later_calls_per_shape():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from types import SimpleNamespace

    from fresh_profile import first_use_excess

    ev = lambda name, shapes, us: SimpleNamespace(name=name, input_shapes=shapes, self_cpu_time_total=us)  # noqa: E731
    events = [ev("conv", [[1, 4]], 10_000), ev("conv", [[1, 4]], 1_000), ev("conv", [[1, 4]], 3_000),
              ev("conv", [[2, 4]], 5_000),  # one call of a shape: all of it counts as first use
              ev("mm", [[8]], 500), ev("mm", [[8]], 900),  # a first call faster than the later ones: no excess
              ev("anyi2v.optimisation.forward", [], -7_000)]
    rows = first_use_excess(events)
    assert rows["conv"] == {"excess_ms": 8.0 + 5.0, "shapes": 2, "self_ms": 19.0, "calls": 4}
    assert rows["mm"]["excess_ms"] == 0.0 and "anyi2v.optimisation.forward" not in rows
