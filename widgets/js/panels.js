// The panels of the feature views (FeatureViewer and Microscope): a row of canvases with captions, a
// click that puts the query point, the frame as a dim backdrop, the query's cross, a panel that says why
// it is empty, and pickers. DOM only; the pixels come from features.js.
import * as L from "./logic.js";
import * as D from "./draw.js";
import * as P from "./palette.js";

/** A <select> of `options` ([value, text] pairs, or [value, text, hover title]) showing `value`;
 * `onchange(value)` after a pick. */
export function select(options, value, onchange, attrs = {}) {
  const s = D.h("select", { onchange: () => onchange(s.value), ...D.OWN_KEYS, ...attrs });
  s.replaceChildren(...options.map(([v, text, title]) =>
    D.h("option", { value: String(v), ...(title ? { title } : {}) }, text)));
  s.value = String(value);
  return s;
}

/** One canvas per class name in `names` (class `${prefix}${name}`), each in a figure with a caption. */
export function panelRow(names, prefix) {
  const canvases = names.map((name) => D.h("canvas", { class: `anyi2v-panel ${prefix}${name}` }));
  const captions = canvases.map(() => D.h("div", { class: "anyi2v-caption" }));
  const row = D.h("div", { class: "anyi2v-panels" }, ...canvases.map((c, i) => D.h("figure", {}, c, captions[i])));
  return { canvases, captions, ctxs: canvases.map((c) => c.getContext("2d")), row };
}

/** The mapping between frame pixels and panel pixels of `model`. */
export function frameView(model) {
  return { imageSize: model.get("frame_size"), displaySize: model.get("panel_size") };
}

/** A click on any of `canvases` sets the synced `query` ([x, y] frame pixels); `before()` runs first,
 * so traits it sets go in the same message. */
export function clickSetsQuery(model, canvases, before) {
  for (const c of canvases) {
    c.addEventListener("click", (e) => {
      const view = frameView(model); // panel_size in CSS pixels; the backing store may hold more
      const p = L.clientToCanvas(e.clientX, e.clientY, c.getBoundingClientRect(), view.displaySize);
      before();
      model.set("query", L.clampPoint(L.canvasToImage(p, view), model.get("frame_size")));
      model.save_changes();
    });
  }
}

/** Every panel at `size` [W, H] CSS pixels (backed by device pixels, so text and lines stay crisp at any
 * density) and cleared; its figure as wide as the panel, so long captions wrap. */
export function resetPanels({ canvases, ctxs }, [W, H]) {
  canvases.forEach((c, i) => {
    D.fitCanvas(c, ctxs[i], W, H);
    c.parentElement.style.width = `${W}px`;
    ctxs[i].clearRect(0, 0, W, H);
  });
}

/** The frame, grey and dimmed, under a map drawn over it. */
export function backdrop(ctx, bitmap, W, H) {
  if (!bitmap) return;
  ctx.save();
  ctx.filter = "grayscale(1) brightness(0.55)";
  D.drawImage(ctx, bitmap, W, H);
  ctx.restore();
}

/** The query point's cross on every panel (nothing before a point is chosen). */
export function drawQuery(ctxs, query, view) {
  if (!query || query.length !== 2) return;
  const p = L.imageToCanvas(query, view);
  for (const ctx of ctxs) D.cross(ctx, p, P.css(P.QUERY_COLOUR), 6);
}

/** A dark panel that says why it is empty. */
export function message(ctx, text, W, H) {
  ctx.save();
  ctx.fillStyle = "#2b2b2b";
  ctx.fillRect(0, 0, W, H);
  ctx.fillStyle = "#bbb";
  ctx.font = "12px system-ui, sans-serif";
  ctx.textAlign = "center";
  const lines = wrapText(ctx, text, W - 12);
  lines.forEach((line, i) => ctx.fillText(line, W / 2, H / 2 + (i - (lines.length - 1) / 2) * 15));
  ctx.restore();
}

/** `text` broken at spaces into lines no wider than `width` in `ctx`'s font (a long word stays whole). */
function wrapText(ctx, text, width) {
  const lines = [];
  for (const word of text.split(" ")) {
    const last = lines.length ? `${lines[lines.length - 1]} ${word}` : word;
    if (lines.length && ctx.measureText(last).width <= width) lines[lines.length - 1] = last;
    else lines.push(word);
  }
  return lines;
}

/** Draw `rgba` (w x h pixels) scaled over the whole canvas through a scratch canvas, cells kept sharp. */
export function blit(ctx, scratch, rgba, w, h, W, H) {
  if (scratch.width !== w || scratch.height !== h) [scratch.width, scratch.height] = [w, h];
  scratch.getContext("2d").putImageData(new ImageData(rgba, w, h), 0, 0);
  ctx.save();
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(scratch, 0, 0, W, H);
  ctx.restore();
}

/** A colour bar under the panel of `canvas`: the heat colours from 0 to a map's top weight, its ends
 * written, and `note` (what the scale spans). Returns {el, draw(lut, lo, hi, note)}. */
export function colourBar(canvas) {
  const bar = D.h("canvas", { class: "anyi2v-colourbar", height: "8" });
  const ends = [D.h("span"), D.h("span", { class: "anyi2v-colourbar-note" }), D.h("span")];
  const el = D.h("div", { class: "anyi2v-colourbar-box" }, bar, D.h("div", { class: "anyi2v-colourbar-ends" }, ...ends));
  canvas.parentElement.insertBefore(el, canvas.nextSibling);
  let painted = null; // the colours drawn: repainted only when they change, not on every slider move
  const draw = (lut, lo, hi, note) => {
    el.hidden = !lut || lut.byteLength < 768;
    if (el.hidden) return;
    const bytes = L.lutBytes(lut);
    if (!painted || painted.some((b, i) => b !== bytes[i])) {
      painted = bytes.slice(0, 768);
      bar.width = 256;
      const ctx = bar.getContext("2d");
      for (let i = 0; i < 256; i++) {
        ctx.fillStyle = `rgb(${bytes[3 * i]}, ${bytes[3 * i + 1]}, ${bytes[3 * i + 2]})`;
        ctx.fillRect(i, 0, 1, 8);
      }
    }
    ends[0].textContent = L.formatWeight(lo);
    ends[1].textContent = note;
    ends[2].textContent = L.formatWeight(hi);
  };
  return { el, draw, bar, ends };
}

const GAP = 8; // CSS pixels between panels in an exported row, as on the page
const LINE = 15; // CSS pixels per caption line

/** The panel row as one picture on white, at the panels' device pixels: each panel, the colour bar under
 * it (`bars`: [[panel index, colourBar]]) with its ends written, and its caption (after the bar's note). */
export function rowCanvas({ canvases, captions }, bars) {
  const k = canvases[0].width / (parseFloat(canvases[0].style.width) || canvases[0].width); // device px a CSS px
  const out = document.createElement("canvas");
  const ctx = out.getContext("2d");
  ctx.font = "12px system-ui, sans-serif";
  const barAt = new Map(bars.filter(([, b]) => !b.el.hidden));
  const widths = canvases.map((c) => c.width / k);
  const lines = captions.map((c, i) => wrapText(ctx, [barAt.has(i) ? `${barAt.get(i).ends[1].textContent}.` : "",
    c.textContent].join(" ").trim(), widths[i]));
  const tall = Math.max(...canvases.map((c) => c.height / k)) + (barAt.size ? 26 : 0);
  out.width = Math.round(k * (widths.reduce((a, b) => a + b, 0) + GAP * (canvases.length + 1)));
  out.height = Math.round(k * (GAP + tall + LINE * Math.max(...lines.map((l) => l.length)) + GAP));
  ctx.scale(k, k);
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, out.width, out.height);
  let x = GAP;
  canvases.forEach((c, i) => {
    ctx.drawImage(c, x, GAP, widths[i], c.height / k);
    if (barAt.has(i)) exportBar(ctx, barAt.get(i), x, GAP + c.height / k + 4, widths[i]);
    ctx.font = "12px system-ui, sans-serif";
    ctx.fillStyle = "#333";
    lines[i].forEach((line, j) => ctx.fillText(line, x, GAP + tall + 12 + j * LINE));
    x += widths[i] + GAP;
  });
  return out;
}

/** A colour bar drawn at (x, y), `w` wide, the weights at its ends under it. */
function exportBar(ctx, { bar, ends }, x, y, w) {
  ctx.save();
  ctx.imageSmoothingEnabled = true;
  ctx.drawImage(bar, x, y, w, 8);
  ctx.font = "11px system-ui, sans-serif";
  ctx.fillStyle = "#333";
  ctx.fillText(ends[0].textContent, x, y + 20);
  ctx.textAlign = "right";
  ctx.fillText(ends[2].textContent, x + w, y + 20);
  ctx.restore();
}

/** A button that downloads the panel row (`rowCanvas`, with the colour bars `bars()`) as a PNG named
 * `name()`, all in the browser (no kernel round trip). */
export function exportButton(panels, bars, name) {
  return D.h("button", { class: "anyi2v-export", title: "download these panels, captions and colour bars as a PNG",
    onclick: () => rowCanvas(panels, bars()).toBlob((blob) => {
      const a = D.h("a", { href: URL.createObjectURL(blob), download: name() });
      a.click();
      setTimeout(() => URL.revokeObjectURL(a.href), 0);
    }, "image/png") }, "save PNG");
}
