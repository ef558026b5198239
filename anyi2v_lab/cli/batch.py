"""``anyi2v-lab batch``: the generation jobs of a JSONL file, resumable; one process a GPU under torchrun
or accelerate launch (``-m anyi2v_lab.cli batch``). The jobs themselves run in :mod:`anyi2v_lab.batch`."""
from __future__ import annotations

from pathlib import Path

from .arguments import (
    UsageError,
    add_command,
    add_config_arguments,
    add_runtime_argument,
    config_from_arguments,
    runtime_named,
)
from .model import add_model_arguments, check_model_paths, model_spec


def register(subparsers) -> None:
    p = add_command(subparsers, "batch", "run the generation jobs of a JSONL file (resumable; one process a GPU "
                    "under torchrun or accelerate launch)")
    p.add_argument("jobs", help="JSONL, one job a line: condition, trajectory, prompt, seed (see anyi2v_lab.batch)")
    p.add_argument("--out", required=True, help="one folder a job, plus failed/ and summary.json")
    add_runtime_argument(p, help="fast: compiled blocks (compiles once per process); low-memory: for 12 GB GPUs")
    add_config_arguments(p)
    add_model_arguments(p)
    p.set_defaults(func=run)


def run(args) -> int:
    jobs, out = Path(args.jobs), Path(args.out)
    if not jobs.is_file():
        raise UsageError(f"jobs file {args.jobs!r} " + ("is a folder" if jobs.is_dir() else "does not exist"))
    if out.exists() and not out.is_dir():  # an existing folder is resumed
        raise UsageError(f"--out {args.out!r} is a file; give a folder (a rerun resumes it)")
    spec = model_spec(args)
    check_model_paths(spec)
    cfg = config_from_arguments(args)
    from ..batch import main_batch
    from .model import load_model
    return main_batch(args, load_model, cfg, runtime_named(args.runtime), spec)
