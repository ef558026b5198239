// node --test widgets/js/ : the pure drawing logic, against hand-computed values and against the
// numbers Python computes (fixtures.json, written by tests/widgets/test_widgets.py; compared bit for bit).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import * as L from "./logic.js";

const fixtures = JSON.parse(readFileSync(new URL("./fixtures.json", import.meta.url), "utf8"));

/** Exact equality of nested number arrays (=== so that 0 and -0 count as equal, as in numpy). */
function assertSame(actual, expected, where) {
  if (Array.isArray(expected)) {
    assert.equal(actual.length, expected.length, `${where}: length`);
    expected.forEach((e, i) => assertSame(actual[i], e, `${where}[${i}]`));
  } else {
    assert.ok(actual === expected, `${where}: ${actual} !== ${expected}`);
  }
}

test("PCHIP resampling equals Python's resample_path bit for bit", () => {
  assert.ok(fixtures.resample.length >= 20);
  fixtures.resample.forEach(({ points, num_frames, expected }, k) => {
    assertSame(L.resamplePath(points, num_frames), expected, `resample case ${k}`);
  });
});

test("per-frame boxes equal Python's frame_boxes bit for bit", () => {
  fixtures.frame_boxes.forEach(({ object, num_frames, expected }, k) => {
    assertSame(L.frameBoxes(object, num_frames), expected, `frame_boxes case ${k}`);
  });
});

test("canvas <-> image mapping equals widgets/mapping.py", () => {
  fixtures.mapping.forEach(({ image_size, display_width, display_size, canvas, image, back }, k) => {
    assertSame(L.viewSize(image_size[0], image_size[1], display_width), display_size, `viewSize ${k}`);
    const view = { imageSize: image_size, displaySize: display_size };
    assertSame(canvas.map((p) => L.canvasToImage(p, view)), image, `canvasToImage ${k}`);
    assertSame(image.map((p) => L.imageToCanvas(p, view)), back, `imageToCanvas ${k}`);
  });
});

test("resampling: ends pinned, static and linear special cases", () => {
  assert.deepEqual(L.resamplePath([[3, 4]], 3), [[3, 4], [3, 4], [3, 4]]);
  assert.deepEqual(L.resamplePath([[0, 0], [10, 20]], 3), [[0, 0], [5, 10], [10, 20]]);
  const pts = [[0, 0], [10, 5], [20, 30], [25, 31]];
  assert.deepEqual(L.resamplePath(pts, 4), pts); // N == F: unchanged
  const out = L.resamplePath(pts, 9);
  assert.deepEqual(out[0], pts[0]);
  assert.deepEqual(out[8], pts[3]);
  // monotone data stays monotone (PCHIP does not overshoot)
  for (let i = 1; i < out.length; i++) assert.ok(out[i][0] >= out[i - 1][0] && out[i][1] >= out[i - 1][1]);
  assert.throws(() => L.resamplePath([], 4), /at least one point/);
});

test("clientToCanvas undoes CSS scaling; clamp and corners", () => {
  const rect = { left: 10, top: 20, width: 256, height: 128 };
  assert.deepEqual(L.clientToCanvas(10 + 128, 20 + 64, rect, [512, 256]), [256, 128]);
  assert.deepEqual(L.clampPoint([-5, 300], [100, 200]), [0, 200]);
  assert.deepEqual(L.boxFromCorners([9, 1], [2, 7]), [2, 1, 9, 7]);
  assert.deepEqual(L.viewSize(1024, 768, 512), [512, 384]);
  assert.deepEqual(L.viewSize(3, 1, 2), [2, 1]); // 0.667 rounds up to 1
});

test("hitTest picks the smallest box under the point", () => {
  const objs = [{ box: [0, 0, 100, 100] }, { box: null }, { box: [40, 40, 60, 60] }];
  assert.equal(L.hitTest(objs, [50, 50]), 2);
  assert.equal(L.hitTest(objs, [10, 10]), 0);
  assert.equal(L.hitTest(objs, [150, 10]), -1);
  assert.equal(L.hitTest(objs, [101, 10], 2), 0);
});

test("thinPath keeps points at least a step apart", () => {
  const pts = [[0, 0], [1, 0], [3, 0], [3, 1], [7, 0]];
  assert.deepEqual(L.thinPath(pts, 3), [[0, 0], [3, 0], [7, 0]]);
  assert.deepEqual(L.thinPath([], 3), []);
});

// a 200x100 image shown at 400x200: canvas pixels are half image pixels
const view = { imageSize: [200, 100], displaySize: [400, 200] };
const objs = [{ name: "a", box: [10, 10, 50, 50], target_box: null, path: [], query_points: [] },
  { name: "b", box: null, target_box: null, path: [], query_points: [] }];

test("gestures: box drags become box events in image pixels, clamped", () => {
  assert.deepEqual(L.gestureEvent("box", [[300, 100], [350, 150], [500, 260]], view, objs, 0),
    { type: "box", index: 0, box: [150, 50, 200, 100] });
  assert.deepEqual(L.gestureEvent("box", [[40, 40], [20, 10]], view, [], -1),
    { type: "box", index: -1, box: [10, 5, 20, 20] }); // nothing selected: a new object
  assert.equal(L.gestureEvent("box", [[40, 40], [40, 300]], view, objs, 0), null); // no width
  assert.equal(L.gestureEvent("target", [[0, 0], [50, 50]], view, objs, 1), null); // no box yet
  assert.deepEqual(L.gestureEvent("target", [[0, 0], [50, 50]], view, objs, 0),
    { type: "target_box", index: 0, box: [0, 0, 25, 25] });
});

test("gestures: clicks select, path clicks append, drags replace", () => {
  assert.deepEqual(L.gestureEvent("box", [[60, 60], [61, 61]], view, objs, 1), { type: "select", index: 0 });
  assert.equal(L.gestureEvent("select", [[300, 190]], view, objs, 0), null);
  assert.deepEqual(L.gestureEvent("path", [[60, 60], [61, 60]], view, objs, 0),
    { type: "path_point", index: 0, point: [30.5, 30] });
  assert.deepEqual(L.gestureEvent("path", [[0, 0], [1, 0], [10, 0], [20, 0], [20, 0]], view, objs, 0),
    { type: "path", index: 0, points: [[0, 0], [5, 0], [10, 0]] });
  assert.deepEqual(L.gestureEvent("points", [[80, 80]], view, objs, 0), { type: "query_point", index: 0, point: [40, 40] });
  assert.equal(L.gestureEvent("points", [[80, 80]], view, objs, -1), null); // needs an object
  assert.equal(L.gestureEvent("path", [], view, objs, 0), null);
});

test("isStale: the view waits until the kernel answered its frame, query and point", () => {
  const answered = { frame: 2, query: [10.5, 3], point: "a.probs" };
  assert.equal(L.isStale(answered, 2, [10.5, 3], "a.probs"), false);
  assert.equal(L.isStale(answered, 3, [10.5, 3], "a.probs"), true); // a new frame
  assert.equal(L.isStale(answered, 2, [10.5, 3.25], "a.probs"), true); // a new click
  assert.equal(L.isStale(answered, 2, [10.5, 3], "b.probs"), true); // another layer
  assert.equal(L.isStale({}, 0, [], "a.probs"), true); // nothing answered yet
  assert.equal(L.isStale({}, 0, [], ""), false); // no attention to compute: never waits
  assert.equal(L.isStale({ frame: 0, query: [], point: "a.probs" }, 0, [], "a.probs"), false);
});

test("formatWeight: colour bar ends", () => {
  assert.equal(L.formatWeight(0), "0");
  assert.equal(L.formatWeight(0.031234), "0.0312");
  assert.equal(L.formatWeight(1), "1");
  assert.equal(L.formatWeight(0.00001234), "1.23e-5");
});

test("ignoredReason says why a gesture did nothing", () => {
  const view = { imageSize: [64, 64], displaySize: [64, 64] };
  const drag = [[10, 10], [20, 20], [30, 25]];
  const objects = [{ name: "", box: [1, 1, 9, 9], target_box: null, path: [], query_points: [] }];
  assert.equal(L.gestureEvent("path", drag, view, objects, -1), null);
  assert.match(L.ignoredReason("path", drag, view, objects, -1), /^ignored: no object is selected/);
  assert.match(L.ignoredReason("points", [[3, 3]], view, [], -1), /^ignored: there is no object yet/);
  assert.match(L.ignoredReason("target", drag, view, [{ ...objects[0], box: null }], 0), /target box/);
  assert.match(L.ignoredReason("box", [[5, 5], [5, 30]], view, objects, 0), /no area/);
  assert.equal(L.ignoredReason("select", drag, view, objects, -1), "");
  assert.equal(L.ignoredReason("box", [[5, 5]], view, objects, 0), ""); // a click: selects, or nothing meant
});

test("motionChecks finds what Python's motion_checks finds (fixtures), and says it", () => {
  assert.ok(fixtures.motion.length >= 20);
  fixtures.motion.forEach(({ image_size, num_frames, object, limits, expected }, k) => {
    const got = L.motionChecks([object], num_frames, image_size, limits);
    assert.deepEqual(got.map((c) => c.rule), expected.map((c) => c.rule), `case ${k}`);
    got.forEach((c, j) => {
      assert.ok(Math.abs(c.value - expected[j].value) <= 1e-9 * Math.max(1, Math.abs(c.value)), `case ${k} ${c.rule}`);
      assert.ok(Math.abs(c.limit - expected[j].limit) <= 1e-12, `case ${k} ${c.rule} limit`);
      assert.equal(c.name, expected[j].name);
    });
  });
  assert.deepEqual(L.motionChecks([{ box: [0, 0, 9, 9], path: [[0, 0], [60, 0]] }], 8, [64, 64], {}), []); // no limits
  const fast = { object: 0, name: "star", rule: "too fast", value: 7.25, limit: 5.571 };
  assert.equal(L.motionWarning(fast, 8),
    "star: too fast, 7.3 px a frame (the toy model learnt at most 5.6 at 8 frames): the object may fall behind");
});
