"""``anyi2v-lab points``: the hook points of a model (default: the SD1.5 shape; ``--model wan``: Wan 2.1
T2V 1.3B's transformer; both without weights), by name."""
from __future__ import annotations

from .arguments import UsageError, add_command
from .model import add_model_arguments, check_model_paths, model_spec


def register(subparsers) -> None:
    p = add_command(subparsers, "points", "list the hook points of a model (default: SD1.5 shape, no weights; "
                    "--model wan: the Wan 2.1 T2V 1.3B transformer's, no weights)")
    p.add_argument("--pattern", help="glob, e.g. 'up_blocks.1.*.query'")
    add_model_arguments(p)
    p.set_defaults(func=run)


def run(args) -> int:
    if args.model not in SHAPES:
        check_model_paths(model_spec(args))
    from ..hooks import hook_points, list_hook_points
    if args.model in (None, "sd15"):
        from ..models.tiny import sd15_motion_unet
        unet = sd15_motion_unet()
    elif args.model == "wan":
        from ..models.tiny_wan import wan_1_3b_transformer
        unet = wan_1_3b_transformer()
    else:
        from .model import load_model
        unet = load_model(model_spec(args)).unet
    chosen = set(list_hook_points(unet, pattern=args.pattern))
    if not chosen:
        raise UsageError(_no_point_message(args.pattern, [p.name for p in hook_points(unet)]))
    for p in hook_points(unet):
        if p.name in chosen:
            print(f"{p.name:<60} {p.short:<15} {p.kind:<16} {p.layout:<6} C={p.channels:<5} 1/{p.downscale}"
                  + (f" heads={p.heads}" if p.heads else ""))
    return 0


# model shapes built on the meta device (no weights, nothing to check on disk)
SHAPES = (None, "sd15", "wan")


def _no_point_message(pattern: str, names: list[str]) -> str:
    """--pattern matched nothing: the pattern with each unknown part replaced by the closest known one (if
    that matches), else the closest names; and the prefixes the names start with."""
    import difflib
    import fnmatch
    parts = {part for n in names for part in n.split(".")}
    fixed = ".".join(part if any(c in part for c in "*?[") or part in parts
                     else next(iter(difflib.get_close_matches(part, parts, n=1)), part) for part in pattern.split("."))
    hits = [n for n in names if fnmatch.fnmatchcase(n, fixed)] if fixed != pattern else []
    close = [fixed] if hits else difflib.get_close_matches(pattern, names, n=3, cutoff=0.5)
    prefixes = _prefixes(names)
    unet = names[0].startswith("down_blocks")
    example = "'up_blocks.1.*.query'" if unet else "'blocks.3.*', 'b3.sa.q'"
    return (f"--pattern {pattern!r} matches no hook point"
            + (f"; did you mean {fixed!r} ({len(hits)} points)?" if hits else
               f"; closest: {', '.join(close)}" if close else "")
            + f"; names start with {prefixes} (a glob: * matches any part, e.g. {example}; "
            f"`anyi2v-lab points{'' if unet else ' --model wan'}` lists them all)")


def _prefixes(names: list[str]) -> str:
    """``up_blocks.1, mid_block, ...``; a run of numbered blocks as ``blocks.0 .. blocks.29``."""
    heads: dict[str, list[int]] = {}
    for n in names:
        parts = n.split(".")
        indexed = len(parts) > 1 and parts[1].isdigit()
        heads.setdefault(parts[0], []).extend([int(parts[1])] if indexed else [])
    out = []
    for head, numbers in heads.items():
        ids = sorted(set(numbers))
        if len(ids) > 4 and ids == list(range(ids[0], ids[-1] + 1)):
            out.append(f"{head}.{ids[0]} .. {head}.{ids[-1]}")
        else:
            out += [f"{head}.{i}" for i in ids] if ids else [head]
    return ", ".join(out)
