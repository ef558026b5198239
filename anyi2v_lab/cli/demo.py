"""``anyi2v-lab demo``: the main job on the toy world (a scene, a trajectory, the full method), on CPU."""
from __future__ import annotations

from .arguments import OVERWRITE_HELP, add_command


def register(subparsers) -> None:
    p = add_command(subparsers, "demo", "the main job: a toy scene, a trajectory, the full method on CPU")
    p.add_argument("--out", default="outputs/demo", help="output folder (default outputs/demo; written atomically)")
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    p.add_argument("--tiny", action="store_true", help="use the tiny random model (no toy weights needed)")
    p.add_argument("--fast", action="store_true", help="fewer steps, for a quick look")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..outputs import check_output_folder
    out = check_output_folder(args.out, args.overwrite)  # before the video is computed, not after
    from ..demo import run_demo
    run_demo(out, overwrite=args.overwrite, tiny=args.tiny, fast=args.fast)
    return 0
