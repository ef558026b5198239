// Pure logic of the denoising microscope's view (no DOM: node's test runner covers it,
// microscope.test.mjs). Python ships every view as flat uint8 arrays, one per hook point and kind,
// laid out (slot, frame, head, cell, ...) where `slot` numbers the steps that kind was kept at;
// these functions find one image in such an array and colour it. A slider move is this lookup.

/** The slot of global step `step` in a kind kept at `steps` (sorted step indices), or -1. */
export function slotOf(steps, step) {
  let lo = 0;
  let hi = steps.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (steps[mid] === step) return mid;
    if (steps[mid] < step) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}

/** Offset of element `index` (one number per dimension) in a C-ordered array of shape `shape`. */
export function offsetOf(shape, index) {
  if (shape.length !== index.length) throw new Error(`index ${index} does not match shape ${shape}`);
  let off = 0;
  for (let d = 0; d < shape.length; d++) {
    if (index[d] < 0 || index[d] >= shape[d]) throw new RangeError(`index ${index} outside shape ${shape}`);
    off = off * shape[d] + index[d];
  }
  return off;
}

/** The `length` bytes at `offset` of a synced buffer (DataView, ArrayBuffer or typed array). */
export function bytesAt(buffer, offset, length) {
  if (buffer instanceof ArrayBuffer) return new Uint8Array(buffer, offset, length);
  return new Uint8Array(buffer.buffer, buffer.byteOffset + offset, length);
}

/** "7 / 31 · sampling 3 · t = 681" for step entry `s` ({phase, timestep, ...}) of `n`. */
export function stepLabel(s, index, n) {
  const t = s.timestep === null || s.timestep === undefined ? "" : ` · t = ${s.timestep}`;
  const within = Number.isInteger(s.index) ? ` ${s.index}` : "";
  return `${index + 1} / ${n} · ${s.phase}${within}${t}`;
}

/** Runs of equal phase in the step list: [{phase, start, end}] (end exclusive), for the timeline. */
export function phaseRuns(steps) {
  const runs = [];
  steps.forEach((s, i) => {
    const last = runs[runs.length - 1];
    if (last && last.phase === s.phase) last.end = i + 1;
    else runs.push({ phase: s.phase, start: i, end: i + 1 });
  });
  return runs;
}

/** IEEE half-precision bits (Uint16Array) -> Float32Array. */
export function halfToFloat(bits) {
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) {
    const b = bits[i];
    const sign = b & 0x8000 ? -1 : 1;
    const exp = (b >> 10) & 0x1f;
    const frac = b & 0x3ff;
    if (exp === 0) out[i] = sign * frac * 2 ** -24; // subnormal
    else if (exp === 31) out[i] = frac ? NaN : sign * Infinity;
    else out[i] = sign * (1 + frac / 1024) * 2 ** (exp - 15);
  }
  return out;
}

/** Self-attention of the token `cell` of frame `qFrame`, from queries and keys `qk` (Float32Array laid
 * out (q|k, F, heads, N, d)): softmax(q k / sqrt(d)) per head over the keys of the query's own frame
 * (`scope` "frame", what the layer computes) or of every frame ("video"); the probabilities of `head`,
 * or their mean over heads when `head` < 0. Returns Float32Array(F * N), zero outside the keys used
 * (mirror: MicroscopeData.self_attention). */
export function selfAttention(qk, [F, heads, N, d], qFrame, cell, head, scope = "frame") {
  const out = new Float32Array(F * N);
  const kBase = F * heads * N * d;
  const frames = scope === "video" ? Array.from({ length: F }, (_, j) => j) : [qFrame];
  const hs = head < 0 ? Array.from({ length: heads }, (_, j) => j) : [head];
  const scale = 1 / Math.sqrt(d);
  const logits = new Float64Array(frames.length * N);
  for (const hd of hs) {
    const qOff = ((qFrame * heads + hd) * N + cell) * d;
    let top = -Infinity;
    frames.forEach((fk, a) => {
      for (let n = 0; n < N; n++) {
        const kOff = kBase + ((fk * heads + hd) * N + n) * d;
        let dot = 0;
        for (let c = 0; c < d; c++) dot += qk[qOff + c] * qk[kOff + c];
        const z = dot * scale;
        logits[a * N + n] = z;
        if (z > top) top = z;
      }
    });
    let sum = 0;
    for (let i = 0; i < logits.length; i++) {
      logits[i] = Math.exp(logits[i] - top);
      sum += logits[i];
    }
    frames.forEach((fk, a) => {
      for (let n = 0; n < N; n++) out[fk * N + n] += logits[a * N + n] / sum / hs.length;
    });
  }
  return out;
}

/** Values `x[start, start + n)` scaled to uint8 so that `top` maps to 255. */
export function scaleToBytes(x, start, n, top) {
  const out = new Uint8Array(n);
  const k = top > 0 ? 255 / top : 0;
  for (let i = 0; i < n; i++) out[i] = Math.min(255, Math.round(x[start + i] * k));
  return out;
}

/** The maximum of `x[start, start + n)` (the whole array by default). */
export function maxOf(x, start = 0, n = x.length - start) {
  let top = 0;
  for (let i = start; i < start + n; i++) if (x[i] > top) top = x[i];
  return top;
}

/** "up_blocks.1.attentions.0 · attn1.query" for a hook point name (the transformer block is implied). */
export function shortPoint(name) {
  return name.replace(/\.transformer_blocks\.0\./, " · ");
}

/** "sampling" or "optimisation and sampling": the phases of some step entries, in order of appearance. */
export function phasesOf(steps) {
  const phases = [...new Set(steps.map((s) => s.phase))];
  return phases.length > 1 ? `${phases.slice(0, -1).join(", ")} and ${phases[phases.length - 1]}` : phases[0] || "no";
}

/** A custom message's state with its binary buffers put back where `paths` say (the twin of
 * widgets/buffers.split_buffers); each buffer arrives as a DataView or an ArrayBuffer. */
export function withBuffers(state, paths, buffers) {
  const out = structuredClone(state);
  paths.forEach((path, i) => {
    let node = out;
    for (const key of path.slice(0, -1)) node = node[key];
    node[path[path.length - 1]] = buffers[i];
  });
  return out;
}

/** The steps (positions, sorted) where hook point `layer` has features: its PCA, masks or queries and
 * keys; [] for none (then the slider does not snap). */
export function capturedSteps(layer) {
  if (!layer) return [];
  const all = new Set([...(layer.pca_steps || []), ...(layer.masks_steps || []), ...(layer.qk_steps || [])]);
  return [...all].sort((a, b) => a - b);
}

/** Where the step slider lands when moved to `value` from `current`: a captured step. One position
 * (an arrow key, a slow drag) goes on to the next captured step that way; a jump to the nearest one
 * (the earlier on a tie). No captured steps: `value` itself. */
export function snapStep(captured, value, current = value) {
  if (!captured.length) return value;
  if (Math.abs(value - current) === 1) {
    const ahead = value > current ? captured.filter((s) => s >= value) : captured.filter((s) => s <= value).reverse();
    return ahead.length ? ahead[0] : current;
  }
  let best = captured[0];
  for (const s of captured) if (Math.abs(s - value) < Math.abs(best - value)) best = s;
  return best;
}

/** Why a panel is empty at a step the point was not captured at, in the readout's words. */
export function notCaptured(captured, steps) {
  if (!captured.length) return "not captured at this hook point";
  return `captured at ${captured.length} of ${steps.length} steps (${phasesOf(captured.map((i) => steps[i]))}; ` +
    "marked under the timeline), not at this one";
}

/** The largest value of each of the `F` maps of `n` values laid out one after another in `x`. */
export function frameMaxima(x, F, n) {
  return Array.from({ length: F }, (_, f) => maxOf(x, f * n, n));
}

/** The weight at the top of frame `f`'s colour scale: with `scale` "shared", the largest of every frame's
 * maximum (`maxima`), so frames compare (the FeatureViewer's default); with "map", frame `f`'s own, so a
 * diffuse map shows its shape. */
export function scaleTop(scale, maxima, f) {
  if (scale === "map") return maxima[f] || 0;
  return maxima.reduce((a, b) => Math.max(a, b), 0);
}

/** Bytes already scaled to a shared maximum (255), stretched so their own maximum is 255; with `top`,
 * that maximum as a share of the shared one (the colour bar's upper end). All zero: unchanged, top 0. */
export function ownScale(bytes) {
  const top = maxOf(bytes);
  if (!top) return { bytes, top: 0 };
  const out = new Uint8Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) out[i] = Math.round((bytes[i] * 255) / top);
  return { bytes: out, top: top / 255 };
}
