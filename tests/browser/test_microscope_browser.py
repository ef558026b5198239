"""The denoising microscope in a real JupyterLab and chromium: a notebook generates with the toy model
(x0 of every step, the aligned layers' queries and keys, cross-attention), shows ``Microscope``, and the
test moves the step slider (the x0 frame and the PCA image change; it snaps to the captured steps, which
the timeline marks), clicks a point (the self-attention view changes, and the kernel receives the point),
and measures in the browser how long each slider move and each click takes to redraw; the two attention
panels have colour bars whose top follows the colour-scale choice (each map its own: at most the shared
top), "save PNG" downloads the panel row, and the five panels sit in one row. The timings go to
``microscope_timings.json`` in the test's tmp dir; screenshots to ``outputs/screenshots/``. Same harness as
``test_browser.py`` (its ``lab`` fixture).
"""
import json
import statistics
import time

import nbformat
import pytest

from browser.test_browser import (
    SCREENSHOTS,
    SLIDER_MOVES,
    _run_all,
    _run_last_cell,
    lab_notebook,
    publish_screenshots,
    save_png_download,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

NOTEBOOK = "microscope_browser.ipynb"
CELLS = [
    """import json, os
os.environ.setdefault("HF_HUB_OFFLINE", "1")
from anyi2v_lab.startup import prepare_process
prepare_process()
from anyi2v_lab.demo import LESSON_SCENE as SCENE
from anyi2v_lab.method import AnyI2VConfig, generate
from anyi2v_lab.method.generation import model_size
from anyi2v_lab.microscope import MicroscopeData, microscope_capture
from anyi2v_lab.models.loading import default_or_tiny
from anyi2v_lab.widgets import Microscope
pipe, MODEL = default_or_tiny()
H, W = model_size(pipe, AnyI2VConfig())
case, trajectory, prompt = SCENE.inputs(W)
cfg = AnyI2VConfig(**SCENE.overrides).replace(num_frames=8, num_inference_steps=8, opt_step=2)
res = generate(pipe, case.conditions[SCENE.modality], prompt, trajectory, cfg, seed=SCENE.noise_seed, keep_x0=True,
               keep_masks=True, capture=microscope_capture(pipe, cfg), progress=False)
data = MicroscopeData.from_result(res, pipe)""",
    "m = Microscope(data)\nm",
    """point = m.point
kept = m.layers[point]["pca_steps"]
print(json.dumps({"steps": len(m.steps), "a": kept[0], "b": kept[-1], "kept": kept, "x0_steps": m.x0_steps,
                  "query": m.query,
                  "query_frame": m.query_frame, "payload_bytes": m.payload_bytes, "frame_size": m.frame_size}))""",
]



def _move(page, cls: str, values: list) -> list[dict]:
    """Moves the microscope's slider ``cls`` to each value in turn, timing each redraw (``SLIDER_MOVES``)."""
    return page.evaluate(SLIDER_MOVES, [".anyi2v-microscope", "input." + cls, values])


# clicks a canvas at canvas pixel (x, y) and times the redraw, as SLIDER_MOVES does
_CLICK = """async ([sel, x, y]) => {
    const root = document.querySelector('.anyi2v-microscope');
    const c = root.querySelector(sel);
    const r = c.getBoundingClientRect();
    const ev = new MouseEvent('click', {bubbles: true, clientX: r.left + x * r.width / c.width,
                                        clientY: r.top + y * r.height / c.height});
    const t0 = performance.now();
    c.dispatchEvent(ev);
    await Promise.resolve();
    const t1 = performance.now();
    await new Promise(requestAnimationFrame);
    return {handler_ms: t1 - t0, frame_ms: performance.now() - t0, draw_ms: Number(root.dataset.drawMs)};
}"""

# the pixels of one panel, as a short digest (equal digests: equal pictures)
_PIXELS = """(sel) => {
    const c = document.querySelector('.anyi2v-microscope ' + sel);
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let h = 0, distinct = new Set();
    for (let i = 0; i < d.length; i += 4) {
        h = (h * 31 + d[i] * 7 + d[i + 1] * 13 + d[i + 2]) >>> 0;
        if (i % 64 === 0) distinct.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
    }
    return {hash: h, distinct: distinct.size};
}"""


def _summary(ms: list[float]) -> dict:
    return {"n": len(ms), "median": round(statistics.median(ms), 3), "max": round(max(ms), 3),
            "mean": round(statistics.fmean(ms), 3)}


def test_microscope_sliders_and_click_in_the_browser(lab, tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, lab["root"] / "nb" / NOTEBOOK)
    shots = tmp_path / "screenshots"
    shots.mkdir()
    errors, timings = [], {}
    t0 = time.monotonic()
    with lab_notebook(lab, NOTEBOOK, errors, shots / "microscope_failure.png") as page:
        _run_all(page, timeout_s=900)
        timings["notebook s"] = round(time.monotonic() - t0, 1)
        info = json.loads(page.locator(".jp-Notebook .jp-CodeCell").last.locator(".jp-OutputArea-output")
                          .last.inner_text().strip())
        assert info["query"] == [] and info["a"] != info["b"]
        root = page.locator(".anyi2v-microscope")
        page.wait_for_selector(".anyi2v-microscope[data-ready='1']", timeout=60_000)
        root.scroll_into_view_if_needed()
        root.screenshot(path=str(shots / "microscope_opening.png"))

        # --- the step slider: x0 and PCA change between two kept steps; every step timed ---------------
        _move(page, "anyi2v-step", [info["a"]])
        x0_a, pca_a = page.evaluate(_PIXELS, "canvas.anyi2v-mic-x0"), page.evaluate(_PIXELS, "canvas.anyi2v-mic-pca")
        _move(page, "anyi2v-step", [info["b"]])
        x0_b, pca_b = page.evaluate(_PIXELS, "canvas.anyi2v-mic-x0"), page.evaluate(_PIXELS, "canvas.anyi2v-mic-pca")
        assert x0_a["hash"] != x0_b["hash"] and pca_a["hash"] != pca_b["hash"], (x0_a, x0_b, pca_a, pca_b)
        assert min(x0_b["distinct"], pca_b["distinct"]) > 8  # pictures, not a flat fill
        readout = root.locator(".anyi2v-step-readout").inner_text()
        assert readout.startswith(f"{info['b'] + 1} / {info['steps']} · sampling"), readout
        # the timeline marks the captured steps, and the slider snaps to them
        kept = info["kept"]
        assert root.locator("canvas.anyi2v-timeline").get_attribute("data-marks") == ",".join(map(str, kept))
        assert kept[0] >= 2 and kept[1] - kept[0] >= 2, kept  # uncaptured steps to land on
        # a jump to step 0 lands on the nearest captured step; one step on from there, on the next one
        for target, landing in ((0, kept[0]), (kept[0] + 1, kept[1])):
            _move(page, "anyi2v-step", [target])
            shown = root.locator(".anyi2v-step-readout").inner_text()
            assert shown.startswith(f"{landing + 1} / "), (target, landing, shown)
            assert root.locator("input.anyi2v-step").input_value() == str(landing)
        steps = list(range(info["steps"])) * 3
        moves = _move(page, "anyi2v-step", steps)
        frames = _move(page, "anyi2v-frame-slider", [f % 8 for f in range(1, 25)])
        _move(page, "anyi2v-step", [info["b"]])

        # --- a click: the self-attention view changes, the kernel gets the point -------------------------
        before = page.evaluate(_PIXELS, "canvas.anyi2v-mic-self")
        w, h = root.locator("canvas.anyi2v-mic-pca").evaluate("c => [c.width, c.height]")
        clicks = [page.evaluate(_CLICK, ["canvas.anyi2v-mic-pca", w * 0.3, h * 0.3])]
        first = page.evaluate(_PIXELS, "canvas.anyi2v-mic-self")
        clicks.append(page.evaluate(_CLICK, ["canvas.anyi2v-mic-pca", w * 0.7, h * 0.75]))
        second = page.evaluate(_PIXELS, "canvas.anyi2v-mic-self")
        assert len({before["hash"], first["hash"], second["hash"]}) == 3, (before, first, second)
        assert second["distinct"] > 8
        for k in range(10):  # more points, for the timing
            clicks.append(page.evaluate(_CLICK, ["canvas.anyi2v-mic-pca", w * (0.1 + 0.08 * k), h * (0.8 - 0.06 * k)]))
        # the point's matches in the other frames: keys of every frame, then the frame slider
        root.locator("select.anyi2v-keys").select_option("video")
        video_moves = _move(page, "anyi2v-frame-slider", [f % 8 for f in range(1, 17)])
        root.locator("select.anyi2v-keys").select_option("frame")
        _move(page, "anyi2v-frame-slider", [0])
        page.evaluate(_CLICK, ["canvas.anyi2v-mic-pca", w * 0.5, h * 0.6])
        page.wait_for_timeout(300)
        root.screenshot(path=str(shots / "microscope.png"))
        # a colour bar under each heat panel (self- and cross-attention), and the five panels in one row
        for panel in ("self", "cross"):
            bar = root.locator(f"figure:has(canvas.anyi2v-mic-{panel}) .anyi2v-colourbar-box")
            assert bar.is_visible() and float(bar.locator("span").last.inner_text()) > 0, panel
        # the colour scale: each map its own tops the bars at this frame's largest weight, at most the shared one
        heat = ("self", "cross")

        def bar_tops():
            ends = [root.locator(f"figure:has(canvas.anyi2v-mic-{p}) .anyi2v-colourbar-ends span") for p in heat]
            return [float(e.last.inner_text()) for e in ends]
        shared = bar_tops()
        root.locator("select.anyi2v-scale").select_option("map")
        own = bar_tops()
        notes = root.locator(".anyi2v-colourbar-note").all_inner_texts()
        root.locator("select.anyi2v-scale").select_option("shared")
        assert 0 < own[0] <= shared[0] and 0 < own[1] <= shared[1] == 1, (shared, own)
        assert all("own scale" in n for n in notes), notes
        name, _ = save_png_download(page, root, shots / "microscope_export.png")
        assert name.startswith("microscope-step-") and name.endswith("-frame-1.png"), name
        tops = root.locator(".anyi2v-panels figure").evaluate_all("fs => fs.map((f) => f.getBoundingClientRect().top)")
        assert len(tops) == 5 and max(tops) - min(tops) < 1, tops
        kernel = json.loads(_run_last_cell(page, 60_000).strip())
        W, H = info["frame_size"]
        assert kernel["query"] == pytest.approx([0.5 * W, 0.6 * H], abs=W / w + 1e-9)
        timings["total s"] = round(time.monotonic() - t0, 1)

    publish_screenshots(shots)
    report = {
        "machine": "this machine's chromium (headless, software rendering); shared CPU, see the load",
        "payload_bytes": info["payload_bytes"],
        "step_slider": {k: _summary([m[k] for m in moves]) for k in ("handler_ms", "frame_ms", "draw_ms")},
        "frame_slider": {k: _summary([m[k] for m in frames]) for k in ("handler_ms", "frame_ms", "draw_ms")},
        "frame_slider_keys_of_all_frames": {k: _summary([m[k] for m in video_moves])
                                            for k in ("handler_ms", "frame_ms")},
        "click": {k: _summary([c[k] for c in clicks]) for k in ("handler_ms", "frame_ms", "draw_ms")},
        **timings,
    }
    (tmp_path / "microscope_timings.json").write_text(json.dumps(report, indent=2))
    print("microscope browser timings:", json.dumps(report), "json:", tmp_path / "microscope_timings.json",
          "screenshots:", SCREENSHOTS)
    assert not errors, f"page errors: {errors}"
