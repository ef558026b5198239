"""``anyi2v-lab config``: the method's settings (key, type, default or chosen value, meaning), as a table or
as a config file (``--json``)."""
from __future__ import annotations

import json

from .arguments import add_command, add_config_arguments, config_from_arguments


def register(subparsers) -> None:
    p = add_command(subparsers, "config", "list the method's settings: key, type, default, meaning (for --set and "
                    "--config)")
    add_config_arguments(p)
    p.add_argument("--json", action="store_true", help="print the config as JSON (usable as a --config file)")
    p.set_defaults(func=run)


def run(args) -> int:
    """The method's settings: key, type, default (or the value --config/--set give) and meaning."""
    from ..method.config import AnyI2VConfig
    chosen = config_from_arguments(args).to_dict() if (args.config or args.set) else None
    if args.json:
        print(json.dumps(chosen or AnyI2VConfig().to_dict(), indent=2))
        return 0
    _print_table(chosen)
    layers = {k: v for k, v in (chosen or AnyI2VConfig().to_dict()).items() if isinstance(v, list)}
    print("\nlayer lists:\n" + "\n".join(f"  {k}: {', '.join(v) or '(empty)'}" for k, v in layers.items()))
    print("\nset a key with --set KEY=VALUE (e.g. --set lr=0.02 --set pca_dim=none --set opt_layers=a,b) or in a "
          "YAML/JSON --config file; `anyi2v-lab config --set ... --json` prints a config file")
    return 0


def _show(v) -> str:
    return "none" if v is None else (",".join(v) if isinstance(v, list) else str(v).lower() if isinstance(v, bool)
                                     else str(v))


def _print_table(chosen: dict | None) -> None:
    """One row a key: the default, or the chosen value beside the default where they differ."""
    from ..method.config import config_keys
    rows = []
    for key, kind, default, meaning in config_keys():
        value = _show(default)
        if chosen is not None and chosen[key] != default:
            value = f"{_show(chosen[key])} (default {value})"
        if len(value) > 24:  # the layer lists: listed below the table
            value = value[:21] + "..."
        rows.append((key, kind, value, meaning))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    print(f"{'KEY':<{widths[0]}}  {'TYPE':<{widths[1]}}  {'VALUE' if chosen else 'DEFAULT':<{widths[2]}}  MEANING")
    for r in rows:
        print(f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}")
