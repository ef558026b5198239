// node --test widgets/js/ : the microscope's pure logic against hand-computed values. Its agreement
// with the Python core on a real generation is tested in tests/widgets/test_microscope.py.
import assert from "node:assert/strict";
import { test } from "node:test";
import * as M from "./microscope_logic.js";

test("slotOf finds a step among the kept ones, -1 elsewhere", () => {
  const kept = [3, 5, 9, 10];
  assert.deepEqual([0, 3, 4, 5, 9, 10, 11].map((s) => M.slotOf(kept, s)), [-1, 0, -1, 1, 2, 3, -1]);
  assert.equal(M.slotOf([], 0), -1);
});

test("offsetOf is C order and refuses indices outside the shape", () => {
  assert.equal(M.offsetOf([2, 3, 4], [1, 2, 3]), 23);
  assert.equal(M.offsetOf([2, 3, 4], [0, 0, 0]), 0);
  assert.equal(M.offsetOf([5], [4]), 4);
  assert.throws(() => M.offsetOf([2, 3], [2, 0]), RangeError);
  assert.throws(() => M.offsetOf([2, 3], [0]), /does not match/);
});

test("bytesAt views a slice of a DataView, an ArrayBuffer or a typed array without copying", () => {
  const buf = new Uint8Array([0, 1, 2, 3, 4, 5, 6, 7]);
  const dv = new DataView(buf.buffer, 2, 6);
  assert.deepEqual([...M.bytesAt(dv, 1, 3)], [3, 4, 5]);
  assert.deepEqual([...M.bytesAt(buf.buffer, 6, 2)], [6, 7]);
  assert.deepEqual([...M.bytesAt(buf.subarray(4), 0, 2)], [4, 5]);
});

test("halfToFloat decodes IEEE half precision", () => {
  const bits = new Uint16Array([0x3c00, 0xc000, 0x0000, 0x8000, 0x3555, 0x7bff, 0x0001, 0x7c00, 0xfc00]);
  const f = M.halfToFloat(bits);
  assert.deepEqual([...f.slice(0, 4)], [1, -2, 0, -0]);
  assert.ok(Math.abs(f[4] - 0.333251953125) < 1e-12);
  assert.equal(f[5], 65504);
  assert.equal(f[6], 2 ** -24);
  assert.equal(f[7], Infinity);
  assert.equal(f[8], -Infinity);
  assert.ok(Number.isNaN(M.halfToFloat(new Uint16Array([0x7e00]))[0]));
});

/** q|k laid out (2, F, heads, N, d) from plain nested arrays. */
function pack(q, k) {
  return Float32Array.from([...q.flat(3), ...k.flat(3)]);
}

test("selfAttention is one softmax of q.k / sqrt(d) per head, within a frame or over the video", () => {
  // F = 2 frames, 1 head, N = 2 tokens, d = 4
  const q = [[[[1, 0, 0, 0], [0, 1, 0, 0]]], [[[0, 0, 1, 0], [1, 1, 0, 0]]]];
  const k = [[[[2, 0, 0, 0], [0, 0, 0, 0]]], [[[0, 0, 0, 4], [1, 0, 0, 0]]]];
  const qk = pack(q, k);
  const frame = M.selfAttention(qk, [2, 1, 2, 4], 0, 0, -1, "frame");
  // query (1,0,0,0) of frame 0 against frame 0's keys: logits [2, 0] / 2
  const e = [Math.exp(1), Math.exp(0)];
  assert.ok(Math.abs(frame[0] - e[0] / (e[0] + e[1])) < 1e-7);
  assert.ok(Math.abs(frame[1] - e[1] / (e[0] + e[1])) < 1e-7);
  assert.deepEqual([...frame.slice(2)], [0, 0]);
  const video = M.selfAttention(qk, [2, 1, 2, 4], 0, 0, 0, "video");
  const ev = [Math.exp(1), 1, 1, Math.exp(0.5)];
  const z = ev.reduce((a, b) => a + b);
  ev.forEach((v, i) => assert.ok(Math.abs(video[i] - v / z) < 1e-7));
});

test("selfAttention's mean over heads is the mean of the heads' probabilities", () => {
  const F = 3, heads = 2, N = 4, d = 3;
  let seed = 7;
  const rnd = () => ((seed = (seed * 16807) % 2147483647) / 2147483647) * 2 - 1;
  const qk = Float32Array.from({ length: 2 * F * heads * N * d }, rnd);
  const h0 = M.selfAttention(qk, [F, heads, N, d], 1, 2, 0, "video");
  const h1 = M.selfAttention(qk, [F, heads, N, d], 1, 2, 1, "video");
  const mean = M.selfAttention(qk, [F, heads, N, d], 1, 2, -1, "video");
  mean.forEach((v, i) => assert.ok(Math.abs(v - (h0[i] + h1[i]) / 2) < 1e-6));
  assert.ok(Math.abs(mean.reduce((a, b) => a + b) - 1) < 1e-6);
  const own = M.selfAttention(qk, [F, heads, N, d], 1, 2, -1, "frame");
  assert.ok(Math.abs(own.slice(N, 2 * N).reduce((a, b) => a + b) - 1) < 1e-6);
  assert.equal(own.slice(0, N).reduce((a, b) => a + b) + own.slice(2 * N).reduce((a, b) => a + b), 0);
});

test("scaleToBytes and maxOf put a slice's maximum at 255", () => {
  const x = [0.1, 0.5, 0.25, 2];
  assert.equal(M.maxOf(x, 0, 3), 0.5);
  assert.equal(M.maxOf(x), 2);
  assert.deepEqual([...M.scaleToBytes(x, 0, 3, 0.5)], [51, 255, 128]);
  assert.deepEqual([...M.scaleToBytes(x, 0, 2, 0)], [0, 0]);
});

test("step labels and phase runs", () => {
  const steps = [{ phase: "inversion", index: 0, timestep: 1 }, { phase: "inversion", index: 1, timestep: 21 },
    { phase: "optimisation", index: 0, timestep: 961 }, { phase: "sampling", index: 0, timestep: 961 },
    { phase: "forward", index: 0, timestep: null }];
  assert.equal(M.stepLabel(steps[2], 2, 5), "3 / 5 · optimisation 0 · t = 961");
  assert.equal(M.stepLabel(steps[4], 4, 5), "5 / 5 · forward 0");
  assert.deepEqual(M.phaseRuns(steps), [{ phase: "inversion", start: 0, end: 2 }, { phase: "optimisation", start: 2, end: 3 },
    { phase: "sampling", start: 3, end: 4 }, { phase: "forward", start: 4, end: 5 }]);
  assert.equal(M.phasesOf(steps.slice(2, 4)), "optimisation and sampling");
  assert.equal(M.phasesOf(steps.slice(3, 4)), "sampling");
  assert.equal(M.phasesOf(steps), "inversion, optimisation, sampling and forward");
  assert.equal(M.shortPoint("up_blocks.1.attentions.0.transformer_blocks.0.attn1.query"), "up_blocks.1.attentions.0 · attn1.query");
});

test("withBuffers puts each buffer back at its path, leaving the message untouched", () => {
  const a = new DataView(new Uint8Array([1, 2]).buffer);
  const b = new Uint8Array([3]).buffer;
  const state = { x0: [[null, null]], layers: { p: { pca: null, grid: [2, 1] } }, cross: {} };
  const out = M.withBuffers(state, [["x0", 0, 1], ["layers", "p", "pca"]], [a, b]);
  assert.equal(out.x0[0][1], a);
  assert.equal(out.x0[0][0], null);
  assert.equal(out.layers.p.pca, b);
  assert.deepEqual(out.layers.p.grid, [2, 1]);
  assert.equal(state.layers.p.pca, null);
});

test("the step slider snaps to the captured steps", () => {
  const layer = { pca_steps: [2, 6, 10], masks_steps: [2, 6, 10], qk_steps: [6] };
  const kept = M.capturedSteps(layer);
  assert.deepEqual(kept, [2, 6, 10]);
  assert.deepEqual(M.capturedSteps(undefined), []);
  assert.equal(M.snapStep(kept, 7, 2), 6); // a jump: the nearest
  assert.equal(M.snapStep(kept, 8, 2), 6); // a tie: the earlier
  assert.equal(M.snapStep(kept, 9, 2), 10);
  assert.equal(M.snapStep(kept, 7, 6), 10); // one position on: the next captured step that way
  assert.equal(M.snapStep(kept, 5, 6), 2);
  assert.equal(M.snapStep(kept, 11, 10), 10); // past the last: stays
  assert.equal(M.snapStep([], 7, 6), 7);
  const steps = Array.from({ length: 12 }, (_, i) => ({ phase: i < 4 ? "inversion" : "sampling", index: i }));
  assert.equal(M.notCaptured(kept, steps), "captured at 3 of 12 steps (inversion and sampling; marked under the timeline), not at this one");
});

test("shared scaling tops every frame at the largest frame maximum, per-map at the frame's own", () => {
  const x = Float32Array.from([0.1, 0.4, 0.2, 0.05, 0, 0]); // 3 frames of 2 values
  const maxima = M.frameMaxima(x, 3, 2);
  assert.deepEqual(maxima.map((v) => Math.round(v * 100) / 100), [0.4, 0.2, 0]);
  assert.equal(M.scaleTop("shared", maxima, 1), maxima[0]);
  assert.equal(M.scaleTop("shared", maxima, 2), maxima[0]);
  assert.equal(M.scaleTop("map", maxima, 1), maxima[1]);
  assert.equal(M.scaleTop("map", maxima, 2), 0);
  // frame 1 drawn with each scale: its peak is 255 on its own scale, half that on the shared one
  const shared = M.scaleToBytes(x, 2, 2, M.scaleTop("shared", maxima, 1));
  const own = M.scaleToBytes(x, 2, 2, M.scaleTop("map", maxima, 1));
  assert.deepEqual([...shared], [128, 32]);
  assert.deepEqual([...own], [255, 64]);
});

test("ownScale stretches bytes on a shared scale to their own maximum and says where it sat", () => {
  const { bytes, top } = M.ownScale(new Uint8Array([0, 51, 102]));
  assert.deepEqual([...bytes], [0, 128, 255]);
  assert.equal(top, 102 / 255);
  const zero = new Uint8Array([0, 0]);
  assert.deepEqual(M.ownScale(zero), { bytes: zero, top: 0 });
  const full = M.ownScale(new Uint8Array([255, 10]));
  assert.deepEqual([...full.bytes], [255, 10]);
  assert.equal(full.top, 1);
});
