"""One rank of the data-parallel trainer test: ``torchrun --nproc-per-node 2 parallel_worker.py OUT``
(run by training/tests/test_toy_parallel.py, with the repository root on PYTHONPATH). Writes what the test
compares to OUT/rank<r>.pt."""
import sys

import torch

from training import parallel
from training.config import TrainConfig
from training.trainer import Log, Trainer

out = sys.argv[1]
group = parallel.init("cpu")
p, q = torch.nn.Parameter(torch.zeros(3)), torch.nn.Parameter(torch.zeros(2))
p.grad = torch.full((3,), float(group.rank + 1))          # q has no gradient, as bypassed modules
parallel.average_grads([p, q], group)
base = TrainConfig()
cfg = TrainConfig(out=out, device="cpu", max_steps={**base.max_steps, "image": 2},
                  batch={**base.batch, "image": 4}, lr={**base.lr, "image": 1e-3}, warmup=1)
tr = Trainer(cfg, Log(None), group)
init = {k: v.clone() for k, v in tr.unet2d.state_dict().items()}
_, caps = tr.images(4, 0.0)
tr.run_phase("image", None)
torch.save({"grad": p.grad, "qgrad": q.grad, "caps": caps, "init": init, "final": tr.unet2d.state_dict(),
            "steps": tr.state["image"]["steps"]}, f"{out}/rank{group.rank}.pt")
parallel.close(group)
