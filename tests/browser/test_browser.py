"""The quickstart notebook in a real JupyterLab and chromium: run every cell, draw a box and a path with
real mouse events (the canvas warns that the path is too long), check that the kernel holds exactly that
trajectory, see a drag with no object selected answered by a message, draw a new path for the scene's
object, run the canvas cell again (the drawing stays), run only the generate cell while clicking the
feature viewer (it shows that it waits, until the kernel answers), and check that the player shows the
new run and the viewer a colour bar; the viewer's clicks and the player's slider moves are timed in the
browser. Screenshots of the widgets go to ``outputs/screenshots/``.

Needs chromium (Debian: ``apt-get install chromium``) and the ``playwright`` Python package; no Playwright
browser download. JupyterLab runs from a temporary folder with its own config, settings, runtime and
IPython dirs, on a free localhost port, and is shut down afterwards.
"""
import json
import os
import re
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "01_quickstart.ipynb"
SCREENSHOTS = ROOT / "outputs" / "screenshots"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
CYAN = (0, 200, 255)  # overlay.COLOURS[1]: the second object's colour
READ_BACK = "canvas.trajectory.to_json"  # the quickstart's cell that prints what the canvas holds


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (Debian/Ubuntu: apt-get install -y chromium)")
    pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")
    pytest.importorskip("jupyterlab", reason="jupyterlab is not installed (pip install -e '.[lab]')")
    root = tmp_path_factory.mktemp("lab")
    (root / "nb").mkdir()
    shutil.copy(NOTEBOOK, root / "nb" / NOTEBOOK.name)  # a copy: autosave must never touch the repository
    dirs = {k: root / k.lower() for k in ("IPYTHONDIR", "MPLCONFIGDIR", "JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR",
                                          "JUPYTER_RUNTIME_DIR", "JUPYTERLAB_SETTINGS_DIR",
                                          "JUPYTERLAB_WORKSPACES_DIR")}
    for d in dirs.values():
        d.mkdir()
    # no "get notified about Jupyter news?" toast over the page
    (dirs["JUPYTER_CONFIG_DIR"] / "labconfig").mkdir()
    (dirs["JUPYTER_CONFIG_DIR"] / "labconfig" / "page_config.json").write_text(
        json.dumps({"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}))
    # every cell stays in the DOM (locators find cells scrolled out of view); no kernel-selection dialog
    tracker = dirs["JUPYTERLAB_SETTINGS_DIR"] / "@jupyterlab" / "notebook-extension"
    tracker.mkdir(parents=True)
    (tracker / "tracker.jupyterlab-settings").write_text(
        json.dumps({"windowingMode": "none", "autoStartDefaultKernel": True}))
    # OpenMP threads that sleep instead of spinning: on shared cores torch's spinning threads made the
    # notebook's generation 20x slower (101 s instead of 4.7 s, measured)
    env = {**os.environ, **{k: str(v) for k, v in dirs.items()}, "HF_HUB_OFFLINE": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    port, token = _free_port(), secrets.token_hex(16)
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root / 'nb'}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    log = open(root / "lab.log", "wb")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=root)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not start: {(root / 'lab.log').read_text()[-3000:]}")
            time.sleep(0.3)
        yield {"url": url, "token": token, "root": root}
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


_NOTEBOOK_STATE = """() => {
    const prompts = [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputArea-prompt')]
        .map((p) => p.textContent.trim());
    const errors = [...document.querySelectorAll('.jp-Notebook [data-mime-type="application/vnd.jupyter.stderr"]')]
        .map((e) => e.textContent).filter((t) => t.includes('Traceback')).map((t) => t.slice(-800));
    return {busy: prompts.some((p) => p.includes('*')), last: prompts[prompts.length - 1], errors};
}"""


def _run_all(page, timeout_s: float) -> int:
    """Run > Run All Cells, once the kernel is connected, until the last cell has run; returns the number
    of attempts. A run that stops with cells left unexecuted is retried (a request made while the
    kernel connection settles can be dropped), at most three times."""
    page.locator("#jp-main-statusbar").get_by_text("| Idle").wait_for(timeout=60_000)
    deadline = time.monotonic() + timeout_s
    state = {}
    for attempt in range(1, 4):
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        page.locator(".lm-Menu-itemLabel").get_by_text("Run All Cells", exact=True).click()
        idle_since = None
        while time.monotonic() < deadline:
            state = page.evaluate(_NOTEBOOK_STATE)
            if re.fullmatch(r"\[\d+\]:?", state["last"] or ""):
                return attempt
            if state["errors"]:
                raise AssertionError(f"a notebook cell failed: {state['errors']}")
            idle_since = None if state["busy"] else (idle_since or time.monotonic())
            if idle_since is not None and time.monotonic() - idle_since > 5:
                break  # nothing running and the last cell not run: ask again
            time.sleep(0.5)
    raise AssertionError(f"Run All Cells did not finish in {timeout_s:.0f} s: {state}")


def _run_cell(page, cell, timeout_ms: int) -> str:
    """Run one code cell (Ctrl+Enter in its editor), wait until it has run, and return its last text output."""
    before = cell.locator(".jp-InputArea-prompt").inner_text()
    cell.locator(".jp-InputArea-editor").click()
    page.keyboard.press("Control+Enter")
    cell.locator(".jp-InputArea-prompt").filter(has_not_text=before).wait_for(timeout=timeout_ms)
    return _finish_cell(page, cell, timeout_ms)


def _start_cell(page, cell) -> None:
    """Start one code cell (Ctrl+Enter in its editor) and return once it is queued or running."""
    cell.locator(".jp-InputArea-editor").click()
    page.keyboard.press("Control+Enter")
    prompt = cell.locator(".jp-InputArea-prompt").element_handle()
    page.wait_for_function("(p) => p.textContent.includes('*')", arg=prompt, timeout=10_000)


def _finish_cell(page, cell, timeout_ms: int) -> str:
    """Wait until a started cell has run; its last text output."""
    prompt = cell.locator(".jp-InputArea-prompt").element_handle()
    page.wait_for_function("(p) => !p.textContent.includes('*')", arg=prompt, timeout=timeout_ms)
    errors = page.evaluate(_NOTEBOOK_STATE)["errors"]
    assert not errors, f"a notebook cell failed: {errors}"
    outputs = cell.locator(".jp-OutputArea-output")
    return outputs.last.inner_text() if outputs.count() else ""


# clicks the viewer's PCA panel at a fraction (x, y) of its size and times the handler and the next painted
# frame in the browser (as the microscope's test does); busy: the waiting sign is up after it
_VIEWER_CLICK = """async ([fx, fy]) => {
    const root = document.querySelector('.anyi2v-viewer');
    const c = root.querySelector('canvas.anyi2v-pca');
    const r = c.getBoundingClientRect();
    const ev = new MouseEvent('click', {bubbles: true, clientX: r.left + fx * r.width, clientY: r.top + fy * r.height});
    const t0 = performance.now();
    c.dispatchEvent(ev);
    await Promise.resolve();
    const t1 = performance.now();
    await new Promise(requestAnimationFrame);
    const sign = root.querySelector('.anyi2v-busy-sign');
    return {handler_ms: t1 - t0, frame_ms: performance.now() - t0, busy: root.classList.contains('anyi2v-busy')
            && getComputedStyle(sign).display !== 'none'};
}"""


# moves a slider (under the widget root) to each value in turn and times each redraw in the browser: the
# input handler with the redraw it queues (a microtask, run before this function's next await resumes),
# and until the next animation frame (painted); draw_ms is the widget's own drawing time where it keeps one
SLIDER_MOVES = """async ([rootSel, sliderSel, values]) => {
    const root = document.querySelector(rootSel);
    const slider = root.querySelector(sliderSel);
    const out = [];
    for (const v of values) {
        const t0 = performance.now();
        slider.value = String(v);
        slider.dispatchEvent(new Event('input', {bubbles: true}));
        await Promise.resolve();
        const t1 = performance.now();
        await new Promise(requestAnimationFrame);
        out.push({value: v, handler_ms: t1 - t0, frame_ms: performance.now() - t0,
                  draw_ms: root.dataset.drawMs === undefined ? null : Number(root.dataset.drawMs)});
    }
    return out;
}"""


# a hash of a canvas's pixels (its backing store), to tell two drawings apart
_CANVAS_HASH = """c => {
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let h = 0;
    for (let i = 0; i < d.length; i++) h = (Math.imul(h, 31) + d[i]) | 0;
    return h;
}"""


def _summary(ms: list[float]) -> dict:
    return {"n": len(ms), "median": round(statistics.median(ms), 3), "max": round(max(ms), 3)}


def _code_cell(page, text: str):
    """The one code cell whose source contains ``text``."""
    cells = page.locator(".jp-Notebook .jp-CodeCell").filter(has=page.locator(".jp-InputArea-editor", has_text=text))
    assert cells.count() == 1, f"{cells.count()} code cells contain {text!r}"
    return cells.first


def _run_last_cell(page, timeout_ms: int) -> str:
    """Run the notebook's last cell again and return its new text output."""
    return _run_cell(page, page.locator(".jp-Notebook .jp-CodeCell").last, timeout_ms)


@contextmanager
def lab_notebook(lab, name: str, errors: list, failure_png: Path):
    """Chromium on notebook ``name`` in the ``lab`` JupyterLab, its code cells shown; page errors and console
    errors go to ``errors``. If the block raises, :func:`keep_failure` keeps the page as ``failure_png``."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1500, "height": 1100})
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        try:
            page.goto(f"{lab['url']}/lab/tree/{name}?token={lab['token']}&reset")
            page.wait_for_selector(".jp-Notebook .jp-CodeCell", timeout=60_000)
            yield page
        except Exception:
            keep_failure(page, failure_png, lab)
            raise
        browser.close()


def keep_failure(page, png: Path, lab) -> None:
    """A failed browser test leaves the whole page in ``SCREENSHOTS`` and prints JupyterLab's log."""
    page.screenshot(path=str(png), full_page=True)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(png, SCREENSHOTS / png.name)
    print("JupyterLab log:", (lab["root"] / "lab.log").read_text()[-3000:])


def publish_screenshots(shots: Path) -> None:
    """Copy a test's screenshots to ``SCREENSHOTS``, where a person looks at them."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for png in shots.glob("*.png"):
        shutil.copy(png, SCREENSHOTS / png.name)


def _drag(page, points) -> None:
    """A mouse drag through ``points`` (client pixels): press at the first, move through the rest, release."""
    page.mouse.move(*points[0])
    page.mouse.down()
    for q in points[1:]:
        page.mouse.move(*q)
    page.mouse.up()


def _colour_pixels(png: bytes, rgb, tol: int = 40) -> int:
    from io import BytesIO

    from PIL import Image

    a = np.asarray(Image.open(BytesIO(png)).convert("RGB")).astype(int)
    return int((np.abs(a - np.array(rgb)).max(-1) <= tol).sum())


def _colour_near(png: bytes, centre, rgb, radius: float = 3, tol: int = 40) -> float:
    """The fraction of pixels within ``radius`` of ``centre`` (x, y) that have colour ``rgb``."""
    from io import BytesIO

    from PIL import Image

    a = np.asarray(Image.open(BytesIO(png)).convert("RGB")).astype(int)
    yy, xx = np.mgrid[: a.shape[0], : a.shape[1]]
    disk = (xx + 0.5 - centre[0]) ** 2 + (yy + 0.5 - centre[1]) ** 2 <= radius ** 2
    return float((np.abs(a[disk] - np.array(rgb)).max(-1) <= tol).mean())


def save_png_download(page, root, path: Path) -> tuple[str, tuple[int, int]]:
    """Click ``root``'s "save PNG" button, keep the download at ``path``; its suggested name and size. The
    row is made in the browser: as wide as the panels and the gaps between them (8 CSS pixels)."""
    from PIL import Image

    with page.expect_download(timeout=10_000) as download:
        root.locator("button.anyi2v-export").click()
    download.value.save_as(str(path))
    size = Image.open(path).size
    widths = root.locator(".anyi2v-panels canvas.anyi2v-panel").evaluate_all("cs => cs.map((c) => c.width)")
    assert size[0] == sum(widths) + 8 * (len(widths) + 1), (size, widths)  # device pixel ratio 1 here
    assert _distinct_colours(path.read_bytes()) > 200, path  # panels, not a blank picture
    return download.value.suggested_filename, size


def _distinct_colours(png: bytes) -> int:
    from io import BytesIO

    from PIL import Image

    a = np.asarray(Image.open(BytesIO(png)).convert("RGB")).reshape(-1, 3)
    return len(np.unique(a, axis=0))


def _new_path(default, size):
    """A path for the default object that ends far from the default path's end, within what the toy model
    can follow (18 px in a straight line: 2.6 px per frame over the quickstart's 8 frames) and with its box in the
    frame."""
    obj = default.objects[0]
    x0, y0, x1, y1 = obj.box
    start = np.array(obj.path[0], dtype=float)
    old_end = np.array(obj.path[-1], dtype=float) - start
    best = None
    for d in ((18, 0), (-18, 0), (0, 18), (0, -18), (13, 13), (-13, 13), (13, -13), (-13, -13)):
        if x0 + d[0] < 0 or y0 + d[1] < 0 or x1 + d[0] > size[0] or y1 + d[1] > size[1]:
            continue
        gap = np.linalg.norm(np.array(d) - old_end)
        if best is None or gap > best[0]:
            best = (gap, d)
    assert best is not None, f"no room to move the box {obj.box} in a {size} frame"
    return [tuple(start + np.array(best[1]) * k / 4) for k in range(5)]


def test_quickstart_draw_generate_inspect(lab, tmp_path):
    """Run the quickstart, draw a second object (read back exactly, then deleted), draw a NEW path for the
    scene's object, generate again, and check that the player shows the new run: a new run id, and the
    target path's end dot where the new path ends, not where the default one did; the player's overlay
    legend and mask toggle, the viewer's hover readout and its "save PNG" download."""
    from anyi2v_lab.trajectory import Trajectory

    t0 = time.monotonic()
    timings, errors = {}, []
    shots = tmp_path / "screenshots"
    shots.mkdir()
    with lab_notebook(lab, NOTEBOOK.name, errors, shots / "failure_page.png") as page:
        timings["open"] = time.monotonic() - t0
        attempts = _run_all(page, timeout_s=900)
        timings["run all"] = time.monotonic() - t0
        readback = _code_cell(page, READ_BACK)
        default = Trajectory.from_json(readback.locator(".jp-OutputArea-output").last.inner_text().strip())
        player = page.locator(".anyi2v-player")
        first_run = player.locator(".anyi2v-run").inner_text()
        assert first_run.startswith("run ")
        viewer = page.locator(".anyi2v-viewer")
        viewer.scroll_into_view_if_needed()
        page.wait_for_timeout(500)
        viewer.screenshot(path=str(shots / "feature_viewer_opening.png"))

        # --- draw a second object: its box, then its path, with real mouse events ---------------------
        draw = page.locator(".anyi2v-canvas canvas.anyi2v-draw")
        draw.scroll_into_view_if_needed()
        page.locator(".anyi2v-canvas button[data-action='add']").click()
        page.locator(".anyi2v-canvas .anyi2v-chip").nth(1).wait_for(timeout=10_000)  # Python answered
        W, H = default.image_size
        rect = {}

        def measure():  # where the canvas is now (a re-rendered output above it moves it)
            rect["left"], rect["top"], rect["rw"], rect["rh"], rect["cw"], rect["ch"] = draw.evaluate(
                "c => { const r = c.getBoundingClientRect(); "
                "return [r.left, r.top, r.width, r.height, c.width, c.height]; }")

        def to_image(cx, cy):  # the browser's arithmetic, logic.clientToCanvas then canvasToImage
            r = rect
            return [((cx - r["left"]) * r["cw"] / r["rw"]) * W / r["cw"],
                    ((cy - r["top"]) * r["ch"] / r["rh"]) * H / r["ch"]]

        def to_client(x, y):  # the nearest whole client pixel (mouse events report integers)
            return (int(round(rect["left"] + x * rect["rw"] / W)), int(round(rect["top"] + y * rect["rh"] / H)))

        measure()

        page.locator(".anyi2v-canvas button[data-mode='box']").click()
        a, b = to_client(0.1 * W, 0.1 * H), to_client(0.35 * W, 0.3 * H)
        _drag(page, [a, ((a[0] + b[0]) // 2, (a[1] + b[1]) // 2), b])
        page.locator(".anyi2v-canvas button[data-mode='path']").click()
        # about 50 px at 64 px: longer than any training path, so the canvas warns as soon as it is drawn
        path_px = [to_client(x * W, y * H)
                   for x, y in ((0.22, 0.2), (0.3, 0.3), (0.35, 0.45), (0.45, 0.5), (0.75, 0.8))]
        _drag(page, path_px)
        warnings = page.locator(".anyi2v-canvas .anyi2v-warnings")
        page.wait_for_function("() => document.querySelector('.anyi2v-canvas .anyi2v-warnings').textContent"
                               ".includes('object 2: too long')", timeout=10_000)

        traj = Trajectory.from_json(_run_cell(page, _code_cell(page, READ_BACK), 60_000).strip())
        timings["draw + read back"] = time.monotonic() - t0
        assert len(traj.objects) == 2 and traj.image_size == (W, H) and traj.num_frames == default.num_frames
        assert traj.objects[0] == default.objects[0]  # untouched, to the last bit
        drawn = traj.objects[1]
        ia, ib = to_image(*a), to_image(*b)
        np.testing.assert_allclose(drawn.box, [min(ia[0], ib[0]), min(ia[1], ib[1]), max(ia[0], ib[0]),
                                               max(ia[1], ib[1])], rtol=0, atol=1e-9)
        np.testing.assert_allclose(drawn.path, [to_image(*q) for q in path_px], rtol=0, atol=1e-9)
        assert drawn.name == "object 2" and drawn.target_box is None
        canvas_png = page.locator(".anyi2v-canvas").screenshot(path=str(shots / "trajectory_canvas.png"))
        page.locator(".anyi2v-canvas button[data-action='delete']").click()  # the selected: object 2
        page.locator(".anyi2v-canvas .anyi2v-chip").nth(1).wait_for(state="detached", timeout=10_000)
        assert warnings.inner_text() == ""  # the scene's own path is within the limits

        # --- a drag with no object selected is not dropped silently ---------------------------------------
        page.locator(".anyi2v-canvas button[data-mode='path']").click()
        draw.press("Escape")  # select nothing
        page.wait_for_function("() => !document.querySelector('.anyi2v-canvas .anyi2v-chip.anyi2v-active')",
                               timeout=10_000)
        measure()
        _drag(page, [to_client(0.2 * W, 0.7 * H), to_client(0.4 * W, 0.75 * H), to_client(0.6 * W, 0.8 * H)])
        warning = page.locator(".anyi2v-canvas .anyi2v-status.anyi2v-warning")
        assert warning.inner_text().startswith("ignored: no object is selected"), warning.inner_text()
        page.locator(".anyi2v-canvas").screenshot(path=str(shots / "trajectory_canvas_ignored_drag.png"))

        # --- a NEW path for the scene's object, then generate again ---------------------------------------
        page.locator(".anyi2v-canvas .anyi2v-chip").nth(0).click()
        page.locator(".anyi2v-canvas .anyi2v-chip.anyi2v-active").wait_for(timeout=10_000)
        page.locator(".anyi2v-canvas button[data-mode='path']").click()
        draw.scroll_into_view_if_needed()
        measure()
        new_px = [to_client(*q) for q in _new_path(default, (W, H))]
        _drag(page, new_px)
        traj = Trajectory.from_json(_run_cell(page, _code_cell(page, READ_BACK), 60_000).strip())
        new_path = [to_image(*q) for q in new_px]
        assert len(traj.objects) == 1 and traj.objects[0].box == default.objects[0].box
        np.testing.assert_allclose(traj.objects[0].path, new_path, rtol=0, atol=1e-9)
        _run_cell(page, _code_cell(page, "canvas = TrajectoryCanvas("), 60_000)  # the canvas cell again: kept
        assert Trajectory.from_json(_run_cell(page, _code_cell(page, READ_BACK), 60_000).strip()) == traj

        # --- only the generate cell; a click in the viewer meanwhile shows that it waits -----------------
        generate_cell = _code_cell(page, "result = generate(")
        _start_cell(page, generate_cell)
        viewer.scroll_into_view_if_needed()
        clicks = [page.evaluate(_VIEWER_CLICK, [0.3, 0.35])]
        assert clicks[0]["busy"], clicks  # the sign is up at once, not after the cell
        viewer.screenshot(path=str(shots / "feature_viewer_waiting.png"))
        busy_seen = page.evaluate(_NOTEBOOK_STATE)["busy"]
        advice = _finish_cell(page, generate_cell, 600_000)
        assert busy_seen and "within the motions the toy model learnt" in advice, (busy_seen, advice)
        page.wait_for_selector(".anyi2v-viewer:not(.anyi2v-busy)", timeout=30_000)  # answered: the sign is gone
        assert not page.locator(".anyi2v-viewer .anyi2v-busy-sign").is_visible()
        timings["generate the new path"] = time.monotonic() - t0

        # --- the player shows the new run -----------------------------------------------------------------
        player = page.locator(".anyi2v-player")
        player.scroll_into_view_if_needed()
        new_run = player.locator(".anyi2v-run").inner_text()
        bx0, by0, bx1, by1 = default.objects[0].box  # the last box: the first moved by the path's displacement
        end = ((bx0 + bx1) / 2 + new_path[-1][0] - new_path[0][0], (by0 + by1) / 2 + new_path[-1][1] - new_path[0][1])
        assert new_run != first_run and f"path ends at ({end[0]:.0f}, {end[1]:.0f})" in new_run, (first_run, new_run)
        slider = player.locator("input.anyi2v-slider")
        slider.focus()
        page.keyboard.press("End")
        page.wait_for_function("() => document.querySelector('.anyi2v-player .anyi2v-readout').textContent"
                               f".startsWith('frame {default.num_frames} ')", timeout=10_000)
        player_png = player.screenshot(path=str(shots / "video_player.png"))
        frame_png = player.locator("canvas.anyi2v-frame").screenshot()
        fw, fh = player.locator("canvas.anyi2v-frame").evaluate("c => [c.width, c.height]")
        path0 = default.objects[0].path
        old_end = ((bx0 + bx1) / 2 + path0[-1][0] - path0[0][0], (by0 + by1) / 2 + path0[-1][1] - path0[0][1])
        near_new = _colour_near(frame_png, (end[0] * fw / W, end[1] * fh / H), (255, 215, 0))
        near_old = _colour_near(frame_png, (old_end[0] * fw / W, old_end[1] * fh / H), (255, 215, 0))
        assert near_new > 0.6 > near_old, (near_new, near_old)  # the end dot sits on the new path's end
        # the overlays' legend names the object's colour; the mask tint switches off and on again
        legend = player.locator(".anyi2v-overlay-legend > span")
        assert legend.all_inner_texts() == ["object 1: box, path, mask"], legend.all_inner_texts()
        assert legend.locator("i").evaluate("i => getComputedStyle(i).backgroundColor") == "rgb(255, 215, 0)"
        frame = player.locator("canvas.anyi2v-frame")
        masks_on = frame.evaluate(_CANVAS_HASH)
        player.locator("input[data-overlay='masks']").uncheck()
        masks_off = frame.evaluate(_CANVAS_HASH)
        player.locator("input[data-overlay='masks']").check()
        assert masks_on != masks_off and frame.evaluate(_CANVAS_HASH) == masks_on, (masks_on, masks_off)

        viewer.scroll_into_view_if_needed()
        viewer.locator("input.anyi2v-slider").focus()
        page.keyboard.press("Home")
        page.keyboard.press("ArrowRight")  # one slider moves all three views to frame 2
        page.wait_for_function("() => document.querySelector('.anyi2v-viewer .anyi2v-readout').textContent"
                               ".startsWith('2 /')", timeout=10_000)
        for k in range(6):  # clicks while the kernel is idle: timed, each answered (the sign goes)
            clicks.append(page.evaluate(_VIEWER_CLICK, [0.2 + 0.1 * k, 0.7 - 0.08 * k]))
            page.wait_for_selector(".anyi2v-viewer:not(.anyi2v-busy)", timeout=10_000)
        page.locator(".anyi2v-viewer canvas.anyi2v-pca").click(position={"x": 60, "y": 60})
        page.wait_for_selector(".anyi2v-viewer:not(.anyi2v-busy)", timeout=10_000)
        bar = viewer.locator(".anyi2v-colourbar-box")
        assert bar.is_visible() and float(bar.locator("span").last.inner_text()) > 0  # the scale's top weight
        # the weight under the pointer on the attention panel: within the colour bar's range
        viewer.locator("canvas.anyi2v-attention").hover(position={"x": 60, "y": 60})
        hover = viewer.locator(".anyi2v-hover").inner_text()
        found = re.fullmatch(r"weight under the pointer: (\S+) \(cell \d+, \d+ of (\d+) x (\d+)\)", hover)
        assert found and 0 < float(found[1]) <= float(bar.locator("span").last.inner_text()) * 1.01, hover
        viewer_png = viewer.screenshot(path=str(shots / "feature_viewer.png"))
        name, _ = save_png_download(page, viewer, shots / "feature_viewer_export.png")
        assert name == "feature-viewer-frame-2.png", name
        moves = page.evaluate(SLIDER_MOVES, [".anyi2v-player", "input.anyi2v-slider",
                                             list(range(default.num_frames)) * 3])
        timings["total"] = time.monotonic() - t0

    publish_screenshots(shots)
    print("browser test timings (s):", {k: round(v, 1) for k, v in timings.items()}, f"run-all attempts: {attempts};",
          "screenshots:", SCREENSHOTS)
    print("response times (ms):", json.dumps({
        "viewer click": {k: _summary([c[k] for c in clicks]) for k in ("handler_ms", "frame_ms")},
        "player slider": {k: _summary([m[k] for m in moves]) for k in ("handler_ms", "frame_ms")}}))
    assert not errors, f"page errors: {errors}"
    # the pictures are really there: the drawn object's colour (its box, path and preview) on the canvas, the
    # first object's overlay colour on the player, and non-blank viewers
    assert _colour_pixels(canvas_png, CYAN, tol=30) > 300
    assert _colour_pixels(player_png, (255, 215, 0), tol=30) > 100 and _distinct_colours(player_png) > 200
    assert _distinct_colours(viewer_png) > 200
