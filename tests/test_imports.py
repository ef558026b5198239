"""The package's import graph has no cycle, counting every import statement: module level, inside
functions, and under ``if TYPE_CHECKING:``. Read from the source with ``ast``; nothing is imported."""
import ast
import importlib.util
from pathlib import Path

import anyi2v_lab


def package_modules() -> dict[str, Path]:
    """``{dotted name: file}`` of every module of ``anyi2v_lab`` and, where installed, ``anyi2v_lab.widgets``
    (which lives in its own folder)."""
    roots = {"anyi2v_lab": Path(anyi2v_lab.__file__).parent}
    spec = importlib.util.find_spec("anyi2v_lab.widgets")
    if spec is not None and spec.origin is not None:
        roots["anyi2v_lab.widgets"] = Path(spec.origin).parent
    modules = {}
    for prefix, root in roots.items():
        for path in sorted(root.rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join((prefix, *parts))] = path
    return modules


def imported(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package modules that ``name`` (at ``path``) imports, relative imports resolved."""
    is_package = path.name == "__init__.py"
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module
            # `from pkg import sub` imports the module pkg.sub when there is one, else a name of pkg
            targets = [module, *(f"{module}.{alias.name}" for alias in node.names)]
        else:
            continue
        for target in targets:
            while target and target not in modules:  # `import a.b.c` of an attribute: its module
                target = target.rpartition(".")[0]
            if target and target != name:
                out.add(target)
    return out


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as ``[a, b, ..., a]``, or ``None``."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_walker_resolves_relative_and_type_checking_imports(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from .a import x\n")
    (pkg / "a.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .sub.b import y\nx = 1\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "b.py").write_text("def f():\n    from .. import a\n    from ..a import x\n")
    modules = {"pkg": pkg / "__init__.py", "pkg.a": pkg / "a.py", "pkg.sub": pkg / "sub" / "__init__.py",
               "pkg.sub.b": pkg / "sub" / "b.py"}
    graph = {m: imported(m, p, modules) for m, p in modules.items()}
    assert graph == {"pkg": {"pkg.a"}, "pkg.a": {"pkg.sub.b"}, "pkg.sub": set(), "pkg.sub.b": {"pkg", "pkg.a"}}
    assert find_cycle(graph) == ["pkg", "pkg.a", "pkg.sub.b", "pkg"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_in_the_package():
    modules = package_modules()
    assert "anyi2v_lab.method.generation" in modules and "anyi2v_lab.accel" in modules
    graph = {name: imported(name, path, modules) for name, path in modules.items()}
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_method_does_not_import_the_accelerations():
    """The method reads as eager code; speed is attached from outside (anyi2v_lab.accel imports the method,
    never the other way)."""
    modules = package_modules()
    for name, path in modules.items():
        if name.startswith("anyi2v_lab.method"):
            bad = {m for m in imported(name, path, modules) if m.startswith("anyi2v_lab.accel")}
            assert not bad, f"{name} imports {sorted(bad)}"


def test_a_bad_config_value_is_refused_before_torch_loads():
    """``anyi2v-lab generate --set pca_dim=abc`` answers at once: the config and the command line's checks
    import no torch (seconds on a CPU), and ``anyi2v_lab.method`` loads its other modules on first use."""
    import subprocess
    import sys

    code = ("import sys\nfrom anyi2v_lab.cli import main\n"
            "rc = main(['generate', '--model', 'tiny', '--condition', sys.argv[1], '--prompt', 'a', "
            "'--set', 'pca_dim=abc', '--out', sys.argv[2]])\n"
            "print(rc, 'torch' in sys.modules)")
    import tempfile

    from PIL import Image
    with tempfile.TemporaryDirectory() as tmp:
        Image.new("RGB", (64, 64)).save(Path(tmp) / "c.png")
        out = subprocess.run([sys.executable, "-c", code, str(Path(tmp) / "c.png"), str(Path(tmp) / "out")],
                             capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["2", "False"], (out.stdout, out.stderr)
    assert "pca_dim" in out.stderr


def test_method_names_load_on_first_use():
    import anyi2v_lab.method as method
    from anyi2v_lab.method.generation import generate

    assert method.generate is generate
    # a name that were also a submodule's would be rebound to the module when the submodule is imported
    submodules = {path.stem for path in Path(method.__file__).parent.glob("*.py")}
    assert not set(method.__all__) & submodules
    assert set(method.__all__) <= set(dir(method))
