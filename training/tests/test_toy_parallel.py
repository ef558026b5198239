"""Data-parallel toy training (``training.parallel``) in two CPU processes over gloo, launched by
torchrun as on the GPU machine: gradients are averaged, each rank draws its own batches, and the
replicas start from rank 0's draw and stay identical."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

WORKER = Path(__file__).parent / "parallel_worker.py"
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_two_ranks_average_gradients_and_keep_identical_replicas(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}  # training/
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                    str(WORKER), str(tmp_path)], check=True, env=env, timeout=240)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1))
    for r in (r0, r1):
        assert torch.equal(r["grad"], torch.full((3,), 1.5)) and r["qgrad"] is None   # mean of 1 and 2
        assert r["steps"] == 2
    assert r0["caps"] != r1["caps"]                              # own seeds, own batches
    assert any(not torch.equal(r0["init"][k], r1["init"][k]) for k in r0["init"])   # built apart ...
    for k in r0["final"]:
        assert torch.equal(r0["final"][k], r1["final"][k]), k    # ... trained as one
    assert any(not torch.equal(r0["final"][k], r0["init"][k]) for k in r0["final"])
    # rank 0 alone exports
    assert (tmp_path / "weights" / "unet").is_dir()
