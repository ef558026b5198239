"""The Microscope widget's state, built from a tiny generation: every synced array holds what the
microscope core (:class:`anyi2v_lab.microscope.MicroscopeData`) computed, and the browser's own
arithmetic (``widgets/js/microscope_logic.js`` under node) gives the core's self-attention."""
import io
import json
import shutil
import subprocess

import numpy as np
import pytest
import torch
from PIL import Image

from anyi2v_lab.hooks import run_with_cache
from anyi2v_lab.method import AnyI2VConfig, generate
from anyi2v_lab.microscope import MicroscopeData, microscope_capture
from anyi2v_lab.trajectory import Trajectory
from anyi2v_lab.widgets import Microscope
from anyi2v_lab.widgets.bundle import JS_DIR, esm
from anyi2v_lab.widgets.features import to_uint8

NODE = shutil.which("node")
CONFIG = AnyI2VConfig(num_frames=4, num_inference_steps=3, inversion_timestep=21, load_feature_step=2, opt_step=1,
                      opt_iters=2)


@pytest.fixture(scope="module")
def micro(tiny_pipe, image):
    traj = Trajectory.single((20, 20, 60, 60), [(40, 40), (80, 40)], image_size=(128, 128), query_points=[(40, 40)])
    result = generate(tiny_pipe, image, "a red square", traj, CONFIG, seed=0, progress=False, keep_x0=True,
                      keep_masks=True, capture=microscope_capture(tiny_pipe, CONFIG))
    data = MicroscopeData.from_result(result, tiny_pipe)
    return data, Microscope(data)


def _png(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def test_the_state_holds_what_the_core_computed(micro):
    data, m = micro
    steps = data.steps
    assert [(s["phase"], s["index"], s["timestep"]) for s in m.steps] == [(s.phase, s.index, s.timestep) for s in steps]
    assert {s["phase"] for s in m.steps} >= {"inversion", "optimisation", "sampling"}
    assert m.num_frames == data.num_frames == 4 and m.frame_size == list(data.frame_size)
    # x0: one PNG per frame of every x0 step (one frame during inversion), pixel for pixel
    assert [steps[i] for i in m.x0_steps] == data.x0_steps
    for slot, i in enumerate(m.x0_steps):
        np.testing.assert_array_equal(np.stack([_png(b) for b in m.x0[slot]]), data.x0(steps[i]))
    assert m.step == max(m.x0_steps)  # opens on the last step: the finished video
    for point in data.points:
        layer = m.layers[point]
        h, w = data.grid(point)
        kept = data.feature_steps(point)
        assert [steps[i] for i in layer["pca_steps"]] == kept and layer["grid"] == [h, w]
        pca = np.frombuffer(layer["pca"], np.uint8).reshape(len(kept), m.num_frames, h, w, 3)
        labels = np.frombuffer(layer["masks"], np.uint8).reshape(len(kept), m.num_frames, h, w)
        for slot, s in enumerate(kept):
            np.testing.assert_array_equal(pca[slot], data.pca_rgb(point, s))
            np.testing.assert_array_equal(labels[slot], data.clusters(point, s))
        heads, N, d = layer["qk_shape"]
        assert heads == data.heads(point) and N == h * w
        qk = np.frombuffer(layer["qk"], np.float16).reshape(len(kept), 2, m.num_frames, heads, N, d)
        for slot, s in enumerate(kept):
            for j, x in enumerate(data.query_key(point, s)):  # (F, N, heads * d), head j = channels j*d:(j+1)*d
                split = x.float().reshape(m.num_frames, N, heads, d).permute(0, 2, 1, 3).numpy()
                np.testing.assert_array_equal(qk[slot, j], split.astype(np.float16))
    # cross-attention: every step, the mean of the steps last; mean of heads first, then each head
    c = m.cross
    words = data.words
    assert m.words == words and [steps[i] for i in c["cross_steps"]] == data.cross_steps
    H1, Wd = c["cross_inner"]
    Hc, Wc = c["cross_grid"]
    assert (H1, Wd) == (data.cross_heads + 1, len(words))
    got = np.frombuffer(c["cross"], np.uint8).reshape(len(data.cross_steps) + 1, m.num_frames, H1, Wd, Hc * Wc)
    for slot, s in enumerate([*data.cross_steps, None]):
        for hi, head in enumerate([None, *range(data.cross_heads)]):
            maps = data.cross_attention_words(step=s, head=head).transpose(1, 0, 2, 3)  # (words, F, Hc, Wc)
            expected = to_uint8(maps.reshape(Wd, -1), axis=-1).reshape(Wd, m.num_frames, Hc * Wc)
            np.testing.assert_array_equal(got[slot, :, hi], expected.transpose(1, 0, 2))
    # the method's loss masks at its optimisation steps
    lm = m.loss_masks
    assert [steps[i] for i in lm["weights_steps"]] == data.mask_steps and data.mask_steps
    Hg, Wg = lm["weights_grid"]
    weights = np.frombuffer(lm["weights"], np.uint8).reshape(len(data.mask_steps), m.num_frames, lm["objects"], Hg, Wg)
    for slot, s in enumerate(data.mask_steps):
        np.testing.assert_array_equal(weights[slot].transpose(1, 0, 2, 3),
                                      (np.clip(data.loss_masks(s), 0, 1) * 255).round().astype(np.uint8))
    layer_bytes = sum(len(v) for layer in m.layers.values() for v in layer.values() if isinstance(v, bytes))
    x0_bytes = sum(len(b) for f in m.x0 for b in f)
    assert m.payload_bytes == x0_bytes + len(c["cross"]) + len(lm["weights"]) + layer_bytes


def test_sliders_clamp_and_the_query_is_plain_state(micro):
    _, m = micro
    m.frame = 99
    assert m.frame == m.num_frames - 1
    m.step = -4
    assert m.step == 0
    m.query, m.query_frame = [10.0, 20.0], 2
    assert m.get_state()["query"] == [10.0, 20.0]


@pytest.mark.skipif(NODE is None, reason="node is not installed (the widget's JS runs under node here)")
def test_the_browsers_self_attention_equals_the_core(micro, tmp_path):
    """The front end computes attention from the shipped float16 queries and keys; it must give what
    MicroscopeData.self_attention gives from the float32 ones (fp16 rounding apart)."""
    data, m = micro
    point = data.attention_points[0]
    layer = m.layers[point]
    heads, N, d = layer["qk_shape"]
    slot = len(layer["qk_steps"]) - 1
    step = data.steps[layer["qk_steps"][slot]]
    h, w = data.grid(point)
    cases = [(0, 0, -1, "frame"), (3, N - 1, 0, "frame"), (1, N // 2 + 1, -1, "video"), (2, 5, heads - 1, "video")]
    (tmp_path / "qk.bin").write_bytes(layer["qk"])
    script = f"""
import * as M from {json.dumps((JS_DIR / "microscope_logic.js").as_uri())};
import {{ readFileSync }} from "node:fs";
const buf = readFileSync({json.dumps(str(tmp_path / "qk.bin"))});
const n = 2 * {m.num_frames} * {heads} * {N} * {d};
const bits = new Uint16Array(buf.buffer.slice(buf.byteOffset + {slot} * n * 2, buf.byteOffset + ({slot} + 1) * n * 2));
const qk = M.halfToFloat(bits);
const cases = {json.dumps(cases)};
console.log(JSON.stringify(cases.map(([f, cell, head, scope]) =>
  Array.from(M.selfAttention(qk, [{m.num_frames}, {heads}, {N}, {d}], f, cell, head, scope)))));
"""
    out = subprocess.run([NODE, "--input-type=module", "-e", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    for (frame, cell, head, scope), js in zip(cases, json.loads(out.stdout), strict=True):
        core = data.self_attention(point, step, frame, cell, head=None if head < 0 else head,
                                   within_frame=scope == "frame")
        js = np.array(js).reshape(m.num_frames, h, w)
        assert abs(js.sum() - 1) < 1e-5
        np.testing.assert_allclose(js, core, atol=2e-3, rtol=0)


def test_from_cache_of_one_forward(tiny_pipe):
    """A run_with_cache cache of one UNet call: one 'forward' step, features and attention, no x0."""
    from anyi2v_lab.layout import per_frame

    layer = "up_blocks.2.attentions.0.transformer_blocks.0"
    names = [f"{layer}.attn1.query", f"{layer}.attn1.key", f"{layer}.attn2.probs"]
    g = torch.Generator().manual_seed(0)
    sample = torch.randn(1, 4, 3, 16, 16, generator=g)
    cond = tiny_pipe.encode_prompt("a red square", "cpu", 1, False)[0]
    _, cache = run_with_cache(tiny_pipe.unet, sample, 500, encoder_hidden_states=per_frame(cond, 3), names=names)
    frames = np.zeros((3, 128, 128, 3), np.uint8)
    m = Microscope.from_cache(cache, tiny_pipe, frames=frames, prompt="a red square")
    assert [s["phase"] for s in m.steps] == ["forward"] and m.x0 == [] and m.x0_steps == []
    assert list(m.layers) == [f"{layer}.attn1.query"] and m.point == f"{layer}.attn1.query"
    assert m.layers[m.point]["qk_shape"][0] == m.data.heads(m.point) and m.words == m.data.words
    assert m.frame_size == [128, 128] and m.num_frames == 3


def test_bad_input_names_the_argument(micro):
    data, _ = micro
    with pytest.raises(ValueError, match=r"points=\['nope'\] are not in the data"):
        Microscope(data, points=["nope"])
    with pytest.raises(ValueError, match="max_bytes"):
        Microscope(data, max_bytes=1000)


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_the_bundled_module_imports_without_a_bundler(tmp_path):
    path = tmp_path / "widget.mjs"
    path.write_text(esm("microscope.js"))
    script = "const m = await import(process.argv[1]); console.log(typeof m.default.render);"
    out = subprocess.run([NODE, "--input-type=module", "-e", script, path.as_uri()], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "function", out.stderr[-2000:]


def test_the_arrays_travel_on_request_not_in_the_saved_state(micro):
    """A saved notebook keeps the widget state (nbclient, JupyterLab): it must not hold the arrays."""
    import base64

    from anyi2v_lab.widgets.static import WIDGET_VIEW

    _, m = micro
    state = m.get_state()
    assert not {"x0", "layers", "cross", "loss_masks"} & set(state)
    assert len(json.dumps({k: v for k, v in state.items() if not isinstance(v, bytes)})) < 256 * 2**10
    sent = []
    m.send = lambda content, buffers=None: sent.append((content, buffers))
    m._answer(m, {"kind": "payload?"}, [])
    content, buffers = sent[0]
    assert content["kind"] == "payload" and sum(len(b) for b in buffers) == m.payload_bytes
    rebuilt = json.loads(json.dumps(content["state"]))
    for path, buffer in zip(content["buffer_paths"], buffers, strict=True):
        node = rebuilt
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = buffer
    assert rebuilt == {"x0": m.x0, "layers": m.layers, "cross": m.cross, "loss_masks": m.loss_masks}
    data, _ = m._repr_mimebundle_()
    png = _png(base64.b64decode(data["image/png"]))
    assert WIDGET_VIEW in data and png.shape[1] >= 5 * m.panel_size[0]  # five panels
    assert data["text/plain"].startswith(f"Microscope: {len(m.steps)} steps (")


def test_both_feature_views_colour_attention_through_the_one_heat_table(micro):
    from anyi2v_lab.palette import heat_lut
    from anyi2v_lab.widgets import FeatureViewer

    _, m = micro
    assert m.lut == heat_lut().tobytes() and "palette" not in m.keys  # clusters: js/palette.js, pinned to Python
    probs = torch.softmax(torch.randn(2, 1, 16, 16, generator=torch.Generator().manual_seed(0)), -1)
    viewer = FeatureViewer(probs={"p.probs": probs}, query=[1.0, 1.0])
    colours = {tuple(c) for c in _png(viewer.attention)[..., :3].reshape(-1, 3)}
    assert len(colours) > 1 and colours <= {tuple(c) for c in heat_lut()}
