// VideoPlayer view: frames (PNG bytes, synced once) on a canvas with box, path and mask overlays,
// a play/pause button and a frame slider. Synced: frames, masks, frame_size, display_size, boxes
// (O, F, 4), paths (O, F, 2), frame, playing, fps, loop, caption. The playback clock runs once per model
// (initialize), so several views of one player stay in step.
import * as L from "./logic.js";
import * as D from "./draw.js";
import * as P from "./palette.js";

function initialize({ model }) {
  let timer = null;
  const tick = () => {
    const n = model.get("frames").length;
    const next = model.get("frame") + 1;
    if (next >= n && !model.get("loop")) {
      model.set("playing", false);
    } else {
      model.set("frame", next % n);
    }
    model.save_changes();
  };
  const sync = () => {
    clearInterval(timer);
    timer = model.get("playing") ? setInterval(tick, 1000 / Math.max(0.1, model.get("fps"))) : null;
  };
  model.on("change:playing", sync);
  model.on("change:fps", sync);
  sync();
  return () => clearInterval(timer);
}

/** Draw frame `f` with the overlays switched on in `show` ({boxes, paths, masks}) onto ctx (canvas size =
 * display_size). */
export function paintFrame(ctx, model, bitmaps, maskBitmaps, f, show = { boxes: true, paths: true, masks: true }) {
  const [w, h] = model.get("display_size");
  const v = { imageSize: model.get("frame_size"), displaySize: [w, h] };
  const toC = (p) => L.imageToCanvas(p, v);
  ctx.clearRect(0, 0, w, h);
  D.drawImage(ctx, bitmaps[f], w, h);
  if (maskBitmaps[f] && show.masks) D.drawImage(ctx, maskBitmaps[f], w, h);
  const paths = show.paths ? model.get("paths") : [];
  (show.boxes ? model.get("boxes") : []).forEach((frames, o) => {
    const c = P.objectColour(o);
    const b = frames[f];
    D.strokeBox(ctx, [...toC([b[0], b[1]]), ...toC([b[2], b[3]])], c, { width: 2 });
  });
  paths.forEach((pts, o) => {
    const c = P.objectColour(o);
    D.polyline(ctx, pts.map(toC), c, { width: 1, dash: [3, 3] }); // whole target path, faint
    D.polyline(ctx, pts.slice(0, f + 1).map(toC), c, { width: 2 }); // travelled so far
    D.dots(ctx, [toC(pts[f])], c, { radius: 4 });
  });
}

function render({ model, el }) {
  const canvas = D.h("canvas", { class: "anyi2v-frame" });
  const play = D.h("button", { "data-action": "play", onclick: () => {
    model.set("playing", !model.get("playing"));
    model.save_changes();
  } }, "Play");
  const slider = D.h("input", { type: "range", min: "0", step: "1", class: "anyi2v-slider", ...D.OWN_KEYS });
  const readout = D.h("span", { class: "anyi2v-readout" });
  slider.addEventListener("input", () => {
    model.set("frame", Number(slider.value));
    model.save_changes();
  });
  const caption = D.h("div", { class: "anyi2v-caption anyi2v-run" });
  const show = { boxes: true, paths: true, masks: true };
  const legend = D.h("span", { class: "anyi2v-legend anyi2v-overlay-legend" });
  const toggles = Object.keys(show).map((name) => {
    const box = D.h("input", { type: "checkbox", "data-overlay": name, onchange: () => {
      show[name] = box.checked;
      redraw();
    } });
    box.checked = true;
    return D.h("label", {}, box, name === "paths" ? "path" : name);
  });
  el.append(D.h("div", { class: "anyi2v anyi2v-player" }, canvas,
    D.h("div", { class: "anyi2v-toolbar" }, play, slider, readout),
    D.h("div", { class: "anyi2v-toolbar" }, "overlays", ...toggles, legend), caption));
  const ctx = canvas.getContext("2d");
  let bitmaps = [];
  let maskBitmaps = [];

  function redraw() {
    const n = model.get("frames").length;
    const f = Math.min(Math.max(model.get("frame"), 0), n - 1);
    D.fitCanvas(canvas, ctx, ...model.get("display_size")); // device pixels: crisp lines at any density
    slider.max = String(n - 1);
    slider.value = String(f);
    readout.textContent = `frame ${f + 1} / ${n}`;
    play.textContent = model.get("playing") ? "Pause" : "Play";
    caption.textContent = model.get("caption");
    legend.replaceChildren(...model.get("boxes").map((_, o) => D.h("span", {},
      D.h("i", { style: `background:${P.objectColour(o)}` }), `object ${o + 1}: box, path${model.get("masks").length ? ", mask" : ""}`)));
    paintFrame(ctx, model, bitmaps, maskBitmaps, f, show);
  }
  async function load() {
    bitmaps = await Promise.all(model.get("frames").map(D.decodePng));
    maskBitmaps = await Promise.all(model.get("masks").map(D.decodePng));
    redraw();
  }
  const names = ["frame", "playing", "boxes", "paths", "display_size", "caption"];
  for (const name of names) model.on(`change:${name}`, redraw);
  model.on("change:frames", load);
  model.on("change:masks", load);
  redraw();
  load();
  return () => {
    for (const name of names) model.off(`change:${name}`, redraw);
    model.off("change:frames", load);
    model.off("change:masks", load);
  };
}

export default { initialize, render };
