"""Run an evaluation: generate each case, track its objects, write a report a case and a summary.

``<out>/cases/<id>.json`` is written atomically when a case is finished, with ``made_with``: its
:class:`~anyi2v_lab.resume.ResultKey`, a digest of the bytes of its image, masks and trajectory, its
prompts, seed, effective config, model, runtime and tracker. A rerun (after an interrupt, a crash, or
with other settings) skips a case only when its report holds the key the case has now; a case whose
files or settings changed (or whose report has no key) is run again, the log says what changed, and the
new report replaces the old one when it is written. So ``<out>/summary.json`` never mixes settings: it
pools the reports made with this run's settings (``settings``; each case's digest in ``digests``), with
seeds, tracker and versions. A failing case (a malformed manifest entry, a bad file, an out-of-memory
error) is written to ``<out>/failed/<id>.json`` and the others go on. Processes sharing ``--out`` claim
each case with a lock (:class:`~anyi2v_lab.resume.JobLock`); a case another process is running is left
to it and listed in ``running_elsewhere`` unless its report is there by the time the summary is written.
"""
from __future__ import annotations

import json
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..resume import LOCKS, JobLock, ResultKey, RunSettings
from ..trajectory import Trajectory
from .manifest import EvalCase, load_case, read_cases
from .objmc import objmc_on_video
from .tracker import PointTracker

DEFINITION = ("ObjMC (DragAnything): mean Euclidean distance in pixels of the condition image between each "
              "object's target trajectory and the point tracked in the generated video from its mask's "
              "inscribed-circle centre, pooled over every frame (frame 0 included) and object of every case")


@dataclass(frozen=True)
class CaseInputs:
    """What a generator gets: the case, its image (H, W, 3) uint8, masks (O, H, W) and Trajectory."""

    case: EvalCase
    image: np.ndarray
    masks: np.ndarray
    trajectory: Trajectory


Generator = Callable[[CaseInputs], np.ndarray]  # -> (F, H, W, 3) uint8 at the image's size


def pipeline_generator(pipe, config=None, runtime=None) -> Generator:
    """Generate with :func:`anyi2v_lab.method.generate` and bring the video back to the condition image's
    size through the inverse of its resize map (DragAnything tracks at the original size too)."""
    from PIL import Image

    from ..method import AnyI2VConfig, generate

    config = config or AnyI2VConfig()

    def run(inputs: CaseInputs) -> np.ndarray:
        case = inputs.case
        cfg = config.with_overrides(list(case.overrides)) if case.overrides else config
        result = generate(pipe, case.image, case.prompt, inputs.trajectory, cfg, negative_prompt=case.negative_prompt,
                          seed=case.seed, progress=False, runtime=runtime)
        back = result.condition.resize_map.inverse()
        return np.stack([np.asarray(back.apply_image(Image.fromarray(f))) for f in result.frames])

    run.info = {"config": config.to_dict()}
    return run


def _finite(obj):
    """NaN (no point seen, no case finished) becomes null: the files stay standard JSON."""
    if isinstance(obj, float):
        return obj if np.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def _write_json(path: Path, obj) -> None:
    from ..io import atomic_path
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(_finite(obj), indent=1, allow_nan=False) + "\n", encoding="utf-8")


def _case_report(case: EvalCase, inputs: CaseInputs, video: np.ndarray, tracker: PointTracker,
                 generate_s: float, bounded_by_frame: bool) -> dict:
    H, W = inputs.image.shape[:2]
    if video.ndim != 4 or video.shape[1:] != (H, W, 3) or video.dtype != np.uint8:
        raise ValueError(f"the generator returned {video.shape} {video.dtype}; expected (F, {H}, {W}, 3) uint8 at "
                         f"the condition image's size")
    tic = time.perf_counter()
    res = objmc_on_video(video, inputs.masks, inputs.trajectory, tracker, bounded_by_frame=bounded_by_frame)
    return {"id": case.id, "seed": case.seed, "prompt": case.prompt, "image": case.image, "mask": list(case.mask),
            "trajectory": case.trajectory, "overrides": list(case.overrides), "size": [W, H],
            "frames": int(video.shape[0]), "objects": [o.name for o in inputs.trajectory.objects],
            "seconds": {"generate": round(generate_s, 3), "track": round(time.perf_counter() - tic, 3)},
            **res.to_dict()}


def summarise(reports: list[dict], failed: list[dict], tracker: str, extra: dict | None = None,
              elsewhere: list[str] = ()) -> dict:
    """Pooled ObjMC over every point of every finished case (DragAnything's number), and per-case statistics."""
    from ..outputs import versions

    d = [np.asarray(r["distances"], dtype=np.float64).ravel() for r in reports]
    vis = [np.asarray(r["visible"], dtype=bool).ravel() for r in reports]
    allp = np.concatenate(d) if d else np.zeros(0)
    seen = np.concatenate([x[v] for x, v in zip(d, vis)]) if d else np.zeros(0)
    per_case = np.array([np.nan if r["objmc"] is None else r["objmc"] for r in reports], dtype=np.float64)
    nan = float("nan")
    stat = lambda f, a: float(f(a)) if a.size else nan  # noqa: E731
    return {"definition": DEFINITION, "objmc": stat(np.mean, allp), "objmc_visible": stat(np.mean, seen),
            "point_median": stat(np.median, allp), "case_mean": stat(np.mean, per_case),
            "case_median": stat(np.median, per_case), "points": int(allp.size),
            "visible_fraction": float(seen.size / allp.size) if allp.size else nan,
            "cases": len(reports) + len(failed) + len(elsewhere), "finished": len(reports), "failed": failed,
            "running_elsewhere": list(elsewhere),
            "per_case": {r["id"]: r["objmc"] for r in reports}, "seeds": {r["id"]: r["seed"] for r in reports},
            "tracker": tracker, **(extra or {}), "versions": versions()}


def _read_report(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _record_failure(out: Path, case_id: str, error: str, detail: str = "") -> dict:
    _write_json(out / "failed" / f"{case_id}.json", {"id": case_id, "error": error, "traceback": detail})
    return {"id": case_id, "error": error}


@dataclass(frozen=True)
class _Run:
    """What every case of one evaluation shares."""

    out: Path
    generate: Generator
    tracker: PointTracker
    settings: RunSettings
    bounded_by_frame: bool

    def key(self, case: EvalCase) -> ResultKey:
        """What the case's report depends on (raises for a missing file or a bad override)."""
        return ResultKey.of({"image": [case.image], "mask": list(case.mask), "trajectory": [case.trajectory]},
                            {"prompt": case.prompt, "negative_prompt": case.negative_prompt, "seed": case.seed,
                             **self.settings.for_job(case.overrides), "tracker": self.tracker.name,
                             "bounded_by_frame": self.bounded_by_frame})


def _run_locked(case: EvalCase, run: _Run, log) -> tuple[str, dict]:
    """("skipped" | "done", report) or ("failed", failure) for a case this process holds the lock of."""
    path = run.out / "cases" / f"{case.id}.json"
    try:
        key = run.key(case)
        old = _read_report(path)
        if old is not None and key.matches(old.get("made_with")):
            log(f"[evaluate] {case.id}: finished before with the same inputs and settings, skipped")
            return "skipped", old
        if old is not None:
            log(f"[evaluate] {case.id}: changed since its report ({'; '.join(key.changes(old.get('made_with')))}); "
                f"running it again (the new report replaces the old)")
        tic = time.perf_counter()
        image, masks, traj = load_case(case)
        inputs = CaseInputs(case, image, masks, traj)
        video = np.asarray(run.generate(inputs))
        report = _case_report(case, inputs, video, run.tracker, time.perf_counter() - tic, run.bounded_by_frame)
        report["made_with"] = key.to_dict()
    except Exception as e:  # noqa: BLE001 - one case's failure must not stop the others
        failure = _record_failure(run.out, case.id, f"{type(e).__name__}: {e}", traceback.format_exc())
        log(f"[evaluate] {case.id}: FAILED ({failure['error']})")
        return "failed", failure
    _write_json(path, report)
    (run.out / "failed" / f"{case.id}.json").unlink(missing_ok=True)
    log(f"[evaluate] {case.id}: ObjMC {report['objmc']:.2f} px ({report['frames']} frames, "
        f"{len(report['objects'])} objects)")
    return "done", report


def _finished_elsewhere(case: EvalCase, run: _Run) -> dict | None:
    """The report another process wrote for ``case`` with the key it has now, if any."""
    report = _read_report(run.out / "cases" / f"{case.id}.json")
    try:
        return report if report is not None and run.key(case).matches(report.get("made_with")) else None
    except (OSError, ValueError):
        return None


def run_evaluation(manifest, out, generate: Generator, tracker: PointTracker | None = None, *,
                   bounded_by_frame: bool = False, log=print) -> dict:
    """Evaluate every case of ``manifest`` (JSONL or VIPSeg-style folder, see :mod:`.manifest`) into
    ``out``; returns the summary (also written to ``<out>/summary.json``). ``generate(CaseInputs)`` returns
    the video at the image's size: :func:`pipeline_generator` for the method, or any callable; its
    ``info`` (``config``, ``model``, ``runtime``), if any, is part of each case's key."""
    from .lucas_kanade import LucasKanadeTracker

    cases, invalid = read_cases(manifest)  # every entry checked before any generation
    tracker = tracker or LucasKanadeTracker()
    if hasattr(tracker, "preflight"):
        tracker.preflight()
    info = getattr(generate, "info", None) or {}
    run = _Run(out=Path(out), generate=generate, tracker=tracker, bounded_by_frame=bounded_by_frame,
               settings=RunSettings(config=info.get("config"), model=info.get("model") or {},
                                    runtime=info.get("runtime")))
    (run.out / "cases").mkdir(parents=True, exist_ok=True)
    log(f"[evaluate] {len(cases) + len(invalid)} cases ({len(invalid)} malformed), tracker {tracker.name}")
    failed = [_record_failure(run.out, c.id, c.error) for c in invalid]
    reports, elsewhere = [], []
    for case in cases:
        lock = JobLock(run.out / LOCKS, case.id)
        if not lock.acquire():
            log(f"[evaluate] {case.id}: running in {lock.holder()}; left to it")
            elsewhere.append(case)
            continue
        try:
            status, result = _run_locked(case, run, log)
        finally:
            lock.release()
        (failed if status == "failed" else reports).append(result)
    late = {c.id: r for c in elsewhere if (r := _finished_elsewhere(c, run)) is not None}
    reports += late.values()
    settings = {**run.settings.to_dict(), "tracker": tracker.name, "bounded_by_frame": bounded_by_frame}
    summary = summarise(reports, failed, tracker.name,
                        {"generator": info or None, "settings": settings,
                         "digests": {r["id"]: r["made_with"]["digest"] for r in reports}},
                        elsewhere=[c.id for c in elsewhere if c.id not in late])
    _write_json(run.out / "summary.json", summary)
    return summary


def tracker_from_args(name: str = "lucas-kanade", checkpoint: str | None = None, device: str = "cpu") -> PointTracker:
    """The CLI's ``--tracker`` / ``--cotracker-checkpoint``."""
    if name == "lucas-kanade":
        from .lucas_kanade import LucasKanadeTracker
        return LucasKanadeTracker()
    if name == "cotracker":
        from .cotracker import CoTrackerTracker
        return CoTrackerTracker(checkpoint, device=device)
    raise ValueError(f"tracker = {name!r} is unknown; use 'lucas-kanade' or 'cotracker'")


def main_evaluate(args, load_model, base_config, runtime, model: dict) -> int:
    """The ``anyi2v-lab evaluate`` command body (the CLI stays a thin parser). Bad input exits 2 before the
    model loads; failed cases exit 1."""
    from .manifest import ManifestError
    from .tracker import TrackerUnavailable

    try:
        read_cases(args.manifest)
        tracker = tracker_from_args(args.tracker, args.cotracker_checkpoint, model.get("device") or "cpu")
        tracker.preflight()
    except (ManifestError, TrackerUnavailable, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    pipe = load_model(model)
    gen = pipeline_generator(pipe, base_config, runtime)
    gen.info = {**gen.info, "model": model, "runtime": getattr(args, "runtime", None)}
    summary = run_evaluation(args.manifest, args.out, gen, tracker, log=lambda m: print(m, flush=True))
    elsewhere = summary["running_elsewhere"]
    print(f"ObjMC {summary['objmc']:.2f} px over {summary['finished']} cases ({summary['points']} points); "
          f"{len(summary['failed'])} failed" + (f"; {len(elsewhere)} running in another process (not counted: "
                                                f"rerun when it ends)" if elsewhere else "")
          + f"; wrote {Path(args.out) / 'summary.json'}", flush=True)
    return 1 if summary["failed"] else 0
