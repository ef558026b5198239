"""Verdicts of the parity harness (``reference_parity.py``), computed from the numbers; no torch.

A stage's difference against the reference is judged against the **floor**: the same stage of our code
against itself under a perturbation that changes only rounding (another kernel set, a 1-ulp nudge of the
initial noise). Each stage carries measures of both comparisons (``rel``: ||a - b|| / ||b||; ``max_rel``:
max |a - b| / max |b|; ``flips``: latent elements half a sign step or more apart; ``cells``: mask cells
that differ). A stage is

- ``noise``: every measure of the reference difference is at most ``FACTOR`` (2) times the floor's (floors
  of continuous measures are at least one float32 rounding, ``MIN_FLOOR``);
- ``explained by deviation N`` (or several): it is not noise in this run, but it is in the run whose
  switched deviations add exactly N to this run's (a deviation of ``docs/method.md`` switched to the
  reference's rule on one side) and nothing smaller does;
- ``unexplained``: neither.

Along a loop (the denoising steps, the optimisation's iterations: ``chains``) a stage after one above its
floor is not noise (:func:`floor_flags`), and the harness raises each floor to the largest before it
(:func:`running_floor`): when rounding tips a near-tie varies from run to run.

Deviation numbers are read from ``docs/method.md``'s table "Where we differ from the reference
implementation", by a phrase of the row (``DEVIATIONS``), so a renumbering there cannot go stale here.
"""
from __future__ import annotations

import math
import re
from pathlib import Path

# a difference within twice the measured rounding floor is rounding: the reference's kmeans_pytorch moves
# some stages by 4 times the floor, which must not pass (docs/lab-notes.md, 2026-12-08)
FACTOR = 2.0
# one float32 rounding of the largest element: the floor of a continuous measure is never below it
MIN_FLOOR = {"rel": 2.0 ** -23, "max_rel": 2.0 ** -23, "flips": 0, "cells": 0}

METHOD_MD = Path(__file__).resolve().parents[1] / "docs" / "method.md"
TABLE_HEADING = "## Where we differ from the reference implementation"
# our name of a deviation: a phrase found in exactly one row of that table
DEVIATIONS = {
    "vae_mean": "VAE posterior mean",
    "canvas_size": "512 x 512 hard-coded",
    "pca_solver": "`torch_pca`, randomized",
    "kmeans": "`kmeans_pytorch` with an unseeded random start",
    "object_masks": "object 0's mask used for all objects",
    "clipped_mask": "squeezed into the visible part",
    "query_offsets": "query offsets scaled with the box",
    "query_cell": "`floor((p - box)/4)`",
    "cpu_noise": "CUDA `torch.randn`",
    "motion_norm": "AnimateDiff's original modules normalise each frame alone",
}


def deviation_numbers(text: str | None = None) -> dict[str, int]:
    """Each name of ``DEVIATIONS`` with its row number in docs/method.md's deviations table."""
    text = METHOD_MD.read_text() if text is None else text
    if TABLE_HEADING not in text:
        raise ValueError(f"docs/method.md has no heading {TABLE_HEADING!r}: the deviations table moved")
    section = text.split(TABLE_HEADING, 1)[1].split("\n## ", 1)[0]
    rows = {int(m.group(1)): m.group(0) for m in re.finditer(r"^\| (\d+) \|.*$", section, re.M)}
    numbers = {}
    for name, phrase in DEVIATIONS.items():
        hits = [n for n, row in rows.items() if phrase in row]
        if len(hits) != 1:
            raise ValueError(f"deviation {name!r}: the phrase {phrase!r} is in {len(hits)} rows of docs/method.md's "
                             "deviations table (want exactly 1): update DEVIATIONS in benchmarks/parity_verdicts.py")
        numbers[name] = hits[0]
    return numbers


def at_floor(ref: dict, floor: dict, factor: float | None = None) -> bool:
    """Whether every measure of the reference difference is within ``factor`` (default ``FACTOR``) times
    the floor's."""
    factor = FACTOR if factor is None else factor
    for key, value in ref.items():
        if key not in MIN_FLOOR:
            continue
        if key not in floor:
            raise ValueError(f"the floor has no measure {key!r} (it has {sorted(floor)}): measure both alike")
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return False
        if value > factor * max(floor[key] or 0, MIN_FLOOR[key]):  # a floor stage that failed: the minimum
            return False
    return True


def floor_flags(run: dict, chains: tuple[str, ...] = ()) -> dict[str, bool]:
    """Whether each stage of ``run`` is at the floor. A stage of a chain (stages whose names start with one
    of ``chains``, in run order: the denoising steps, the optimisation's iterations) is at the floor only
    if every earlier stage of its chain is: a later stage is computed from the state that diverged."""
    flags = {s: at_floor(row["ref"], row["floor"]) for s, row in run["stages"].items()}
    for prefix in chains:
        diverged = False
        for s in [s for s in flags if s.startswith(prefix)]:
            diverged = diverged or not flags[s]
            flags[s] = not diverged
    return flags


def verdict(stage: str, run: dict, runs: list[dict], flags: dict[str, dict[str, bool]]) -> dict:
    """The verdict of ``stage`` in ``run``; ``runs``: every run of the same case, each ``{"name",
    "switched": deviation numbers, "stages": {stage: {"ref": measures, "floor": measures}}}``; ``flags``:
    :func:`floor_flags` of each run, by name."""
    if flags[run["name"]][stage]:
        return {"verdict": "noise"}
    base = set(run["switched"])
    candidates = []
    for other in runs:
        added = set(other["switched"]) - base
        if not added or not base <= set(other["switched"]) or stage not in other["stages"]:
            continue
        if flags[other["name"]][stage]:
            candidates.append((len(added), sorted(added), other["name"]))
    if not candidates:
        return {"verdict": "unexplained"}
    size, added, name = min(candidates)
    if any(len(c[1]) == size and c[1] != added for c in candidates):
        # two different switch sets of the same size each bring it to the floor: either one explains it
        added = sorted({n for c in candidates if len(c[1]) == size for n in c[1]})
    words = "deviation" if len(added) == 1 else "deviations"
    return {"verdict": f"explained by {words} {', '.join(map(str, added))}", "deviations": added, "by_run": name}


def verdicts(runs: list[dict], chains: tuple[str, ...] = ()) -> dict[str, dict[str, dict]]:
    """``{run name: {stage: verdict}}`` for every stage of every run."""
    flags = {run["name"]: floor_flags(run, chains) for run in runs}
    return {run["name"]: {stage: verdict(stage, run, runs, flags) for stage in run["stages"]} for run in runs}


def unexplained(all_verdicts: dict[str, dict[str, dict]]) -> list[tuple[str, str]]:
    """The (run, stage) pairs whose verdict is "unexplained"."""
    return [(r, s) for r, stages in all_verdicts.items() for s, v in stages.items() if v["verdict"] == "unexplained"]


def same_verdicts(a: dict[str, dict[str, dict]], b: dict[str, dict[str, dict]]) -> list[str]:
    """Where two reports' verdicts differ (an empty list: the same verdicts)."""
    out = []
    for run in sorted(set(a) | set(b)):
        sa, sb = a.get(run, {}), b.get(run, {})
        for stage in sorted(set(sa) | set(sb)):
            va, vb = sa.get(stage, {}).get("verdict"), sb.get(stage, {}).get("verdict")
            if va != vb:
                out.append(f"{run} / {stage}: {va} against {vb}")
    return out



def running_floor(floors: list[dict]) -> list[dict]:
    """The floors of a chain of stages (the optimisation's iterations, the denoising steps), each raised to
    the largest of the stages before it: when rounding tips a near-tie (a mask cell, a gradient's sign)
    varies from run to run, so a floor run that tipped one at iteration 6 shows what one at iteration 8 is."""
    out, top = [], {}
    for f in floors:
        top = {k: max(v, top.get(k, v)) if isinstance(v, (int, float)) else v for k, v in f.items()}
        out.append(dict(top))
    return out
