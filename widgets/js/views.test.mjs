// node --test widgets/js/ : each view renders and redraws on a stand-in DOM (no browser), so a typo in a
// view's wiring fails here; what the pictures look like is the browser tests' job (tests/browser/).
import assert from "node:assert/strict";
import { test } from "node:test";

class Element {
  constructor(tag) {
    Object.assign(this, { tag, children: [], attrs: {}, listeners: {}, dataset: {}, style: {}, width: 0, height: 0,
      value: "", textContent: "", parentElement: null });
    this.classList = { toggle: () => {} };
  }
  setAttribute(k, v) { this.attrs[k] = v; }
  addEventListener(name, fn) { this.listeners[name] = fn; }
  append(...items) {
    for (const c of items) if (typeof c === "object") c.parentElement = this;
    this.children.push(...items);
  }
  replaceChildren(...items) { this.children = []; this.append(...items); }
  insertBefore(c, ref) {
    c.parentElement = this;
    const i = this.children.indexOf(ref);
    this.children.splice(i < 0 ? this.children.length : i, 0, c);
  }
  getBoundingClientRect() { return { left: 0, top: 0, width: this.width || 100, height: this.height || 100 }; }
  focus() {}
  setPointerCapture() {}
  getContext() {
    // a 2D context whose every method does nothing (measureText gives a width)
    const ctx = {};
    return new Proxy(ctx, { get: (o, k) => (k in o ? o[k] : () => ({ width: 10 })) });
  }
}
globalThis.document = { createElement: (tag) => new Element(tag) };
globalThis.ImageData = class { constructor(data, w, h) { Object.assign(this, { data, w, h }); } };
globalThis.createImageBitmap = async () => ({});
globalThis.Blob = class {};

function model(state) {
  const handlers = {};
  return { sent: [], get: (k) => state[k], set: (k, v) => { state[k] = v; }, save_changes() {},
    on: (name, fn) => { (handlers[name] ||= []).push(fn); }, off() {}, send(msg) { this.sent.push(msg); },
    fire: (name, ...args) => (handlers[name] || []).forEach((fn) => fn(...args)) };
}

const click = (canvas) => canvas.listeners.click({ clientX: 10, clientY: 20 });
const canvases = (el) => {
  const out = [];
  const walk = (n) => { if (n.tag === "canvas") out.push(n); (n.children || []).forEach(walk); };
  walk(el);
  return out;
};

test("the FeatureViewer view draws, and a click puts the query and stops following", async () => {
  const { default: view } = await import("./viewer.js");
  const m = model({ frames: [], masks: [], boxes: [[[0, 0, 8, 8]]], frame_size: [64, 64], panel_size: [128, 128],
    num_frames: 1, frame: 0, pca: { a: [] }, pca_point: "a", attention_points: [], attention_point: "", query: [],
    follow: 0, attention: new Uint8Array(0), status: "", scale: "shared", attention_range: [0, 0], answered: {},
    heat_lut: new Uint8Array(768), labels: { a: "a, 2x2" } });
  const el = new Element("div");
  view.render({ model: m, el });
  click(canvases(el)[1]);
  assert.deepEqual(m.get("query"), [5, 10]);
  assert.equal(m.get("follow"), -1);
  m.set("attention_points", ["p"]);
  m.set("attention_point", "p");
  m.fire("change:attention_point");
  m.set("answered", { frame: 0, query: [5, 10], point: "p" });
  m.fire("change:answered"); // the kernel's answer: drawn without the waiting sign
});

test("the Microscope view draws before and after its arrays arrive, and a click sets the query", async () => {
  const { default: view } = await import("./microscope.js");
  const m = model({ steps: [{ phase: "sampling", index: 0, timestep: 1 }], step: 0, frame: 0, num_frames: 1,
    frame_size: [64, 64], panel_size: [128, 128], x0_steps: [0], point: "p", head: -1, words: ["cat"], word: 0,
    cross_steps: "step", query: [], query_frame: 0, attend: "frame", lut: new Uint8Array(768), num_clusters: 2,
    status: "" });
  const el = new Element("div");
  view.render({ model: m, el });
  assert.deepEqual(m.sent, [{ kind: "payload?" }]);
  const layer = { grid: [1, 2], heads: 1, pca: new Uint8Array(6), pca_steps: [0], pca_grid: [1, 2],
    masks: new Uint8Array([0, 1]), masks_steps: [0], masks_grid: [1, 2], qk: new Uint8Array(2 * 2 * 2 * 2),
    qk_steps: [0], qk_shape: [1, 2, 2] };
  const cross = { cross: new Uint8Array(2 * 2 * 2), cross_steps: [0], cross_grid: [1, 2], cross_inner: [2, 1], heads: 1 };
  m.fire("msg:custom", { kind: "payload", state: { x0: [[null]], layers: { p: layer }, cross, loss_masks: {} },
    buffer_paths: [] }, []);
  click(canvases(el)[4]);
  assert.deepEqual(m.get("query"), [5, 10]);
  await new Promise((resolve) => setTimeout(resolve, 0));
  const root = el.children[0];
  assert.equal(root.dataset.ready, "1");
  assert.ok(Number(root.dataset.drawMs) >= 0);
});

test("the TrajectoryCanvas view draws and turns a drag into a box event", async () => {
  const { default: view } = await import("./canvas.js");
  const m = model({ image: new Uint8Array(0), image_size: [64, 64], display_size: [64, 64], num_frames: 4,
    objects: [{ name: "", box: [1, 1, 9, 9], target_box: null, path: [[5, 5], [30, 30]], query_points: [[5, 5]] }],
    selected: 0, mode: "box", status: "", limits: { max_step: 2.6, max_length: 32, max_turn: 100, trained_frames: 16,
      frame_size: 64, speed_slack: 1.25, length_slack: 1.1 } });
  const el = new Element("div");
  view.render({ model: m, el });
  const [c] = canvases(el);
  [c.width, c.height] = [64, 64];
  c.listeners.pointerdown({ button: 0, clientX: 10, clientY: 10 });
  c.listeners.pointermove({ clientX: 30, clientY: 40 });
  c.listeners.pointerup({ clientX: 40, clientY: 50 });
  assert.equal(m.sent.length, 1);
  assert.equal(m.sent[0].kind, "event");
});
