"""Front-end modules as anywidget ``_esm`` strings, without a bundler.

anywidget imports ``_esm`` from a ``blob:`` URL, where a relative ``import ... from "./logic.js"`` cannot
resolve. The files in ``js/`` are plain ES modules that import each other relatively (so node's test runner
loads them as they are); :func:`esm` rewrites each such line into a dynamic import of the dependency's own
source as a ``data:`` URL, recursively. ``data:`` module URLs load in browsers and in node alike, so
the bundled string itself is testable (``tests/widgets/test_widgets_js.py``).
"""
from __future__ import annotations

import base64
import re
from pathlib import Path

JS_DIR = Path(__file__).parent / "js"
# the one import form the widget modules use: a namespace import of a sibling file
_IMPORT = re.compile(r'^import \* as (\w+) from "\./([\w-]+\.js)";[ \t]*$', re.M)


def _inline(name: str, seen: tuple[str, ...]) -> str:
    if name in seen:
        raise ValueError(f"import cycle in widgets/js: {' -> '.join(seen + (name,))}")
    path = JS_DIR / name
    if not path.is_file():
        raise FileNotFoundError(f"widget module {path} is missing; reinstall anyi2v-lab (package data js/*.js)")
    src = path.read_text(encoding="utf-8")
    leftover = [ln for ln in src.splitlines() if ln.startswith("import ") and not _IMPORT.match(ln)]
    if leftover:
        raise ValueError(f"{name}: only `import * as X from \"./file.js\";` can be inlined, found {leftover[0]!r}")

    def data_import(m: re.Match) -> str:
        dep = base64.b64encode(_inline(m.group(2), seen + (name,)).encode("utf-8")).decode("ascii")
        return f'const {m.group(1)} = await import("data:text/javascript;base64,{dep}");'

    return _IMPORT.sub(data_import, src)


def esm(name: str) -> str:
    """The self-contained ES module source of ``js/<name>``."""
    return _inline(name, ())


def css(name: str) -> str:
    return (JS_DIR / name).read_text(encoding="utf-8")
