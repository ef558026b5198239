"""Jobs of a batch: one JSONL line each, validated before any model is loaded, and what a job's result
depends on (its :class:`~anyi2v_lab.resume.ResultKey`, stored as ``<out>/<id>/job.json``)."""
from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..io import listed_path
from ..method.config import ConfigError, overrides_from_json
from ..resume import ResultKey, RunSettings

RUN_FILE = "run.json"
JOB_FILE = "job.json"


class JobError(ValueError):
    """A line of the jobs file that cannot become a job, or a jobs file without any job."""


@dataclass(frozen=True)
class Job:
    id: str
    prompt: str
    condition: tuple[str, ...]
    mask: tuple[str, ...] = ()
    trajectory: str | None = None
    negative_prompt: str = ""
    seed: int = 0
    overrides: tuple[str, ...] = ()
    line: int = 0


@dataclass
class Outcome:
    id: str
    status: str  # "done", "skipped" (finished before, same inputs), "failed", "elsewhere" (another process runs it)
    seconds: float = 0.0
    rank: int = 0
    error: str | None = None
    note: str | None = None  # what changed since an earlier result, or which process runs the job
    digest: str | None = None


_KEYS = {"id", "condition", "mask", "trajectory", "prompt", "negative_prompt", "seed", "set"}


def _paths(value, base: Path, key: str, line: int) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
        raise JobError(f"line {line}: {key} must be a path or a list of paths, got {value!r}")
    return tuple(str(listed_path(v, base)) for v in items)


def _overrides(value, line: int) -> tuple[str, ...]:
    try:
        return overrides_from_json(value)
    except ConfigError as e:
        raise JobError(f"line {line}: {e}") from None


def parse_job(text: str, line: int, base: Path) -> Job:
    """One JSONL line -> :class:`Job`; raises :class:`JobError` naming the line and the field."""
    try:
        d = json.loads(text)
    except ValueError as e:
        raise JobError(f"line {line}: not valid JSON ({e})") from None
    if not isinstance(d, dict):
        raise JobError(f"line {line}: a job must be a JSON object, got {type(d).__name__}")
    unknown = sorted(set(d) - _KEYS)
    if unknown:
        raise JobError(f"line {line}: unknown keys {unknown}; a job has {sorted(_KEYS)}")
    for key in ("condition", "prompt"):
        if not d.get(key):
            raise JobError(f"line {line}: {key!r} is required")
    if not isinstance(d["prompt"], str) or not isinstance(d.get("negative_prompt", ""), str):
        raise JobError(f"line {line}: prompt and negative_prompt must be strings")
    seed = d.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise JobError(f"line {line}: seed={seed!r} must be a non-negative integer")
    job_id = str(d.get("id", f"job-{line:04d}"))
    if not _plain_id(job_id):
        raise JobError(f"line {line}: id={job_id!r} must be a plain folder name (no '/', not hidden, not 'failed' "
                       f"or 'summary.json')")
    traj = d.get("trajectory")
    return Job(id=job_id, prompt=d["prompt"], condition=_paths(d["condition"], base, "condition", line),
               mask=_paths(d.get("mask", []), base, "mask", line),
               trajectory=None if traj is None else _paths(traj, base, "trajectory", line)[0],
               negative_prompt=d.get("negative_prompt", ""), seed=seed,
               overrides=_overrides(d.get("set"), line), line=line)


def _plain_id(job_id: str) -> bool:
    """A name for a folder of ``<out>/`` that is no other thing there (failed/, summary.json, .locks/)."""
    return (bool(job_id) and "/" not in job_id and "\\" not in job_id and not job_id.startswith(".")
            and job_id not in ("failed", "summary.json"))


def _failure_id(text: str, line: int, seen: set) -> str:
    """The id a bad line is recorded under: its own when it can be read and is free (so that the line's
    next success clears the record), else ``line-<n>``."""
    try:
        d = json.loads(text)
        job_id = str(d.get("id", f"job-{line:04d}")) if isinstance(d, dict) else ""
    except ValueError:
        job_id = ""
    return job_id if _plain_id(job_id) and job_id not in seen else f"line-{line:04d}"


def read_jobs(path: str | os.PathLike) -> tuple[list[Job], list[Outcome]]:
    """Every valid job of the file, and a failed outcome for each line that is not one (so that a
    bad line is reported without stopping the others). Blank lines and ``#`` comments are skipped.
    A file without any valid job is a :class:`JobError`: there is nothing to run."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"jobs file {path} does not exist")
    jobs, bad, seen = [], [], set()
    for n, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        try:
            job = parse_job(text, n, path.parent)
            if job.id in seen:
                raise JobError(f"line {n}: id {job.id!r} is used by an earlier line; ids name output folders")
        except JobError as e:
            bad.append(Outcome(id=_failure_id(text, n, seen), status="failed", error=str(e)))
            seen.add(bad[-1].id)
            continue
        seen.add(job.id)
        jobs.append(job)
    if not jobs:
        raise JobError(f"jobs file {path} holds no job" + (f"; every line is invalid, the first: {bad[0].error}"
                                                           if bad else " (only blank lines and comments)"))
    return jobs, bad


def job_key(job: Job, settings: RunSettings | None = None) -> ResultKey:
    """What the job's result depends on: its files' bytes, prompts, seed and (with ``settings``) the
    effective config, model and runtime. Raises for a missing file or a bad override."""
    files = {"condition": job.condition, "mask": job.mask, "trajectory": [job.trajectory] if job.trajectory else []}
    return ResultKey.of(files, {"prompt": job.prompt, "negative_prompt": job.negative_prompt, "seed": job.seed,
                                **(settings or RunSettings()).for_job(job.overrides)})


def stored_key(out: Path, job: Job) -> dict | None:
    """The key stored with the job's finished result (None: no finished result, or no key)."""
    folder = out / job.id
    if not (folder / RUN_FILE).is_file():
        return None
    try:
        return json.loads((folder / JOB_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def is_finished(out: Path, job: Job, key: ResultKey) -> bool:
    """The job has a result made from the same inputs and settings."""
    return key.matches(stored_key(out, job))


def clean_partial(out: Path, job: Job) -> None:
    """Remove the temporary folders an interrupted run of this job left beside its output (``.<id>.`` and
    mkdtemp's 8 characters; not another job's, such as ``.<id>.b.*`` of job ``<id>.b``)."""
    name = re.compile(rf"\.{re.escape(job.id)}\.[a-z0-9_]{{8}}")
    for tmp in out.glob(f".{job.id}.*"):
        if tmp.is_dir() and name.fullmatch(tmp.name):
            shutil.rmtree(tmp, ignore_errors=True)
