"""The output folder: claimed before any work (one process at a time), moved into place without replacing
what appeared meanwhile, replaced with overwrite only where it holds an earlier run, symbolic links
followed, nothing left behind by a failure, Ctrl-C or SIGTERM."""
import json
import multiprocessing
import os
import signal
from pathlib import Path

import pytest

from anyi2v_lab import io as aio
from anyi2v_lab.io import PathBusy, atomic_path, exclusive_claim, rename_noreplace
from anyi2v_lab.outputs import (
    OutputFolderRefused,
    atomic_folder,
    check_output_folder,
    claim_output_folder,
    foreign_entries,
)


def _earlier_run(folder: Path, extra: tuple[str, ...] = ()) -> Path:
    """A folder as write_run leaves it (run.json lists its files)."""
    folder.mkdir(parents=True)
    (folder / "video.mp4").write_bytes(b"old video")
    (folder / "frames").mkdir()
    (folder / "run.json").write_text(json.dumps({"versions": {"anyi2v_lab": "0"}, "files": ["frames", "run.json",
                                                                                             "video.mp4"]}))
    for name in extra:
        (folder / name).write_text("the user's")
    return folder


def _write(out, text: str = "new", overwrite: bool = False) -> None:
    """A run (video.mp4 and run.json) through atomic_folder."""
    with atomic_folder(out, overwrite) as tmp:
        (tmp / "video.mp4").write_text(text)
        (tmp / "run.json").write_text(json.dumps({"versions": {"anyi2v_lab": "0"}, "files": ["run.json", "video.mp4"]}))


# ---------------------------------------------------------------- one process at a time
def _contend(out: str, barrier, results) -> None:
    """Claim ``out``; every contender tries while the winner still holds it, then the winner writes."""
    try:
        with claim_output_folder(out) as claimed:
            barrier.wait(60)
            _write(claimed, f"pid {os.getpid()}")
            results.put(("wrote", os.getpid()))
    except FileExistsError as e:  # PathBusy
        results.put(("refused", str(e)))
        barrier.wait(60)


def test_processes_started_on_one_folder_give_one_result_and_refuse_the_others(tmp_path):
    ctx = multiprocessing.get_context("fork")
    n = 4
    barrier, results = ctx.Barrier(n), ctx.Queue()
    out = tmp_path / "runs" / "a"
    procs = [ctx.Process(target=_contend, args=(str(out), barrier, results)) for _ in range(n)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    outcomes = [results.get(timeout=5) for _ in range(n)]
    wrote = [pid for kind, pid in outcomes if kind == "wrote"]
    refused = [msg for kind, msg in outcomes if kind == "refused"]
    assert len(wrote) == 1 and len(refused) == n - 1
    assert all("is being written by another process (pid" in m and "--out" in m for m in refused)
    assert (out / "video.mp4").read_text() == f"pid {wrote[0]}"
    assert sorted(p.name for p in out.parent.iterdir()) == ["a"]  # no lock file, no temporary folder


def test_a_second_claim_is_refused_at_once_and_a_finished_run_is_not_replaced(tmp_path):
    out = tmp_path / "a"
    with claim_output_folder(out) as claimed:
        with pytest.raises(PathBusy, match=f"output folder '{out}' is being written by another process "
                                            f"\\(pid {os.getpid()}\\); choose another --out"):
            with claim_output_folder(out):
                pass
        _write(claimed, "first")
    with pytest.raises(OutputFolderRefused, match=r"exists and is not empty \(an earlier run\).*pass --overwrite"):
        _write(out, "second")
    assert (out / "video.mp4").read_text() == "first"


def test_a_lock_left_by_a_killed_process_does_not_block(tmp_path):
    lock = tmp_path / f".a{aio.LOCK_SUFFIX}"
    lock.write_text("999999999\n")  # its holder is gone: the kernel dropped the flock
    _write(tmp_path / "a")
    assert (tmp_path / "a" / "video.mp4").read_text() == "new" and not lock.exists()


def test_a_folder_that_appears_while_the_run_works_is_left_alone(tmp_path):
    out = tmp_path / "a"
    with pytest.raises(OutputFolderRefused, match="was filled by another program while this run was working"):
        with atomic_folder(out) as tmp:
            (tmp / "video.mp4").write_text("new")
            out.mkdir()
            (out / "thesis.tex").write_text("mine")
    assert [p.name for p in out.iterdir()] == ["thesis.tex"] and (out / "thesis.tex").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]


# ---------------------------------------------------------------- what --overwrite may replace
def test_overwrite_replaces_an_earlier_run_and_touches_no_other_name(tmp_path):
    out = _earlier_run(tmp_path / "a")
    old = tmp_path / ".a.old"  # an unrelated folder of the user's, by the name an old version used
    old.mkdir()
    (old / "keep.txt").write_text("mine")
    _write(out, overwrite=True)
    assert (sorted(p.name for p in out.iterdir()) == ["run.json", "video.mp4"]
            and (out / "video.mp4").read_text() == "new")
    assert (old / "keep.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".a.old", "a"]


def test_overwrite_without_renameat2_replaces_the_run_the_same_way(tmp_path, monkeypatch):
    monkeypatch.setattr(aio, "_renameat2", lambda src, dst, flags: False)
    monkeypatch.setattr("anyi2v_lab.outputs.exchange", lambda a, b: False)
    out = _earlier_run(tmp_path / "a")
    _write(out, overwrite=True)
    assert (out / "video.mp4").read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["a"]


@pytest.mark.parametrize("names,shown", [
    (("thesis.tex", "src/"), "src, thesis.tex"),  # no run.json: a folder of the user's
    (("run.json",), "run.json"),                  # a run.json another program wrote
])
def test_overwrite_refuses_a_folder_of_the_users_files(tmp_path, names, shown):
    out = tmp_path / "a"
    out.mkdir()
    for name in names:
        (out / name).mkdir() if name.endswith("/") else (out / name).write_text('{"x": 1}')
    for overwrite in (False, True):
        with pytest.raises(OutputFolderRefused, match="exists and is not empty") as err:
            _write(out, overwrite=overwrite)
        assert f"it holds {shown}, which anyi2v-lab did not write and never replaces" in str(err.value)
        assert "--overwrite" not in str(err.value)
    assert sorted(p.name for p in out.iterdir()) == sorted(n.rstrip("/") for n in names)


def test_overwrite_refuses_an_earlier_run_the_user_added_files_to(tmp_path):
    out = _earlier_run(tmp_path / "a", extra=("notes.txt",))
    assert foreign_entries(out) == ["notes.txt"]
    with pytest.raises(OutputFolderRefused, match="it holds notes.txt, which anyi2v-lab did not write"):
        _write(out, overwrite=True)
    assert (out / "notes.txt").read_text() == "the user's" and (out / "video.mp4").read_bytes() == b"old video"


@pytest.mark.parametrize("where", ["root", "home", "cwd", "above cwd"])
def test_the_root_home_and_working_folders_are_refused_without_suggesting_overwrite(where, tmp_path, monkeypatch):
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    monkeypatch.setenv("HOME", str(tmp_path))
    path = {"root": "/", "home": str(tmp_path), "cwd": ".", "above cwd": ".."}[where]
    for overwrite in (False, True):
        with pytest.raises(OutputFolderRefused, match="give --out a new folder's name") as err:
            check_output_folder(path, overwrite)
        assert "pass --overwrite" not in str(err.value)


# ---------------------------------------------------------------- links, permissions, interruptions
def test_a_symlink_is_followed_and_stays_a_link(tmp_path):
    target = tmp_path / "disk" / "run"
    target.mkdir(parents=True)
    link = tmp_path / "latest"
    link.symlink_to(target)
    _write(link)
    assert link.is_symlink() and (target / "video.mp4").read_text() == "new"
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("mine")
    (tmp_path / "to_mine").symlink_to(tmp_path / "mine")
    with pytest.raises(OutputFolderRefused, match="it holds thesis.tex"):
        _write(tmp_path / "to_mine", "x")


def test_an_unwritable_place_is_refused_before_any_work_in_words(tmp_path, monkeypatch):
    monkeypatch.setattr("anyi2v_lab.outputs.os.access", lambda path, mode: False)
    with pytest.raises(PermissionError) as err:
        with claim_output_folder(tmp_path / "new" / "a"):
            raise AssertionError("no work may start")
    assert str(err.value) == (f"output folder '{tmp_path / 'new' / 'a'}': '{tmp_path}' is not writable; choose "
                              f"another --out") and "Errno" not in str(err.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_a_read_only_folder_is_refused(tmp_path):
    (tmp_path / "ro").mkdir(mode=0o500)
    with pytest.raises(PermissionError, match="is not writable; choose another --out"):
        check_output_folder(tmp_path / "ro" / "a")


def test_a_failed_or_interrupted_run_leaves_no_folder_it_made(tmp_path):
    from anyi2v_lab.startup import Terminated, sigterm_as_interrupt
    out = tmp_path / "new" / "deeper" / "a"
    with pytest.raises(Terminated), sigterm_as_interrupt():
        with atomic_folder(out) as tmp:
            (tmp / "video.mp4").write_bytes(b"half")
            os.kill(os.getpid(), signal.SIGTERM)
    assert list(tmp_path.iterdir()) == []
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # the handler is gone again


# ---------------------------------------------------------------- single files
def test_rename_noreplace_never_replaces(tmp_path, monkeypatch):
    for fallback in (False, True):
        if fallback:
            monkeypatch.setattr(aio, "_renameat2", lambda src, dst, flags: False)
        src, dst = tmp_path / f"src{fallback}", tmp_path / f"dst{fallback}"
        src.write_text("new")
        dst.write_text("mine")
        with pytest.raises(FileExistsError):
            rename_noreplace(src, dst)
        assert dst.read_text() == "mine" and src.read_text() == "new"
        folder, full = tmp_path / f"f{fallback}", tmp_path / f"full{fallback}"
        folder.mkdir()
        full.mkdir()
        (full / "x").write_text("mine")
        with pytest.raises(FileExistsError):
            rename_noreplace(folder, full)
        rename_noreplace(src, tmp_path / f"free{fallback}")
        assert (tmp_path / f"free{fallback}").read_text() == "new" and not src.exists()


def test_atomic_path_without_overwrite_keeps_a_file_that_appeared(tmp_path):
    path = tmp_path / "t.json"
    with pytest.raises(FileExistsError, match="created by someone else while this was being written"):
        with atomic_path(path, overwrite=False) as tmp:
            Path(tmp).write_text("new")
            path.write_text("mine")
    assert path.read_text() == "mine" and [p.name for p in tmp_path.iterdir()] == ["t.json"]


def test_atomic_path_follows_a_symlink(tmp_path):
    (tmp_path / "real.json").write_text("old")
    (tmp_path / "link.json").symlink_to(tmp_path / "real.json")
    with atomic_path(tmp_path / "link.json") as tmp:
        Path(tmp).write_text("new")
    assert (tmp_path / "link.json").is_symlink() and (tmp_path / "real.json").read_text() == "new"


def test_exclusive_claim_on_a_file(tmp_path):
    with exclusive_claim(tmp_path / "f.safetensors"):
        with pytest.raises(PathBusy, match="--out 'f' is being written by another process"):
            with exclusive_claim(tmp_path / "f.safetensors", named="--out 'f'"):
                pass
    assert list(tmp_path.iterdir()) == []
