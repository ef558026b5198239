// TrajectoryCanvas view: draws the condition image and the objects, turns pointer gestures into
// events (logic.gestureEvent) and sends them to Python, which owns the state (widgets/editing.py).
// Synced: image (PNG bytes), image_size, display_size, num_frames, objects, selected, mode, status.
import * as L from "./logic.js";
import * as D from "./draw.js";
import * as P from "./palette.js";

const MODES = [
  ["select", "Select", "s"],
  ["box", "Box", "b"],
  ["path", "Path", "p"],
  ["points", "Points", "q"],
  ["target", "Target box", "t"],
];
const HINTS = {
  select: "click a box to select its object",
  box: "drag a box (the selected object's frame-0 box, or a new object)",
  path: "drag a path, or click to add points; the dots are the per-frame positions",
  points: "click query points on the selected object",
  target: "drag the selected object's last-frame box (only its size is used)",
};

function send(model, event) {
  model.send({ kind: "event", event });
}

function setMode(model, mode) {
  model.set("mode", mode);
  model.save_changes();
}

function imageView(model) {
  return { imageSize: model.get("image_size"), displaySize: model.get("display_size") };
}

/** The view's elements: mode buttons and actions, object chips, the drawing canvas, a status line. */
function build(model, el) {
  const modeButtons = MODES.map(([mode, text, key]) =>
    D.h("button", { "data-mode": mode, title: `${HINTS[mode]} (${key})`, onclick: () => setMode(model, mode) }, text),
  );
  const actions = [
    ["add", "+ Object", () => {
      send(model, { type: "add" });
      setMode(model, "box"); // a new object starts with its box
    }],
    ["delete", "Delete", () => model.get("selected") >= 0 && send(model, { type: "delete", index: model.get("selected") })],
    ["undo", "Undo", () => send(model, { type: "undo" })],
    ["clear", "Clear", () => send(model, { type: "clear" })],
  ].map(([action, text, fn]) => D.h("button", { "data-action": action, onclick: fn }, text));
  const ui = { modeButtons, chips: D.h("div", { class: "anyi2v-chips" }),
    canvas: D.h("canvas", { class: "anyi2v-draw", tabindex: "0", ...D.OWN_KEYS }),
    status: D.h("div", { class: "anyi2v-status" }), warnings: D.h("div", { class: "anyi2v-warnings" }) };
  el.append(
    D.h("div", { class: "anyi2v anyi2v-canvas" },
      D.h("div", { class: "anyi2v-toolbar" }, ...modeButtons, D.h("span", { class: "anyi2v-sep" }), ...actions),
      ui.chips, ui.canvas, ui.status, ui.warnings),
  );
  ui.ctx = ui.canvas.getContext("2d");
  return ui;
}

function drawObject(v, o, i, selected, F) {
  const ctx = v.ui.ctx;
  const view = imageView(v.model);
  const c = P.objectColour(i);
  const toC = (p) => L.imageToCanvas(p, view);
  const boxC = (b) => [...toC([b[0], b[1]]), ...toC([b[2], b[3]])];
  if (o.box) {
    D.strokeBox(ctx, boxC(o.box), c, { width: selected ? 3 : 2 });
    D.label(ctx, o.name || `object ${i + 1}`, toC([o.box[0], o.box[1]]), c);
    const frames = L.frameBoxes(o, F);
    if (o.path.length > 1 || o.target_box) D.strokeBox(ctx, boxC(frames[F - 1]), c, { width: 1.5, dash: [6, 4] });
  }
  if (o.path.length) {
    const samples = L.resamplePath(o.path, F).map(toC);
    D.polyline(ctx, samples, c, { width: selected ? 2.5 : 1.5 });
    D.dots(ctx, o.path.map(toC), "rgba(255,255,255,0.8)", { radius: 1.2 }); // the drawn points, small
    D.dots(ctx, samples, c, { radius: 3.5 }); // one dot a frame, on top
    D.arrowHead(ctx, samples, c); // which way it goes
  }
  for (const q of o.query_points) D.cross(ctx, toC(q), c);
}

function drawGesture(v, points, mode, F) {
  const ctx = v.ui.ctx;
  const view = imageView(v.model);
  const c = "#ffffff";
  if ((mode === "box" || mode === "target") && L.isDrag(points)) {
    const b = L.boxFromCorners(points[0], points[points.length - 1]);
    D.strokeBox(ctx, b, c, { width: 2, dash: [4, 3] });
  } else if (mode === "path" && L.isDrag(points)) {
    const kept = L.thinPath(points, L.PATH_STEP_PX);
    D.polyline(ctx, kept, c, { width: 1 });
    // live preview: exactly what Python will resample the path to
    const img = kept.map((p) => L.clampPoint(L.canvasToImage(p, view), view.imageSize));
    D.dots(ctx, L.resamplePath(img, F).map((p) => L.imageToCanvas(p, view)), c, { radius: 2.5 });
  }
}

/** The objects as they would be if the path being dragged were let go: what the live warnings check. */
function liveObjects(v) {
  const { model } = v;
  const objects = model.get("objects");
  const sel = model.get("selected");
  const points = v.gesture || (v.pending && v.pending.points);
  const mode = v.gesture ? model.get("mode") : v.pending && v.pending.mode;
  if (mode !== "path" || !points || !L.isDrag(points) || !(sel >= 0 && sel < objects.length)) return objects;
  const view = imageView(model);
  const path = L.thinPath(points, L.PATH_STEP_PX).map((p) => L.clampPoint(L.canvasToImage(p, view), view.imageSize));
  return objects.map((o, i) => (i === sel ? { ...o, path } : o));
}

/** The toy model's limits that the drawing (with the path being dragged) breaks, under the canvas. */
function showWarnings(v) {
  const { model, ui } = v;
  const F = Math.max(1, model.get("num_frames"));
  const checks = L.motionChecks(liveObjects(v), F, model.get("image_size"), model.get("limits"));
  ui.warnings.replaceChildren(...checks.map((c) => D.h("div", { class: "anyi2v-warning-line" }, `⚠ ${L.motionWarning(c, F)}`)));
}

function redraw(v) {
  const { model, ui } = v;
  const [w, h] = model.get("display_size");
  D.fitCanvas(ui.canvas, ui.ctx, w, h); // device pixels: crisp lines and text at any density
  ui.ctx.clearRect(0, 0, w, h);
  D.drawImage(ui.ctx, v.bitmap, w, h); // pixel-exact: one square per condition pixel
  const F = Math.max(1, model.get("num_frames"));
  const sel = model.get("selected");
  model.get("objects").forEach((o, i) => drawObject(v, o, i, i === sel, F));
  if (v.gesture) drawGesture(v, v.gesture, model.get("mode"), F);
  else if (v.pending) drawGesture(v, v.pending.points, v.pending.mode, F);
  showWarnings(v);
}

function refreshControls(v) {
  const { model, ui } = v;
  const mode = model.get("mode");
  for (const b of ui.modeButtons) b.classList.toggle("anyi2v-active", b.dataset.mode === mode);
  const sel = model.get("selected");
  ui.chips.replaceChildren(
    ...model.get("objects").map((o, i) => {
      const chip = D.h("button", { class: "anyi2v-chip", "data-index": String(i),
        onclick: () => send(model, { type: "select", index: i }) }, o.name || `object ${i + 1}`);
      chip.style.borderColor = P.objectColour(i);
      chip.classList.toggle("anyi2v-active", i === sel);
      return chip;
    }),
  );
  const warning = v.notice || model.get("status");
  ui.status.textContent = warning || HINTS[mode] || "";
  ui.status.classList.toggle("anyi2v-warning", !!warning);
}

/** Pointer gestures on the canvas: points collected while the pointer is down, one event sent on release. */
function listenToPointer(v) {
  const canvas = v.ui.canvas;
  const toCanvas = (e) => L.clientToCanvas(e.clientX, e.clientY, canvas.getBoundingClientRect(), v.model.get("display_size"));
  canvas.addEventListener("pointerdown", (e) => {
    if (e.button !== 0) return;
    canvas.setPointerCapture(e.pointerId);
    canvas.focus();
    v.gesture = [toCanvas(e)];
    redraw(v);
  });
  canvas.addEventListener("pointermove", (e) => {
    if (!v.gesture) return;
    const events = e.getCoalescedEvents ? e.getCoalescedEvents() : [];
    for (const ce of events.length ? events : [e]) v.gesture.push(toCanvas(ce));
    redraw(v);
  });
  canvas.addEventListener("pointerup", (e) => {
    if (!v.gesture) return;
    v.gesture.push(toCanvas(e));
    const mode = v.model.get("mode");
    const event = L.gestureEvent(mode, v.gesture, imageView(v.model), v.model.get("objects"), v.model.get("selected"));
    v.pending = event ? { points: v.gesture, mode } : null; // drawn until Python's answer arrives
    v.notice = event ? "" : L.ignoredReason(mode, v.gesture, imageView(v.model), v.model.get("objects"),
      v.model.get("selected"));
    v.gesture = null;
    if (event) send(v.model, event);
    refreshControls(v);
    redraw(v);
  });
  canvas.addEventListener("pointercancel", () => {
    v.gesture = null;
    redraw(v);
  });
}

/** Keys on the focused canvas: undo, delete, deselect, and each mode's letter. */
function onKey(model, e) {
  const sel = model.get("selected");
  if ((e.ctrlKey || e.metaKey) && e.key === "z") send(model, { type: "undo" });
  else if ((e.key === "Delete" || e.key === "Backspace") && sel >= 0) send(model, { type: "delete", index: sel });
  else if (e.key === "Escape") send(model, { type: "select", index: -1 });
  else {
    const m = MODES.find(([, , key]) => key === e.key);
    if (!m) return;
    setMode(model, m[0]);
  }
  e.preventDefault();
  e.stopPropagation();
}

function render({ model, el }) {
  // gesture: canvas points of the pointer being dragged; pending: a sent gesture awaiting Python's answer
  // notice: why the last gesture was ignored, until the next edit or mode
  const v = { model, ui: build(model, el), bitmap: null, gesture: null, pending: null, notice: "" };
  listenToPointer(v);
  v.ui.canvas.addEventListener("keydown", (e) => onKey(model, e));
  const draw = () => redraw(v);
  const onState = () => {
    v.pending = null;
    v.notice = "";
    refreshControls(v);
    draw();
  };
  const onImage = async () => {
    v.bitmap = await D.decodePng(model.get("image"));
    draw();
  };
  const onMsg = (msg) => {
    if (msg && msg.kind === "ack") onState();
  };
  const handlers = [["objects", onState], ["selected", onState], ["status", onState], ["mode", onState],
    ["num_frames", draw], ["display_size", draw], ["limits", draw], ["image", onImage]];
  model.on("msg:custom", onMsg);
  for (const [name, fn] of handlers) model.on(`change:${name}`, fn);
  refreshControls(v);
  draw();
  onImage();
  return () => {
    for (const [name, fn] of handlers) model.off(`change:${name}`, fn);
    model.off("msg:custom", onMsg);
  };
}

export default { render };
