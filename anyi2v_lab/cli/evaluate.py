"""``anyi2v-lab evaluate``: ObjMC (DragAnything's motion-control metric) of the method over a manifest of
cases, resumable. The cases run in :mod:`anyi2v_lab.evaluation`."""
from __future__ import annotations

from .arguments import add_command, add_config_arguments, add_runtime_argument, config_from_arguments, runtime_named
from .model import add_model_arguments, check_model_paths, model_spec


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
    add_model_arguments(p)
    p.set_defaults(func=run)


def run(args) -> int:
    spec = model_spec(args)
    check_model_paths(spec)
    cfg = config_from_arguments(args)
    from ..evaluation import main_evaluate
    from .model import load_model
    return main_evaluate(args, load_model, cfg, runtime_named(args.runtime), spec)
