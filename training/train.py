"""Train the toy model as AnimateDiff does: VAE, then the image model (UNet + text encoder) on frames and
tagged condition images, then the motion modules on videos with the image model frozen, then a joint
fine-tune that keeps image batches (motion modules bypassed) in the mix. Evaluates and exports.

Run from the repository root (``training/`` is not part of the installed package):

    python -m training.train --out outputs/toy --export outputs/toy/weights     # every phase, defaults
    python -m training.train --tiny --out /tmp/toy --no-eval                    # a CPU check, seconds
    python -m training.train --help                                             # every option

Continue from exported weights (``--init-from``) with ``--phases joint``, or fine-tune the VAE decoder
alone with ``--phases decoder``. Data-parallel over the GPUs of one host (:mod:`training.parallel`):

    torchrun --standalone --nproc-per-node 2 -m training.train --init-from anyi2v_lab/toy/weights ...

Each process trains on its own batches of ``--batch`` (the effective batch is N times it); rank 0 logs,
checkpoints, exports and evaluates. Each phase runs for a time budget (seconds) or a step cap, whichever
ends first, so a run fits a fixed time limit on any machine. Progress goes to stdout and
<out>/train.log; <out>/ckpt.pt holds the full state (``--resume``). ``training/recipe.md`` lists the
commands that produced the committed weights.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

import torch

from anyi2v_lab.toy import model as tm
from anyi2v_lab.toy.evaluate import evaluate
from training import parallel
from training.config import PHASES, TrainConfig, parse_config
from training.trainer import Log, Trainer


def run(cfg: TrainConfig) -> None:
    """Train the phases ``cfg.phases`` (in :data:`PHASES` order, skipping those a resumed run finished),
    export, and on rank 0 evaluate and write ``<out>/summary.json``."""
    group = parallel.init(cfg.device)
    Path(cfg.out).mkdir(parents=True, exist_ok=True)
    log = Log(Path(cfg.out) / "train.log" if group.main else None)
    log(f"config: {json.dumps(asdict(cfg))}")
    tr = Trainer(cfg, log, group)
    log(f"device {tr.dev}; torch {torch.__version__}"
        + (f"; {group.world} data-parallel ranks, effective batch x {group.world}" if group.world > 1 else ""))
    ck = tr.load(str(Path(cfg.out) / "ckpt.pt")) if cfg.resume else None
    for name in PHASES:
        if name in cfg.phases and name not in tr.done:
            tr.run_phase(name, ck["live"] if ck is not None and ck["phase"] == name else None)
    export = Path(cfg.export or Path(cfg.out) / "weights")
    tr.export(export)
    parallel.close(group)
    if not group.main:
        return
    summary = {"config": asdict(cfg), "world_size": group.world, "phases": tr.state, "history": tr.history,
               "params": {"vae": tm.count_params(tr.vae), "text_encoder": tm.count_params(tr.text),
                          "unet_motion": tm.count_params(tr.unet) if tr.unet is not None else None}}
    if not cfg.no_eval:
        summary["eval"] = evaluate(export, cfg, tr.dev, log)
    path = Path(cfg.out) / "summary.json"
    path.with_suffix(".json.tmp").write_text(json.dumps(summary, indent=1))
    os.replace(path.with_suffix(".json.tmp"), path)
    log("finished")


def main(argv=None):
    run(parse_config(argv, description=__doc__))


if __name__ == "__main__":
    main()
