"""The parity harness's verdict logic on synthetic stage numbers (no reference, no model)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
import parity_verdicts as pv  # noqa: E402


def measures(rel, flips=0, cells=0):
    return {"rel": rel, "max_rel": rel * 3, "flips": flips, "cells": cells}


FLOOR = measures(1e-6, flips=2, cells=1)


def chain():
    """Three runs of one comparison: as shipped, deviation 21 switched, then 12 and 14 as well."""
    def run(name, switched, stages):
        return {"name": name, "switched": set(switched),
                "stages": {s: {"ref": ref, "floor": FLOOR} for s, ref in stages.items()}}
    return [
        run("shipped", [], {"at floor": measures(1.5e-6, flips=3, cells=2), "motion": measures(0.05, flips=400),
                            "clip": measures(0.02, cells=40), "open": measures(0.01)}),
        run("norm", [21], {"at floor": measures(1e-6), "motion": measures(1.2e-6, flips=3),
                           "clip": measures(0.02, cells=40), "open": measures(0.01)}),
        run("norm+clip", [21, 12, 14], {"at floor": measures(1e-6), "motion": measures(1.2e-6),
                                        "clip": measures(1.5e-6, cells=2), "open": measures(0.01)}),
    ]


def test_a_difference_at_the_floor_is_noise():
    v = pv.verdicts(chain())
    assert v["shipped"]["at floor"] == {"verdict": "noise"}
    assert v["norm+clip"]["motion"]["verdict"] == "noise"


def test_a_difference_removed_by_a_deviation_run_is_explained_by_it():
    v = pv.verdicts(chain())
    assert v["shipped"]["motion"] == {"verdict": "explained by deviation 21", "deviations": [21], "by_run": "norm"}
    # from the shipped run the clip stage needs all three switches; from the norm run, 12 and 14
    assert v["shipped"]["clip"]["deviations"] == [12, 14, 21]
    assert v["norm"]["clip"]["verdict"] == "explained by deviations 12, 14"


def test_a_difference_no_run_removes_is_unexplained():
    v = pv.verdicts(chain())
    assert {r: v[r]["open"]["verdict"] for r in v} == dict.fromkeys(v, "unexplained")
    assert pv.unexplained(v) == [("shipped", "open"), ("norm", "open"), ("norm+clip", "open")]


def test_the_floor_has_a_float32_minimum_and_counts_have_none():
    zero = measures(0.0)
    assert pv.at_floor(measures(5e-8), zero)  # within 2 roundings (1.2e-7 each) of a zero floor
    assert not pv.at_floor(measures(1e-6), zero)
    assert not pv.at_floor(measures(0.0, flips=1), zero)  # a flip the floor never shows is not rounding
    assert pv.at_floor(measures(0.0, flips=4), measures(0.0, flips=2))
    assert not pv.at_floor(measures(0.0, flips=5), measures(0.0, flips=2))
    assert not pv.at_floor(measures(float("nan")), zero)
    with pytest.raises(ValueError, match="'cells'"):
        pv.at_floor({"cells": 1}, {"rel": 0.0})


def test_same_verdicts_names_each_disagreement():
    a = pv.verdicts(chain())
    b = pv.verdicts(chain())
    assert pv.same_verdicts(a, b) == []
    b["norm"]["motion"] = {"verdict": "unexplained"}
    assert pv.same_verdicts(a, b) == ["norm / motion: noise against unexplained"]


def test_deviation_numbers_come_from_the_method_document():
    numbers = pv.deviation_numbers()
    assert numbers["motion_norm"] == 21 and numbers["kmeans"] == 10 and numbers["pca_solver"] == 8
    table = "## Where we differ from the reference implementation\n\n| 3 | VAE posterior mean | x | y |\n"
    with pytest.raises(ValueError, match="'canvas_size'.*0 rows"):
        pv.deviation_numbers(table)


def test_a_chains_floor_keeps_the_largest_so_far():
    floors = [measures(1e-6), measures(2e-6, cells=1), measures(1e-6)]
    assert [f["cells"] for f in pv.running_floor(floors)] == [0, 1, 1]
    assert [f["rel"] for f in pv.running_floor(floors)] == [1e-6, 2e-6, 2e-6]


def test_a_chain_stage_after_a_divergence_is_not_noise():
    run = {"name": "r", "switched": set(), "stages": {
        f"latent {i}": {"ref": measures(rel), "floor": FLOOR} for i, rel in enumerate([1e-6, 5e-5, 1e-6])}}
    assert list(pv.floor_flags(run).values()) == [True, False, True]
    assert list(pv.floor_flags(run, ("latent",)).values()) == [True, False, False]
    assert pv.verdicts([run], ("latent",))["r"]["latent 2"]["verdict"] == "unexplained"
