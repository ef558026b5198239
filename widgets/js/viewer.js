// FeatureViewer view: one frame slider drives three panels: the frame with its semantic masks and
// boxes, the PCA-RGB image of the chosen hook point, and the attention map of the clicked pixel.
// Python computes every image (widgets/features.py); this view only draws them and reports clicks.
// Synced: frames, masks, boxes, frame_size, panel_size, frame, pca (name -> PNG per frame),
// pca_point, attention_points, attention_point, query ([x, y] frame pixels or []), follow (the object
// whose box centre the query follows, -1 after a click), attention (PNG), attention_values (its weights,
// float32 over attention_grid [h, w], read under the pointer).
import * as L from "./logic.js";
import * as D from "./draw.js";
import * as P from "./palette.js";
import * as F from "./features.js";
import * as V from "./panels.js";

/** The view's elements: a toolbar (frame slider, labelled pickers, the busy sign), panels with the
 * attention's colour bar, a status line. */
function build(model, el) {
  const slider = D.h("input", { type: "range", min: "0", step: "1", class: "anyi2v-slider", "aria-label": "frame",
    ...D.OWN_KEYS });
  slider.addEventListener("input", () => set(model, "frame", Number(slider.value)));
  const ui = { slider, readout: D.h("span", { class: "anyi2v-readout" }), pcaSelect: D.h("span"),
    attnSelect: D.h("span"), status: D.h("div", { class: "anyi2v-status" }),
    scaleSelect: V.select([["shared", "shared over frames"], ["map", "each map its own"]], model.get("scale"),
      (v) => set(model, "scale", v), { class: "anyi2v-scale" }),
    busy: D.h("span", { class: "anyi2v-busy-sign", role: "status" }, "waiting for the kernel (a cell is running)…"),
    panels: V.panelRow(["frame", "pca", "attention"], "anyi2v-"), hover: D.h("div", { class: "anyi2v-status anyi2v-hover" }) };
  const labelled = (text, ...c) => D.h("label", {}, text, ...c);
  ui.root = D.h("div", { class: "anyi2v anyi2v-viewer" },
    D.h("div", { class: "anyi2v-toolbar" }, labelled("frame", slider, ui.readout), labelled("features", ui.pcaSelect),
      labelled("attention", ui.attnSelect), labelled("colour scale", ui.scaleSelect),
      V.exportButton(ui.panels, () => [[2, ui.bar]], () => `feature-viewer-frame-${model.get("frame") + 1}.png`), ui.busy),
    ui.panels.row, ui.hover, ui.status);
  el.append(ui.root);
  ui.bar = V.colourBar(ui.panels.canvases[2]);
  V.clickSetsQuery(model, ui.panels.canvases, () => model.set("follow", -1)); // a chosen point stays put
  return ui;
}

/** The attention weight under the pointer on the attention panel (the kernel's map, not one it still computes). */
function hoverReadout(model, ui, values, e) {
  const canvas = ui.panels.canvases[2];
  const view = V.frameView(model);
  const p = L.clientToCanvas(e.clientX, e.clientY, canvas.getBoundingClientRect(), view.displaySize);
  const at = F.valueUnder(values, model.get("attention_grid"), L.canvasToImage(p, view), model.get("frame_size"));
  const [h, w] = model.get("attention_grid");
  ui.hover.textContent = ui.root.classList.contains("anyi2v-busy") ? "weight under the pointer: waiting for the kernel"
    : at ? `weight under the pointer: ${L.formatWeight(at.value)} (cell ${at.row}, ${at.col} of ${h} x ${w})` : "";
}

function set(model, name, value) {
  model.set(name, value);
  model.save_changes();
}

/** The frame with its masks and boxes, the PCA-RGB and the attention over the dimmed frame at frame `f`. */
function drawPanels(model, ui, images, f) {
  const [w, h] = model.get("panel_size");
  const [fc, pc, ac] = ui.panels.ctxs;
  const view = V.frameView(model);
  D.drawImage(fc, images.frames[f], w, h);
  D.drawImage(fc, images.masks[f], w, h);
  model.get("boxes").forEach((fb, o) => {
    const b = fb[f];
    D.strokeBox(fc, [...L.imageToCanvas([b[0], b[1]], view), ...L.imageToCanvas([b[2], b[3]], view)], P.objectColour(o));
  });
  const pca = images.pca[model.get("pca_point")];
  if (pca) D.drawImage(pc, pca[f], w, h);
  V.backdrop(ac, images.frames[f], w, h);
  D.drawImage(ac, images.attention, w, h);
  V.drawQuery(ui.panels.ctxs, model.get("query"), view);
}

function writeCaptions(model, ui, busy) {
  const [frameCaption, pcaCaption, attentionCaption] = ui.panels.captions;
  const point = model.get("pca_point");
  const ap = model.get("attention_point");
  const q = model.get("query");
  const who = model.get("follow") >= 0 ? "the object's centre" : "the marked pixel";
  frameCaption.textContent = model.get("masks").length ? "frame + semantic masks" : "frame";
  pcaCaption.textContent = point ? `PCA-RGB of ${plain(model, point)}` : "no feature maps given";
  pcaCaption.title = point;
  attentionCaption.title = ap;
  attentionCaption.textContent = !ap ? "no attention probabilities given"
    : busy ? "waiting for the kernel: the map shown (dimmed) is the previous one"
      : q && q.length === 2 ? `where ${who} attends, ${plain(model, ap)}` : "click a panel to pick a pixel";
  ui.status.textContent = model.get("status");
  const [lo, hi] = model.get("attention_range");
  const shared = model.get("scale") === "shared";
  ui.bar.draw(ap && model.get("attention").byteLength ? model.get("heat_lut") : null, lo, hi,
    shared ? "attention weight, one scale over all frames" : "attention weight, this map's own scale");
}

function redraw(model, ui, images) {
  const n = model.get("num_frames");
  const f = Math.min(Math.max(model.get("frame"), 0), n - 1);
  const busy = L.isStale(model.get("answered"), model.get("frame"), model.get("query"), model.get("attention_point"));
  ui.root.classList.toggle("anyi2v-busy", busy);
  ui.slider.max = String(n - 1);
  ui.slider.value = String(f);
  ui.readout.textContent = `${f + 1} / ${n}`;
  V.resetPanels(ui.panels, model.get("panel_size"));
  drawPanels(model, ui, images, f);
  writeCaptions(model, ui, busy);
}

/** A point's plain label ("up_blocks.1 attention 0, 16x16: self-attention"); the full name on hover. */
function plain(model, name) {
  return model.get("labels")[name] || name;
}

function refreshSelects(model, ui) {
  const named = (names) => names.map((name) => [name, plain(model, name), name]);
  const pick = (name, names, cls) => {
    const s = V.select(named(names), model.get(name), (v) => set(model, name, v), { class: cls });
    s.title = model.get(name);
    return s;
  };
  ui.pcaSelect.replaceChildren(pick("pca_point", Object.keys(model.get("pca")), "anyi2v-pca-pick"));
  ui.attnSelect.replaceChildren(pick("attention_point", model.get("attention_points"), "anyi2v-attention-pick"));
  ui.scaleSelect.value = model.get("scale");
}

/** The decoders of the synced PNGs into `images`, each followed by `after`. */
function loaders(model, images, after) {
  return {
    async frames() {
      images.frames = await Promise.all(model.get("frames").map(D.decodePng));
      images.masks = await Promise.all(model.get("masks").map(D.decodePng));
      after();
    },
    async pca() {
      const out = {};
      for (const [name, pngs] of Object.entries(model.get("pca"))) out[name] = await Promise.all(pngs.map(D.decodePng));
      images.pca = out;
      after(true);
    },
    async attention() {
      images.attention = await D.decodePng(model.get("attention"));
      after();
    },
  };
}

function render({ model, el }) {
  const ui = build(model, el);
  const images = { frames: [], masks: [], pca: {}, attention: null };
  const draw = () => redraw(model, ui, images);
  let values = F.float32s(model.get("attention_values"));
  const attentionPanel = ui.panels.canvases[2];
  attentionPanel.addEventListener("mousemove", (e) => hoverReadout(model, ui, values, e));
  attentionPanel.addEventListener("mouseleave", () => { ui.hover.textContent = ""; });
  const readValues = () => { values = F.float32s(model.get("attention_values")); };
  const load = loaders(model, images, (pickers = false) => {
    if (pickers) refreshSelects(model, ui);
    draw();
  });
  const handlers = [
    [["frame", "query", "follow", "boxes", "panel_size", "status", "num_frames", "answered", "attention_range"], draw],
    [["frames", "masks"], load.frames],
    [["pca"], load.pca],
    [["attention"], load.attention],
    [["attention_values"], readValues],
    [["pca_point", "attention_point", "attention_points", "labels", "scale"], () => { refreshSelects(model, ui); draw(); }],
  ];
  for (const [names, fn] of handlers) for (const name of names) model.on(`change:${name}`, fn);
  refreshSelects(model, ui);
  draw();
  load.frames();
  load.pca();
  load.attention();
  return () => {
    for (const [names, fn] of handlers) for (const name of names) model.off(`change:${name}`, fn);
  };
}

export default { render };
