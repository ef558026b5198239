// Pure pixel helpers of the feature views (FeatureViewer and Microscope), no DOM: the token under a
// clicked point, and the RGBA colouring of PCA-RGB, heat maps, cluster labels and object weights in the
// one palette (palette.js). Their Python twins live in widgets/features.py and anyi2v_lab/palette.py;
// node's test runner covers them (features.test.mjs).
import * as P from "./palette.js";

/** The token (row-major in `grid` = [h, w]) under `point` [x, y] of an image of `size` [W, H]
 * (mirror: widgets/features.query_index). */
export function cellOf(point, size, grid) {
  const [W, H] = size;
  const [h, w] = grid;
  const col = Math.min(Math.max(Math.floor((point[0] * w) / W), 0), w - 1);
  const row = Math.min(Math.max(Math.floor((point[1] * h) / H), 0), h - 1);
  return row * w + col;
}

/** The value of a map `values` (row-major over `grid` = [h, w]) under `point` [x, y] of an image of
 * `size` [W, H]: {value, row, col} (1-based row and column), or null for a map of another size. */
export function valueUnder(values, grid, point, size) {
  const [h, w] = grid;
  if (!values || h * w === 0 || values.length !== h * w) return null;
  const cell = cellOf(point, size, grid);
  return { value: values[cell], row: Math.floor(cell / w) + 1, col: (cell % w) + 1 };
}

/** Synced little-endian float32 bytes (DataView, ArrayBuffer or typed array) -> Float32Array (a copy, so
 * any byte offset will do). */
export function float32s(bytes) {
  if (!bytes || !bytes.byteLength) return new Float32Array(0);
  const u8 = bytes instanceof ArrayBuffer ? new Uint8Array(bytes) : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return new Float32Array(u8.slice().buffer);
}

/** RGB bytes (n * 3) -> RGBA pixels (n * 4), opaque. */
export function rgbToRgba(rgb) {
  const n = rgb.length / 3;
  const out = new Uint8ClampedArray(n * 4);
  for (let i = 0; i < n; i++) {
    out[4 * i] = rgb[3 * i];
    out[4 * i + 1] = rgb[3 * i + 1];
    out[4 * i + 2] = rgb[3 * i + 2];
    out[4 * i + 3] = 255;
  }
  return out;
}

/** A heat map of uint8 values (already scaled so 255 is the map's maximum) through a colour table
 * `lut` (256 * 3 bytes) -> RGBA, opacity from `floor` (value 0: transparent) to `floor + span` (value
 * 255: 0.7, as the FeatureViewer and the static figures draw maps), so the frame shows through where
 * little attention goes. */
export function heatRgba(values, lut, floor = 0, span = 179) {
  const out = new Uint8ClampedArray(values.length * 4);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    out[4 * i] = lut[3 * v];
    out[4 * i + 1] = lut[3 * v + 1];
    out[4 * i + 2] = lut[3 * v + 2];
    out[4 * i + 3] = floor + (span * v) / 255;
  }
  return out;
}

/** Cluster labels (uint8 per cell) -> RGBA tints, colour `palette[label]` ([r, g, b]); label 255 is
 * "no cluster" and stays transparent. */
export function labelRgba(labels, palette = P.CLUSTER_COLOURS, alpha = 140) {
  const out = new Uint8ClampedArray(labels.length * 4);
  for (let i = 0; i < labels.length; i++) {
    const l = labels[i];
    if (l === 255) continue;
    const c = palette[l % palette.length];
    out[4 * i] = c[0];
    out[4 * i + 1] = c[1];
    out[4 * i + 2] = c[2];
    out[4 * i + 3] = alpha;
  }
  return out;
}


/** Per-object weights in [0, 255] laid out (objects, cells) -> RGBA: each cell takes the colour of its
 * heaviest object (`colours[o]` = [r, g, b]) with opacity growing with the weight. */
export function weightsRgba(weights, objects, colours = P.OBJECT_COLOURS, alpha = 0.85) {
  const cells = weights.length / objects;
  const out = new Uint8ClampedArray(cells * 4);
  for (let i = 0; i < cells; i++) {
    let best = -1;
    let top = 0;
    for (let o = 0; o < objects; o++) {
      const v = weights[o * cells + i];
      if (v > top) [best, top] = [o, v];
    }
    if (best < 0) continue;
    const c = colours[best % colours.length];
    out[4 * i] = c[0];
    out[4 * i + 1] = c[1];
    out[4 * i + 2] = c[2];
    out[4 * i + 3] = Math.round(top * alpha);
  }
  return out;
}
