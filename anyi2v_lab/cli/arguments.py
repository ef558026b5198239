"""What several commands share: the subcommand parser, the config arguments, the condition arguments, the
runtime choice, and the error of a bad command line. Nothing here imports torch: a bad argument is
answered before the libraries load."""
from __future__ import annotations

import argparse

from ..validate import InputError

EPILOG = """exit codes: 0 done; 1 a failure while running (rerun with --debug for the traceback; batch: some
jobs failed); 2 bad input or usage; 130 interrupted (Ctrl-C); 143 terminated (SIGTERM). `anyi2v-lab
config` lists the method's settings (keys for --set KEY=VALUE and for --config files) with their types,
defaults and meaning."""

OVERWRITE_HELP = ("replace an earlier run in --out (a folder holding only what this tool wrote, as its run.json "
                  "lists); a folder holding anything else is never replaced")

RUNTIMES = ("default", "fast", "baseline", "low-memory")


class UsageError(InputError):
    """A bad argument of the command line, or a bad field of a file it names (exit 2)."""


def add_command(subparsers, name: str, help: str) -> argparse.ArgumentParser:
    """The parser of one subcommand: its help as description, the exit codes as epilog, and ``--debug``."""
    parser = subparsers.add_parser(name, help=help, description=help, epilog=EPILOG,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true", help="show the traceback of a failure")
    return parser


# ------------------------------------------------------------------ the method's config
def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML or JSON config file (defaults are the paper's; see `anyi2v-lab "
                        "config`)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config field, e.g. --set lr=0.02 (keys: `anyi2v-lab config`)")


def config_from_arguments(args):
    """The config ``--config`` and ``--set`` give (the paper's defaults where they give nothing)."""
    from ..method.config import AnyI2VConfig, ConfigError
    if args.config:  # the file and --set together: --set may mend what the file alone would break
        return AnyI2VConfig.load(args.config, overrides=args.set)
    try:
        return AnyI2VConfig().with_overrides(args.set)
    except ConfigError as e:
        raise ConfigError(f"--set: {e}") from None


def config_with_overrides(base: dict, overrides: list[str], where: str):
    """``base`` (a saved or shipped config) with ``--set`` on top; an error is said to come from ``where``."""
    from ..method.config import AnyI2VConfig, ConfigError, parse_overrides
    try:
        return AnyI2VConfig.from_dict({**base, **parse_overrides(overrides)})
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None


# ------------------------------------------------------------------ condition images
def add_condition_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--condition", action="append", default=[],
                        help="condition image (repeat for mixed conditions)")
    parser.add_argument("--mask", action="append", default=[],
                        help="mask of the matching --condition (mixed conditions)")


def check_conditions(images, masks) -> None:
    """The condition images and masks exist, are images, and pair up; before any model loads."""
    from ..conditions import check_condition_files
    if not images:
        raise UsageError("--condition is required (an image path; repeat it with --mask for mixed conditions)")
    check_condition_files(list(images), list(masks))


# ------------------------------------------------------------------ runtimes
def add_runtime_argument(parser: argparse.ArgumentParser, help: str | None = None) -> None:
    parser.add_argument("--runtime", choices=RUNTIMES, default="default", help=help)


def runtime_named(name: str):
    from ..accel import Runtime
    return {"default": Runtime(), "fast": Runtime.fast(), "baseline": Runtime.baseline(),
            "low-memory": Runtime.low_mem()}[name]
