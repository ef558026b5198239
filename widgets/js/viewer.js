// FeatureViewer view: one frame slider drives three panels: the frame with its semantic masks and
// boxes, the PCA-RGB image of the chosen hook point, and the attention map of the clicked pixel.
// Python computes every image (widgets/features.py); this view only draws them and reports clicks.
// Synced: frames, masks, boxes, frame_size, panel_size, frame, pca (name -> PNG per frame),
// pca_point, attention_points, attention_point, query ([x, y] frame pixels or []), follow (the object
// whose box centre the query follows, -1 after a click), attention (PNG).
import * as L from "./logic.js";
import * as D from "./draw.js";
import * as P from "./palette.js";
import * as V from "./panels.js";

/** The view's elements: a toolbar (frame slider, feature and attention pickers), panels, a status line. */
function build(model, el) {
  const slider = D.h("input", { type: "range", min: "0", step: "1", class: "anyi2v-slider", ...D.OWN_KEYS });
  slider.addEventListener("input", () => set(model, "frame", Number(slider.value)));
  const ui = { slider, readout: D.h("span", { class: "anyi2v-readout" }), pcaSelect: D.h("span"),
    attnSelect: D.h("span"), status: D.h("div", { class: "anyi2v-status" }),
    panels: V.panelRow(["frame", "pca", "attention"], "anyi2v-") };
  el.append(D.h("div", { class: "anyi2v anyi2v-viewer" },
    D.h("div", { class: "anyi2v-toolbar" }, "frame", slider, ui.readout, "features", ui.pcaSelect, "attention",
      ui.attnSelect),
    ui.panels.row, ui.status));
  V.clickSetsQuery(model, ui.panels.canvases, () => model.set("follow", -1)); // a chosen point stays put
  return ui;
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

function writeCaptions(model, ui) {
  const [frameCaption, pcaCaption, attentionCaption] = ui.panels.captions;
  const point = model.get("pca_point");
  const ap = model.get("attention_point");
  const q = model.get("query");
  const who = model.get("follow") >= 0 ? "the object's centre" : "the marked pixel";
  frameCaption.textContent = model.get("masks").length ? "frame + semantic masks" : "frame";
  pcaCaption.textContent = point ? `PCA-RGB of ${point}` : "no feature maps given";
  attentionCaption.textContent = ap ? (q && q.length === 2 ? `where ${who} attends, ${ap}` : "click a panel to pick a pixel")
    : "no attention probabilities given";
  ui.status.textContent = model.get("status");
}

function redraw(model, ui, images) {
  const n = model.get("num_frames");
  const f = Math.min(Math.max(model.get("frame"), 0), n - 1);
  ui.slider.max = String(n - 1);
  ui.slider.value = String(f);
  ui.readout.textContent = `${f + 1} / ${n}`;
  V.resetPanels(ui.panels, model.get("panel_size"));
  drawPanels(model, ui, images, f);
  writeCaptions(model, ui);
}

function refreshSelects(model, ui) {
  const named = (names) => names.map((name) => [name, name]);
  ui.pcaSelect.replaceChildren(V.select(named(Object.keys(model.get("pca"))), model.get("pca_point"),
    (v) => set(model, "pca_point", v)));
  ui.attnSelect.replaceChildren(V.select(named(model.get("attention_points")), model.get("attention_point"),
    (v) => set(model, "attention_point", v)));
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
  const load = loaders(model, images, (pickers = false) => {
    if (pickers) refreshSelects(model, ui);
    draw();
  });
  const handlers = [
    [["frame", "query", "follow", "boxes", "panel_size", "status", "num_frames"], draw],
    [["frames", "masks"], load.frames],
    [["pca"], load.pca],
    [["attention"], load.attention],
    [["pca_point", "attention_point", "attention_points"], () => { refreshSelects(model, ui); draw(); }],
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
