// Microscope view: one step slider (inversion, optimisation, sampling), a frame slider and pickers for
// hook point, head and prompt word drive five linked panels: the predicted clean frame x0, the
// cluster masks over it, the PCA-RGB of the features, self-attention from the clicked point and
// cross-attention of the chosen word. Python ships every image once (widgets/microscope.py); a slider
// move or a click is a lookup in those arrays (microscope_logic.js), never a kernel round trip.
// Synced: steps ([{phase, index, timestep}]), step, frame, num_frames, frame_size, panel_size,
// x0_steps, point, head (-1: mean), words, word, cross_steps, query ([x, y] frame pixels), query_frame,
// attend, lut (256 x 3 heat colours), palette, status.
// The arrays come in one custom message this view asks for when it opens ({kind: "payload?"}), not as
// synced state, so a saved notebook does not carry them: x0 ([slot][frame] PNG), layers (point ->
// arrays), cross (DAAM maps), loss_masks.
import * as M from "./microscope_logic.js";
import * as L from "./logic.js";
import * as D from "./draw.js";

const PHASE_COLOURS = { inversion: "#7e57c2", optimisation: "#ef6c00", sampling: "#1e88e5" };
const PANELS = [
  ["x0", "predicted clean frame x0"],
  ["masks", "cluster masks"],
  ["pca", "PCA-RGB of the features"],
  ["self", "self-attention from the point"],
  ["cross", "cross-attention of the word"],
];

function select(options, value, onchange, attrs = {}) {
  const s = D.h("select", { onchange: () => onchange(s.value), ...D.OWN_KEYS, ...attrs });
  s.replaceChildren(...options.map(([v, text]) => D.h("option", { value: String(v) }, text)));
  s.value = String(value);
  return s;
}

/** Draw `rgba` (w x h pixels) scaled over the whole canvas through a scratch canvas. */
function blit(ctx, scratch, rgba, w, h, W, H) {
  if (scratch.width !== w || scratch.height !== h) [scratch.width, scratch.height] = [w, h];
  scratch.getContext("2d").putImageData(new ImageData(rgba, w, h), 0, 0);
  ctx.save();
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(scratch, 0, 0, W, H);
  ctx.restore();
}

function message(ctx, text, W, H) {
  ctx.save();
  ctx.fillStyle = "#2b2b2b";
  ctx.fillRect(0, 0, W, H);
  ctx.fillStyle = "#bbb";
  ctx.font = "12px system-ui, sans-serif";
  ctx.textAlign = "center";
  ctx.fillText(text, W / 2, H / 2);
  ctx.restore();
}

function render({ model, el }) {
  const set = (name, value) => {
    model.set(name, value);
    model.save_changes();
  };
  const stepSlider = D.h("input", { type: "range", min: "0", step: "1", class: "anyi2v-slider anyi2v-step", ...D.OWN_KEYS });
  const frameSlider = D.h("input", { type: "range", min: "0", step: "1", class: "anyi2v-slider anyi2v-frame-slider", ...D.OWN_KEYS });
  stepSlider.addEventListener("input", () => set("step", Number(stepSlider.value)));
  frameSlider.addEventListener("input", () => set("frame", Number(frameSlider.value)));
  const stepReadout = D.h("span", { class: "anyi2v-readout anyi2v-step-readout" });
  const frameReadout = D.h("span", { class: "anyi2v-readout anyi2v-frame-readout" });
  const timeline = D.h("canvas", { class: "anyi2v-timeline", height: "14" });
  const pointPick = D.h("span");
  const headPick = D.h("span");
  const wordPick = D.h("span", { class: "anyi2v-words" });
  const keysPick = select([["frame", "keys of its own frame"], ["video", "keys of all frames"]], model.get("attend"),
    (v) => set("attend", v), { class: "anyi2v-keys" });
  const crossPick = select([["step", "this step"], ["all", "mean of all steps (DAAM)"]], model.get("cross_steps"),
    (v) => set("cross_steps", v), { class: "anyi2v-cross-steps" });
  const canvases = PANELS.map(([k]) => D.h("canvas", { class: `anyi2v-panel anyi2v-mic-${k}` }));
  const captions = PANELS.map(() => D.h("div", { class: "anyi2v-caption" }));
  const status = D.h("div", { class: "anyi2v-status" });
  const legend = D.h("div", { class: "anyi2v-legend" }, ...Object.entries(PHASE_COLOURS).map(([p, c]) =>
    D.h("span", {}, D.h("i", { style: `background:${c}` }), p)));
  const root = D.h("div", { class: "anyi2v anyi2v-microscope" },
    D.h("div", { class: "anyi2v-toolbar" }, D.h("b", {}, "step"), D.h("div", { class: "anyi2v-stepbox" }, stepSlider, timeline),
      stepReadout, legend),
    D.h("div", { class: "anyi2v-toolbar" }, D.h("b", {}, "frame"), frameSlider, frameReadout,
      D.h("b", {}, "hook point"), pointPick, D.h("b", {}, "head"), headPick),
    D.h("div", { class: "anyi2v-toolbar" }, D.h("b", {}, "point attends to"), keysPick, D.h("b", {}, "word"), wordPick, crossPick),
    D.h("div", { class: "anyi2v-panels" }, ...canvases.map((c, i) => D.h("figure", {}, c, captions[i]))),
    status);
  el.append(root);
  const ctxs = canvases.map((c) => c.getContext("2d"));
  const scratch = document.createElement("canvas");
  let x0 = []; // [slot][frame] ImageBitmap
  // the arrays, until the kernel sends them: empty (the panels say so)
  let payload = { x0: [], layers: {}, cross: {}, loss_masks: {} };
  let received = false;

  const view = () => ({ imageSize: model.get("frame_size"), displaySize: model.get("panel_size") });
  for (const c of canvases) {
    c.addEventListener("click", (e) => {
      const p = L.clientToCanvas(e.clientX, e.clientY, c.getBoundingClientRect(), [c.width, c.height]);
      model.set("query_frame", model.get("frame"));
      set("query", L.clampPoint(L.canvasToImage(p, view()), model.get("frame_size")));
    });
  }

  /** Why a view is empty at this step: "kept at sampling steps only". */
  function keptAt(slots) {
    const all = model.get("steps");
    return `kept at ${M.phasesOf(slots.map((i) => all[i]))} steps only`;
  }

  /** The uint8 image of `kind` ("pca" or "masks") of `layer` at step `step`, frame `frame` ({data, grid}),
   * or the reason there is none ({why}). */
  function lookup(layer, kind, step, frame) {
    if (!layer || !layer[kind] || !layer[kind].byteLength) return { why: "not captured at this hook point" };
    const steps = layer[`${kind}_steps`];
    const slot = M.slotOf(steps, step);
    if (slot < 0) return { why: keptAt(steps) };
    const [h, w] = layer[`${kind}_grid`];
    const per = h * w * (kind === "pca" ? 3 : 1);
    const off = M.offsetOf([steps.length, model.get("num_frames"), per], [slot, frame, 0]);
    return { data: M.bytesAt(layer[kind], off, per), grid: [h, w] };
  }

  const qkCache = new Map(); // "point|slot" -> Float32Array (q|k, F, heads, N, d)
  let lastAttention = { key: "", probs: null }; // with keys of all frames, a frame move reuses it
  /** Self-attention of the query point at step `step` ({probs: Float32Array(F * N), grid, cell}) or {why}. */
  function selfAttention(name, layer, step) {
    const q = model.get("query");
    if (!q || q.length !== 2) return { why: "click a panel to pick a point" };
    if (!layer || !layer.qk || !layer.qk.byteLength) return { why: "no queries and keys at this hook point" };
    const slot = M.slotOf(layer.qk_steps, step);
    if (slot < 0) return { why: keptAt(layer.qk_steps) };
    const F = model.get("num_frames");
    const [heads, N, d] = layer.qk_shape;
    const key = `${name}|${slot}`;
    if (!qkCache.has(key)) {
      const n = 2 * F * heads * N * d;
      const bytes = M.bytesAt(layer.qk, slot * n * 2, n * 2);
      qkCache.set(key, M.halfToFloat(new Uint16Array(bytes.slice().buffer)));
    }
    const cell = M.cellOf(q, model.get("frame_size"), layer.grid);
    const scope = model.get("attend");
    const qFrame = scope === "video" ? model.get("query_frame") : model.get("frame");
    const head = model.get("head") < heads ? model.get("head") : -1;
    const which = `${key}|${qFrame}|${cell}|${head}|${scope}`;
    if (lastAttention.key !== which) {
      lastAttention = { key: which, probs: M.selfAttention(qkCache.get(key), [F, heads, N, d], qFrame, cell, head, scope) };
    }
    return { probs: lastAttention.probs, grid: layer.grid, cell, qFrame };
  }

  function lossMasks(step, frame) {
    const m = payload.loss_masks;
    if (!m.weights) return {};
    const slot = M.slotOf(m.weights_steps, step);
    if (slot < 0) return {};
    const [Hg, Wg] = m.weights_grid;
    const n = m.objects * Hg * Wg;
    const off = M.offsetOf([m.weights_steps.length, model.get("num_frames"), n], [slot, frame, 0]);
    return { data: M.bytesAt(m.weights, off, n), grid: [Hg, Wg], objects: m.objects, colours: m.colours };
  }

  function crossAttention(step, frame) {
    const c = payload.cross;
    const words = model.get("words");
    if (!words.length || !c.cross) return { why: "no cross-attention captured" };
    const all = model.get("cross_steps") === "all";
    const slot = all ? c.cross_steps.length : M.slotOf(c.cross_steps, step);
    if (slot < 0) return { why: keptAt(c.cross_steps) };
    const [Hc, Wc] = c.cross_grid;
    const [H1, Wd] = c.cross_inner;
    const head = Math.min(model.get("head") + 1, H1 - 1);
    const off = M.offsetOf([c.cross_steps.length + 1, model.get("num_frames"), H1, Wd, Hc * Wc],
      [slot, frame, head, Math.min(model.get("word"), Wd - 1), 0]);
    return { data: M.bytesAt(c.cross, off, Hc * Wc), grid: [Hc, Wc], all };
  }

  function backdrop(ctx, bitmap, W, H) {
    if (!bitmap) return;
    ctx.save();
    ctx.filter = "grayscale(1) brightness(0.55)";
    D.drawImage(ctx, bitmap, W, H);
    ctx.restore();
  }

  function redraw() {
    const t0 = performance.now();
    const steps = model.get("steps");
    const S = steps.length;
    const F = model.get("num_frames");
    const s = Math.min(Math.max(model.get("step"), 0), S - 1);
    const f = Math.min(Math.max(model.get("frame"), 0), F - 1);
    const [W, H] = model.get("panel_size");
    stepSlider.max = String(S - 1);
    stepSlider.value = String(s);
    frameSlider.max = String(F - 1);
    frameSlider.value = String(f);
    stepReadout.textContent = S ? M.stepLabel(steps[s], s, S) : "no steps";
    frameReadout.textContent = `${f + 1} / ${F}`;
    keysPick.value = model.get("attend");
    crossPick.value = model.get("cross_steps");
    drawTimeline(steps, s);
    canvases.forEach((c, i) => {
      if (c.width !== W || c.height !== H) [c.width, c.height] = [W, H];
      c.parentElement.style.width = `${W}px`;
      ctxs[i].clearRect(0, 0, W, H);
    });
    const [cx0, cmask, cpca, cself, ccross] = ctxs;
    const xslot = M.slotOf(model.get("x0_steps"), s);
    const frames = xslot >= 0 ? x0[xslot] || [] : [];
    const frameBitmap = frames.length ? frames[Math.min(f, frames.length - 1)] : null;
    if (frameBitmap) D.drawImage(cx0, frameBitmap, W, H);
    else message(cx0, xslot < 0 ? "x0 not kept at this step" : "decoding…", W, H);

    const name = model.get("point");
    const layer = payload.layers[name];
    const head = model.get("head");
    const q = model.get("query");
    const hasQ = q && q.length === 2;
    const lut = M.bytesAt(model.get("lut"), 0, 768);

    const masks = lookup(layer, "masks", s, f);
    const weights = lossMasks(s, f);
    if (masks.data) {
      backdrop(cmask, frameBitmap, W, H);
      blit(cmask, scratch, M.labelRgba(masks.data, model.get("palette")), masks.grid[1], masks.grid[0], W, H);
    } else if (weights.data) {
      backdrop(cmask, frameBitmap, W, H);
      blit(cmask, scratch, M.weightsRgba(weights.data, weights.objects, weights.colours), weights.grid[1], weights.grid[0], W, H);
    } else message(cmask, masks.why, W, H);
    const pca = lookup(layer, "pca", s, f);
    if (pca.data) blit(cpca, scratch, M.rgbToRgba(pca.data), pca.grid[1], pca.grid[0], W, H);
    else message(cpca, pca.why, W, H);

    const att = selfAttention(name, layer, s);
    let selfText = att.why || "";
    if (att.probs) {
      const N = att.grid[0] * att.grid[1];
      const video = model.get("attend") === "video";
      const top = video ? M.maxOf(att.probs) : M.maxOf(att.probs, f * N, N);
      backdrop(cself, frameBitmap, W, H);
      blit(cself, scratch, M.heatRgba(M.scaleToBytes(att.probs, f * N, N, top), lut), att.grid[1], att.grid[0], W, H);
      let mass = 0;
      for (let i = f * N; i < (f + 1) * N; i++) mass += att.probs[i];
      selfText = video ? `point in frame ${att.qFrame + 1} → keys of all frames; ${(100 * mass).toFixed(0)}% of it lands in this frame`
        : "point → keys of its own frame";
    } else message(cself, att.why, W, H);
    const cross = crossAttention(s, f);
    if (cross.data) {
      backdrop(ccross, frameBitmap, W, H);
      blit(ccross, scratch, M.heatRgba(cross.data, lut), cross.grid[1], cross.grid[0], W, H);
    } else message(ccross, cross.why, W, H);

    if (hasQ) {
      const p = L.imageToCanvas(q, view());
      for (const ctx of ctxs) D.cross(ctx, p, "#00ff88", 6);
    }
    const headText = head < 0 ? "mean over heads" : `head ${head}`;
    const words = model.get("words");
    captions[0].textContent = S ? `x0 (predicted clean frame), ${steps[s].phase} step, frame ${Math.min(f, frames.length - 1) + 1}` : "x0";
    captions[1].textContent = masks.data ? `${model.get("num_clusters")} clusters of ${M.shortPoint(name)}, one set of centroids for all steps`
      : weights.data ? "the loss masks the optimisation used here (object colours)" : "cluster masks";
    captions[2].textContent = pca.data ? `PCA-RGB of ${M.shortPoint(name)}, one basis for all steps and frames` : "PCA-RGB of the features";
    captions[3].textContent = att.probs ? `self-attention, ${headText}: ${selfText}` : "self-attention from a point";
    captions[4].textContent = cross.data ? `cross-attention of “${words[model.get("word")]}”, all layers, ${headText}, ${cross.all ? "mean of all steps" : "this step"}`
      : "cross-attention of a word";
    status.textContent = received ? model.get("status") : "waiting for the kernel to send the data (run the cell)";
    root.dataset.drawMs = (performance.now() - t0).toFixed(3);
  }

  // several traits change together (a click sets query_frame and query; the kernel sends batches):
  // one redraw for all of them, before the browser paints
  let pending = false;
  function requestRedraw() {
    if (pending) return;
    pending = true;
    queueMicrotask(() => {
      pending = false;
      redraw();
    });
  }

  function drawTimeline(steps, s) {
    const w = stepSlider.getBoundingClientRect().width || 320;
    timeline.width = Math.round(w);
    const ctx = timeline.getContext("2d");
    ctx.clearRect(0, 0, timeline.width, timeline.height);
    const n = Math.max(steps.length, 1);
    const cell = timeline.width / n;
    for (const run of M.phaseRuns(steps)) {
      ctx.fillStyle = PHASE_COLOURS[run.phase] || "#888";
      ctx.fillRect(run.start * cell, 3, (run.end - run.start) * cell - 1, 8);
    }
    ctx.strokeStyle = "#111";
    ctx.lineWidth = 2;
    ctx.strokeRect(s * cell + 1, 1, Math.max(cell - 3, 2), 12);
  }

  function refreshPickers() {
    const layers = payload.layers;
    const name = model.get("point");
    pointPick.replaceChildren(select(Object.keys(layers).map((k) => [k, M.shortPoint(k)]), name, (v) => set("point", v), { class: "anyi2v-point" }));
    const heads = Math.max(layers[name] ? layers[name].heads : 0, payload.cross.heads || 0);
    const opts = [[-1, "mean"], ...Array.from({ length: heads }, (_, i) => [i, String(i)])];
    headPick.replaceChildren(select(opts, model.get("head"), (v) => set("head", Number(v)), { class: "anyi2v-head" }));
    const words = model.get("words");
    wordPick.replaceChildren(...words.map((w, i) => {
      const b = D.h("button", { class: `anyi2v-chip${i === model.get("word") ? " anyi2v-active" : ""}`, "data-word": String(i),
        onclick: () => set("word", i) }, w);
      return b;
    }));
    if (!words.length) wordPick.append("no prompt words captured");
  }

  let loads = 0; // a later load wins over an earlier one that finishes after it
  async function loadX0() {
    const mine = ++loads;
    const decoded = await Promise.all(payload.x0.map((frames) => Promise.all(frames.map(D.decodePng))));
    if (mine !== loads) return;
    x0 = decoded;
    if (received) root.dataset.ready = "1";
    redraw();
  }
  function onMessage(msg, buffers) {
    if (!msg || msg.kind !== "payload") return;
    payload = M.withBuffers(msg.state, msg.buffer_paths, buffers);
    received = true;
    qkCache.clear();
    lastAttention = { key: "", probs: null };
    refreshPickers();
    loadX0();
  }
  const handlers = [
    [["step", "frame", "query", "query_frame", "attend", "cross_steps", "status", "panel_size", "num_frames", "steps",
      "lut", "palette", "num_clusters"], requestRedraw],
    [["x0_steps"], loadX0],
    [["point", "head", "words", "word"], () => { refreshPickers(); requestRedraw(); }],
  ];
  for (const [names, fn] of handlers) for (const name of names) model.on(`change:${name}`, fn);
  model.on("msg:custom", onMessage);
  refreshPickers();
  redraw();
  model.send({ kind: "payload?" });
  return () => {
    for (const [names, fn] of handlers) for (const name of names) model.off(`change:${name}`, fn);
    model.off("msg:custom", onMessage);
  };
}

export default { render };
