"""Batch mode: job parsing, resumption, failure isolation, sharing among processes (gloo on CPU)."""
import hashlib
import json
import os
import socket
import time
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


def test_cli_batch_runs_the_tiny_model_and_reruns_a_job_whose_config_changed(tmp_path, capsys):
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
    lr = run["config"]["lr"]
    capsys.readouterr()
    assert main(["batch", str(path), "--out", str(tmp_path / "out"), "--model", "tiny", "--set", "lr=0.5"]) == 1
    printed = capsys.readouterr().out
    assert f"ok: changed since its result: config lr {lr!r} -> 0.5; running it again" in printed
    assert json.loads((tmp_path / "out" / "ok" / "run.json").read_text())["config"]["lr"] == 0.5
    assert json.loads((tmp_path / "out" / "ok" / "job.json").read_text())["settings"]["config"]["lr"] == 0.5
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert (summary["done"], summary["skipped"], summary["settings"]["config"]["lr"]) == (1, 0, 0.5)


# ---- resuming keyed on what a result depends on; processes sharing --out; where paths may point --------------

def _jobs_with_trajectory(tmp_path: Path) -> Path:
    (tmp_path / "t.json").write_text('{"path": 1}')
    return _write_jobs(tmp_path, [{"id": "moves", "condition": "c.png", "trajectory": "t.json", "prompt": "p"},
                                  {"id": "still", "condition": "c.png", "prompt": "p"}])


def test_a_changed_job_is_run_again_not_reported_finished(tmp_path):
    from anyi2v_lab.method import AnyI2VConfig
    from anyi2v_lab.resume import RunSettings

    path, out, quiet = _jobs_with_trajectory(tmp_path), tmp_path / "out", (lambda m: None)
    settings = RunSettings(config=AnyI2VConfig(lr=0.01).to_dict(), model={"model": "tiny", "device": "cpu"},
                           runtime="default")
    run_batch(path, out, fake_runner(), Ranks(), log=quiet, settings=settings)
    key = json.loads((out / "moves" / "job.json").read_text())
    assert key["inputs"]["trajectory"][0]["path"] == str(tmp_path / "t.json")
    assert key["settings"]["config"]["lr"] == 0.01 and "device" not in key["settings"]["model"]
    (tmp_path / "t.json").write_text('{"path": 2}')            # same name, other contents
    calls, log = [], []
    second = run_batch(path, out, fake_runner(calls), Ranks(), log=log.append, settings=settings)
    assert calls == ["moves"] and second.count("skipped") == 1
    [moved] = [o for o in second.outcomes if o.id == "moves"]
    assert moved.status == "done" and moved.note == "changed since its result: trajectory (contents)"
    assert any("moves: changed since its result: trajectory (contents); running it again" in m for m in log)
    other = RunSettings(config=AnyI2VConfig(lr=0.05).to_dict(), model={"model": "tiny", "device": "cuda:1"},
                        runtime="default")                    # another lr; the device is not part of the key
    calls.clear()
    third = run_batch(path, out, fake_runner(calls), Ranks(), log=quiet, settings=other)
    assert calls == ["moves", "still"] and third.count("skipped") == 0
    assert all(o.note == "changed since its result: config lr 0.01 -> 0.05" for o in third.outcomes)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["config"]["lr"] == 0.05
    assert [j["digest"] for j in summary["jobs"]] == [json.loads((out / i / "job.json").read_text())["digest"]
                                                      for i in ("moves", "still")]
    (out / "still" / "job.json").unlink()                     # a result without its key is not trusted
    calls.clear()
    run_batch(path, out, fake_runner(calls), Ranks(), log=quiet, settings=other)
    assert calls == ["still"]


def test_a_malformed_line_is_recorded_under_its_id_and_the_others_go_on(tmp_path):
    path = _write_jobs(tmp_path, [{"id": "ok", "condition": "c.png", "prompt": "p"},
                                  {"id": "typo", "condition": "c.png", "prompt": "p", "seed": "3"}, "{oops"])
    out = tmp_path / "out"
    summary = run_batch(path, out, fake_runner(), Ranks(), log=lambda m: None)
    assert sorted((o.id, o.status) for o in summary.outcomes) == [("line-0003", "failed"), ("ok", "done"),
                                                                  ("typo", "failed")]
    error = json.loads((out / "failed" / "typo.json").read_text())["error"]
    assert "line 2: seed='3' must be a non-negative integer" in error
    assert (out / "ok" / "run.json").exists() and not (out / "typo").exists()
    _write_jobs(tmp_path, [{"id": "ok", "condition": "c.png", "prompt": "p"},
                           {"id": "typo", "condition": "c.png", "prompt": "p", "seed": 3}])
    summary = run_batch(path, out, fake_runner(), Ranks(), log=lambda m: None)
    assert not summary.failed and not (out / "failed" / "typo.json").exists()  # the fixed line's record is gone
    for text, match in [("# only a comment\n", "holds no job \\(only blank lines"),
                        ('{"prompt": "p"}\n', "every line is invalid, the first: line 1: 'condition' is required")]:
        path.write_text(text)
        with pytest.raises(JobError, match=match):
            read_jobs(path)


def test_cli_batch_without_any_valid_job_exits_2_before_the_model_loads(tmp_path, monkeypatch, capsys):
    from anyi2v_lab import cli

    monkeypatch.setattr("anyi2v_lab.cli.model.load_model", lambda spec: pytest.fail("the model must not load"))
    path = _write_jobs(tmp_path, ['{"condition": "c.png"}'])
    assert cli.main(["batch", str(path), "--out", str(tmp_path / "out"), "--model", "tiny"]) == 2
    assert "line 1: 'prompt' is required" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_paths_may_leave_the_jobs_folder_and_are_recorded_resolved(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "far.png").write_bytes(b"far")
    jobs_dir = tmp_path / "jobs"
    jobs_dir.mkdir()
    path = _write_jobs(jobs_dir, [{"id": "up", "condition": "../data/far.png", "prompt": "p"},
                                  {"id": "abs", "condition": str(tmp_path / "data" / "far.png"), "prompt": "p"}])
    jobs, _ = read_jobs(path)
    assert [j.condition for j in jobs] == [(str(tmp_path / "data" / "far.png"),)] * 2
    run_batch(path, tmp_path / "out", fake_runner(), Ranks(), log=lambda m: None)
    key = json.loads((tmp_path / "out" / "up" / "job.json").read_text())
    assert key["inputs"]["condition"] == [{"path": str(tmp_path / "data" / "far.png"),
                                           "sha256": hashlib.sha256(b"far").hexdigest()}]


def _slow_runner(log_path: str):
    """Appends the id to a shared log (O_APPEND: one line a write) and takes a moment, as a real job would."""
    def run(job, target: Path):
        with open(log_path, "a") as f:
            f.write(job.id + "\n")
        time.sleep(0.2)
        target.mkdir(parents=True, exist_ok=True)
        (target / "run.json").write_text("{}")
    return run


def _batch_process(path: str, out: str, log_path: str, start, result: str):
    start.wait()
    summary = run_batch(path, out, _slow_runner(log_path), Ranks(), log=lambda m: None)
    Path(result).write_text(json.dumps(summary.to_dict()))


def test_processes_sharing_an_out_folder_run_each_job_once(tmp_path):
    ids = [f"j{i}" for i in range(6)]
    path = _write_jobs(tmp_path, [{"id": i, "condition": "c.png", "prompt": "p"} for i in ids])
    ctx = mp.get_context("fork")
    start = ctx.Event()
    procs = [ctx.Process(target=_batch_process, args=(str(path), str(tmp_path / "out"), str(tmp_path / "ran.log"),
                                                      start, str(tmp_path / f"summary{n}.json"))) for n in range(3)]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    ran = (tmp_path / "ran.log").read_text().split()
    assert sorted(ran) == ids                                  # every job exactly once
    summaries = [json.loads((tmp_path / f"summary{n}.json").read_text()) for n in range(3)]
    assert sum(s["done"] for s in summaries) == 6 and not any(s["failed"] for s in summaries)
    assert all((tmp_path / "out" / i / "job.json").exists() for i in ids)


def _hold_lock(folder: str, held, release):
    from anyi2v_lab.resume import JobLock
    lock = JobLock(folder, "j0")
    assert lock.acquire()
    held.set()
    release.wait(60)


def test_a_job_lock_is_refused_while_its_process_lives_and_taken_over_when_it_dies(tmp_path):
    from anyi2v_lab.resume import LOCKS, JobLock

    path = _write_jobs(tmp_path, [{"id": "j0", "condition": "c.png", "prompt": "p"}])
    out = tmp_path / "out"
    ctx = mp.get_context("fork")
    held, release = ctx.Event(), ctx.Event()
    child = ctx.Process(target=_hold_lock, args=(str(out / LOCKS), held, release))
    child.start()
    assert held.wait(60)
    lock = JobLock(out / LOCKS, "j0")
    assert not lock.acquire() and lock.holder().startswith(f"pid {child.pid} on ")
    calls = []
    summary = run_batch(path, out, fake_runner(calls), Ranks(), log=lambda m: None)
    assert calls == [] and summary.outcomes[0].status == "elsewhere"
    assert summary.outcomes[0].note.startswith(f"running in pid {child.pid}")
    child.kill()                                              # dies holding the lock: the kernel releases it
    child.join(60)
    summary = run_batch(path, out, fake_runner(calls), Ranks(), log=lambda m: None)
    assert calls == ["j0"] and summary.outcomes[0].status == "done"
