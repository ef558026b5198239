"""A saved run (the run.json ``generate`` writes) that ``generate --from-run`` redoes: every field it reads
checked before any model loads, and a note where this process cannot redo it bit for bit."""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..validate import reject
from .arguments import UsageError, config_with_overrides

if TYPE_CHECKING:
    from ..method.config import AnyI2VConfig

_NONE = type(None)
# run.json's fields and model fields: (types, what they must be); the other fields (versions, timings,
# losses, files) are records, not read back
_RUN_FIELDS = {"prompt": (str, "a string"), "negative_prompt": ((str, _NONE), "a string or null"),
               "seed": (int, "an integer"), "config": (dict, "an object of config keys"),
               "model": (dict, "an object (the model spec)"), "condition": (str, "a file name in the run's folder"),
               "trajectory": ((str, _NONE), "a file name in the run's folder or null"),
               "trajectory_timing": ((str, _NONE), "a timing name or null"), "threads": ((dict, _NONE), "an object")}
_MODEL_FIELDS = {"model": ((str, _NONE), "a path, hub id, 'tiny' or null"),
                 "checkpoint": ((str, _NONE), "a path or null"), "motion_adapter": ((str, _NONE), "a path or null"),
                 "loras": ((list, _NONE), "a list of [path, scale] pairs"),
                 "device": ((str, _NONE), "a device or null"),
                 "dtype": ((str, _NONE), "a dtype name or null"), "allow_pickle": (bool, "true or false"),
                 "tiny_seed": (int, "an integer")}
_REQUIRED_RUN_FIELDS = ("prompt", "seed", "config", "model", "condition")
_FIX = "fix the file or make the run again"


@dataclass(frozen=True, kw_only=True)
class SavedRun:
    """What ``--from-run`` redoes: a run.json's fields, checked; paths made absolute."""

    config: AnyI2VConfig    # with --set on top
    model: dict             # the model spec; allow_pickle from the command line only
    prompt: str
    negative_prompt: str
    seed: int
    condition: str
    trajectory: str | None
    threads: dict | None    # as recorded (startup.thread_settings)
    versions: dict | None


def read_saved_run(path: str, overrides: list[str], allow_pickle: bool) -> SavedRun:
    """The run saved in ``path``, every field checked, with the config ``overrides`` (``--set``) on top.
    Nothing in the file widens what is trusted: unpickling is allowed by ``allow_pickle`` (``--allow-pickle``
    on this command line) only, whatever run.json says."""
    run_path, where = Path(path), f"--from-run {path!r}"
    if not run_path.is_file():
        raise UsageError(f"{where} " + ("is a folder; give its run.json" if run_path.is_dir() else "does not exist"))
    try:
        run = json.loads(run_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise UsageError(f"{where} is not a run.json written by anyi2v-lab ({e})") from None
    _check_run_json(run, where)
    config = config_with_overrides(run["config"], overrides, where + (" with --set" if overrides else ""))
    if run["model"].get("allow_pickle") and not allow_pickle:
        print(f"note: {run_path} says allow_pickle: true; ignored: only --allow-pickle on the command line allows "
              f"unpickling (it runs code stored in the file), so pass it if you trust the model files it names",
              file=sys.stderr)
    try:
        condition = _in_run_folder(run_path.parent, run["condition"], "condition")
        trajectory = _in_run_folder(run_path.parent, run["trajectory"], "trajectory") if run.get("trajectory") else None
    except UsageError as e:
        raise e.located(where) from None
    return SavedRun(config=config, model={**run["model"], "allow_pickle": allow_pickle}, prompt=run["prompt"],
                    negative_prompt=run.get("negative_prompt") or "", seed=run["seed"], condition=condition,
                    trajectory=trajectory, threads=run.get("threads"), versions=run.get("versions"))


def _is_a(value, types) -> bool:
    types = types if isinstance(types, tuple) else (types,)
    return isinstance(value, types) and not (isinstance(value, bool) and bool not in types)


def _check_fields(d: dict, fields: dict, prefix: str = "") -> None:
    for key, (types, must) in fields.items():
        if key in d and not _is_a(d[key], types):
            reject(prefix + key, d[key], f"is not {must}", _FIX, error=UsageError)


def _check_run_json(run, where: str) -> None:
    """Every field ``--from-run`` reads has its type (exit 2 naming the field, before a model loads)."""
    if not isinstance(run, dict):
        raise UsageError(f"{where} is not a run.json written by anyi2v-lab (not a JSON object)")
    missing = [k for k in _REQUIRED_RUN_FIELDS if k not in run]
    if missing:
        raise UsageError(f"{where} has no field {missing[0]!r}; is it a run.json written by anyi2v-lab?")
    try:
        _check_field_types(run)
    except UsageError as e:
        raise e.located(where) from None


def _check_field_types(run: dict) -> None:
    _check_fields(run, _RUN_FIELDS)
    if not 0 <= run["seed"] < 2**64:
        reject("seed", run["seed"], "must lie in 0..2**64-1", _FIX, error=UsageError)
    unknown = sorted(set(run["model"]) - set(_MODEL_FIELDS))
    if unknown:
        raise UsageError(f"has unknown keys {unknown}; a model spec has {sorted(_MODEL_FIELDS)}", field="model")
    _check_fields(run["model"], _MODEL_FIELDS, prefix="model.")
    for i, item in enumerate(run["model"].get("loras") or []):
        pair = isinstance(item, list) and len(item) == 2
        if not (pair and isinstance(item[0], str) and _is_a(item[1], (int, float))):
            reject(f"model.loras[{i}]", item, "is not a [path, scale] pair", "give each LoRA as [path, scale]",
                   error=UsageError)


def _in_run_folder(folder: Path, name: str, key: str) -> str:
    """``folder / name``, which must stay inside ``folder`` (a run.json names its own files)."""
    path = folder / name
    if Path(name).is_absolute() or not path.resolve().is_relative_to(folder.resolve()):
        reject(key, name, "leaves the run's folder",
               "a run.json names files of its own folder (condition.png, trajectory.json)", error=UsageError)
    return str(path)


def reproducibility_note(saved: SavedRun) -> None:
    """Say so where this process cannot redo the saved run bit for bit: another thread count or versions."""
    from ..outputs import versions
    from ..startup import thread_settings
    now, was = thread_settings()["torch"], (saved.threads or {}).get("torch")
    changed = [f"{was} CPU threads, here {now}"] if was is not None and was != now else []
    old = saved.versions if isinstance(saved.versions, dict) else {}
    current = versions()
    changed += [f"{k} {v}, here {current[k]}" for k, v in old.items() if current.get(k, v) != v]
    if changed:
        print(f"note: the saved run used {'; '.join(changed)}: a rerun is bit-identical only at the same thread "
              f"count (OMP_NUM_THREADS), on the same machine and library versions", file=sys.stderr)
