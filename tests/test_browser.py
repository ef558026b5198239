"""The quickstart notebook in a real JupyterLab and chromium: run every cell, draw a box and a path with
real mouse events, check that the kernel holds exactly that trajectory, and screenshot the three widgets
(``outputs/screenshots/``).

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
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "01_quickstart.ipynb"
SCREENSHOTS = ROOT / "outputs" / "screenshots"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
CYAN = (0, 200, 255)  # overlay.COLOURS[1]: the second object's colour


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
                                          "JUPYTER_RUNTIME_DIR", "JUPYTERLAB_SETTINGS_DIR", "JUPYTERLAB_WORKSPACES_DIR")}
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


def _run_last_cell(page, timeout_ms: int) -> str:
    """Run the notebook's last cell again (Ctrl+Enter) and return its new text output."""
    cell = page.locator(".jp-Notebook .jp-CodeCell").last
    before = cell.locator(".jp-InputArea-prompt").inner_text()
    cell.locator(".jp-InputArea-editor").click()
    page.keyboard.press("Control+Enter")
    page.wait_for_function("""([before]) => {
        const cells = document.querySelectorAll('.jp-Notebook .jp-CodeCell');
        const p = cells[cells.length - 1].querySelector('.jp-InputArea-prompt').textContent;
        return p !== before && !p.includes('*');
    }""", arg=[before], timeout=timeout_ms)
    return cell.locator(".jp-OutputArea-output").last.inner_text()


def _colour_pixels(png: bytes, rgb, tol: int = 40) -> int:
    from io import BytesIO

    from PIL import Image

    a = np.asarray(Image.open(BytesIO(png)).convert("RGB")).astype(int)
    return int((np.abs(a - np.array(rgb)).max(-1) <= tol).sum())


def _distinct_colours(png: bytes) -> int:
    from io import BytesIO

    from PIL import Image

    a = np.asarray(Image.open(BytesIO(png)).convert("RGB")).reshape(-1, 3)
    return len(np.unique(a, axis=0))


def test_quickstart_draw_generate_inspect(lab, tmp_path):
    from playwright.sync_api import sync_playwright

    from anyi2v_lab.trajectory import Trajectory

    t0 = time.monotonic()
    timings, errors = {}, []
    shots = tmp_path / "screenshots"
    shots.mkdir()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1500, "height": 1100})
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        try:
            page.goto(f"{lab['url']}/lab/tree/{NOTEBOOK.name}?token={lab['token']}&reset")
            page.wait_for_selector(".jp-Notebook .jp-CodeCell", timeout=60_000)
            timings["open"] = time.monotonic() - t0
            attempts = _run_all(page, timeout_s=150)
            timings["run all"] = time.monotonic() - t0
            last = page.locator(".jp-Notebook .jp-CodeCell").last.locator(".jp-OutputArea-output").last
            default = Trajectory.from_json(last.inner_text().strip())  # what the notebook set from Python

            # --- draw a second object: its box, then its path, with real mouse events ---------------------
            draw = page.locator(".anyi2v-canvas canvas.anyi2v-draw")
            draw.scroll_into_view_if_needed()
            page.locator(".anyi2v-canvas button[data-action='add']").click()
            page.locator(".anyi2v-canvas .anyi2v-chip").nth(1).wait_for(timeout=10_000)  # Python answered
            left, top, rw, rh, cw, ch = draw.evaluate(
                "c => { const r = c.getBoundingClientRect(); return [r.left, r.top, r.width, r.height, c.width, c.height]; }")
            W, H = default.image_size
            x0, y0 = int(np.ceil(left)), int(np.ceil(top))  # whole client pixels: mouse events report integers

            def to_image(cx, cy):  # the browser's arithmetic, logic.clientToCanvas then canvasToImage
                return [((cx - left) * cw / rw) * W / cw, ((cy - top) * ch / rh) * H / ch]

            page.locator(".anyi2v-canvas button[data-mode='box']").click()
            a, b = (x0 + 300, y0 + 60), (x0 + 420, y0 + 170)
            page.mouse.move(*a)
            page.mouse.down()
            page.mouse.move(x0 + 350, y0 + 100)
            page.mouse.move(*b)
            page.mouse.up()
            page.locator(".anyi2v-canvas button[data-mode='path']").click()
            path_px = [(x0 + 360, y0 + 115), (x0 + 390, y0 + 160), (x0 + 420, y0 + 230), (x0 + 470, y0 + 260),
                       (x0 + 480, y0 + 330)]
            page.mouse.move(*path_px[0])
            page.mouse.down()
            for q in path_px[1:]:
                page.mouse.move(*q)
            page.mouse.up()

            out = _run_last_cell(page, 30_000)
            timings["draw + read back"] = time.monotonic() - t0
            traj = Trajectory.from_json(out.strip())
            assert len(traj.objects) == 2 and traj.image_size == (W, H) and traj.num_frames == default.num_frames
            assert traj.objects[0] == default.objects[0]  # untouched, to the last bit
            drawn = traj.objects[1]
            ia, ib = to_image(*a), to_image(*b)
            np.testing.assert_allclose(drawn.box, [min(ia[0], ib[0]), min(ia[1], ib[1]), max(ia[0], ib[0]),
                                                   max(ia[1], ib[1])], rtol=0, atol=1e-9)
            np.testing.assert_allclose(drawn.path, [to_image(*q) for q in path_px], rtol=0, atol=1e-9)
            assert drawn.name == "object 2" and drawn.target_box is None

            # --- screenshots: the canvas (with the drawing), the player at its last frame, the viewer -------
            canvas_png = page.locator(".anyi2v-canvas").screenshot(path=str(shots / "trajectory_canvas.png"))
            player = page.locator(".anyi2v-player")
            player.scroll_into_view_if_needed()
            slider = player.locator("input.anyi2v-slider")
            slider.focus()
            page.keyboard.press("End")
            page.wait_for_function("() => document.querySelector('.anyi2v-player .anyi2v-readout').textContent"
                                   ".startsWith('frame 8')", timeout=10_000)
            player_png = player.screenshot(path=str(shots / "video_player.png"))
            viewer = page.locator(".anyi2v-viewer")
            viewer.scroll_into_view_if_needed()
            viewer.locator("input.anyi2v-slider").focus()
            page.keyboard.press("ArrowRight")  # one slider moves all three views to frame 2
            page.wait_for_function("() => document.querySelector('.anyi2v-viewer .anyi2v-readout').textContent"
                                   ".startsWith('2 /')", timeout=10_000)
            page.locator(".anyi2v-viewer canvas.anyi2v-pca").click(position={"x": 80, "y": 150})
            page.wait_for_timeout(500)  # the attention map comes back from the kernel
            viewer_png = viewer.screenshot(path=str(shots / "feature_viewer.png"))
            timings["total"] = time.monotonic() - t0
        except Exception:
            page.screenshot(path=str(shots / "failure_page.png"), full_page=True)
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            shutil.copy(shots / "failure_page.png", SCREENSHOTS / "failure_page.png")
            print("JupyterLab log:", (lab["root"] / "lab.log").read_text()[-3000:])
            raise
        browser.close()

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for png in shots.glob("*.png"):
        shutil.copy(png, SCREENSHOTS / png.name)
    print("browser test timings (s):", {k: round(v, 1) for k, v in timings.items()}, f"run-all attempts: {attempts};",
          "screenshots:", SCREENSHOTS)
    assert not errors, f"page errors: {errors}"
    # the pictures are really there: the condition image's red square and the drawn object's colour (its box,
    # path and preview) on the canvas; the first object's overlay colour on the player; a non-blank viewer
    assert _colour_pixels(canvas_png, (225, 45, 45), tol=20) > 5000
    assert _colour_pixels(canvas_png, CYAN, tol=30) > 300
    assert _colour_pixels(player_png, (255, 215, 0), tol=30) > 100 and _distinct_colours(player_png) > 200
    assert _distinct_colours(viewer_png) > 200
