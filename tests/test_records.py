"""Records are built by keyword: no call of a dataclass defined in the package passes more than 4
positional arguments, and the method's records accept no positional argument at all."""
import ast
import dataclasses
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "anyi2v_lab"
MAX_POSITIONAL = 4


def _is_dataclass_decorator(node: ast.expr) -> bool:
    target = node.func if isinstance(node, ast.Call) else node
    return (isinstance(target, ast.Name) and target.id == "dataclass") or (
        isinstance(target, ast.Attribute) and target.attr == "dataclass")


def package_trees() -> dict[Path, ast.Module]:
    return {path: ast.parse(path.read_text(), str(path)) for path in sorted(PACKAGE.rglob("*.py"))}


def dataclass_names(trees: dict[Path, ast.Module]) -> set[str]:
    return {node.name for tree in trees.values() for node in ast.walk(tree)
            if isinstance(node, ast.ClassDef) and any(map(_is_dataclass_decorator, node.decorator_list))}


def long_positional_calls(trees: dict[Path, ast.Module], names: set[str]) -> list[str]:
    """``file:line Name(n positional)`` for every call of a class in ``names`` with too many positional
    arguments (a starred argument counts as one)."""
    found = []
    for path, tree in trees.items():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
            if name in names and len(node.args) > MAX_POSITIONAL:
                found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {name}({len(node.args)} positional)")
    return found


def test_no_record_is_built_from_a_long_positional_list():
    trees = package_trees()
    names = dataclass_names(trees)
    assert {"GenerationResult", "Sampling", "PassInputs", "Iteration"} <= names
    assert long_positional_calls(trees, names) == []


def test_the_walk_finds_a_long_positional_call(tmp_path):
    source = ("from dataclasses import dataclass\n@dataclass\nclass R:\n    a: int\n"
              "ok = R(1, 2, 3, 4)\nbad = R(1, 2, 3, 4, 5)\n")
    trees = {PACKAGE / "example.py": ast.parse(source)}
    assert dataclass_names(trees) == {"R"}
    assert long_positional_calls(trees, {"R"}) == ["anyi2v_lab/example.py:6 R(5 positional)"]


@pytest.mark.parametrize("path, name", [("method.generation", "GenerationResult"), ("method.generation", "Sampling"),
                                        ("method.optimize", "PassInputs"), ("method.record", "Iteration"),
                                        ("method.record", "X0")])
def test_method_records_are_keyword_only(path, name):
    import importlib

    record = getattr(importlib.import_module(f"anyi2v_lab.{path}"), name)
    assert dataclasses.is_dataclass(record)
    assert all(f.kw_only for f in dataclasses.fields(record) if f.init), f"{name} takes positional fields"


@pytest.mark.parametrize("path, name", [("method/generation.py", "Sampling"), ("method/optimize.py", "PassInputs")])
def test_every_field_of_the_methods_loop_records_is_read_by_the_method(path, name):
    """No runtime-only field on a method type: each field is read somewhere in ``anyi2v_lab/method`` (the
    runtime derives what it replays from the session and the config)."""
    trees = {p: t for p, t in package_trees().items() if p.parent.name == "method"}
    record = next(node for node in ast.walk(trees[PACKAGE / path])
                  if isinstance(node, ast.ClassDef) and node.name == name)
    fields = [node.target.id for node in record.body if isinstance(node, ast.AnnAssign)]
    read = {node.attr for tree in trees.values() for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load)}
    assert fields and set(fields) <= read, f"{name} fields the method never reads: {sorted(set(fields) - read)}"
