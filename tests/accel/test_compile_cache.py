"""Saved compiled code across processes (torch.compiler's cache artefacts stood in for: no compile here)."""
import pytest
import torch

from anyi2v_lab.accel import Runtime, RuntimeOptionError
from anyi2v_lab.accel import compile_cache as cc


@pytest.fixture
def fake(monkeypatch):
    """torch.compiler's save/load and the cache-miss counter, recorded; this process's state reset."""
    state = {"misses": 0, "loaded": [], "blob": b"compiled graphs"}
    monkeypatch.setattr(cc, "_LOADED", set())
    monkeypatch.setattr(cc, "_SAVED_AT", {})
    monkeypatch.setattr(cc, "cache_misses", lambda: state["misses"])
    monkeypatch.setattr(torch.compiler, "save_cache_artifacts", lambda: (state["blob"], None))
    monkeypatch.setattr(torch.compiler, "load_cache_artifacts", lambda data: state["loaded"].append(data))
    return state


def test_folder_choice(monkeypatch, tmp_path):
    version = f"torch-{torch.__version__}"
    assert cc.cache_folder(False) is None
    assert cc.cache_folder(str(tmp_path)) == tmp_path / version
    monkeypatch.setenv("ANYI2V_COMPILE_CACHE", str(tmp_path / "env"))
    assert cc.cache_folder(True) == tmp_path / "env" / version
    monkeypatch.delenv("ANYI2V_COMPILE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cc.cache_folder(True) == tmp_path / "xdg" / "anyi2v-lab" / "compile" / version


def test_saved_after_a_compile_loaded_once(fake, tmp_path):
    assert cc.load_artifacts(tmp_path) == 0 and cc.save_artifacts(tmp_path) is None  # nothing compiled yet
    fake["misses"] = 3
    path = cc.save_artifacts(tmp_path)
    assert path.read_bytes() == b"compiled graphs" and path.name.startswith("artifacts-")
    assert cc.save_artifacts(tmp_path) is None  # nothing new since
    assert not list(tmp_path.glob("*.tmp"))
    cc._LOADED.clear()  # a later process
    assert cc.load_artifacts(tmp_path) == 1 and fake["loaded"] == [b"compiled graphs"]
    assert cc.load_artifacts(tmp_path) == 0  # once a process


def test_damaged_file_warns(fake, tmp_path, monkeypatch):
    (tmp_path / "artifacts-bad.bin").write_bytes(b"?")
    monkeypatch.setattr(torch.compiler, "load_cache_artifacts", lambda data: 1 / 0)
    with pytest.warns(UserWarning, match="not loaded"):
        assert cc.load_artifacts(tmp_path) == 0


def test_runtime_option(tmp_path):
    assert Runtime().compile_cache_folder() is None  # compiles nothing
    assert Runtime.fast(compile_backend="eager").compile_cache_folder() is None
    assert Runtime.fast(compile_cache=False).compile_cache_folder() is None
    assert Runtime.fast(compile_cache=str(tmp_path)).compile_cache_folder().parent == tmp_path
    with pytest.raises(RuntimeOptionError, match="compile_cache"):
        Runtime(compile_cache=3)
