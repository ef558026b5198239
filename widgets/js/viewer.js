// FeatureViewer view: one frame slider drives three panels: the frame with its semantic masks and
// boxes, the PCA-RGB image of the chosen hook point, and the attention map of the clicked pixel.
// Python computes every image (widgets/viewer_images.py); this view only draws them and reports clicks.
// Synced: frames, masks, boxes, frame_size, panel_size, frame, pca (name -> PNG per frame),
// pca_point, attention_points, attention_point, query ([x, y] frame pixels or []), follow (the object
// whose box centre the query follows, -1 after a click), attention (PNG).
import * as L from "./logic.js";
import * as D from "./draw.js";

function select(options, value, onchange) {
  const s = D.h("select", { onchange: () => onchange(s.value), ...D.OWN_KEYS });
  s.replaceChildren(...options.map((o) => D.h("option", { value: o }, o)));
  s.value = value;
  return s;
}

function render({ model, el }) {
  const set = (name, value) => {
    model.set(name, value);
    model.save_changes();
  };
  const slider = D.h("input", { type: "range", min: "0", step: "1", class: "anyi2v-slider", ...D.OWN_KEYS });
  slider.addEventListener("input", () => set("frame", Number(slider.value)));
  const readout = D.h("span", { class: "anyi2v-readout" });
  const pcaSelect = D.h("span");
  const attnSelect = D.h("span");
  const panels = ["frame", "pca", "attention"].map((name) => D.h("canvas", { class: `anyi2v-panel anyi2v-${name}` }));
  const captions = panels.map(() => D.h("div", { class: "anyi2v-caption" }));
  const status = D.h("div", { class: "anyi2v-status" });
  el.append(D.h("div", { class: "anyi2v anyi2v-viewer" },
    D.h("div", { class: "anyi2v-toolbar" }, "frame", slider, readout, "features", pcaSelect, "attention", attnSelect),
    D.h("div", { class: "anyi2v-panels" }, ...panels.map((c, i) => D.h("figure", {}, c, captions[i]))),
    status));
  const ctxs = panels.map((c) => c.getContext("2d"));
  let frames = [];
  let masks = [];
  let pca = {};
  let attention = null;

  const view = () => ({ imageSize: model.get("frame_size"), displaySize: model.get("panel_size") });
  for (const c of panels) {
    c.addEventListener("click", (e) => {
      const p = L.clientToCanvas(e.clientX, e.clientY, c.getBoundingClientRect(), [c.width, c.height]);
      model.set("follow", -1); // a chosen point stays where it was put
      set("query", L.clampPoint(L.canvasToImage(p, view()), model.get("frame_size")));
    });
  }

  function redraw() {
    const n = model.get("num_frames");
    const f = Math.min(Math.max(model.get("frame"), 0), n - 1);
    const [w, h] = model.get("panel_size");
    const v = view();
    slider.max = String(n - 1);
    slider.value = String(f);
    readout.textContent = `${f + 1} / ${n}`;
    panels.forEach((c, i) => {
      [c.width, c.height] = [w, h];
      c.parentElement.style.width = `${w}px`; // long hook point names wrap instead of widening the panel
      ctxs[i].clearRect(0, 0, w, h);
    });
    const [fc, pc, ac] = ctxs;
    D.drawImage(fc, frames[f], w, h);
    D.drawImage(fc, masks[f], w, h);
    model.get("boxes").forEach((fb, o) => {
      const b = fb[f];
      const c = L.COLOURS[o % L.COLOURS.length];
      D.strokeBox(fc, [...L.imageToCanvas([b[0], b[1]], v), ...L.imageToCanvas([b[2], b[3]], v)], c);
    });
    const point = model.get("pca_point");
    if (pca[point]) D.drawImage(pc, pca[point][f], w, h);
    if (frames[f]) {
      ac.save();
      ac.filter = "grayscale(1) brightness(0.6)";
      D.drawImage(ac, frames[f], w, h);
      ac.restore();
    }
    D.drawImage(ac, attention, w, h);
    const q = model.get("query");
    if (q && q.length === 2) for (const ctx of ctxs) D.cross(ctx, L.imageToCanvas(q, v), "#00ff88", 6);
    captions[0].textContent = model.get("masks").length ? "frame + semantic masks" : "frame";
    captions[1].textContent = point ? `PCA-RGB of ${point}` : "no feature maps given";
    const ap = model.get("attention_point");
    const who = model.get("follow") >= 0 ? "the object's centre" : "the marked pixel";
    captions[2].textContent = ap ? (q && q.length === 2 ? `where ${who} attends, ${ap}` : "click a panel to pick a pixel")
      : "no attention probabilities given";
    status.textContent = model.get("status");
  }
  function refreshSelects() {
    pcaSelect.replaceChildren(select(Object.keys(model.get("pca")), model.get("pca_point"), (v) => set("pca_point", v)));
    attnSelect.replaceChildren(select(model.get("attention_points"), model.get("attention_point"), (v) => set("attention_point", v)));
  }
  async function loadFrames() {
    frames = await Promise.all(model.get("frames").map(D.decodePng));
    masks = await Promise.all(model.get("masks").map(D.decodePng));
    redraw();
  }
  async function loadPca() {
    const out = {};
    for (const [name, pngs] of Object.entries(model.get("pca"))) out[name] = await Promise.all(pngs.map(D.decodePng));
    pca = out;
    refreshSelects();
    redraw();
  }
  async function loadAttention() {
    attention = await D.decodePng(model.get("attention"));
    redraw();
  }
  const handlers = [
    [["frame", "query", "follow", "boxes", "panel_size", "status", "num_frames"], redraw],
    [["frames", "masks"], loadFrames],
    [["pca"], loadPca],
    [["attention"], loadAttention],
    [["pca_point", "attention_point", "attention_points"], () => { refreshSelects(); redraw(); }],
  ];
  for (const [names, fn] of handlers) for (const name of names) model.on(`change:${name}`, fn);
  refreshSelects();
  redraw();
  loadFrames();
  loadPca();
  loadAttention();
  return () => {
    for (const [names, fn] of handlers) for (const name of names) model.off(`change:${name}`, fn);
  };
}

export default { render };
