// TrajectoryCanvas view: draws the condition image and the objects, turns pointer gestures into
// events (logic.gestureEvent) and sends them to Python, which owns the state (widgets/editing.py).
// Synced: image (PNG bytes), image_size, display_size, num_frames, objects, selected, mode, status.
import * as L from "./logic.js";
import * as D from "./draw.js";

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

function render({ model, el }) {
  const send = (event) => model.send({ kind: "event", event });
  const view = () => ({ imageSize: model.get("image_size"), displaySize: model.get("display_size") });
  const modeButtons = MODES.map(([mode, text, key]) =>
    D.h("button", { "data-mode": mode, title: `${HINTS[mode]} (${key})`, onclick: () => setMode(mode) }, text),
  );
  const actions = [
    ["add", "+ Object", () => {
      send({ type: "add" });
      setMode("box"); // a new object starts with its box
    }],
    ["delete", "Delete", () => model.get("selected") >= 0 && send({ type: "delete", index: model.get("selected") })],
    ["undo", "Undo", () => send({ type: "undo" })],
    ["clear", "Clear", () => send({ type: "clear" })],
  ].map(([action, text, fn]) => D.h("button", { "data-action": action, onclick: fn }, text));
  const chips = D.h("div", { class: "anyi2v-chips" });
  const canvas = D.h("canvas", { class: "anyi2v-draw", tabindex: "0", ...D.OWN_KEYS });
  const status = D.h("div", { class: "anyi2v-status" });
  el.append(
    D.h("div", { class: "anyi2v anyi2v-canvas" },
      D.h("div", { class: "anyi2v-toolbar" }, ...modeButtons, D.h("span", { class: "anyi2v-sep" }), ...actions),
      chips, canvas, status),
  );
  const ctx = canvas.getContext("2d");
  let bitmap = null;
  let gesture = null; // canvas points of the pointer being dragged
  let pending = null; // a sent gesture, drawn until Python's answer arrives

  function setMode(mode) {
    model.set("mode", mode);
    model.save_changes();
  }

  function toCanvas(e) {
    return L.clientToCanvas(e.clientX, e.clientY, canvas.getBoundingClientRect(), [canvas.width, canvas.height]);
  }

  function drawObject(o, i, selected, F) {
    const v = view();
    const c = L.COLOURS[i % L.COLOURS.length];
    const toC = (p) => L.imageToCanvas(p, v);
    const boxC = (b) => [...toC([b[0], b[1]]), ...toC([b[2], b[3]])];
    if (o.box) {
      D.strokeBox(ctx, boxC(o.box), c, { width: selected ? 3 : 2 });
      D.label(ctx, o.name || `object ${i + 1}`, toC([o.box[0], o.box[1]]), c);
      const frames = L.frameBoxes(o, F);
      if (o.path.length > 1 || o.target_box) D.strokeBox(ctx, boxC(frames[F - 1]), c, { width: 1.5, dash: [6, 4] });
    }
    if (o.target_box) D.strokeBox(ctx, boxC(o.target_box), c, { width: 1, dash: [2, 3] });
    if (o.path.length) {
      const samples = L.resamplePath(o.path, F).map(toC);
      D.polyline(ctx, samples, c, { width: selected ? 3 : 2 });
      D.dots(ctx, samples, c, { radius: 2.5 });
      D.dots(ctx, o.path.map(toC), c, { radius: 5, hollow: true });
    }
    for (const q of o.query_points) D.cross(ctx, toC(q), c);
  }

  function drawGesture(points, mode, F) {
    const v = view();
    const c = "#ffffff";
    if ((mode === "box" || mode === "target") && L.isDrag(points)) {
      const b = L.boxFromCorners(points[0], points[points.length - 1]);
      D.strokeBox(ctx, b, c, { width: 2, dash: [4, 3] });
    } else if (mode === "path" && L.isDrag(points)) {
      const kept = L.thinPath(points, L.PATH_STEP_PX);
      D.polyline(ctx, kept, c, { width: 1 });
      // live preview: exactly what Python will resample the path to
      const img = kept.map((p) => L.clampPoint(L.canvasToImage(p, v), v.imageSize));
      D.dots(ctx, L.resamplePath(img, F).map((p) => L.imageToCanvas(p, v)), c, { radius: 2.5 });
    }
  }

  function redraw() {
    const [w, h] = model.get("display_size");
    if (canvas.width !== w || canvas.height !== h) {
      canvas.width = w;
      canvas.height = h;
    }
    ctx.clearRect(0, 0, w, h);
    D.drawImage(ctx, bitmap, w, h, { smooth: true });
    const F = Math.max(1, model.get("num_frames"));
    const sel = model.get("selected");
    model.get("objects").forEach((o, i) => drawObject(o, i, i === sel, F));
    if (gesture) drawGesture(gesture, model.get("mode"), F);
    else if (pending) drawGesture(pending.points, pending.mode, F);
  }

  function refreshControls() {
    const mode = model.get("mode");
    for (const b of modeButtons) b.classList.toggle("anyi2v-active", b.dataset.mode === mode);
    const sel = model.get("selected");
    chips.replaceChildren(
      ...model.get("objects").map((o, i) => {
        const chip = D.h("button", { class: "anyi2v-chip", "data-index": String(i), onclick: () => send({ type: "select", index: i }) },
          o.name || `object ${i + 1}`);
        chip.style.borderColor = L.COLOURS[i % L.COLOURS.length];
        chip.classList.toggle("anyi2v-active", i === sel);
        return chip;
      }),
    );
    status.textContent = model.get("status") || HINTS[mode] || "";
  }

  canvas.addEventListener("pointerdown", (e) => {
    if (e.button !== 0) return;
    canvas.setPointerCapture(e.pointerId);
    canvas.focus();
    gesture = [toCanvas(e)];
    redraw();
  });
  canvas.addEventListener("pointermove", (e) => {
    if (!gesture) return;
    const events = e.getCoalescedEvents ? e.getCoalescedEvents() : [];
    for (const ce of events.length ? events : [e]) gesture.push(toCanvas(ce));
    redraw();
  });
  canvas.addEventListener("pointerup", (e) => {
    if (!gesture) return;
    gesture.push(toCanvas(e));
    const mode = model.get("mode");
    const event = L.gestureEvent(mode, gesture, view(), model.get("objects"), model.get("selected"));
    pending = event ? { points: gesture, mode } : null;
    gesture = null;
    if (event) send(event);
    redraw();
  });
  canvas.addEventListener("pointercancel", () => {
    gesture = null;
    redraw();
  });
  canvas.addEventListener("keydown", (e) => {
    const sel = model.get("selected");
    if ((e.ctrlKey || e.metaKey) && e.key === "z") send({ type: "undo" });
    else if ((e.key === "Delete" || e.key === "Backspace") && sel >= 0) send({ type: "delete", index: sel });
    else if (e.key === "Escape") send({ type: "select", index: -1 });
    else {
      const m = MODES.find(([, , key]) => key === e.key);
      if (!m) return;
      setMode(m[0]);
    }
    e.preventDefault();
    e.stopPropagation();
  });

  const onState = () => {
    pending = null;
    refreshControls();
    redraw();
  };
  const onImage = async () => {
    bitmap = await D.decodePng(model.get("image"));
    redraw();
  };
  const onMsg = (msg) => {
    if (msg && msg.kind === "ack") onState();
  };
  model.on("msg:custom", onMsg);
  model.on("change:objects", onState);
  model.on("change:selected", onState);
  model.on("change:status", onState);
  model.on("change:mode", onState);
  model.on("change:num_frames", redraw);
  model.on("change:display_size", redraw);
  model.on("change:image", onImage);
  refreshControls();
  redraw();
  onImage();
  return () => {
    for (const [name, fn] of [["objects", onState], ["selected", onState], ["status", onState], ["mode", onState],
      ["num_frames", redraw], ["display_size", redraw], ["image", onImage]]) model.off(`change:${name}`, fn);
    model.off("msg:custom", onMsg);
  };
}

export default { render };
