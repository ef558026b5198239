"""Jobs of a batch: one JSONL line each, validated before any model is loaded."""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..method.config import ConfigError, overrides_from_json

RUN_FILE = "run.json"


class JobError(ValueError):
    """A line of the jobs file that cannot become a job."""


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
    status: str  # "done", "skipped" (finished before), "failed"
    seconds: float = 0.0
    rank: int = 0
    error: str | None = None


_KEYS = {"id", "condition", "mask", "trajectory", "prompt", "negative_prompt", "seed", "set"}


def _paths(value, base: Path, key: str, line: int) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
        raise JobError(f"line {line}: {key} must be a path or a list of paths, got {value!r}")
    return tuple(str(base / v) for v in items)


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
    if not job_id or "/" in job_id or job_id.startswith(".") or job_id in ("failed",):
        raise JobError(f"line {line}: id={job_id!r} must be a plain folder name (no '/', not hidden, not 'failed')")
    traj = d.get("trajectory")
    return Job(id=job_id, prompt=d["prompt"], condition=_paths(d["condition"], base, "condition", line),
               mask=_paths(d.get("mask", []), base, "mask", line),
               trajectory=None if traj is None else _paths(traj, base, "trajectory", line)[0],
               negative_prompt=d.get("negative_prompt", ""), seed=seed,
               overrides=_overrides(d.get("set"), line), line=line)


def read_jobs(path: str | os.PathLike) -> tuple[list[Job], list[Outcome]]:
    """Every valid job of the file, and a failed outcome for each line that is not one (so that a
    bad line is reported without stopping the others). Blank lines and ``#`` comments are skipped."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"jobs file {path} does not exist")
    jobs, bad, seen = [], [], set()
    for n, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        try:
            job = parse_job(text, n, path.parent.resolve())
            if job.id in seen:
                raise JobError(f"line {n}: id {job.id!r} is used by an earlier line; ids name output folders")
        except JobError as e:
            bad.append(Outcome(f"line-{n:04d}", "failed", error=str(e)))
            continue
        seen.add(job.id)
        jobs.append(job)
    return jobs, bad


def is_finished(out: Path, job: Job) -> bool:
    return (out / job.id / RUN_FILE).exists()


def clean_partial(out: Path, job: Job) -> None:
    """Remove the temporary folders an interrupted job left (``.<id>.*`` beside its output)."""
    for tmp in out.glob(f".{job.id}.*"):
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
