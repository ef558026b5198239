"""The widgets' JavaScript under node: the unit tests in ``widgets/js/*.test.mjs``, the bundled ``_esm``
strings as the browser receives them, and PCHIP resampling against Python on random paths."""
import json
import shutil
import subprocess

import numpy as np
import pytest

from anyi2v_lab.trajectory import resample_path
from anyi2v_lab.widgets.bundle import JS_DIR, esm

NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(NODE is None, reason="node is not installed: the widgets' JS tests need Node >= 18 "
                                                     "(node --test); install nodejs to run them")


def _node(*args, stdin: str | None = None, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([NODE, *args], input=stdin, capture_output=True, text=True, timeout=60, cwd=cwd)


def test_node_unit_tests_pass():
    files = sorted(str(p) for p in JS_DIR.glob("*.test.mjs"))
    assert files, f"no *.test.mjs files in {JS_DIR}"
    out = _node("--test", *files)
    assert out.returncode == 0, f"node --test failed:\n{out.stdout[-4000:]}\n{out.stderr[-2000:]}"
    assert "# fail 0" in out.stdout


@pytest.mark.parametrize("name", ["canvas.js", "player.js", "viewer.js", "microscope.js"])
def test_bundled_esm_imports_without_a_bundler(name, tmp_path):
    # the exact string anywidget receives, loaded as a module from a folder with no sibling files
    path = tmp_path / "widget.mjs"
    path.write_text(esm(name))
    script = ("const m = await import(process.argv[1]);"
              "const d = m.default;"
              "console.log(JSON.stringify({render: typeof d.render, init: typeof d.initialize}));")
    out = _node("--input-type=module", "-e", script, path.as_uri())
    assert out.returncode == 0, out.stderr[-2000:]
    kinds = json.loads(out.stdout)
    assert kinds["render"] == "function"
    assert kinds["init"] == ("function" if name == "player.js" else "undefined")


def test_js_resampling_equals_python_on_random_paths():
    rng = np.random.default_rng(123)
    cases = []
    for k in range(300):
        n, f = int(rng.integers(1, 15)), int(rng.integers(1, 40))
        pts = rng.uniform(-100, 1100, (n, 2))
        if k % 4 == 0:
            pts = np.round(pts / 50) * 50  # flat runs and repeated points: PCHIP's zero-slope branches
        cases.append({"points": pts.tolist(), "num_frames": f})
    script = ("import * as L from " + json.dumps((JS_DIR / "logic.js").as_uri()) + ";"
              "let s = ''; process.stdin.on('data', (c) => s += c);"
              "process.stdin.on('end', () => console.log(JSON.stringify("
              "JSON.parse(s).map((c) => L.resamplePath(c.points, c.num_frames)))));")
    out = _node("--input-type=module", "-e", script, stdin=json.dumps(cases))
    assert out.returncode == 0, out.stderr[-2000:]
    for case, js in zip(cases, json.loads(out.stdout), strict=True):
        py = resample_path(np.array(case["points"]), case["num_frames"])
        np.testing.assert_array_equal(np.array(js), py)  # bit for bit, not approximately


def test_the_browser_palette_is_the_python_palette():
    from anyi2v_lab import palette

    script = ("const P = await import(process.argv[1]);"
              "console.log(JSON.stringify({objects: P.OBJECT_COLOURS, clusters: P.CLUSTER_COLOURS,"
              " query: P.QUERY_COLOUR, phases: P.PHASE_COLOURS, css: P.objectColour(1)}));")
    out = _node("--input-type=module", "-e", script, (JS_DIR / "palette.js").as_uri())
    assert out.returncode == 0, out.stderr[-2000:]
    js = json.loads(out.stdout)
    assert js["objects"] == [list(c) for c in palette.OBJECT_COLOURS]
    assert js["clusters"] == [list(c) for c in palette.CLUSTER_COLOURS]
    assert js["query"] == list(palette.QUERY_COLOUR)
    assert js["phases"] == {k: list(c) for k, c in palette.PHASE_COLOURS.items()}
    assert js["css"] == "rgb({}, {}, {})".format(*palette.OBJECT_COLOURS[1])
