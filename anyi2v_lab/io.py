"""Atomic output: nothing half-written, nothing the user made overwritten silently.

A path being written is claimed first (:func:`exclusive_claim`: one process at a time, the others refused
at once), written under a temporary name beside it, and moved into place in one rename that does not
replace what appeared meanwhile (:func:`rename_noreplace`). A symbolic link given as the path is followed:
the result is written where it points and the link stays.
"""
from __future__ import annotations

import ctypes
import errno
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # not POSIX: claims are not taken
    fcntl = None

LOCK_SUFFIX = ".anyi2v-lab.lock"
_RENAME_NOREPLACE, _RENAME_EXCHANGE, _AT_FDCWD = 1, 2, -100


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def followed(path: str | os.PathLike) -> Path:
    """``path`` with symbolic links followed (where a link points, whether or not that exists yet)."""
    return Path(os.path.realpath(path)) if Path(path).is_symlink() else Path(path)


def _renameat2(src, dst, flags: int) -> bool:
    """renameat2(2); False where this system lacks it or the flag (not Linux, old libc, kernel or file
    system), so that the caller falls back. Other failures raise the matching OSError."""
    try:
        call = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    call.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if call(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), flags) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), os.fspath(dst))


def rename_noreplace(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Move ``src`` to ``dst`` in one step that raises FileExistsError where ``dst`` exists.

    Without renameat2 a file is hard-linked (which fails where ``dst`` exists) and a folder renamed,
    which the kernel allows only onto nothing or an empty folder: nobody's files are replaced either way.
    """
    if _renameat2(src, dst, _RENAME_NOREPLACE):
        return
    try:
        if os.path.isdir(src):
            os.rename(src, dst)
        else:
            os.link(src, dst)
            os.unlink(src)
    except OSError as e:
        if e.errno in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR, errno.EISDIR):
            raise FileExistsError(errno.EEXIST, "exists", os.fspath(dst)) from None
        raise


def exchange(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Swap two existing paths in one step (renameat2 RENAME_EXCHANGE); False where not available."""
    return _renameat2(a, b, _RENAME_EXCHANGE)


class PathBusy(FileExistsError):
    """Another process is writing this path (it holds the claim); raised at once, never waited for."""


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False


def _holder(fd: int) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    pid = os.read(fd, 32).decode(errors="replace").strip()
    return f" (pid {pid})" if pid.isdigit() else ""


@contextmanager
def exclusive_claim(path: str | os.PathLike, named: str | None = None):
    """Hold the claim on ``path`` (a file or folder about to be written) while the block runs.

    One process at a time: another one asking is refused at once with :class:`PathBusy`, whose message
    names ``named`` (default: the path). The claim is an flock(2) on ``.NAME.anyi2v-lab.lock`` beside
    ``path`` (its folder must exist). The kernel drops it when its process ends, however it ends, so a
    lock file left by a killed process never blocks anyone.
    """
    path = Path(path)
    if fcntl is None:
        yield
        return
    lock = path.with_name(f".{path.name}{LOCK_SUFFIX}")
    for _ in range(100):  # a holder removes the file when it is done: lock the file that is there now
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise PathBusy(f"{named or repr(str(path))} is being written by another process{holder}; choose "
                           f"another --out, or wait until that one has finished") from None
        if _same_file(fd, lock):
            break
        os.close(fd)
    else:
        raise RuntimeError(f"could not take the lock {str(lock)!r}: it keeps being replaced")
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        try:
            os.unlink(lock)  # while still locked: a process that opened it meanwhile sees it gone and retries
        except FileNotFoundError:
            pass
        os.close(fd)


@contextmanager
def parents_made(path: str | os.PathLike, named: str | None = None):
    """Create the folders above ``path`` for the block; those still empty afterwards are removed again
    (a refused or failed run leaves none). A folder that cannot be made is a PermissionError naming
    ``named`` (default: the path)."""
    path = Path(path).absolute()
    made = [p for p in reversed(path.parents) if not p.exists()]  # outermost first
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise PermissionError(f"{named or repr(str(path))}: cannot create {str(path.parent)!r} "
                              f"({e.strerror or e}); choose another --out") from None
    try:
        yield
    finally:
        for folder in reversed(made):
            try:
                folder.rmdir()
            except OSError:  # not empty (the result is there) or gone
                break


@contextmanager
def atomic_path(path: str | os.PathLike, overwrite: bool = True):
    """Yield a temporary path in the target's folder; on success it becomes ``path`` in one rename.

    With ``overwrite=False`` an existing target is an error raised before any work is done, and the
    final rename does not replace a file that appeared meanwhile. A symbolic link is followed.
    """
    path = followed(path)
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
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                rename_noreplace(tmp, path)
            except FileExistsError:
                raise FileExistsError(f"{path} was created by someone else while this was being written; it "
                                      f"is left as it is") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_json(path: str | os.PathLike, obj, indent: int = 1) -> None:
    """``obj`` as JSON at ``path``, written through :func:`atomic_path` (a reader never sees half a file)."""
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(obj, indent=indent) + "\n")


def check_writable_place(path: Path, named: str, not_folder_error: type[Exception]) -> None:
    """Refuse, before any work, a ``path`` whose nearest existing ancestor is a file (``not_folder_error``)
    or a folder this process cannot write into (PermissionError); ``named`` says which argument it is."""
    parent = next((p for p in path.absolute().parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise not_folder_error(f"{named}: {str(parent)!r} is a file, not a folder")
    if parent is not None and not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(f"{named}: {str(parent)!r} is not writable; choose another --out")


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
