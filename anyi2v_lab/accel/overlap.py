"""Side work that overlaps the main CUDA stream: host-blocking jobs run in worker threads.

``torch.linalg.eigh`` reads its status on the host, so the thread that calls it waits for the GPU
and queues nothing else meanwhile. Started from a
worker thread on a stream of its own, the same call runs while the main thread goes on launching the
UNet's forward. PyTorch releases the GIL inside its operators, and the current stream is per thread.
"""
from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable

import torch

from ..hooks import merge_edits
from ..method.config import AnyI2VConfig
from ..method.grid import layer_fit


def _tensors(out) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (tuple, list)):
        return [t for x in out for t in _tensors(x)]
    return []


class SideStreams:
    """``submit(fn, *tensors)`` runs ``fn`` on a side stream of ``device`` after the work already
    queued on the current stream; ``result(future)`` makes the current stream wait for it and
    returns ``fn``'s output. :func:`side_streams` keeps one per device for the process; a context
    manager use ends the threads on exit."""

    def __init__(self, device, workers: int = 2):
        self.device = torch.device(device)
        if self.device.type != "cuda":
            raise ValueError(f"SideStreams needs a CUDA device, got {self.device}")
        self.streams = [torch.cuda.Stream(self.device) for _ in range(workers)]
        # PyTorch loads its CUDA linear-algebra library on a process's first linalg call, and two
        # threads making that first call at once fail ("lazy wrapper should be called at most once"):
        # load it here, on the calling thread. A worker would race the main thread's graph
        # captures: a host sync made in another thread during a capture invalidates it.
        torch.linalg.eigh(torch.eye(2, device=self.device))
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="anyi2v-side")
        self.next = 0

    def submit(self, fn: Callable, *args, after: torch.cuda.Event | None = None) -> Future:
        """``after``: start when this event (e.g. one recorded inside a CUDA graph just launched)
        fires instead of after everything queued on the current stream."""
        stream = self.streams[self.next % len(self.streams)]
        self.next += 1
        ready = after
        if ready is None:
            ready = torch.cuda.Event()
            ready.record(torch.cuda.current_stream(self.device))

        def job():
            with torch.cuda.device(self.device), torch.cuda.stream(stream):
                stream.wait_event(ready)
                out = fn(*args)
                done = torch.cuda.Event()
                done.record(stream)
            return out, done

        return self.pool.submit(job)

    def result(self, future: Future):
        out, done = future.result()
        main = torch.cuda.current_stream(self.device)
        main.wait_event(done)
        for t in _tensors(out):
            # allocated on the side stream, read on the main one: without this the allocator could
            # hand the memory to the next side job while main-stream kernels still read it
            t.record_stream(main)
        return out

    def __enter__(self) -> "SideStreams":
        return self

    def __exit__(self, *exc) -> None:
        self.pool.shutdown(wait=True)


_SHARED: dict = {}


def side_streams(device, workers: int = 2) -> SideStreams:
    """A process-wide :class:`SideStreams` per (device, workers): its threads and streams are made
    once, and the cuBLAS/cuSOLVER handles that PyTorch keeps per thread stay warm."""
    key = (str(torch.device(device)), workers)
    if key not in _SHARED:
        _SHARED[key] = SideStreams(device, workers)
    return _SHARED[key]


def pca_streams(runtime, config: AnyI2VConfig, device) -> SideStreams | None:
    """The side streams the optimisation's PCA fits start on as soon as their layer is computed
    (``runtime.overlap_pca``), or ``None``: no fits, or fits after the forward on the main stream.
    The first call of a process loads cuSOLVER, a host sync: a bound runtime makes it before the
    inversion, so that it does not wait for the inversion's kernels."""
    if not (runtime.overlaps_pca(device) and config.pca_dim is not None):
        return None
    return side_streams(device, workers=len(config.align_layers))


def with_fit_starters(edits: dict, names: list[str], shapes, config: AnyI2VConfig, side: SideStreams,
                      futures: dict) -> dict:
    """``edits`` plus, last on each captured point, an observer that starts that layer's PCA fit on a
    side stream; it sees the tensor the capture stores (after every other edit) and changes nothing."""
    def starter(i: int):
        def start_fit(x: torch.Tensor, ctx) -> None:
            if torch._C._current_graph_task_id() == -1:  # not a checkpoint recomputation in the backward
                futures[i] = side.submit(layer_fit, ctx.frames(x).detach(), shapes[i], config, i)
            return None
        return start_fit

    return merge_edits(edits, {name: starter(i) for i, name in enumerate(names)})
