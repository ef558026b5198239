"""Atomic output: nothing half-written, nothing the user made overwritten silently."""
from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | os.PathLike, overwrite: bool = True):
    """Yield a temporary path in the target's folder; on success it replaces ``path`` in one rename.

    With ``overwrite=False`` an existing target is an error raised before any work is done.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True or choose another path")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield tmp
        # mkstemp makes the file private (0600); the result gets the mode any new file would (0666 - umask),
        # so a saved trajectory or cache is as readable as the user's other files
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_json(path: str | os.PathLike, obj, indent: int = 1) -> None:
    """``obj`` as JSON at ``path``, written through :func:`atomic_path` (a reader never sees half a file)."""
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(obj, indent=indent) + "\n")


def listed_path(value: str, folder: str | os.PathLike) -> Path:
    """A path listed in a file that lives in ``folder`` (a batch jobs file, an evaluation manifest,
    DragAnything's ``mask_name``): relative to that folder unless absolute. It may lead out of the folder
    (``../data/x.png``, ``/datasets/x.png``): datasets live elsewhere, and reading a file grants nothing
    the user could not read anyway. It is returned absolute, ``..`` and symlinks resolved, as recorded."""
    return (Path(folder).absolute() / value).resolve()


def missing_path_message(named: str, path: str | os.PathLike) -> str:
    """``{named} does not exist`` (``named`` says which argument, e.g. ``--model '/x'``), with the closest
    names in the path's folder, or the folder that is missing too."""
    import difflib

    path = Path(path).expanduser()
    msg = f"{named} does not exist"
    if path.parent.is_dir():
        close = difflib.get_close_matches(path.name, [p.name for p in path.parent.iterdir()], n=3, cutoff=0.6)
        msg += f"; did you mean {' or '.join(repr(str(path.parent / c)) for c in close)}?" if close else ""
    else:
        msg += f" (nor does its folder {str(path.parent)!r})"
    return msg
