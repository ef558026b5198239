"""Compiled code kept across processes: Inductor's cache artefacts saved once, loaded by every later process.

A compiling runtime (``compile`` or ``compile_inversion``, Inductor backend) loads, before its first
generation in a process, every artefact file in its cache folder into Inductor's and AOTAutograd's
on-disk caches (``torch.compiler.load_cache_artifacts``); after a generation that compiled something
the caches did not hold, it writes what the process compiled (``torch.compiler.save_cache_artifacts``)
as one more file. The first process on a machine pays the compilation, later ones find its graphs;
the folder can be copied to another machine with the same GPU, torch and model code.

The folder: ``Runtime(compile_cache=...)`` when a path, else ``$ANYI2V_COMPILE_CACHE``, else
``$XDG_CACHE_HOME/anyi2v-lab/compile`` (``~/.cache/...``); one subfolder per torch version. Files are
named by their content's hash and written whole (a temporary file, then a rename), so processes
running side by side never read half a file. Dynamo still traces each block in a fresh process:
loaded artefacts save Inductor's and Triton's compilation, not the tracing.
"""
from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import torch

_LOADED: set[Path] = set()  # artefact files loaded into this process's caches
_SAVED_AT: dict[Path, int] = {}  # cache misses of this process when it last saved to a folder


def cache_folder(setting: bool | str) -> Path | None:
    """The artefact folder of ``Runtime.compile_cache`` (``None`` when off)."""
    if setting is False:
        return None
    if isinstance(setting, str):
        base = Path(setting).expanduser()
    elif os.environ.get("ANYI2V_COMPILE_CACHE"):
        base = Path(os.environ["ANYI2V_COMPILE_CACHE"]).expanduser()
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "anyi2v-lab" / "compile"
    return base / f"torch-{torch.__version__}"


def cache_misses() -> int:
    """Graphs this process compiled because the on-disk caches lacked them (Inductor and AOTAutograd)."""
    from torch._dynamo.utils import counters

    return int(counters["inductor"]["fxgraph_cache_miss"] + counters["aot_autograd"]["autograd_cache_miss"])


def load_artifacts(folder: Path | None) -> int:
    """Load each artefact file of ``folder`` not yet loaded in this process; the number loaded."""
    if folder is None or not folder.is_dir():
        return 0
    loaded = 0
    for path in sorted(folder.glob("*.bin")):
        if path in _LOADED:
            continue
        _LOADED.add(path)
        try:
            torch.compiler.load_cache_artifacts(path.read_bytes())
            loaded += 1
        except Exception as e:  # noqa: BLE001 - a damaged or foreign file costs a compile, not the run
            warnings.warn(f"compile cache: {path} not loaded ({type(e).__name__}: {e})", stacklevel=2)
    _SAVED_AT.setdefault(folder, cache_misses())
    return loaded


def save_artifacts(folder: Path | None) -> Path | None:
    """Write this process's artefacts to ``folder`` when it compiled something new since it loaded or
    last saved there; the file written, or ``None``."""
    if folder is None or cache_misses() <= _SAVED_AT.get(folder, 0):
        return None
    _SAVED_AT[folder] = cache_misses()
    saved = torch.compiler.save_cache_artifacts()
    if saved is None:
        return None
    data = saved[0]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"artifacts-{hashlib.sha256(data).hexdigest()[:20]}.bin"
    if not path.exists():
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
    _LOADED.add(path)  # its graphs are in this process's caches already
    return path
