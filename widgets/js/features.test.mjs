// node --test widgets/js/ : the feature views' pixel helpers against hand-computed values.
import assert from "node:assert/strict";
import { test } from "node:test";
import * as F from "./features.js";
import * as P from "./palette.js";

test("cellOf maps frame pixels to the token grid like features.query_index", () => {
  // a 64 x 32 (W x H) frame over a 4 x 8 (h x w) grid: 8 px a cell
  assert.equal(F.cellOf([0, 0], [64, 32], [4, 8]), 0);
  assert.equal(F.cellOf([63.9, 31.9], [64, 32], [4, 8]), 31);
  assert.equal(F.cellOf([64, 32], [64, 32], [4, 8]), 31); // the far edge belongs to the last cell
  assert.equal(F.cellOf([17, 9], [64, 32], [4, 8]), 1 * 8 + 2);
  assert.equal(F.cellOf([-5, 100], [64, 32], [4, 8]), 3 * 8 + 0);
});

test("colouring: RGB to opaque RGBA, heat through the table, cluster labels, object weights", () => {
  assert.deepEqual([...F.rgbToRgba([1, 2, 3, 4, 5, 6])], [1, 2, 3, 255, 4, 5, 6, 255]);
  const lut = new Uint8Array(768).map((_, i) => i % 256);
  const heat = F.heatRgba([0, 255], lut);
  assert.deepEqual([...heat.slice(0, 3)], [lut[0], lut[1], lut[2]]);
  assert.deepEqual([...heat.slice(4, 7)], [lut[765], lut[766], lut[767]]);
  assert.deepEqual([heat[3], heat[7]], [0, 179]); // zero transparent, the top at 0.7 opacity
  const tint = F.labelRgba([0, 1, 255, 2], [[10, 20, 30], [40, 50, 60]], 100);
  assert.deepEqual([...tint], [10, 20, 30, 100, 40, 50, 60, 100, 0, 0, 0, 0, 10, 20, 30, 100]);
  // two objects over three cells: cell 0 object 0, cell 1 object 1, cell 2 neither
  const w = F.weightsRgba([200, 10, 0, 100, 255, 0], 2, [[255, 0, 0], [0, 0, 255]], 1);
  assert.deepEqual([...w], [255, 0, 0, 200, 0, 0, 255, 255, 0, 0, 0, 0]);
});

test("cluster labels and object weights take the one palette's colours by default", () => {
  assert.deepEqual([...F.labelRgba([1]).slice(0, 3)], P.CLUSTER_COLOURS[1]);
  assert.deepEqual([...F.weightsRgba([0, 255], 2).slice(0, 3)], P.OBJECT_COLOURS[1]);
  assert.equal(P.objectColour(5), "rgb(255, 215, 0)"); // colours repeat after the fifth object
});

test("valueUnder reads the map's value in the cell under a point; float32s decodes synced bytes", () => {
  const values = F.float32s(new DataView(new Float32Array([0, 0.5, 0.25, 1, 2, 3]).buffer, 4, 16));
  assert.deepEqual([...values], [0.5, 0.25, 1, 2]);
  // a 2 x 2 map over a 64 x 32 frame: (40, 20) is row 2, column 2
  assert.deepEqual(F.valueUnder(values, [2, 2], [40, 20], [64, 32]), { value: 2, row: 2, col: 2 });
  assert.deepEqual(F.valueUnder(values, [2, 2], [10, 5], [64, 32]), { value: 0.5, row: 1, col: 1 });
  assert.equal(F.valueUnder(values, [3, 3], [10, 5], [64, 32]), null); // values of another map
  assert.equal(F.float32s(new Uint8Array(0)).length, 0);
});
