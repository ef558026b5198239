"""Process set-up for the command line and the notebooks: CPU threads, signals, and library noise.

:func:`prepare_process` must run before torch is imported: OpenMP reads its settings once, when torch
loads it. Busy-waiting OpenMP workers make torch several times slower as soon as another process
shares the cores (the demo: 108 s instead of 61 s beside one other process on 2 cores), so workers
sleep when idle, and there are no more of them than the cores this process may use.

:func:`silence_library_warnings` drops the library messages a user can do nothing about (they show
as red boxes in notebooks and read as errors); every other warning still shows.
"""
from __future__ import annotations

import logging
import math
import os
import signal
from contextlib import contextmanager

# (logger, text in the message): advice addressed to the libraries' developers, not to our users
QUIET_MESSAGES = (
    # transformers without torchvision falls back to the PIL image processors, which is what we use
    ("transformers.utils.import_utils", "requires torchvision (not installed)"),
    # diffusers on moving a UNetMotionModel to a dtype; our loader casts on purpose (and the list is empty)
    ("diffusers.models.modeling_utils", "should be kept in float32"),
)


def usable_cpus() -> int:
    """The cores this process may run on: its CPU affinity, capped by a cgroup CPU quota (containers)."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        n = os.cpu_count() or 1
    try:
        quota, period = open("/sys/fs/cgroup/cpu.max").read().split()[:2]
        if quota != "max":
            n = min(n, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, n)


def prepare_process() -> None:
    """OpenMP's passive wait and one thread a usable core, unless the environment already says.

    Call it before ``import torch`` (the command line does, first thing); afterwards it changes nothing.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("OMP_NUM_THREADS", str(usable_cpus()))


def thread_settings() -> dict:
    """The CPU threads this process computes with, as run.json records them: a rerun is bit-identical
    only at the same count (a sum split over more threads adds in another order), on the same machine and
    library versions."""
    import torch
    return {"torch": torch.get_num_threads(), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")}


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the main thread is, so that every clean-up runs as for Ctrl-C."""


@contextmanager
def sigterm_as_interrupt():
    """While the block runs, SIGTERM raises :class:`Terminated` in the main thread. A second SIGTERM
    during the clean-up is ignored (SIGKILL still ends the process); the previous handler is back
    afterwards. Outside the main thread nothing changes."""
    def terminate(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Terminated()

    try:
        previous = signal.signal(signal.SIGTERM, terminate)
    except ValueError:  # not the main thread: signals go to the main thread's handler
        previous = None
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


class _QuietFilter(logging.Filter):
    def __init__(self, text: str):
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in record.getMessage()


_FILTERS = {logger: _QuietFilter(text) for logger, text in QUIET_MESSAGES}


def silence_library_warnings() -> None:
    """Hide the messages in ``QUIET_MESSAGES``; idempotent, imports nothing (filters on the loggers by
    name, so it works before or after the libraries are imported)."""
    for name, quiet in _FILTERS.items():
        logging.getLogger(name).addFilter(quiet)
