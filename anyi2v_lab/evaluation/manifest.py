"""Evaluation cases: a JSONL manifest or a VIPSeg-style folder, validated before any model is loaded.

JSONL, one case a line (paths relative to the manifest's folder)::

    {"id": "car", "image": "car.png", "mask": "car_mask.png", "trajectory": "car.json", "prompt": "a car",
     "seed": 0}

``mask`` is one path or a list: a list holds one binary mask per trajectory object (nonzero = object);
one path with a DragAnything trajectory is a label map (object ``"7"`` is the pixels equal to 7). The
``trajectory`` is ours or the reference's (:mod:`anyi2v_lab.trajectory`) or DragAnything's
``{"<mask id>": [[x, y], ...]}`` (a point per frame, pixel-index coordinates). ``id`` (default
``case-<line>``), ``seed`` (0), ``negative_prompt`` and ``set`` (config overrides) are optional. Paths are
relative to the manifest's folder unless absolute, and may lead out of it (``../vipseg/car.png``): they are
resolved when the manifest is read and recorded resolved (:func:`anyi2v_lab.io.listed_path`).

:func:`read_cases` keeps going past a malformed entry (bad JSON, a missing field, a wrong type, a file
that does not exist, a repeated id): it becomes an :class:`InvalidCase`, which the runner records as a
failed case. A manifest that does not exist, holds no entry, or no valid one, is a :class:`ManifestError`.

A folder is laid out as DragAnything's VIPSeg test set: ``imgs/<id>/`` (frames; the first, by number, is
the condition image), ``panomasks/<id>/`` (label maps; the first is used), ``trajectories/<id>.json``
(DragAnything's format), and optionally ``prompts.json``: ``{"<id>": "prompt"}`` or
``{"<id>": {"prompt": ..., "seed": ...}}``.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..io import listed_path
from ..method.config import ConfigError, overrides_from_json


class ManifestError(ValueError):
    """A manifest entry that cannot become a case; the message names the line or case and the field."""


@dataclass(frozen=True)
class EvalCase:
    id: str
    image: str
    mask: tuple[str, ...]
    trajectory: str
    prompt: str
    seed: int = 0
    negative_prompt: str = ""
    overrides: tuple[str, ...] = ()
    where: str = ""


@dataclass(frozen=True)
class InvalidCase:
    """A manifest entry that is not a case: recorded as a failed case under ``id``."""

    id: str
    error: str


_KEYS = {"id", "image", "mask", "trajectory", "prompt", "seed", "negative_prompt", "set"}
_REQUIRED = ("image", "mask", "trajectory", "prompt")


def _file(value, base: Path, field: str, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ManifestError(f"{where}: {field} = {value!r} must be a path (a non-empty string)")
    path = listed_path(value, base)
    if not path.is_file():
        raise ManifestError(f"{where}: {field} = {value!r} does not exist (looked for {path})")
    return str(path)


def _overrides(value, where: str) -> tuple[str, ...]:
    try:
        return overrides_from_json(value)
    except ConfigError as e:
        raise ManifestError(f"{where}: {e}") from None


def _seed(value, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ManifestError(f"{where}: seed = {value!r} must be a non-negative integer")
    return value


def _plain_id(value) -> bool:
    return (isinstance(value, str) and bool(value) and "/" not in value and not value.startswith(".")
            and value != "failed")


def _case_id(value, where: str) -> str:
    if not _plain_id(value):
        raise ManifestError(f"{where}: id = {value!r} must be a plain file name (no '/', not hidden)")
    return value


def parse_case(d, base: Path, where: str, default_id: str) -> EvalCase:
    """One manifest entry (a dict) -> :class:`EvalCase`; raises :class:`ManifestError` naming the field."""
    if not isinstance(d, dict):
        raise ManifestError(f"{where}: a case must be a JSON object, got {type(d).__name__}")
    unknown = sorted(set(d) - _KEYS)
    if unknown:
        raise ManifestError(f"{where}: unknown field(s) {unknown}; a case has {sorted(_KEYS)}")
    for key in _REQUIRED:
        if key not in d:
            raise ManifestError(f"{where}: {key!r} is required (a case has image, mask, trajectory, prompt)")
    for key in ("prompt", "negative_prompt"):
        if not isinstance(d.get(key, ""), str):
            raise ManifestError(f"{where}: {key} = {d[key]!r} must be a string")
    masks = [d["mask"]] if isinstance(d["mask"], str) else d["mask"]
    if not isinstance(masks, list) or not masks:
        raise ManifestError(f"{where}: mask = {d['mask']!r} must be a path or a non-empty list of paths")
    return EvalCase(id=_case_id(d.get("id", default_id), where), image=_file(d["image"], base, "image", where),
                    mask=tuple(_file(m, base, "mask", where) for m in masks),
                    trajectory=_file(d["trajectory"], base, "trajectory", where), prompt=d["prompt"],
                    seed=_seed(d.get("seed", 0), where), negative_prompt=d.get("negative_prompt", ""),
                    overrides=_overrides(d.get("set"), where), where=where)


def _frame_key(p: Path):
    return (0, int(p.stem), p.name) if p.stem.isdigit() else (1, 0, p.name)


def _first_frame(folder: Path, field: str, case_id: str) -> str:
    frames = sorted((p for p in folder.glob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg")), key=_frame_key)
    if not frames:
        raise ManifestError(f"case {case_id!r}: {field}: no .png/.jpg frame in {folder}")
    return str(frames[0])


def _read_folder(root: Path) -> tuple[list[EvalCase], list[InvalidCase]]:
    missing = [d for d in ("imgs", "panomasks", "trajectories") if not (root / d).is_dir()]
    if missing:
        raise ManifestError(f"{root} is a folder but lacks {missing}; a VIPSeg-style folder has imgs/<id>/, "
                            "panomasks/<id>/ and trajectories/<id>.json (or pass a JSONL manifest)")
    prompts = {}
    if (root / "prompts.json").is_file():
        prompts = json.loads((root / "prompts.json").read_text(encoding="utf-8"))
        if not isinstance(prompts, dict):
            raise ManifestError(f"{root / 'prompts.json'} must map case ids to prompts")
    cases, invalid = [], []
    for traj in sorted((root / "trajectories").glob("*.json")):
        cid = traj.stem
        try:
            entry = prompts.get(cid, "")
            entry = {"prompt": entry} if isinstance(entry, str) else entry
            if not isinstance(entry, dict):
                raise ManifestError(f"prompts.json: {cid!r} = {entry!r} must be a prompt or {{'prompt', 'seed'}}")
            d = {"id": cid, "image": _first_frame(root / "imgs" / cid, "imgs", cid),
                 "mask": _first_frame(root / "panomasks" / cid, "panomasks", cid), "trajectory": str(traj),
                 "prompt": entry.get("prompt", ""), **{k: v for k, v in entry.items() if k != "prompt"}}
            cases.append(parse_case(d, Path("/"), f"case {cid!r}", cid))
        except ManifestError as e:
            invalid.append(InvalidCase(id=cid, error=str(e)))
    if not cases and not invalid:
        raise ManifestError(f"{root / 'trajectories'} holds no <id>.json: nothing to evaluate")
    return cases, invalid


def _read_jsonl(path: Path) -> tuple[list[EvalCase], list[InvalidCase]]:
    cases, invalid, seen, entries = [], [], set(), 0
    for n, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        entries += 1
        where, default = f"{path.name} line {n}", f"case-{n:04d}"
        d = None
        try:
            try:
                d = json.loads(text)
            except ValueError as e:
                raise ManifestError(f"{where}: not valid JSON ({e})") from None
            case = parse_case(d, path.parent, where, default)
            if case.id in seen:
                raise ManifestError(f"{where}: id {case.id!r} is used by an earlier case; ids name report files")
        except ManifestError as e:
            # recorded under the entry's id when it is a free, plain name (its next success clears the record)
            cid = d.get("id", default) if isinstance(d, dict) else None
            ok = _plain_id(cid) and cid not in seen
            invalid.append(InvalidCase(id=cid if ok else f"line-{n:04d}", error=str(e)))
            seen.add(invalid[-1].id)
            continue
        seen.add(case.id)
        cases.append(case)
    if not entries:
        raise ManifestError(f"manifest {path} holds no case (only blank lines and comments)")
    return cases, invalid


def read_cases(path: str | os.PathLike) -> tuple[list[EvalCase], list[InvalidCase]]:
    """Every case of a JSONL manifest or a VIPSeg-style folder, and each malformed entry as an
    :class:`InvalidCase` (recorded as failed, never silently dropped: that would bias the mean). Blank
    lines and ``#`` comments are skipped; ids must be unique. A manifest that does not exist, is empty or
    holds no valid case raises :class:`ManifestError`."""
    path = Path(path)
    if path.is_dir():
        cases, invalid = _read_folder(path)
    elif path.is_file():
        cases, invalid = _read_jsonl(path)
    else:
        raise ManifestError(f"manifest {path} does not exist; pass a JSONL file or a VIPSeg-style folder")
    if not cases:
        raise ManifestError(f"manifest {path} holds no valid case; the first error: {invalid[0].error}")
    return cases, invalid


def read_manifest(path: str | os.PathLike) -> list[EvalCase]:
    """Every case of a manifest (see :func:`read_cases`); any malformed entry is a :class:`ManifestError`
    naming it."""
    cases, invalid = read_cases(path)
    if invalid:
        raise ManifestError(invalid[0].error)
    return cases


# ---- a case's inputs --------------------------------------------------------------------------------

def _read_image(path: str) -> np.ndarray:
    from PIL import Image
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _read_labels(path: str) -> np.ndarray:
    from PIL import Image
    with Image.open(path) as im:
        a = np.asarray(im)
    if a.ndim == 3:
        if not (a[..., :3] == a[..., :1]).all():
            raise ManifestError(f"mask {path}: a colour label map is ambiguous; save the ids as a single-channel PNG")
        a = a[..., 0]
    return a


def _binary(path: str) -> np.ndarray:
    a = _read_labels(path)
    return a > (127 if a.max() > 1 else 0)


def _is_points_format(d) -> bool:
    return isinstance(d, dict) and bool(d) and all(re.fullmatch(r"-?\d+", str(k)) for k in d)


def _points_trajectory(d: dict, labels: np.ndarray, case: EvalCase):
    """DragAnything's ``{id: [[x, y], ...]}`` -> our Trajectory (box = the id's mask box, path = the points
    moved to pixel centres) and the per-object masks."""
    from ..trajectory import ObjectTrack, Trajectory

    H, W = labels.shape
    objects, masks = [], []
    for key, pts in d.items():
        m = labels == int(key)
        if not m.any():
            raise ManifestError(f"{case.where}: trajectory object {key!r} has no pixel in the mask label map "
                                f"{case.mask[0]} (labels present: {np.unique(labels)[:12].tolist()})")
        a = np.asarray(pts, dtype=np.float64)
        if a.ndim != 2 or a.shape[1] != 2 or len(a) < 1 or not np.isfinite(a).all():
            raise ManifestError(f"{case.where}: trajectory[{key!r}] must be a list of [x, y] points, "
                                f"got shape {a.shape}")
        rows, cols = np.nonzero(m)
        box = (float(cols.min()), float(rows.min()), float(cols.max() + 1), float(rows.max() + 1))
        objects.append(ObjectTrack(box, tuple(map(tuple, a + 0.5)), name=str(key)))
        masks.append(m)
    return Trajectory(tuple(objects), (W, H)), np.stack(masks)


def load_case(case: EvalCase):
    """``(image (H, W, 3) uint8, masks (O, H, W) bool, Trajectory in the image's pixels)``."""
    from ..trajectory import Trajectory

    image = _read_image(case.image)
    H, W = image.shape[:2]
    try:
        d = json.loads(Path(case.trajectory).read_text(encoding="utf-8"))
    except ValueError as e:
        raise ManifestError(f"{case.where}: trajectory {case.trajectory}: not valid JSON ({e})") from None
    if _is_points_format(d):
        if len(case.mask) != 1:
            raise ManifestError(f"{case.where}: a DragAnything trajectory needs one label-map mask, "
                                f"got {len(case.mask)}")
        labels = _read_labels(case.mask[0])
        if labels.shape != (H, W):
            raise ManifestError(f"{case.where}: mask {case.mask[0]} is {labels.shape[1]}x{labels.shape[0]} but the "
                                f"image is {W}x{H}")
        traj, masks = _points_trajectory(d, labels, case)
        return image, masks, traj
    traj = Trajectory.from_json(d, image_size=(W, H) if "bounding_box" in d else None)
    if tuple(traj.image_size) != (W, H):
        raise ManifestError(f"{case.where}: trajectory image_size {list(traj.image_size)} differs from the image's "
                            f"{[W, H]}; draw it on the condition image")
    if len(case.mask) != len(traj.objects):
        raise ManifestError(f"{case.where}: mask lists {len(case.mask)} file(s) for {len(traj.objects)} trajectory "
                            f"object(s); give one binary mask per object, in the trajectory's order")
    masks = np.stack([_binary(p) for p in case.mask])
    if masks.shape[1:] != (H, W):
        raise ManifestError(f"{case.where}: masks are {masks.shape[2]}x{masks.shape[1]} but the image is {W}x{H}")
    return image, masks, traj
