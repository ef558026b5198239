// Pure drawing logic shared by the widgets: coordinate mapping, PCHIP resampling, per-frame boxes,
// hit testing, and turning a pointer gesture into the semantic event that the Python side applies.
// No DOM here, so node's test runner covers all of it (logic.test.mjs). The Python twins live in
// widgets/mapping.py and anyi2v_lab/trajectory.py; fixtures.json pins both to the same numbers.
//
// Points are [x, y]; boxes [x0, y0, x1, y1] (left, top, right, bottom). "image" coordinates are pixels
// of the condition image (what Python stores), "canvas" coordinates pixels of the displayed canvas.

export const DRAG_PX = 4; // canvas pixels a pointer must travel before a click becomes a drag
export const PATH_STEP_PX = 3; // canvas pixels between two kept points of a dragged path

// --- coordinate mapping (mirror: widgets/mapping.py) ---------------------------------------------
/** Display size [w, h] for an image shown `displayWidth` pixels wide (height rounded half up). */
export function viewSize(imageW, imageH, displayWidth) {
  return [displayWidth, Math.max(1, Math.floor((imageH * displayWidth) / imageW + 0.5))];
}

/** Canvas pixels -> image pixels. `view` = {imageSize: [W, H], displaySize: [w, h]}. */
export function canvasToImage(p, view) {
  const [W, H] = view.imageSize;
  const [w, h] = view.displaySize;
  return [(p[0] * W) / w, (p[1] * H) / h];
}

/** Image pixels -> canvas pixels. */
export function imageToCanvas(p, view) {
  const [W, H] = view.imageSize;
  const [w, h] = view.displaySize;
  return [(p[0] * w) / W, (p[1] * h) / H];
}

/** A pointer's client position -> canvas pixels, for a canvas of `size` drawn in `rect` (CSS may scale it). */
export function clientToCanvas(clientX, clientY, rect, size) {
  return [((clientX - rect.left) * size[0]) / rect.width, ((clientY - rect.top) * size[1]) / rect.height];
}

export function clampPoint(p, size) {
  return [Math.min(Math.max(p[0], 0), size[0]), Math.min(Math.max(p[1], 0), size[1])];
}

export function boxFromCorners(p, q) {
  return [Math.min(p[0], q[0]), Math.min(p[1], q[1]), Math.max(p[0], q[0]), Math.max(p[1], q[1])];
}

// --- PCHIP resampling (mirror: trajectory.resample_path, bit for bit) ----------------------------
// The operations follow scipy's PchipInterpolator (derivatives), CubicHermiteSpline (coefficients)
// and PPoly evaluation in the same order, so the doubles come out identical, not merely close.

/** numpy.linspace(0, 1, n): k * (1 / (n - 1)), last sample exactly 1. */
export function linspace01(n) {
  if (n === 1) return [0];
  const step = 1 / (n - 1);
  const out = [];
  for (let k = 0; k < n; k++) out.push(k * step + 0);
  out[n - 1] = 1;
  return out;
}

function edgeDerivative(h0, h1, m0, m1) {
  const d = ((2 * h0 + h1) * m0 - h0 * m1) / (h0 + h1);
  if (Math.sign(d) !== Math.sign(m0)) return 0;
  if (Math.sign(m0) !== Math.sign(m1) && Math.abs(d) > 3 * Math.abs(m0)) return 3 * m0;
  return d;
}

/** PCHIP derivatives at the knots x (increasing) of values y. */
export function pchipDerivatives(x, y) {
  const n = x.length;
  const h = [];
  const m = [];
  for (let k = 0; k < n - 1; k++) {
    h.push(x[k + 1] - x[k]);
    m.push((y[k + 1] - y[k]) / h[k]);
  }
  if (n === 2) return [m[0], m[0]];
  const d = new Array(n).fill(0);
  for (let k = 1; k < n - 1; k++) {
    if (Math.sign(m[k]) !== Math.sign(m[k - 1]) || m[k] === 0 || m[k - 1] === 0) continue;
    const w1 = 2 * h[k] + h[k - 1];
    const w2 = h[k] + 2 * h[k - 1];
    d[k] = 1 / ((w1 / m[k - 1] + w2 / m[k]) / (w1 + w2));
  }
  d[0] = edgeDerivative(h[0], h[1], m[0], m[1]);
  d[n - 1] = edgeDerivative(h[n - 2], h[n - 3], m[n - 2], m[n - 3]);
  return d;
}

/** Evaluate the PCHIP interpolant of (x, y) at xs (all inside [x0, x_last]). */
export function pchip(x, y, xs) {
  const n = x.length;
  const d = pchipDerivatives(x, y);
  return xs.map((xv) => {
    let i = 0;
    if (xv === x[n - 1]) i = n - 2;
    else while (!(x[i] <= xv && xv < x[i + 1])) i++;
    const dx = x[i + 1] - x[i];
    const slope = (y[i + 1] - y[i]) / dx;
    const t = (d[i] + d[i + 1] - 2 * slope) / dx;
    const c = [t / dx, (slope - d[i]) / dx - t, d[i], y[i]];
    const s = xv - x[i];
    let res = 0;
    let z = 1;
    for (let kp = 0; kp < 4; kp++) {
      res = res + c[3 - kp] * z * 1;
      if (kp < 3) z *= s;
    }
    return res;
  });
}

/** Resample a path of N points to `numFrames` points: PCHIP over t = k / (N - 1), ends pinned. */
export function resamplePath(points, numFrames) {
  const n = points.length;
  if (n === 0) throw new Error("resamplePath: a path needs at least one point");
  if (n === numFrames) return points.map((p) => [p[0], p[1]]);
  if (n === 1) return Array.from({ length: numFrames }, () => [points[0][0], points[0][1]]);
  const x = linspace01(n);
  const xs = linspace01(numFrames);
  const px = pchip(x, points.map((p) => p[0]), xs);
  const py = pchip(x, points.map((p) => p[1]), xs);
  const out = px.map((v, k) => [v, py[k]]);
  out[numFrames - 1] = [points[n - 1][0], points[n - 1][1]];
  out[0] = [points[0][0], points[0][1]];
  return out;
}

// --- per-frame boxes (mirror: trajectory.frame_boxes) --------------------------------------------
/** The path an object follows, in image pixels: its own, or its box centre when it has none. */
export function objectPath(obj) {
  if (obj.path && obj.path.length) return obj.path;
  const b = obj.box;
  return [[(b[0] + b[2]) / 2, (b[1] + b[3]) / 2]];
}

/** Boxes of one object (with a box) for frames 0..F-1: translated along the resampled path, size
 * going linearly to target_box (symmetrically). */
export function frameBoxes(obj, numFrames) {
  const path = resamplePath(objectPath(obj), numFrames);
  const b = obj.box;
  const e = obj.target_box || b;
  const dw = e[2] - e[0] - (b[2] - b[0]);
  const dh = e[3] - e[1] - (b[3] - b[1]);
  return path.map((p, i) => {
    const frac = numFrames > 1 ? i / (numFrames - 1) : 0;
    const g = [(-dw * frac) / 2, (-dh * frac) / 2, (dw * frac) / 2, (dh * frac) / 2];
    const dx = p[0] - path[0][0];
    const dy = p[1] - path[0][1];
    return [b[0] + dx + g[0], b[1] + dy + g[1], b[2] + dx + g[2], b[3] + dy + g[3]];
  });
}

// --- hit testing and gestures ---------------------------------------------------------------------
/** Index of the object whose box contains `p` (within `tol`), the smallest such box winning so
 * that a box inside another stays selectable; -1 when none. */
export function hitTest(objects, p, tol = 0) {
  let best = -1;
  let bestArea = Infinity;
  objects.forEach((o, i) => {
    const b = o.box;
    if (!b) return;
    if (p[0] < b[0] - tol || p[0] > b[2] + tol || p[1] < b[1] - tol || p[1] > b[3] + tol) return;
    const area = (b[2] - b[0]) * (b[3] - b[1]);
    if (area < bestArea) {
      best = i;
      bestArea = area;
    }
  });
  return best;
}

function dist(a, b) {
  return Math.hypot(a[0] - b[0], a[1] - b[1]);
}

/** Keep the first point, then each point at least `step` away from the last kept one. */
export function thinPath(points, step) {
  if (points.length === 0) return [];
  const out = [points[0]];
  for (const p of points.slice(1)) if (dist(p, out[out.length - 1]) >= step) out.push(p);
  return out;
}

export function isDrag(points, threshold = DRAG_PX) {
  return points.some((p) => dist(p, points[0]) >= threshold);
}

/**
 * Turn a finished gesture into the event the Python side applies (or null: nothing to do).
 * `points`: canvas positions from pointer-down to pointer-up. Events carry image pixels, clamped to
 * the image. Event types: select, box, target_box, path, path_point, query_point (see widgets/editing.py).
 */
export function gestureEvent(mode, points, view, objects, selected) {
  if (!points.length) return null;
  const toImage = (p) => clampPoint(canvasToImage(p, view), view.imageSize);
  const dragged = isDrag(points);
  const first = toImage(points[0]);
  const last = toImage(points[points.length - 1]);
  const hasObject = selected >= 0 && selected < objects.length;
  const hasBox = hasObject && !!objects[selected].box;
  if (mode === "select" || (!dragged && (mode === "box" || mode === "target"))) {
    const hit = hitTest(objects, first);
    return hit >= 0 && hit !== selected ? { type: "select", index: hit } : null;
  }
  if (mode === "box" || mode === "target") {
    const box = boxFromCorners(first, last);
    if (!(box[2] > box[0] && box[3] > box[1])) return null;
    if (mode === "target") return hasBox ? { type: "target_box", index: selected, box } : null;
    return { type: "box", index: hasObject ? selected : -1, box };
  }
  if (mode === "path" && hasObject) {
    if (!dragged) return { type: "path_point", index: selected, point: last };
    return { type: "path", index: selected, points: thinPath(points, PATH_STEP_PX).map(toImage) };
  }
  if (mode === "points" && hasObject) return { type: "query_point", index: selected, point: last };
  return null;
}

/** Why a gesture that made no event (gestureEvent gave null) did nothing, for the status line; "" when
 * nothing was meant (a click on empty canvas in select mode, a click on the selected object). */
export function ignoredReason(mode, points, view, objects, selected) {
  if (!points.length || mode === "select" || (!isDrag(points) && (mode === "box" || mode === "target"))) return "";
  const hasObject = selected >= 0 && selected < objects.length;
  if ((mode === "path" || mode === "points") && !hasObject) {
    return objects.length ? `ignored: no object is selected; click a box or a name above to select one, then draw its ${mode}`
      : `ignored: there is no object yet; drag a box first (Box), then its ${mode}`;
  }
  if (mode === "target" && !(hasObject && objects[selected].box)) {
    return "ignored: a target box belongs to an object with a box; select one first";
  }
  return "ignored: the box has no area; drag from one corner to the opposite one";
}

// --- views that wait for the kernel ---------------------------------------------------------------
/** True while the kernel has not answered the view's current frame, query and point: `answered`
 * ({frame, query, point}) is what the shown map was computed for (FeatureViewer.answered). */
export function isStale(answered, frame, query, point) {
  if (!point) return false; // nothing computed in the kernel to wait for
  if (!answered || answered.frame !== frame || answered.point !== point) return true;
  const a = answered.query || [];
  const q = query || [];
  return a.length !== q.length || a.some((x, i) => x !== q[i]);
}

/** A weight for a colour bar's end: 3 significant digits, no exponent for ordinary sizes. */
export function formatWeight(x) {
  if (x === 0) return "0";
  if (Math.abs(x) >= 1e-3 && Math.abs(x) < 1e4) return String(Number(x.toPrecision(3)));
  return x.toExponential(2);
}

/** Synced bytes (DataView, ArrayBuffer or typed array) as a Uint8Array over the same memory. */
export function lutBytes(b) {
  if (b instanceof ArrayBuffer) return new Uint8Array(b);
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

// --- the motions the toy model learnt (mirror: anyi2v_lab/toy/limits.py, motion_checks) ------------
function moveChecks(o, i, boxes, numFrames, limits, height) {
  const name = o.name || `object ${i + 1}`;
  const out = [];
  const check = (rule, value, limit, broken) => broken && out.push({ object: i, name, rule, value, limit });
  const centres = boxes.map((b) => [(b[0] + b[2]) / 2, (b[1] + b[3]) / 2]);
  const steps = centres.slice(1).map((c, k) => [c[0] - centres[k][0], c[1] - centres[k][1]]);
  const speed = steps.length ? steps.map(([dx, dy]) => Math.sqrt(dx * dx + dy * dy)) : [0];
  const fastest = Math.max(...speed);
  const length = speed.reduce((a, b) => a + b, 0);
  const stepLimit = (limits.max_step * (limits.trained_frames - 1)) / Math.max(numFrames - 1, 1);
  check("too fast", fastest, stepLimit, fastest > limits.speed_slack * stepLimit);
  check("too long", length, limits.max_length, length > limits.length_slack * limits.max_length);
  const outside = boxes.some((b) => b[0] < 0 || b[1] < 0 || b[2] > limits.frame_size || b[3] > height);
  check("leaves the frame", 0, 0, outside);
  const moving = steps.filter((_, k) => speed[k] > 0.2);
  if (moving.length > 1) {
    const [a, b] = [moving[0], moving[moving.length - 1]];
    const cos = (a[0] * b[0] + a[1] * b[1]) / Math.sqrt(a[0] * a[0] + a[1] * a[1]) / Math.sqrt(b[0] * b[0] + b[1] * b[1]);
    const turn = (Math.acos(Math.min(1, Math.max(-1, cos))) * 180) / Math.PI;
    check("sharp turn", turn, limits.max_turn, turn > limits.max_turn);
  }
  return out;
}

/** Every limit of `limits` (MotionLimits as a dict; {} for none) that the objects with a box break:
 * [{object, name, rule, value, limit}], measured in pixels of a `limits.frame_size` wide frame. */
export function motionChecks(objects, numFrames, imageSize, limits) {
  if (!limits || !limits.frame_size) return [];
  const [W, H] = imageSize;
  const scale = (x) => (x * limits.frame_size) / W;
  const out = [];
  objects.forEach((o, i) => {
    if (!o.box) return;
    const boxes = frameBoxes(o, numFrames).map((b) => b.map(scale));
    out.push(...moveChecks(o, i, boxes, numFrames, limits, (H * limits.frame_size) / W));
  });
  return out;
}

/** One check as the canvas says it, in the quickstart's words. */
export function motionWarning(c, numFrames) {
  const said = {
    "too fast": `too fast, ${c.value.toFixed(1)} px a frame (the toy model learnt at most ${c.limit.toFixed(1)} at ${numFrames} frames): the object may fall behind`,
    "too long": `too long, ${c.value.toFixed(0)} px (it learnt at most ${c.limit.toFixed(0)}): the object stops before the end`,
    "leaves the frame": "the box leaves the frame: the object is lost at the edge",
    "sharp turn": `a turn of ${c.value.toFixed(0)} degrees (it learnt gentle bends): the object cuts the corner`,
  };
  return `${c.name}: ${said[c.rule]}`;
}
