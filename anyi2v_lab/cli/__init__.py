"""``anyi2v-lab``: the command line.

    anyi2v-lab demo                                   # the toy world, full method, on CPU
    anyi2v-lab generate --condition sketch.png --trajectory t.json --prompt "..." --out runs/a
    anyi2v-lab generate --from-run runs/a/run.json --out runs/b      # redo a run exactly
    anyi2v-lab generate --example horse-canny --reference-checkout AnyI2V --model SD15 ... --out runs/h
    anyi2v-lab invert --condition depth.png --prompt "..." --out feats.safetensors
    anyi2v-lab config                                                 # the method's settings: --set KEY=VALUE
    anyi2v-lab points --pattern "up_blocks.1.*.query"                # list hook points
    anyi2v-lab batch jobs.jsonl --out runs/batch                     # many jobs, resumable
    anyi2v-lab evaluate cases.jsonl --out runs/eval                  # ObjMC over a manifest, resumable
    torchrun --nproc_per_node 2 -m anyi2v_lab.cli batch jobs.jsonl --out runs/batch   # one process a GPU

Every input (config values, condition images and masks, trajectory, output folder, model paths) is
checked before a model is loaded. Exit codes:

    0    done
    1    a failure while running (one line ``error: ...``; ``--debug`` shows the traceback),
         or, for ``batch``, some jobs failed (listed in <out>/failed/)
    2    bad input or usage (the message names the argument or key, the value and the fix), an output
         that is taken or being written by another process
    130  interrupted (Ctrl-C); outputs are written atomically, so nothing half-written is left
    143  terminated (SIGTERM), cleaned up as for Ctrl-C

Each command is a module of this package holding its arguments (``register``) next to its code (``run``):
generate.py (its inputs read into one record, ``RunInputs``; saved_run.py reads a run.json), invert.py,
demo.py, config.py, batch.py, evaluate.py, points.py. What several commands share lives in arguments.py
(the config and condition arguments, ``UsageError``) and model.py (the model arguments, their checks before
any weight is read, loading).
"""
from __future__ import annotations

import argparse
import os
import sys

from . import batch, config, demo, evaluate, generate, invert, points
from .arguments import EPILOG, UsageError

EXIT_FAILURE, EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_TERMINATED = 1, 2, 130, 143
COMMANDS = (generate, invert, demo, config, batch, evaluate, points)  # in the order --help lists them


def build_parser() -> argparse.ArgumentParser:
    """``anyi2v-lab``'s parser: each command module registers its own subcommand and arguments."""
    parser = argparse.ArgumentParser(prog="anyi2v-lab", description="Training-free trajectory-controlled "
                                     "image-to-video with AnimateDiff (AnyI2V).", epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    subparsers = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.register(subparsers)
    return parser


def _is_bad_input(e: BaseException) -> bool:
    """Our validation errors (ValueError subclasses of this package: ConfigError, ConditionError,
    TrajectoryError, ModelLoadError, JobError, ...) and file errors about the user's paths."""
    if isinstance(e, (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError, PermissionError)):
        return True
    return isinstance(e, ValueError) and any(c.__module__.startswith("anyi2v_lab.") for c in type(e).__mro__)


def main(argv: list[str] | None = None) -> int:
    from ..startup import Terminated, prepare_process, sigterm_as_interrupt, silence_library_warnings
    prepare_process()  # before torch is imported (the commands import it)
    silence_library_warnings()
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    args = build_parser().parse_args(argv)  # usage errors: argparse prints them and exits 2
    with sigterm_as_interrupt():  # SIGTERM cleans up as Ctrl-C does
        try:
            return args.func(args)
        except KeyboardInterrupt as e:
            if args.debug:
                raise
            terminated = isinstance(e, Terminated)
            print("\nterminated" if terminated else "\ninterrupted", file=sys.stderr)
            return EXIT_TERMINATED if terminated else EXIT_INTERRUPTED
        except Exception as e:  # noqa: BLE001 - the one place that turns exceptions into exit codes
            if args.debug:
                raise
            message = " ".join(str(e).split()) or type(e).__name__
            if _is_bad_input(e):
                print(f"error: {message}", file=sys.stderr)
                return EXIT_BAD_INPUT
            print(f"error: {type(e).__name__}: {message}\n(a failure while running; rerun with --debug for the "
                  f"traceback)", file=sys.stderr)
            return EXIT_FAILURE


__all__ = ["EXIT_BAD_INPUT", "EXIT_FAILURE", "EXIT_INTERRUPTED", "EXIT_TERMINATED", "UsageError", "build_parser",
           "main"]
