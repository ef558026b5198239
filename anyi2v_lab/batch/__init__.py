"""Batch mode: many generation jobs from a JSONL file, resumable, spread over the GPUs of one host.

One job a line::

    {"id": "cat-left", "condition": "cat.png", "trajectory": "left.json", "prompt": "a cat", "seed": 3}

``condition`` is a path or a list of paths (mixed conditions, with an optional ``mask`` list);
``trajectory`` may be null (injection only); ``negative_prompt``, ``seed`` (default 0) and ``set``
(config overrides, a ``{key: value}`` map or ``["key=value", ...]``) are optional; ``id`` defaults to
``job-<line number>``. Relative paths are read from the jobs file's folder. Each job writes
``<out>/<id>/`` atomically (see :func:`anyi2v_lab.outputs.write_run`), so a job is finished exactly
when its ``run.json`` exists: a rerun skips finished jobs and redoes the rest. A failing job (a bad
line, a missing file, an out-of-memory error) is written to ``<out>/failed/<id>.json`` and the others
go on; ``<out>/summary.json`` lists every job of the last run.

Several GPUs: start one process a GPU with an existing launcher; each reads ``RANK``, ``WORLD_SIZE``
and ``LOCAL_RANK``, loads the model once on ``cuda:LOCAL_RANK`` and takes every ``WORLD_SIZE``-th
unfinished job (rank 0 decides the list and broadcasts it over ``torch.distributed``)::

    torchrun --nproc_per_node 2 -m anyi2v_lab.cli batch jobs.jsonl --out runs/batch --model tiny
    accelerate launch --num_processes 2 -m anyi2v_lab.cli batch jobs.jsonl --out runs/batch
"""
from .jobs import Job, JobError, Outcome, is_finished, parse_job, read_jobs
from .run import Ranks, Summary, generation_runner, load_inputs, main_batch, run_batch, run_jobs

__all__ = ["Job", "JobError", "Outcome", "is_finished", "parse_job", "read_jobs", "Ranks", "Summary",
           "generation_runner", "load_inputs", "main_batch", "run_batch", "run_jobs"]
