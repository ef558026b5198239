"""Batch mode: many generation jobs from a JSONL file, resumable, spread over the GPUs of one host.

One job a line::

    {"id": "cat-left", "condition": "cat.png", "trajectory": "left.json", "prompt": "a cat", "seed": 3}

``condition`` is a path or a list of paths (mixed conditions, with an optional ``mask`` list);
``trajectory`` may be null (injection only); ``negative_prompt``, ``seed`` (default 0) and ``set``
(config overrides, a ``{key: value}`` map or ``["key=value", ...]``) are optional; ``id`` defaults to
``job-<line number>``. Paths are relative to the jobs file's folder unless absolute, and may lead out
of it (``../data/cat.png``): they are resolved when the file is read and recorded resolved
(:func:`anyi2v_lab.io.listed_path`).

Each job writes ``<out>/<id>/`` atomically (see :func:`anyi2v_lab.outputs.write_run`) and then
``<out>/<id>/job.json``, its :class:`~anyi2v_lab.resume.ResultKey`: a digest of the bytes of its
condition, mask and trajectory files, its prompts, seed, effective config, model and runtime. A rerun
skips a job only when its result holds the key the job has now; a job whose files or settings changed
(or whose result has no key) is run again, the log says what changed, and the new result replaces the
old one when it is complete (until then the old one stays). A failing job (a bad line, a missing
file, an out-of-memory error) is written to ``<out>/failed/<id>.json`` (a bad line under its id when
it can be read, else ``line-<n>``) and the others go on; a jobs file without any valid job is bad
input. ``<out>/summary.json`` lists every job of the last run with its digest, and the run's settings.

Processes sharing ``--out`` (two commands at once, or a launcher's ranks) claim each job with a lock
(:class:`~anyi2v_lab.resume.JobLock`): a job another live process runs is left to it and reported as
running elsewhere (``elsewhere``; ``skipped`` when it has finished by the end of the run), so no job
runs twice; the lock of a process that died is taken over.

Several GPUs: start one process a GPU with an existing launcher; each reads ``RANK``, ``WORLD_SIZE``
and ``LOCAL_RANK``, loads the model once on ``cuda:LOCAL_RANK`` and takes every ``WORLD_SIZE``-th
unfinished job (rank 0 decides the list and broadcasts it over ``torch.distributed``)::

    torchrun --nproc_per_node 2 -m anyi2v_lab.cli batch jobs.jsonl --out runs/batch --model tiny
    accelerate launch --num_processes 2 -m anyi2v_lab.cli batch jobs.jsonl --out runs/batch
"""
from .jobs import Job, JobError, Outcome, is_finished, job_key, parse_job, read_jobs
from .run import Ranks, Summary, generation_runner, load_inputs, main_batch, run_batch, run_jobs

__all__ = ["Job", "JobError", "Outcome", "is_finished", "job_key", "parse_job", "read_jobs", "Ranks", "Summary",
           "generation_runner", "load_inputs", "main_batch", "run_batch", "run_jobs"]
