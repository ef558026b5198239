"""``anyi2v-lab evaluate``: ObjMC (DragAnything's motion-control metric) of the method over a manifest of
cases, resumable. The cases run in :mod:`anyi2v_lab.evaluation`."""
from __future__ import annotations

from . import model
from .arguments import add_command, add_config_arguments, add_runtime_argument, config_from_arguments, runtime_named


def register(subparsers) -> None:
    p = add_command(subparsers, "evaluate", "ObjMC (DragAnything's motion-control metric) of the method over a "
                    "manifest of cases: generate, track, report (resumable; an offline tracker)")
    p.add_argument("manifest", help="JSONL, one case a line: image, mask, trajectory, prompt, seed; or a "
                   "VIPSeg-style folder (see anyi2v_lab.evaluation.manifest)")
    p.add_argument("--out", required=True, help="cases/<id>.json a case, failed/, summary.json (a rerun resumes)")
    p.add_argument("--tracker", choices=("lucas-kanade", "cotracker"), default="lucas-kanade",
                   help="lucas-kanade: OpenCV, no weights (default); cotracker: needs --cotracker-checkpoint")
    p.add_argument("--cotracker-checkpoint", help="path of CoTracker weights on this machine (never downloaded)")
    add_runtime_argument(p)
    add_config_arguments(p)
    model.add_arguments(p)
    p.set_defaults(func=run)


def run(args) -> int:
    spec = model.spec_from(args)
    model.check_paths(spec)
    cfg = config_from_arguments(args)
    from ..evaluation import main_evaluate
    return main_evaluate(args, model.load, cfg, runtime_named(args.runtime), spec)
