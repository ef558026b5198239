"""Batch mode: job parsing, resumption, failure isolation, sharing among processes (gloo on CPU)."""
import json
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch.multiprocessing as mp

from anyi2v_lab.batch import JobError, Ranks, parse_job, read_jobs, run_batch, run_jobs


def _write_jobs(folder: Path, lines: list) -> Path:
    """The jobs file, beside a condition file ``c.png`` (its bytes are part of each job's key)."""
    if not (folder / "c.png").exists():
        (folder / "c.png").write_bytes(b"condition")
    path = folder / "jobs.jsonl"
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    return path


def fake_runner(calls: list | None = None, fail: str = "bad"):
    """Writes run.json like write_run does (atomically enough for a test); fails on one id."""
    def run(job, target: Path):
        if calls is not None:
            calls.append(job.id)
        if job.id == fail:
            raise RuntimeError("CUDA out of memory (simulated)")
        target.mkdir(parents=True, exist_ok=True)
        (target / "run.json").write_text(json.dumps({"prompt": job.prompt, "seed": job.seed}))
    return run


def test_parse_job_fields_paths_and_errors(tmp_path):
    job = parse_job('{"condition": ["a.png", "b.png"], "mask": ["m.png"], "prompt": "p", "seed": 4, '
                    '"set": {"lr": 0.02, "pca_dim": null}, "trajectory": "t.json"}', 7, tmp_path)
    assert job.id == "job-0007" and job.seed == 4
    assert job.condition == (str(tmp_path / "a.png"), str(tmp_path / "b.png"))
    assert job.trajectory == str(tmp_path / "t.json") and job.overrides == ("lr=0.02", "pca_dim=null")
    for text, match in [('{"prompt": "p"}', "'condition' is required"),
                        ('{"condition": "a.png", "prompt": "p", "seed": -1}', "seed=-1"),
                        ('{"condition": "a.png", "prompt": "p", "colour": 1}', "unknown keys"),
                        ('{"condition": "a.png", "prompt": "p", "id": "../x"}', "plain folder name"),
                        ('{"condition": 3, "prompt": "p"}', "condition must be a path"),
                        ("[1, 2]", "JSON object"), ("{oops", "not valid JSON")]:
        with pytest.raises(JobError, match=match):
            parse_job(text, 1, tmp_path)


def test_bad_lines_and_duplicates_become_failures(tmp_path):
    path = _write_jobs(tmp_path, [{"id": "a", "condition": "c.png", "prompt": "p"}, "# a comment", "",
                                  "{oops", {"id": "a", "condition": "c.png", "prompt": "q"}])
    jobs, bad = read_jobs(path)
    assert [j.id for j in jobs] == ["a"]
    assert [o.id for o in bad] == ["line-0004", "line-0005"] and "earlier line" in bad[1].error


def test_resume_skips_finished_and_isolates_failures(tmp_path):
    path = _write_jobs(tmp_path, [{"id": i, "condition": "c.png", "prompt": "p", "seed": n}
                                  for n, i in enumerate(["j0", "bad", "j2", "j3"])])
    out = tmp_path / "out"
    (out / ".j3.abcd1234").mkdir(parents=True)  # left by an interrupted run (mkdtemp's name)
    (out / ".j3.b.abcd1234").mkdir()  # job "j3.b"'s, which may be running in another process
    first = run_batch(path, out, fake_runner(), Ranks(), log=lambda m: None)
    assert (first.count("done"), first.count("failed")) == (3, 1)
    assert json.loads((out / "failed" / "bad.json").read_text())["error"].startswith("RuntimeError")
    assert not (out / ".j3.abcd1234").exists() and (out / ".j3.b.abcd1234").exists()
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("*/run.json")}
    calls = []
    second = run_batch(path, out, fake_runner(calls, fail="none"), Ranks(), log=lambda m: None)
    assert calls == ["bad"]  # only the unfinished job runs again
    assert second.count("skipped") == 3 and second.count("done") == 1 and not second.failed
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())
    assert not (out / "failed" / "bad.json").exists()  # a success clears the old failure record
    summary = json.loads((out / "summary.json").read_text())
    assert summary["skipped"] == 3 and [j["id"] for j in summary["jobs"]][-1] == "bad"


def test_ranks_take_every_world_th_job(tmp_path):
    jobs, _ = read_jobs(_write_jobs(tmp_path, [{"id": f"j{i}", "condition": "c.png", "prompt": "p"} for i in range(5)]))
    calls = []
    run_jobs(jobs, tmp_path / "out", fake_runner(calls), Ranks(rank=1, world=2), log=lambda m: None)
    assert calls == ["j1", "j3"]


def _worker(rank: int, world: int, port: int, path: str, out: str, result: str):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    summary = run_batch(path, out, fake_runner(), Ranks.from_env(), log=lambda m: None)
    if rank == 0:
        Path(result).write_text(json.dumps(summary.to_dict()))


@pytest.mark.slow
def test_two_processes_share_the_jobs_over_gloo(tmp_path):
    path = _write_jobs(tmp_path, [{"id": f"j{i}", "condition": "c.png", "prompt": "p"} for i in range(6)]
                       + [{"id": "bad", "condition": "c.png", "prompt": "p"}])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = tmp_path / "summary.json"
    mp.spawn(_worker, args=(2, port, str(path), str(tmp_path / "out"), str(result)), nprocs=2, join=True)
    summary = json.loads(result.read_text())
    assert summary["done"] == 6 and summary["failed"] == 1
    assert {j["rank"] for j in summary["jobs"] if j["status"] == "done"} == {0, 1}


def test_cli_batch_runs_the_tiny_model(tmp_path):
    from PIL import Image

    from anyi2v_lab.cli import main
    from anyi2v_lab.trajectory import Trajectory

    img = np.zeros((128, 128, 3), np.uint8)
    img[40:90, 30:80] = (250, 40, 40)
    Image.fromarray(img).save(tmp_path / "c.png")
    Trajectory.single((20, 20, 60, 60), [(40, 40), (80, 40)], image_size=(128, 128),
                      query_points=[(40, 40)]).save(tmp_path / "t.json")
    small = {"num_frames": 2, "num_inference_steps": 1, "inversion_timestep": 3, "load_feature_step": 0, "opt_step": 0,
             "opt_iters": 1}
    path = _write_jobs(tmp_path, [{"id": "ok", "condition": "c.png", "trajectory": "t.json", "prompt": "a square",
                                   "set": small},
                                  {"id": "missing", "condition": "nope.png", "prompt": "x", "set": small}])
    code = main(["batch", str(path), "--out", str(tmp_path / "out"), "--model", "tiny"])
    assert code == 1  # one job failed, and the batch says so
    run = json.loads((tmp_path / "out" / "ok" / "run.json").read_text())
    assert run["config"]["num_frames"] == 2 and (tmp_path / "out" / "ok" / "video.mp4").exists()
    assert "not found" in json.loads((tmp_path / "out" / "failed" / "missing.json").read_text())["error"]
