// Microscope view: one step slider (inversion, optimisation, sampling), a frame slider and pickers for
// hook point, head and prompt word drive five linked panels: the predicted clean frame x0, the
// cluster masks over it, the PCA-RGB of the features, self-attention from the clicked point and
// cross-attention of the chosen word. Python ships every image once (widgets/microscope.py); a slider
// move or a click is a lookup in those arrays (microscope_logic.js), never a kernel round trip.
// Synced: steps ([{phase, index, timestep}]), step, frame, num_frames, frame_size, panel_size,
// x0_steps, point, head (-1: mean), words, word, cross_steps, query ([x, y] frame pixels), query_frame,
// attend, scale (the attention panels' colour scale: "shared" over frames or each "map" its own),
// lut (256 x 3 heat colours), num_clusters, status.
// The arrays come in one custom message this view asks for when it opens ({kind: "payload?"}), not as
// synced state, so a saved notebook does not carry them: x0 ([slot][frame] PNG), layers (point ->
// arrays), cross (DAAM maps), loss_masks.
// The view's state `v` ({model, ui, payload, x0, ...}, made in `render`) is passed to each function.
import * as M from "./microscope_logic.js";
import * as L from "./logic.js";
import * as F from "./features.js";
import * as D from "./draw.js";
import * as P from "./palette.js";
import * as V from "./panels.js";

const PANELS = ["x0", "masks", "pca", "self", "cross"];

function set(model, name, value) {
  model.set(name, value);
  model.save_changes();
}

/** A slider of trait `name`; `snap(value, current)` picks where it lands (the step slider: a captured step). */
function slider(model, name, cls, snap = (x) => x) {
  const s = D.h("input", { type: "range", min: "0", step: "1", class: `anyi2v-slider ${cls}`, "aria-label": name,
    ...D.OWN_KEYS });
  s.addEventListener("input", () => {
    const to = snap(Number(s.value), model.get(name));
    s.value = String(to);
    set(model, name, to);
  });
  return s;
}

/** The view's elements: three toolbars (step, frame and pickers, keys and words), the panels, a status line. */
function build(model, el, snap) {
  const ui = { stepSlider: slider(model, "step", "anyi2v-step", snap), frameSlider: slider(model, "frame", "anyi2v-frame-slider"),
    stepReadout: D.h("span", { class: "anyi2v-readout anyi2v-step-readout" }),
    frameReadout: D.h("span", { class: "anyi2v-readout anyi2v-frame-readout" }),
    timeline: D.h("canvas", { class: "anyi2v-timeline", height: "18" }),
    pointPick: D.h("span"), headPick: D.h("span"), wordPick: D.h("span", { class: "anyi2v-words" }),
    keysPick: V.select([["frame", "keys of its own frame"], ["video", "keys of all frames"]], model.get("attend"),
      (v) => set(model, "attend", v), { class: "anyi2v-keys" }),
    scalePick: V.select([["shared", "shared over frames"], ["map", "each map its own"]], model.get("scale"),
      (v) => set(model, "scale", v), { class: "anyi2v-scale" }),
    crossPick: V.select([["step", "this step"], ["all", "mean of all steps (DAAM)"]], model.get("cross_steps"),
      (v) => set(model, "cross_steps", v), { class: "anyi2v-cross-steps" }),
    panels: V.panelRow(PANELS, "anyi2v-mic-"), status: D.h("div", { class: "anyi2v-status" }),
    scratch: document.createElement("canvas"),
    snap: D.h("input", { type: "checkbox", class: "anyi2v-snap", "aria-label": "snap to the marked steps" }) };
  ui.snap.checked = true;
  const legend = D.h("div", { class: "anyi2v-legend" }, ...Object.entries(P.PHASE_COLOURS).map(([p, c]) =>
    D.h("span", {}, D.h("i", { style: `background:${P.css(c)}` }), p)));
  ui.root = D.h("div", { class: "anyi2v anyi2v-microscope" },
    D.h("div", { class: "anyi2v-toolbar" }, D.h("b", {}, "step"),
      D.h("div", { class: "anyi2v-stepbox" }, ui.stepSlider, ui.timeline), ui.stepReadout, legend,
      D.h("label", { class: "anyi2v-nowrap", title: "off: every step, for x0 at the steps without features" },
        ui.snap, "snap to the marked steps")),
    D.h("div", { class: "anyi2v-toolbar" }, D.h("b", {}, "frame"), ui.frameSlider, ui.frameReadout,
      D.h("b", {}, "hook point"), ui.pointPick, D.h("b", {}, "head"), ui.headPick),
    D.h("div", { class: "anyi2v-toolbar" }, D.h("b", {}, "point attends to"), ui.keysPick, D.h("b", {}, "word"),
      ui.wordPick, D.h("label", { class: "anyi2v-nowrap" }, D.h("b", {}, "word maps of"), ui.crossPick),
      D.h("label", { class: "anyi2v-nowrap", title: "the attention panels' colour scale" }, D.h("b", {}, "colour scale"),
        ui.scalePick), V.exportButton(ui.panels, () => [[3, ui.bars[0]], [4, ui.bars[1]]],
        () => `microscope-step-${model.get("step") + 1}-frame-${model.get("frame") + 1}.png`)),
    ui.panels.row, ui.status);
  el.append(ui.root);
  ui.bars = [V.colourBar(ui.panels.canvases[3]), V.colourBar(ui.panels.canvases[4])];
  V.clickSetsQuery(model, ui.panels.canvases, () => model.set("query_frame", model.get("frame")));
  return ui;
}

/** Why a view is empty at this step, in the readout's words ("captured at 5 of 41 steps ..., not at this one"). */
function keptAt(model, slots) {
  return M.notCaptured(slots, model.get("steps"));
}

/** The uint8 image of `kind` ("pca" or "masks") of `layer` at step `step`, frame `frame` ({data, grid}),
 * or the reason there is none ({why}). */
function lookup(model, layer, kind, step, frame) {
  if (!layer || !layer[kind] || !layer[kind].byteLength) return { why: "not captured at this hook point" };
  const steps = layer[`${kind}_steps`];
  const slot = M.slotOf(steps, step);
  if (slot < 0) return { why: keptAt(model, steps) };
  const [h, w] = layer[`${kind}_grid`];
  const per = h * w * (kind === "pca" ? 3 : 1);
  const off = M.offsetOf([steps.length, model.get("num_frames"), per], [slot, frame, 0]);
  return { data: M.bytesAt(layer[kind], off, per), grid: [h, w] };
}

/** The queries and keys of `name` at `slot` as floats, decoded once. */
function queriesKeys(v, name, layer, slot) {
  const key = `${name}|${slot}`;
  if (!v.qkCache.has(key)) {
    const [heads, N, d] = layer.qk_shape;
    const n = 2 * v.model.get("num_frames") * heads * N * d;
    const bytes = M.bytesAt(layer.qk, slot * n * 2, n * 2);
    v.qkCache.set(key, M.halfToFloat(new Uint16Array(bytes.slice().buffer)));
  }
  return v.qkCache.get(key);
}

/** Self-attention of the query point at step `step` ({probs: Float32Array(F * N), grid, cell}) or {why}. */
function selfAttention(v, name, layer, step) {
  const model = v.model;
  const q = model.get("query");
  if (!q || q.length !== 2) return { why: "click a panel to pick a point" };
  if (!layer || !layer.qk || !layer.qk.byteLength) return { why: "no queries and keys at this hook point" };
  const slot = M.slotOf(layer.qk_steps, step);
  if (slot < 0) return { why: keptAt(model, layer.qk_steps) };
  const [heads, N, d] = layer.qk_shape;
  const cell = F.cellOf(q, model.get("frame_size"), layer.grid);
  const scope = model.get("attend");
  const qFrame = scope === "video" ? model.get("query_frame") : model.get("frame");
  const head = model.get("head") < heads ? model.get("head") : -1;
  // with keys of all frames, a frame move reuses the last result
  const which = `${name}|${slot}|${qFrame}|${cell}|${head}|${scope}`;
  const shape = [model.get("num_frames"), heads, N, d];
  if (v.lastAttention.key !== which) {
    v.lastAttention = { key: which, probs: M.selfAttention(queriesKeys(v, name, layer, slot), shape, qFrame, cell, head, scope) };
  }
  const maxima = () => frameMaxima(v, `${name}|${slot}|${cell}|${head}|${scope}`, queriesKeys(v, name, layer, slot), shape,
    cell, head);
  return { probs: v.lastAttention.probs, grid: layer.grid, cell, qFrame, maxima };
}

/** Each frame's largest self-attention weight, for the shared scale: of the one map over all frames
 * (keys of all frames), or of the same point's map in every frame (keys of its own frame), cached. */
function frameMaxima(v, key, qk, shape, cell, head) {
  if (v.maxima.key !== key) {
    const [F, , N] = shape;
    const video = key.endsWith("|video");
    const values = video ? M.frameMaxima(v.lastAttention.probs, F, N)
      : Array.from({ length: F }, (_, f) => M.maxOf(M.selfAttention(qk, shape, f, cell, head, "frame"), f * N, N));
    v.maxima = { key, values };
  }
  return v.maxima.values;
}

function lossMasks(v, step, frame) {
  const m = v.payload.loss_masks;
  if (!m.weights) return {};
  const slot = M.slotOf(m.weights_steps, step);
  if (slot < 0) return {};
  const [Hg, Wg] = m.weights_grid;
  const n = m.objects * Hg * Wg;
  const off = M.offsetOf([m.weights_steps.length, v.model.get("num_frames"), n], [slot, frame, 0]);
  return { data: M.bytesAt(m.weights, off, n), grid: [Hg, Wg], objects: m.objects };
}

function crossAttention(v, step, frame) {
  const model = v.model;
  const c = v.payload.cross;
  if (!model.get("words").length || !c.cross) return { why: "no cross-attention captured" };
  const all = model.get("cross_steps") === "all";
  const slot = all ? c.cross_steps.length : M.slotOf(c.cross_steps, step);
  if (slot < 0) return { why: keptAt(model, c.cross_steps) };
  const [Hc, Wc] = c.cross_grid;
  const [H1, Wd] = c.cross_inner;
  const head = Math.min(model.get("head") + 1, H1 - 1);
  const off = M.offsetOf([c.cross_steps.length + 1, model.get("num_frames"), H1, Wd, Hc * Wc],
    [slot, frame, head, Math.min(model.get("word"), Wd - 1), 0]);
  return { data: M.bytesAt(c.cross, off, Hc * Wc), grid: [Hc, Wc], all };
}

/** x0 at step `at.s`, frame `at.f`; the frame bitmap the other panels draw over, and the caption. */
function drawX0(v, ctx, at) {
  const steps = v.model.get("steps");
  const xslot = M.slotOf(v.model.get("x0_steps"), at.s);
  const frames = xslot >= 0 ? v.x0[xslot] || [] : [];
  at.bitmap = frames.length ? frames[Math.min(at.f, frames.length - 1)] : null;
  if (at.bitmap) D.drawImage(ctx, at.bitmap, at.W, at.H);
  else V.message(ctx, xslot < 0 ? "x0 not kept at this step" : "decoding…", at.W, at.H);
  return steps.length ? `x0 (predicted clean frame), ${steps[at.s].phase} step, frame ${Math.min(at.f, frames.length - 1) + 1}`
    : "x0";
}

/** The cluster masks of the hook point over the dimmed frame, else the method's loss masks. */
function drawMasks(v, ctx, at) {
  const masks = lookup(v.model, at.layer, "masks", at.s, at.f);
  const weights = lossMasks(v, at.s, at.f);
  if (masks.data) {
    V.backdrop(ctx, at.bitmap, at.W, at.H);
    V.blit(ctx, v.ui.scratch, F.labelRgba(masks.data), masks.grid[1], masks.grid[0], at.W, at.H);
    return `${v.model.get("num_clusters")} clusters of ${at.label}, one set of centroids for all steps`;
  }
  if (weights.data) {
    V.backdrop(ctx, at.bitmap, at.W, at.H);
    V.blit(ctx, v.ui.scratch, F.weightsRgba(weights.data, weights.objects), weights.grid[1], weights.grid[0], at.W, at.H);
    return "the loss masks the optimisation used here (object colours)";
  }
  V.message(ctx, masks.why, at.W, at.H);
  return "cluster masks";
}

function drawPca(v, ctx, at) {
  const pca = lookup(v.model, at.layer, "pca", at.s, at.f);
  if (!pca.data) {
    V.message(ctx, pca.why, at.W, at.H);
    return "PCA-RGB of the features";
  }
  V.blit(ctx, v.ui.scratch, F.rgbToRgba(pca.data), pca.grid[1], pca.grid[0], at.W, at.H);
  return `PCA-RGB of ${at.label}, one basis for all steps and frames`;
}

/** Self-attention of the query point in this frame, scaled by the largest weight of any frame's map
 * (shared) or of this one. */
function drawSelf(v, ctx, at) {
  const att = selfAttention(v, at.name, at.layer, at.s);
  if (!att.probs) {
    V.message(ctx, att.why, at.W, at.H);
    return "self-attention from a point";
  }
  const N = att.grid[0] * att.grid[1];
  const video = v.model.get("attend") === "video";
  const maxima = at.scale === "map" ? M.frameMaxima(att.probs, v.model.get("num_frames"), N) : att.maxima();
  const top = M.scaleTop(at.scale, maxima, at.f);
  v.ui.bars[0].draw(at.lut, 0, top, at.scale === "map" ? "attention weight, this map's own scale"
    : "attention weight, one scale over all frames");
  V.backdrop(ctx, at.bitmap, at.W, at.H);
  V.blit(ctx, v.ui.scratch, F.heatRgba(M.scaleToBytes(att.probs, at.f * N, N, top), at.lut), att.grid[1], att.grid[0],
    at.W, at.H);
  let mass = 0;
  for (let i = at.f * N; i < (at.f + 1) * N; i++) mass += att.probs[i];
  const text = video ? `point in frame ${att.qFrame + 1} → keys of all frames; ${(100 * mass).toFixed(0)}% of it lands in this frame`
    : "point → keys of its own frame";
  return `self-attention, ${at.headText}: ${text}`;
}

/** The self-attention weight under the pointer on the self-attention panel, in the status line. */
function hoverReadout(v, canvas, e) {
  const att = v.lastAttention.probs;
  const layer = v.payload.layers[v.model.get("point")];
  const shown = layer && v.model.get("query").length === 2 && M.slotOf(layer.qk_steps || [], v.model.get("step")) >= 0;
  if (!att || !shown) return; // the panel shows a message, not a map
  const view = V.frameView(v.model);
  const p = L.clientToCanvas(e.clientX, e.clientY, canvas.getBoundingClientRect(), view.displaySize);
  const q = L.canvasToImage(p, view);
  const [h, w] = layer.grid;
  const cell = F.cellOf(q, v.model.get("frame_size"), layer.grid);
  const f = Math.min(Math.max(v.model.get("frame"), 0), v.model.get("num_frames") - 1);
  const value = att[f * h * w + cell];
  v.ui.status.textContent = `attention weight under the pointer: ${L.formatWeight(value)} (cell ${Math.floor(cell / w) + 1}, ` +
    `${(cell % w) + 1} of ${h} x ${w}, frame ${f + 1})`;
}

function drawCross(v, ctx, at) {
  const cross = crossAttention(v, at.s, at.f);
  if (!cross.data) {
    V.message(ctx, cross.why, at.W, at.H);
    return "cross-attention of a word";
  }
  V.backdrop(ctx, at.bitmap, at.W, at.H);
  // the maps come scaled over all frames (255: the word's largest weight); "each map its own" stretches this one
  const own = at.scale === "map" ? M.ownScale(cross.data) : { bytes: cross.data, top: 1 };
  V.blit(ctx, v.ui.scratch, F.heatRgba(own.bytes, at.lut), cross.grid[1], cross.grid[0], at.W, at.H);
  v.ui.bars[1].draw(at.lut, 0, own.top, at.scale === "map" ? "share of the word's largest weight, this map's own scale"
    : "share of the word's largest weight, one scale over all frames");
  const word = v.model.get("words")[v.model.get("word")];
  return `cross-attention of “${word}”, all layers, ${at.headText}, ${cross.all ? "mean of all steps" : "this step"}`;
}

/** Sliders, readouts, pickers and the timeline at step `s`, frame `f`. */
function updateControls(v, s, f) {
  const { model, ui } = v;
  const steps = model.get("steps");
  const S = steps.length;
  const n = model.get("num_frames");
  [ui.stepSlider.max, ui.stepSlider.value, ui.frameSlider.max, ui.frameSlider.value] = [S - 1, s, n - 1, f].map(String);
  ui.stepReadout.textContent = S ? M.stepLabel(steps[s], s, S) : "no steps";
  ui.frameReadout.textContent = `${f + 1} / ${n}`;
  ui.keysPick.value = model.get("attend");
  ui.crossPick.value = model.get("cross_steps");
  ui.scalePick.value = model.get("scale");
  drawTimeline(ui, steps, s, M.capturedSteps(v.payload.layers[model.get("point")]));
}

function redraw(v) {
  const t0 = performance.now();
  const { model, ui } = v;
  const s = Math.min(Math.max(model.get("step"), 0), model.get("steps").length - 1);
  const f = Math.min(Math.max(model.get("frame"), 0), model.get("num_frames") - 1);
  updateControls(v, s, f);
  const [W, H] = model.get("panel_size");
  V.resetPanels(ui.panels, [W, H]);
  const name = model.get("point");
  const head = model.get("head");
  const at = { s, f, W, H, name, layer: v.payload.layers[name], bitmap: null, lut: M.bytesAt(model.get("lut"), 0, 768),
    scale: model.get("scale"), headText: head < 0 ? "mean over heads" : `head ${head}`,
    label: (model.get("labels") || {})[name] || M.shortPoint(name) };
  for (const bar of ui.bars) bar.draw(null); // each heat panel with a map draws its own
  const painters = [drawX0, drawMasks, drawPca, drawSelf, drawCross];
  painters.forEach((paint, i) => { ui.panels.captions[i].textContent = paint(v, ui.panels.ctxs[i], at); });
  V.drawQuery(ui.panels.ctxs, model.get("query"), V.frameView(model));
  ui.status.textContent = v.received ? model.get("status") : "waiting for the kernel to send the data (run the cell)";
  ui.root.dataset.drawMs = (performance.now() - t0).toFixed(3);
}

/** The phases on one bar, a tick under each step the hook point was captured at, the step's frame. */
function drawTimeline(ui, steps, s, captured) {
  const timeline = ui.timeline;
  timeline.width = Math.round(ui.stepSlider.getBoundingClientRect().width || 320);
  const ctx = timeline.getContext("2d");
  ctx.clearRect(0, 0, timeline.width, timeline.height);
  const cell = timeline.width / Math.max(steps.length, 1);
  for (const run of M.phaseRuns(steps)) {
    ctx.fillStyle = P.PHASE_COLOURS[run.phase] ? P.css(P.PHASE_COLOURS[run.phase]) : "#888";
    ctx.fillRect(run.start * cell, 3, (run.end - run.start) * cell - 1, 8);
  }
  ctx.fillStyle = "#111";
  for (const c of captured) ctx.fillRect(c * cell + cell / 2 - 1.5, 13, 3, 5);
  ui.timeline.dataset.marks = captured.join(",");
  ctx.strokeStyle = "#111";
  ctx.lineWidth = 2;
  ctx.strokeRect(s * cell + 1, 1, Math.max(cell - 3, 2), 12);
}

function refreshPickers(v) {
  const { model, ui, payload } = v;
  const layers = payload.layers;
  const name = model.get("point");
  const labels = model.get("labels") || {};
  ui.pointPick.replaceChildren(V.select(Object.keys(layers).map((k) => [k, labels[k] || M.shortPoint(k), k]), name,
    (p) => set(model, "point", p), { class: "anyi2v-point", title: name }));
  const heads = Math.max(layers[name] ? layers[name].heads : 0, payload.cross.heads || 0);
  const opts = [[-1, "mean"], ...Array.from({ length: heads }, (_, i) => [i, String(i)])];
  ui.headPick.replaceChildren(V.select(opts, model.get("head"), (h) => set(model, "head", Number(h)), { class: "anyi2v-head" }));
  const words = model.get("words");
  ui.wordPick.replaceChildren(...words.map((w, i) => D.h("button", {
    class: `anyi2v-chip${i === model.get("word") ? " anyi2v-active" : ""}`, "data-word": String(i),
    onclick: () => set(model, "word", i) }, w)));
  if (!words.length) ui.wordPick.append("no prompt words captured");
}

async function loadX0(v) {
  const mine = ++v.loads; // a later load wins over an earlier one that finishes after it
  const decoded = await Promise.all(v.payload.x0.map((frames) => Promise.all(frames.map(D.decodePng))));
  if (mine !== v.loads) return;
  v.x0 = decoded;
  if (v.received) v.ui.root.dataset.ready = "1";
  redraw(v);
}

function onMessage(v, msg, buffers) {
  if (!msg || msg.kind !== "payload") return;
  v.payload = M.withBuffers(msg.state, msg.buffer_paths, buffers);
  v.received = true;
  v.qkCache.clear();
  v.lastAttention = { key: "", probs: null };
  v.maxima = { key: "", values: [] };
  refreshPickers(v);
  loadX0(v);
}

/** `fn(v)` once for any number of calls before the browser paints: several traits change together (a
 * click sets query_frame and query; the kernel sends batches). */
function batched(v, fn) {
  let pending = false;
  return () => {
    if (pending) return;
    pending = true;
    queueMicrotask(() => {
      pending = false;
      fn(v);
    });
  };
}

function render({ model, el }) {
  // the arrays, until the kernel sends them: empty (the panels say so); x0: [slot][frame] ImageBitmap
  const v = { model, ui: null, payload: { x0: [], layers: {}, cross: {}, loss_masks: {} }, x0: [],
    received: false, loads: 0, qkCache: new Map(), lastAttention: { key: "", probs: null },
    maxima: { key: "", values: [] } };
  v.ui = build(model, el, (to, from) => (v.ui.snap.checked
    ? M.snapStep(M.capturedSteps(v.payload.layers[model.get("point")]), to, from) : to));
  const selfPanel = v.ui.panels.canvases[3];
  selfPanel.addEventListener("mousemove", (e) => hoverReadout(v, selfPanel, e));
  const requestRedraw = batched(v, redraw);
  const handlers = [
    [["step", "frame", "query", "query_frame", "attend", "cross_steps", "scale", "status", "panel_size", "num_frames", "steps",
      "lut", "num_clusters"], requestRedraw],
    [["x0_steps"], () => loadX0(v)],
    [["point", "head", "words", "word", "labels"], () => { refreshPickers(v); requestRedraw(); }],
  ];
  const receive = (msg, buffers) => onMessage(v, msg, buffers);
  for (const [names, fn] of handlers) for (const name of names) model.on(`change:${name}`, fn);
  model.on("msg:custom", receive);
  refreshPickers(v);
  redraw(v);
  model.send({ kind: "payload?" });
  return () => {
    for (const [names, fn] of handlers) for (const name of names) model.off(`change:${name}`, fn);
    model.off("msg:custom", receive);
  };
}

export default { render };
