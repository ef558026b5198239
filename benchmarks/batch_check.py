"""Batch mode end to end under torchrun: an interrupted run, its resumption, and a failing job.

    python benchmarks/batch_check.py --work /tmp/batch --nproc 2 --out result.json        # 2 GPUs
    python benchmarks/batch_check.py --work /tmp/batch --nproc 2 --small                  # CPU (gloo)

Makes ``--jobs`` jobs for the tiny model (one with a missing condition image), starts
``torchrun --nproc_per_node N -m anyi2v_lab.cli batch``, stops it with SIGTERM once
``--interrupt-after`` jobs have finished, starts it again, and checks that the second run skipped
the finished jobs (their ``run.json`` untouched), finished the rest, and reported the failing job.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SMALL = {"num_frames": 4, "num_inference_steps": 3, "inversion_timestep": 11, "opt_step": 1, "opt_iters": 2,
         "load_feature_step": 2}


def make_jobs(work: Path, n: int, small: bool) -> Path:
    import numpy as np
    from PIL import Image

    from anyi2v_lab.trajectory import Trajectory

    work.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(n):
        img = np.zeros((128, 128, 3), np.uint8)
        img[20 + 4 * i: 70 + 4 * i, 30:80] = (250, 40 + 20 * i, 40)
        Image.fromarray(img).save(work / f"cond{i}.png")
        Trajectory.single((30, 20 + 4 * i, 80, 70 + 4 * i), [(55, 45 + 4 * i), (95, 45)], image_size=(128, 128),
                          query_points=[(55, 45 + 4 * i)]).save(work / f"traj{i}.json", overwrite=True)
        job = {"id": f"job{i:02d}", "condition": f"cond{i}.png", "trajectory": f"traj{i}.json",
               "prompt": f"a red square number {i}", "seed": i}
        if i == n // 2:
            job["condition"] = "missing.png"  # fails; the others must go on
        if small:
            job["set"] = SMALL
        lines.append(json.dumps(job))
    (work / "jobs.jsonl").write_text("\n".join(lines) + "\n")
    return work / "jobs.jsonl"


def finished(out: Path) -> dict[str, float]:
    return {p.parent.name: p.stat().st_mtime for p in out.glob("*/run.json")}


def launch(jobs: Path, out: Path, nproc: int, log: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "-m", "anyi2v_lab.cli",
           "batch", str(jobs), "--out", str(out), "--model", "tiny"]
    return subprocess.Popen(cmd, stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", default="/tmp/anyi2v_batch_check")
    p.add_argument("--nproc", type=int, default=2)
    p.add_argument("--jobs", type=int, default=9)
    p.add_argument("--interrupt-after", type=int, default=3)
    p.add_argument("--small", action="store_true", help="a small config per job (CPU check)")
    p.add_argument("--out", help="JSON report")
    p.add_argument("--timeout", type=float, default=180)
    args = p.parse_args()
    work = Path(args.work)
    jobs, out = make_jobs(work, args.jobs, args.small), work / "out"
    report: dict = {"nproc": args.nproc, "jobs": args.jobs}

    tic = time.time()
    proc = launch(jobs, out, args.nproc, work / "run1.log")
    while time.time() - tic < args.timeout and proc.poll() is None and len(finished(out)) < args.interrupt_after:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)  # torchrun stops its workers
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    before = finished(out)
    report["run1"] = {"seconds": time.time() - tic, "returncode": proc.returncode, "finished": sorted(before),
                      "log_tail": (work / "run1.log").read_text()[-2000:]}
    print(f"run 1 interrupted after {report['run1']['seconds']:.1f} s with {len(before)} finished", flush=True)

    tic = time.time()
    proc = launch(jobs, out, args.nproc, work / "run2.log")
    proc.wait(args.timeout)
    after = finished(out)
    summary = json.loads((out / "summary.json").read_text())
    report["run2"] = {"seconds": time.time() - tic, "returncode": proc.returncode, "summary": summary,
                      "log_tail": (work / "run2.log").read_text()[-3000:]}
    ranks = {j["rank"] for j in summary["jobs"] if j["status"] == "done"}
    failed = [j["id"] for j in summary["jobs"] if j["status"] == "failed"]
    checks = {
        "finished_jobs_not_redone": all(after.get(k) == v for k, v in before.items()),
        "skipped_equals_finished_before": summary["skipped"] == len(before),
        "all_valid_jobs_finished": len(after) == args.jobs - 1,
        "failing_job_reported": failed == [f"job{args.jobs // 2:02d}"] and (out / "failed" / failed[0]).with_suffix(
            ".json").exists() if failed else False,
        "both_ranks_worked": ranks == set(range(args.nproc)) if args.nproc > 1 else True,
        "exit_code_signals_the_failure": proc.returncode != 0,
    }
    report["checks"] = checks
    print(json.dumps(checks, indent=2), flush=True)
    print((work / "run2.log").read_text()[-1500:], flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2))
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
