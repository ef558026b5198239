"""Running a batch: this process's share of the jobs, failures recorded, the launcher's ranks."""
from __future__ import annotations

import os
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from ..io import write_json
from ..resume import LOCKS, JobLock, RunSettings
from .jobs import JOB_FILE, RUN_FILE, Job, Outcome, clean_partial, is_finished, job_key, read_jobs, stored_key


@dataclass(frozen=True)
class Ranks:
    """This process's place among the launcher's processes (1 of 1 without a launcher)."""

    rank: int = 0
    world: int = 1
    local: int = 0

    @classmethod
    def from_env(cls) -> "Ranks":
        env = os.environ
        return cls(int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_RANK", 0)))

    def device(self) -> str:
        import torch
        return f"cuda:{self.local}" if torch.cuda.is_available() else "cpu"


class _Group:
    """The launcher's process group for coordination only (gloo: no tensors travel, any device)."""

    def __init__(self, ranks: Ranks):
        self.ranks = ranks
        self.dist = None
        if ranks.world > 1:
            import torch.distributed as dist
            if not dist.is_initialized():
                dist.init_process_group("gloo")
            self.dist = dist

    def broadcast(self, obj):
        if self.dist is None:
            return obj
        box = [obj]
        self.dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, obj) -> list:
        if self.dist is None:
            return [obj]
        out = [None] * self.ranks.world if self.ranks.rank == 0 else None
        self.dist.gather_object(obj, out, dst=0)
        return out or []

    def close(self) -> None:
        if self.dist is not None and self.dist.is_initialized():
            self.dist.destroy_process_group()


RunJob = Callable[[Job, Path], None]


def _record_failure(out: Path, job_id: str, error: str, detail: str = "") -> None:
    (out / "failed").mkdir(parents=True, exist_ok=True)
    write_json(out / "failed" / f"{job_id}.json", {"id": job_id, "error": error, "traceback": detail}, indent=2)


def _run_locked(job: Job, out: Path, run_job: RunJob, ranks: Ranks, log, settings: RunSettings | None) -> Outcome:
    """Run one job this process holds the lock of, unless a result with its key exists by now."""
    tic, note = time.perf_counter(), None
    try:
        key = job_key(job, settings)
        stored = stored_key(out, job)
        if key.matches(stored):  # finished by another process since the plan was made
            return Outcome(id=job.id, status="skipped", rank=ranks.rank, digest=key.digest)
        if (out / job.id / RUN_FILE).exists():
            note = "changed since its result: " + "; ".join(key.changes(stored))
            log(f"[rank {ranks.rank}] {job.id}: {note}; running it again (the new result replaces the old)")
        clean_partial(out, job)
        # the old key goes first: the folder then holds only the earlier run, which --overwrite's rule lets
        # write_run replace, and a failed rerun leaves a result without a key, which is run again
        (out / job.id / JOB_FILE).unlink(missing_ok=True)
        run_job(job, out / job.id)
        write_json(out / job.id / JOB_FILE, key.to_dict(), indent=2)
    except Exception as e:  # noqa: BLE001 - one job's failure must not stop the others
        error = f"{type(e).__name__}: {e}"
        _record_failure(out, job.id, error, traceback.format_exc())
        log(f"[rank {ranks.rank}] {job.id}: FAILED ({error})")
        _free_cuda()
        return Outcome(id=job.id, status="failed", seconds=time.perf_counter() - tic, rank=ranks.rank, error=error,
                       note=note)
    (out / "failed" / f"{job.id}.json").unlink(missing_ok=True)
    seconds = time.perf_counter() - tic
    log(f"[rank {ranks.rank}] {job.id}: done in {seconds:.1f} s")
    return Outcome(id=job.id, status="done", seconds=seconds, rank=ranks.rank, note=note, digest=key.digest)


def run_jobs(jobs: list[Job], out: Path, run_job: RunJob, ranks: Ranks, log=print,
             settings: RunSettings | None = None) -> list[Outcome]:
    """This rank's share of ``jobs`` (the unfinished ones when the plan was made): claim each, run it,
    record failures, go on. A job another process holds is left to it (status ``elsewhere``)."""
    outcomes = []
    for job in jobs[ranks.rank::ranks.world]:
        lock = JobLock(out / LOCKS, job.id)
        if not lock.acquire():
            outcomes.append(Outcome(id=job.id, status="elsewhere", rank=ranks.rank, note=f"running in {lock.holder()}"))
            log(f"[rank {ranks.rank}] {job.id}: running in {lock.holder()}; left to it")
            continue
        try:
            outcomes.append(_run_locked(job, out, run_job, ranks, log, settings))
        finally:
            lock.release()
    return outcomes


def _free_cuda() -> None:
    import torch
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


@dataclass
class Summary:
    outcomes: list[Outcome] = field(default_factory=list)
    settings: dict = field(default_factory=dict)

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    def to_dict(self) -> dict:
        return {"done": self.count("done"), "skipped": self.count("skipped"), "failed": self.count("failed"),
                "elsewhere": self.count("elsewhere"), "settings": self.settings,
                "jobs": [asdict(o) for o in self.outcomes]}

    def table(self) -> str:
        rows = [f"{o.id:<24} {o.status:<9} {o.seconds:7.1f} s  rank {o.rank}" + (f"  {o.error}" if o.error else "")
                + (f"  ({o.note})" if o.note else "") for o in self.outcomes]
        head = (f"{self.count('done')} done, {self.count('skipped')} skipped (finished before, same inputs and "
                f"settings), {self.count('elsewhere')} running in another process, {self.count('failed')} failed")
        return "\n".join([*rows, head])


def _plan(jobs_path, out: Path, settings: RunSettings | None, log, world: int) -> tuple[list[Job], list[Outcome]]:
    """Rank 0: the jobs to run (no result with their current key) and the outcomes known already."""
    jobs, bad = read_jobs(jobs_path)
    out.mkdir(parents=True, exist_ok=True)
    todo, skipped = [], []
    for job in jobs:
        try:
            key = job_key(job, settings)
        except (OSError, ValueError):  # a missing file or a bad override: the job's run records why
            key = None
        if key is not None and is_finished(out, job, key):
            skipped.append(Outcome(id=job.id, status="skipped", digest=key.digest))
        else:
            todo.append(job)
    for o in bad:
        _record_failure(out, o.id, o.error)
    log(f"[batch] {len(jobs) + len(bad)} jobs: {len(skipped)} finished before, {len(todo)} to run, "
        f"{len(bad)} invalid; {world} process(es)")
    return todo, skipped + bad


def _settle_elsewhere(outcomes: list[Outcome], todo: list[Job], out: Path, settings: RunSettings | None) -> None:
    """A job left to another process that has finished it by now counts as finished."""
    by_id = {job.id: job for job in todo}
    for o in outcomes:
        if o.status != "elsewhere":
            continue
        try:
            key = job_key(by_id[o.id], settings)
        except (OSError, ValueError):
            continue
        if is_finished(out, by_id[o.id], key):
            o.status, o.note, o.digest = "skipped", "finished by another process", key.digest


def run_batch(jobs_path, out, run_job: RunJob, ranks: Ranks | None = None, log=print,
              settings: RunSettings | None = None) -> Summary:
    """Read the jobs, skip those with a result made from the same inputs and ``settings``, share the rest
    among the launcher's processes, and (on rank 0) write ``<out>/summary.json``. Every rank returns the
    full summary on rank 0 and its own outcomes elsewhere."""
    ranks = ranks or Ranks.from_env()
    out = Path(out)
    group = _Group(ranks)
    try:
        plan = _plan(jobs_path, out, settings, log, ranks.world) if ranks.rank == 0 else None
        todo, early = group.broadcast(plan)
        mine = run_jobs(todo, out, run_job, ranks, log, settings)
        gathered = group.gather(mine)
        if ranks.rank != 0:
            return Summary(outcomes=mine)
        order = {job.id: i for i, job in enumerate(todo)}
        ran = sorted((o for part in gathered for o in part), key=lambda o: order.get(o.id, 0))
        _settle_elsewhere(ran, todo, out, settings)
        summary = Summary(outcomes=early + ran, settings=settings.to_dict() if settings else {})
        write_json(out / "summary.json", summary.to_dict(), indent=2)
        return summary
    finally:
        group.close()


def load_inputs(pipe, config, job: Job):
    """The job's condition (on the model canvas) and trajectory (or None)."""
    from ..conditions import condition_from_files
    from ..method.generation import model_size
    from ..trajectory import Trajectory

    trajectory = Trajectory.load(job.trajectory) if job.trajectory else None
    h, w = model_size(pipe, config)
    return condition_from_files(job.condition, job.mask, size=(w, h), policy=config.resize_policy), trajectory


def generation_runner(pipe, model: dict, config, runtime, log=print) -> RunJob:
    """The usual job: load the inputs, :func:`~anyi2v_lab.method.generate`, write the run folder."""
    def run(job: Job, target: Path) -> None:
        from ..method import generate
        from ..outputs import write_run

        cfg = config.with_overrides(list(job.overrides)) if job.overrides else config
        condition, trajectory = load_inputs(pipe, cfg, job)
        result = generate(pipe, condition, job.prompt, trajectory, cfg, negative_prompt=job.negative_prompt,
                          seed=job.seed, progress=False, keep_masks=trajectory is not None, runtime=runtime)
        write_run(result, target, model=model, overwrite=True)
    return run


def main_batch(args, load_model, base_config, runtime, model: dict) -> int:
    """The ``anyi2v-lab batch`` command body (kept here so that the CLI stays a thin parser)."""
    ranks = Ranks.from_env()
    log = lambda msg: print(msg, flush=True)  # noqa: E731
    read_jobs(args.jobs)  # a file without any valid job is bad input: say so before the model loads
    model = {**model, "device": model.get("device") or ranks.device()}
    import torch
    if torch.device(model["device"]).type == "cuda" and torch.device(model["device"]).index is not None:
        torch.cuda.set_device(model["device"])  # streams, graphs and events of this process live there
    pipe = load_model(model)
    if str(pipe.unet.device) != model["device"]:
        pipe.to(model["device"])
    settings = RunSettings(config=base_config.to_dict(), model=model, runtime=getattr(args, "runtime", None))
    summary = run_batch(args.jobs, args.out, generation_runner(pipe, model, base_config, runtime, log), ranks, log,
                        settings)
    if ranks.rank != 0:
        return 0  # rank 0 reports for all: a non-zero exit here would make the launcher kill rank 0
    print(summary.table(), flush=True)
    print(f"wrote {Path(args.out) / 'summary.json'}", file=sys.stderr)
    return 1 if summary.failed else 0
