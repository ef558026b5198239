"""No function is longer than 60 lines in ``anyi2v_lab/`` and ``widgets/``, Python and JavaScript alike.

A function's length runs from its ``def`` (or the line of its opening brace) to its last line, nested
functions included: a closure that holds a whole view is one long function. Python functions are found
with ``ast``; JavaScript ones by matching braces outside strings, template literals and comments.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

MAX_LINES = 60
ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("anyi2v_lab", "widgets")
# functions allowed to be longer ("path:name"); this list only ever shrinks, and it is empty
ALLOWED: set[str] = set()

_NOT_FUNCTIONS = {"if", "for", "while", "switch", "catch", "with"}  # `keyword (...) {` opens a block
_WORD_BEFORE = re.compile(r"([A-Za-z_$][\w$]*)\s*$")
_ASSIGNED = re.compile(r"([A-Za-z_$][\w$]*)\s*[=:]\s*(?:async\s*)?(?:function\s*\*?\s*)?$")


def python_functions(path: Path) -> list[tuple[str, int, int]]:
    """``(qualified name, first line, lines)`` of every function and method in a Python file."""
    out = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = f"{prefix}{child.name}"
                out.append((name, child.lineno, child.end_lineno - child.lineno + 1))
                visit(child, f"{name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            else:
                visit(child, prefix)

    visit(ast.parse(path.read_text(encoding="utf-8"), str(path)), "")
    return out


def _code_only(src: str) -> str:
    """``src`` with the contents of comments, strings and template literals blanked (newlines kept), so
    that only the code's own braces and parentheses remain. Regular expressions are taken as code:
    the widget modules' patterns hold no braces."""
    out, i, n = [], 0, len(src)
    while i < n:
        c, pair = src[i], src[i:i + 2]
        if pair in ("//", "/*"):
            end = src.find("\n" if pair == "//" else "*/", i + 2)
            end = n if end < 0 else end + (0 if pair == "//" else 2)
        elif c in "\"'`":
            end = i + 1
            while end < n and src[end] != c:
                end += 2 if src[end] == "\\" else 1
            end = min(end + 1, n)
        else:
            out.append(c)
            i += 1
            continue
        out.append(re.sub(r"[^\n]", " ", src[i:end]))
        i = end
    return "".join(out)


def _opening_paren(code: str, close: int) -> int:
    depth = 0
    for j in range(close, -1, -1):
        depth += {")": 1, "(": -1}.get(code[j], 0)
        if depth == 0:
            return j
    return -1


def _function_name(code: str, brace: int) -> str | None:
    """The name of the function whose body opens at ``brace``, ``"<arrow>"`` for an unnamed arrow
    function, or ``None`` when the brace opens an object, a block or a class."""
    before = code[:brace].rstrip()
    if before.endswith("=>"):
        head = before[:-2].rstrip()
        if head.endswith(")"):
            head = head[:_opening_paren(head, len(head) - 1)]
        else:  # a single bare parameter
            head = head[:len(head) - len(_WORD_BEFORE.search(head).group(1))]
        named = _ASSIGNED.search(head)
        return named.group(1) if named else "<arrow>"
    if not before.endswith(")"):
        return None
    start = _opening_paren(before, len(before) - 1)
    word = _WORD_BEFORE.search(before[:start])
    if word is None or word.group(1) in _NOT_FUNCTIONS:
        return None
    if word.group(1) != "function":  # `function name(`, `async name(`, a method `name(`
        return word.group(1)
    named = _ASSIGNED.search(before[:start])
    return named.group(1) if named else "<function>"


def js_functions(path: Path) -> list[tuple[str, int, int]]:
    """``(name, first line, lines)`` of every function body (declarations, methods and arrow functions
    with a braced body) in a JavaScript module."""
    code = _code_only(path.read_text(encoding="utf-8"))
    out, stack = [], []
    for i, c in enumerate(code):
        if c == "{":
            stack.append((i, _function_name(code, i)))
        elif c == "}" and stack:
            start, name = stack.pop()
            if name is not None:
                first = code.count("\n", 0, start) + 1
                out.append((name, first, code.count("\n", start, i) + 1))
    return sorted(out, key=lambda f: f[1])


def long_functions() -> list[str]:
    found = []
    for folder in FOLDERS:
        for path in sorted((ROOT / folder).rglob("*")):
            if path.suffix == ".py":
                functions = python_functions(path)
            elif path.suffix in (".js", ".mjs") and not path.name.endswith(".test.mjs"):
                functions = js_functions(path)
            else:
                continue
            rel = path.relative_to(ROOT).as_posix()
            found += [f"{rel}:{name}" for name, line, n in functions if n > MAX_LINES
                      and f"{rel}:{name}" not in ALLOWED]
    return found


def test_js_scanner_finds_every_kind_of_function(tmp_path):
    src = tmp_path / "m.js"
    src.write_text('// a } in a comment\nexport function a(x, { y = 1 } = {}) {\n  if (x) {\n    return "}";\n  }\n'
                   "  const b = (z) => {\n    return `${z}`;\n  };\n  const o = { k: 1 };\n  return b;\n}\n"
                   "class C {\n  m() {\n    return [].map((v) => { return v; });\n  }\n}\n")
    assert js_functions(src) == [("a", 2, 10), ("b", 6, 3), ("m", 13, 3), ("<arrow>", 14, 1)]


def test_python_scanner_names_methods_and_nested_functions(tmp_path):
    src = tmp_path / "m.py"
    src.write_text("class A:\n    def f(self):\n        def g():\n            pass\n        return g\n")
    assert python_functions(src) == [("A.f", 2, 4), ("A.f.g", 3, 2)]


def test_no_function_is_longer_than_60_lines():
    found = long_functions()
    assert not found, (f"{len(found)} functions are longer than {MAX_LINES} lines; split them into named "
                       "pieces:\n" + "\n".join(found))


def test_the_allow_list_names_only_long_functions():
    still_long = set()
    for entry in ALLOWED:
        rel, name = entry.split(":", 1)
        path = ROOT / rel
        if not path.is_file():
            continue
        functions = python_functions(path) if path.suffix == ".py" else js_functions(path)
        still_long |= {f"{rel}:{n}" for n, _, lines in functions if n == name and lines > MAX_LINES}
    assert still_long == ALLOWED, f"remove from ALLOWED what is short now: {sorted(ALLOWED - still_long)}"
