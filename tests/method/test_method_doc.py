"""docs/method.md names the function of every step: each name it gives resolves to code."""
import importlib
import re
from pathlib import Path

DOC = Path(__file__).parents[2] / "docs" / "method.md"


def _resolve(dotted: str):
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module("anyi2v_lab." + ".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for name in parts[cut:]:
            obj = getattr(obj, name)
        return obj
    raise ModuleNotFoundError(dotted)


def test_every_function_the_method_document_names_exists():
    names = set(re.findall(r"`((?:method|accel|trajectory)\.[A-Za-z_][\w.]*)`", DOC.read_text()))
    assert len(names) > 30 and "method.loss.alignment_loss" in names
    missing = []
    for dotted in sorted(names):
        try:
            _resolve(dotted)
        except (AttributeError, ModuleNotFoundError):
            missing.append(dotted)
    assert not missing, f"docs/method.md names {missing}: rename them there"
