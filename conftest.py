"""Environment for every test and for the notebook kernels nbmake starts (they inherit it).

Set before torch is imported: no model hub, quiet libraries, and OpenMP workers that sleep instead of
busy-waiting (busy-waiting makes torch many times slower when other processes share the 2 cores). Under
pytest-xdist (``-n auto``) each worker computes on one thread: the workers share the cores instead.
"""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("MPLBACKEND", "Agg")
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def pytest_addoption(parser):
    parser.addoption("--full", action="store_true",
                     help="run the whole suite: the slow and browser tests too, and the notebooks (nbmake)")


def pytest_configure(config):
    # `pytest` deselects the slow tests through addopts' `-m 'not slow'`; --full lifts that and turns nbmake on
    if config.getoption("--full"):
        config.option.markexpr = ""
        config.option.nbmake = True


def pytest_collection_modifyitems(items):
    """Notebooks and browser tests belong to the full run (``pytest --full``), not the inner loop.

    The slow tests run first, notebooks and browser tests (the longest) ahead of the rest: xdist's
    workers then finish together on short tests instead of one worker finishing a long test alone at
    the end.
    """
    import pytest

    for item in items:
        if item.path.suffix == ".ipynb" or item.get_closest_marker("browser"):
            item.add_marker(pytest.mark.slow)
    items.sort(key=lambda item: (item.path.suffix != ".ipynb", item.get_closest_marker("browser") is None,
                                 item.get_closest_marker("slow") is None))
