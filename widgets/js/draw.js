// Small DOM and 2D-canvas helpers shared by the widget views (no state, no model).

/** Attributes of an element that keeps its keys: JupyterLab's command-mode shortcuts (arrows, b, p, ...)
 * would otherwise act on the notebook while a slider or the drawing canvas has the focus. */
export const OWN_KEYS = { "data-lm-suppress-shortcuts": "true" };

/** Create an element: h("button", {class: "x", "data-mode": "box"}, "Box"). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v);
  }
  for (const c of children) el.append(c);
  return el;
}

/** PNG bytes as synced by ipywidgets (DataView, ArrayBuffer or typed array) -> ImageBitmap. */
export async function decodePng(bytes) {
  if (!bytes || bytes.byteLength === 0) return null;
  return createImageBitmap(new Blob([bytes], { type: "image/png" }));
}

export function strokeBox(ctx, b, colour, { width = 2, dash = [] } = {}) {
  ctx.save();
  ctx.setLineDash(dash);
  ctx.strokeStyle = "rgba(0,0,0,0.6)"; // dark halo keeps light colours visible on light images
  ctx.lineWidth = width + 2;
  ctx.strokeRect(b[0], b[1], b[2] - b[0], b[3] - b[1]);
  ctx.lineWidth = width;
  ctx.strokeStyle = colour;
  ctx.strokeRect(b[0], b[1], b[2] - b[0], b[3] - b[1]);
  ctx.restore();
}

export function polyline(ctx, pts, colour, { width = 2, dash = [] } = {}) {
  if (pts.length < 2) return;
  ctx.save();
  ctx.setLineDash(dash);
  ctx.lineJoin = "round";
  ctx.lineCap = "round";
  for (const [w, c] of [[width + 2, "rgba(0,0,0,0.6)"], [width, colour]]) {
    ctx.lineWidth = w;
    ctx.strokeStyle = c;
    ctx.beginPath();
    ctx.moveTo(pts[0][0], pts[0][1]);
    for (const p of pts.slice(1)) ctx.lineTo(p[0], p[1]);
    ctx.stroke();
  }
  ctx.restore();
}

export function dots(ctx, pts, colour, { radius = 3, hollow = false } = {}) {
  ctx.save();
  for (const p of pts) {
    ctx.beginPath();
    ctx.arc(p[0], p[1], radius, 0, 2 * Math.PI);
    ctx.lineWidth = 1.5;
    ctx.strokeStyle = "rgba(0,0,0,0.7)";
    ctx.fillStyle = colour;
    if (!hollow) ctx.fill();
    else {
      ctx.strokeStyle = colour;
      ctx.lineWidth = 2;
    }
    ctx.stroke();
  }
  ctx.restore();
}

export function cross(ctx, p, colour, size = 5) {
  ctx.save();
  for (const [w, c] of [[4, "rgba(0,0,0,0.7)"], [2, colour]]) {
    ctx.lineWidth = w;
    ctx.strokeStyle = c;
    ctx.beginPath();
    ctx.moveTo(p[0] - size, p[1] - size);
    ctx.lineTo(p[0] + size, p[1] + size);
    ctx.moveTo(p[0] + size, p[1] - size);
    ctx.lineTo(p[0] - size, p[1] + size);
    ctx.stroke();
  }
  ctx.restore();
}

export function label(ctx, text, p, colour) {
  ctx.save();
  ctx.font = "12px sans-serif";
  const w = ctx.measureText(text).width;
  ctx.fillStyle = "rgba(0,0,0,0.65)";
  ctx.fillRect(p[0], p[1] - 15, w + 6, 15);
  ctx.fillStyle = colour;
  ctx.fillText(text, p[0] + 3, p[1] - 3);
  ctx.restore();
}

/** Draw a bitmap scaled to the whole canvas, pixelated when enlarged (model frames are small). */
export function drawImage(ctx, bitmap, w, h, { smooth = false } = {}) {
  if (!bitmap) return;
  ctx.save();
  ctx.imageSmoothingEnabled = smooth;
  ctx.drawImage(bitmap, 0, 0, w, h);
  ctx.restore();
}

/** Size `canvas` to `w` x `h` CSS pixels backed by device pixels, and scale `ctx` so that drawing code
 * keeps using CSS pixels: lines and text stay crisp on a 2x screen. */
export function fitCanvas(canvas, ctx, w, h) {
  const dpr = globalThis.devicePixelRatio || 1;
  const [pw, ph] = [Math.round(w * dpr), Math.round(h * dpr)];
  if (canvas.width !== pw || canvas.height !== ph) [canvas.width, canvas.height] = [pw, ph];
  canvas.style.width = `${w}px`;
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
}

/** An arrowhead at the end of the polyline `pts`, pointing along its last move. */
export function arrowHead(ctx, pts, colour, size = 9) {
  let k = pts.length - 2;
  const end = pts[pts.length - 1];
  while (k >= 0 && Math.hypot(end[0] - pts[k][0], end[1] - pts[k][1]) < 1) k--;
  if (k < 0) return;
  const a = Math.atan2(end[1] - pts[k][1], end[0] - pts[k][0]);
  const tip = [end[0] + 4 * Math.cos(a), end[1] + 4 * Math.sin(a)];
  const wing = (s) => [tip[0] - size * Math.cos(a + s * 0.45), tip[1] - size * Math.sin(a + s * 0.45)];
  ctx.save();
  ctx.beginPath();
  ctx.moveTo(...tip);
  ctx.lineTo(...wing(1));
  ctx.lineTo(...wing(-1));
  ctx.closePath();
  ctx.fillStyle = colour;
  ctx.strokeStyle = "rgba(0,0,0,0.7)";
  ctx.lineWidth = 1.5;
  ctx.fill();
  ctx.stroke();
  ctx.restore();
}
