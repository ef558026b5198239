"""Data-parallel training of the toy model over the GPUs of one host (or CPU processes, for tests).

Launched by ``torchrun --nproc-per-node N -m training.train ...``: every process draws its own
batches (its own seeds), gradients are averaged after each backward pass, and rank 0 alone decides the
schedule (lr, stop, deadline), so every rank takes the same optimiser step and the replicas never drift.
Rank 0 alone logs, checkpoints, exports and evaluates. Without torchrun's environment everything here
is a no-op and the trainer runs as one process.

Why not ``DistributedDataParallel``: the joint phase's image batches bypass the motion modules, so the
set of parameters with gradients changes from step to step (the same on every rank). Averaging the
gradients that exist, in one flat buffer, handles that without DDP's unused-parameter search.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors


@dataclass(frozen=True)
class Group:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    # a gloo group for the per-step schedule values: CPU tensors, so the host never waits for the GPU
    control: object = None

    @property
    def main(self) -> bool:
        return self.rank == 0


def init(device: str) -> Group:
    """Join torchrun's process group (NCCL on GPUs, gloo on CPU); a single process needs none."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Group()
    local = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = device != "cpu" and torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    return Group(dist.get_rank(), dist.get_world_size(), local, dist.new_group(backend="gloo"))


def close(group: Group) -> None:
    if group.world > 1 and dist.is_initialized():
        dist.destroy_process_group()


def average_grads(params: list[torch.Tensor], group: Group) -> None:
    """Replace each existing ``.grad`` by its mean over the ranks (one all-reduce of a flat buffer)."""
    if group.world == 1:
        return
    grads = [p.grad for p in params if p.grad is not None]
    flat = _flatten_dense_tensors(grads)
    dist.all_reduce(flat)
    flat.div_(group.world)
    for g, mean in zip(grads, _unflatten_dense_tensors(flat, grads)):
        g.copy_(mean)


def from_main(values: list[float], group: Group) -> list[float]:
    """Rank 0's ``values`` on every rank: decisions that read a clock must not differ between ranks."""
    if group.world == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64)
    dist.broadcast(t, 0, group=group.control)
    return t.tolist()


def mean(x: torch.Tensor, group: Group) -> torch.Tensor:
    """The mean of a tensor over the ranks (a copy)."""
    if group.world == 1:
        return x
    x = x.detach().clone()
    dist.all_reduce(x)
    return x / group.world


def sync_modules(modules: list[torch.nn.Module], group: Group) -> None:
    """Copy rank 0's parameters and buffers into every rank's modules."""
    if group.world == 1:
        return
    for m in modules:
        for t in m.state_dict().values():
            dist.broadcast(t, 0)
