"""Resumable work (``batch`` jobs, ``evaluate`` cases): what a result depends on, and one process a job.

A result is reused only when it was made from the same inputs: :class:`ResultKey` is a digest of the
bytes of the job's files (not their paths: a dataset moved elsewhere is the same job) and of its
settings (prompt, negative prompt, seed, the effective config, the model spec without the device and
the runtime). The key is stored with the result; a job whose key changed is run again, and
:meth:`ResultKey.changes` says what changed.

Processes sharing an output folder (two commands started on one ``--out``, or the ranks of a launcher)
claim a job with :class:`JobLock`, a non-blocking ``flock`` on ``<out>/.locks/<id>.lock``: a job
locked by another live process is left to it, and a lock is released by the kernel when its process
dies, so the lock of a killed process is taken over by the next one that asks (POSIX systems).
"""
from __future__ import annotations

import hashlib
import json
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

LOCKS = ".locks"
_NOT_RESULT_SETTINGS = ("device", "allow_pickle")  # where the model runs and what it may unpickle


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes; a missing file is a FileNotFoundError naming it."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} not found") from None
    return digest.hexdigest()


def _canonical(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class RunSettings:
    """The settings every job of a run shares: the base config (``AnyI2VConfig.to_dict()``; None where
    the runner is not the method), the model spec and the runtime's name."""

    config: dict | None = None
    model: dict = field(default_factory=dict)
    runtime: str | None = None

    def for_job(self, overrides: Sequence[str] = ()) -> dict:
        """The settings a job with these config overrides is made with (the effective config)."""
        config = None
        if self.config is not None:
            from .method.config import AnyI2VConfig
            config = AnyI2VConfig.from_dict(self.config).with_overrides(list(overrides)).to_dict()
        model = {k: v for k, v in self.model.items() if k not in _NOT_RESULT_SETTINGS}
        # the overrides themselves count only where the config they change is not known
        return {"config": config, "overrides": [] if config is not None else list(overrides), "model": model,
                "runtime": self.runtime}

    def to_dict(self) -> dict:
        return {"config": self.config, "model": self.model, "runtime": self.runtime}


@dataclass(frozen=True)
class ResultKey:
    """What one result depends on: ``inputs`` (role -> ``[{"path", "sha256"}]``) and ``settings``."""

    inputs: dict
    settings: dict

    @classmethod
    def of(cls, files: dict[str, Sequence[str]], settings: dict) -> "ResultKey":
        inputs = {role: [{"path": str(p), "sha256": file_sha256(p)} for p in paths] for role, paths in files.items()}
        return cls(inputs=inputs, settings=settings)

    @property
    def digest(self) -> str:
        contents = {role: [f["sha256"] for f in files] for role, files in self.inputs.items()}
        return hashlib.sha256(_canonical({"inputs": contents, "settings": self.settings}).encode()).hexdigest()

    def to_dict(self) -> dict:
        return {"digest": self.digest, "inputs": self.inputs, "settings": self.settings}

    def matches(self, stored: dict | None) -> bool:
        return isinstance(stored, dict) and stored.get("digest") == self.digest

    def changes(self, stored: dict | None) -> list[str]:
        """What differs from a stored key (``to_dict()``), in words: ``trajectory (contents)``,
        ``seed 3 -> 4``, ``config lr 0.01 -> 0.05``."""
        if not isinstance(stored, dict) or "digest" not in stored:
            return ["no record of the inputs it was made from"]
        out = []
        old_inputs = stored.get("inputs") or {}
        for role, files in self.inputs.items():
            if [f["sha256"] for f in files] != [f.get("sha256") for f in old_inputs.get(role) or []]:
                out.append(f"{role} (contents)")
        old = stored.get("settings") or {}
        for name, value in self.settings.items():
            before = old.get(name)
            if before == value:
                continue
            if isinstance(value, dict) and isinstance(before, dict):
                out += [f"{name} {k} {before.get(k)!r} -> {value.get(k)!r}" for k in sorted(set(value) | set(before))
                        if before.get(k) != value.get(k)]
            else:
                out.append(f"{name} {before!r} -> {value!r}")
        return out or ["the digest"]


class JobLock:
    """An exclusive claim on one job among the processes that share ``folder`` (``flock``, non-blocking).

    ``acquire()`` returns False at once when another live process holds the job; ``holder()`` then says
    which (its pid and host). Lock files stay in place: removing one would let two processes lock two
    different files of one name."""

    def __init__(self, folder: str | os.PathLike, name: str):
        self.path = Path(folder) / f"{name}.lock"
        self._fd: int | None = None

    def acquire(self) -> bool:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode())
        self._fd = fd
        return True

    def holder(self) -> str:
        try:
            return self.path.read_text().strip() or "another process"
        except OSError:
            return "another process"

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
