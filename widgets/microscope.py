"""Microscope: one linked view over step x hook point x head x frame of a generation.

A step slider (inversion, optimisation and sampling, coloured on a timeline), a frame slider and
pickers for hook point, attention head and prompt word drive five panels together: the predicted
clean frame x0 at that step, the cluster masks over it, the PCA-RGB of the hook point's features
(one basis for every step and frame), self-attention from a clicked point and cross-attention of the
chosen word (DAAM-style, over all cross-attention layers).

Everything comes from one :class:`anyi2v_lab.microscope.MicroscopeData` and is shipped to the browser
once, as uint8 arrays (and the attention queries and keys as float16), so moving a slider or clicking
a point is a lookup or a small matrix product in the browser, not a kernel round trip. The arrays go
as binary buffers of one custom message that each view asks for when it opens, not as synced state:
a saved notebook keeps the widget's small state and its static picture, not megabytes of arrays.

>>> Microscope.from_result(result, pipe)     # generate(..., keep_x0=True, capture=microscope_capture(pipe, cfg))
>>> Microscope.from_cache(cache, pipe, frames=video, prompt=prompt)   # a cache from run_with_cache
>>> Microscope(data)                         # a MicroscopeData you built
"""
from __future__ import annotations

import anywidget
import numpy as np
import traitlets as t
from PIL import ImageDraw

from anyi2v_lab.palette import QUERY_COLOUR

from .buffers import split_buffers
from .bundle import css, esm
from .features import heat_lut_bytes, plain_layer, query_index, to_uint8
from .images import png_bytes
from .mapping import view_size
from .static import StaticPicture, cross, enlarged, panels, placeholder, rgb

MAX_BYTES = 96 * 2**20  # what one widget may send to the browser; beyond it, restrict points or steps


def _numpy(x) -> np.ndarray:
    return x.detach().float().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


def _step_entry(step) -> dict:
    return {"phase": step.phase, "index": int(step.index),
            "timestep": None if step.timestep is None else int(step.timestep)}


def _layer_payload(data, point: str, position: dict) -> dict:
    """One hook point's arrays: PCA-RGB ``(slot, F, h, w, 3)`` and cluster labels ``(slot, F, h, w)``
    uint8, and where the point has self-attention its queries and keys ``(slot, q|k, F, heads, N, d)``
    as float16 (the browser computes the attention of a clicked point from them); ``*_steps`` are the
    positions in ``data.steps`` of the slots."""
    steps = data.feature_steps(point)
    slots = [position[s] for s in steps]
    h, w = data.grid(point)
    pca = np.stack([np.asarray(data.pca_rgb(point, s), np.uint8) for s in steps]) if steps else np.zeros(0, np.uint8)
    labels = (np.stack([np.asarray(data.clusters(point, s), np.uint8) for s in steps]) if steps
              else np.zeros(0, np.uint8))
    out = {"grid": [int(h), int(w)], "heads": int(data.heads(point)),
           "pca": pca.tobytes(), "pca_steps": slots, "pca_grid": [int(h), int(w)],
           "masks": labels.tobytes(), "masks_steps": slots, "masks_grid": [int(h), int(w)],
           "qk": b"", "qk_steps": [], "qk_shape": [0, 0, 0]}
    if point in data.attention_points and steps:
        heads = max(int(data.heads(point)), 1)
        qk = np.stack([np.stack([_split_heads(_numpy(a), heads) for a in data.query_key(point, s)]) for s in steps])
        _, _, F, heads, N, d = qk.shape
        out.update(qk=qk.astype(np.float16).tobytes(), qk_steps=slots, qk_shape=[int(heads), int(N), int(d)])
    return out


def _split_heads(tokens: np.ndarray, heads: int) -> np.ndarray:
    """Tokens ``(F, N, heads * d)`` -> ``(F, heads, N, d)`` (diffusers' head split)."""
    F, N, C = tokens.shape
    return tokens.reshape(F, N, heads, C // heads).transpose(0, 2, 1, 3)


def _word_maps(data, steps) -> np.ndarray:
    """``(steps, heads + 1, words, F, Hc, Wc)``: every word's map at every step, the mean of the heads
    first, then each head (``data.cross_attention_words``)."""
    heads = [None, *range(data.cross_heads)]
    return np.stack([np.stack([_numpy(data.cross_attention_words(step=s, head=hd)).transpose(1, 0, 2, 3)
                               for hd in heads]) for s in steps])


def _loss_mask_payload(data, position: dict) -> dict:
    """The method's loss weights at its optimisation steps, uint8 ``(slot, F, objects, Hg * Wg)``."""
    steps = list(getattr(data, "mask_steps", []))
    if not steps:
        return {}
    m = np.stack([np.asarray(data.loss_masks(s), np.float32) for s in steps])  # (slot, O, F, Hg, Wg)
    S, O, F, Hg, Wg = m.shape
    q = (np.clip(np.nan_to_num(m), 0, 1) * 255).round().astype(np.uint8).transpose(0, 2, 1, 3, 4)
    return {"weights": np.ascontiguousarray(q).tobytes(), "weights_steps": [position[s] for s in steps],
            "weights_grid": [int(Hg), int(Wg)], "objects": int(O)}


def _cross_payload(data, position: dict) -> tuple[dict, list[str]]:
    """Cross-attention of every word at every step that has it plus the mean over steps (last slot),
    per head and the mean of heads (first), as uint8 scaled per (slot, head, word) over all frames:
    shape ``(slots + 1, F, heads + 1, words, Hc * Wc)``."""
    words = list(data.words or [])
    if not words:
        return {}, []
    steps = list(data.cross_steps)
    if not steps:
        return {}, words
    per_step = _word_maps(data, steps)  # (steps, heads + 1, words, F, Hc, Wc)
    heads = per_step.shape[1] - 1
    per_step = np.concatenate([per_step, per_step.mean(0, keepdims=True)])  # DAAM: the mean over steps last
    a = per_step
    S1, H1, Wd, F, Hc, Wc = a.shape
    q = to_uint8(a.reshape(S1, H1, Wd, F * Hc * Wc), axis=-1).reshape(S1, H1, Wd, F, Hc * Wc)
    q = q.transpose(0, 3, 1, 2, 4)  # (slot, F, head, word, cell): one lookup per panel draw
    return {"cross": np.ascontiguousarray(q).tobytes(), "cross_steps": [position[s] for s in steps],
            "cross_grid": [int(Hc), int(Wc)], "cross_inner": [int(H1), int(Wd)], "heads": heads}, words


def _most_localised(cross: dict) -> int:
    """The word whose mean-of-steps map (mean of heads) is most concentrated (highest peak over mean):
    the view opens on a word that points at something."""
    if not cross:
        return 0
    S1 = len(cross["cross_steps"]) + 1
    a = np.frombuffer(cross["cross"], np.uint8)
    Hc, Wc = cross["cross_grid"]
    H1, Wd = cross["cross_inner"]
    a = a.reshape(S1, -1, H1, Wd, Hc * Wc)[-1, :, 0].astype(np.float64)  # (F, words, cells)
    score = a.max(axis=(0, 2)) / np.maximum(a.mean(axis=(0, 2)), 1e-9)
    return int(score.argmax())


class Microscope(StaticPicture, anywidget.AnyWidget):
    """Linked views of one generation (or one cache) over step x hook point x head x frame.

    Synced state: ``step`` (position in ``steps``), ``frame``, ``point``, ``head`` (-1: the mean of the
    heads), ``word``, ``query`` ((x, y) frame pixels, set by a click), ``query_frame`` (the frame clicked
    in), ``attend`` ("frame": the layer's own attention within a frame; "video": keys of every frame, so
    the point's matches in other frames show as the frame slider moves), ``cross_steps`` ("step" or
    "all": DAAM's mean over steps), ``scale`` (the attention panels' colour scale in the browser: "shared"
    over frames or each "map" its own maximum; the colour bars follow it).

    ``x0``, ``layers``, ``cross`` and ``loss_masks`` hold the arrays the browser draws from (see
    :func:`_layer_payload`); a view receives them in one message when it opens (:meth:`payload_message`).
    """

    _esm = esm("microscope.js")
    _css = css("style.css") + css("microscope.css")

    steps = t.List(t.Dict()).tag(sync=True)
    step = t.Int(0).tag(sync=True)
    num_frames = t.Int(1).tag(sync=True)
    frame = t.Int(0).tag(sync=True)
    frame_size = t.List(t.Int(), [1, 1]).tag(sync=True)
    panel_size = t.List(t.Int(), [1, 1]).tag(sync=True)
    x0_steps = t.List(t.Int()).tag(sync=True)
    point = t.Unicode("").tag(sync=True)
    head = t.Int(-1).tag(sync=True)
    words = t.List(t.Unicode()).tag(sync=True)
    word = t.Int(0).tag(sync=True)
    cross_steps = t.Unicode("step").tag(sync=True)
    query = t.List(t.Float()).tag(sync=True)
    query_frame = t.Int(0).tag(sync=True)
    attend = t.Unicode("frame").tag(sync=True)
    # the attention panels' colour scale: "shared" over frames (frames compare), or each "map" its own maximum
    scale = t.Enum(("shared", "map"), "shared").tag(sync=True)
    lut = t.Bytes(b"").tag(sync=True)  # the heat colour table (palette.heat_lut)
    labels = t.Dict().tag(sync=True)  # point -> its plain label ("up_blocks.1 attention 0, 16x16: queries")
    num_clusters = t.Int(0).tag(sync=True)
    status = t.Unicode("").tag(sync=True)

    def __init__(self, data, *, points=None, panel_width: int = 184, max_bytes: int = MAX_BYTES, **kwargs):
        self.data = data
        steps = list(data.steps)
        if not steps:
            raise ValueError("data has no steps: generate with keep_x0=True or a capture, or give a cache")
        position = {s: i for i, s in enumerate(steps)}
        names = list(data.points) if points is None else list(points)
        unknown = [p for p in names if p not in data.points]
        if unknown:
            raise ValueError(f"points={unknown} are not in the data; its hook points: {list(data.points)}")
        x0_steps = list(data.x0_steps)
        x0 = [[png_bytes(np.asarray(f, np.uint8)) for f in data.x0(s)] for s in x0_steps]
        layers = {p: _layer_payload(data, p, position) for p in names}
        cross, words = _cross_payload(data, position)
        weights = _loss_mask_payload(data, position)
        size = (sum(len(b) for frames in x0 for b in frames) + len(cross.get("cross", b""))
                + len(weights.get("weights", b""))
                + sum(len(v) for layer in layers.values() for v in layer.values() if isinstance(v, bytes)))
        if size > max_bytes:
            raise ValueError(f"the microscope would send {size / 2**20:.1f} MiB to the browser (max_bytes="
                             f"{max_bytes / 2**20:.0f} MiB); pass points=[...] with fewer hook points, capture "
                             "fewer steps or frames, or raise max_bytes")
        self.payload_bytes = size
        W, H = (int(v) for v in data.frame_size)
        # the finest layer first (the 16 x 16 one the lessons discuss), on its last captured step
        point = max(layers, key=lambda p: layers[p]["grid"][0] * layers[p]["grid"][1], default="")
        kept = layers[point]["pca_steps"] if point else []
        kwargs.setdefault("step", max(kept or [position[s] for s in data.x0_steps], default=len(steps) - 1))
        kwargs.setdefault("word", _most_localised(cross))
        self.x0, self.layers, self.cross, self.loss_masks = x0, layers, cross, weights
        super().__init__(steps=[_step_entry(s) for s in steps], num_frames=int(data.num_frames),
                         frame_size=[W, H], panel_size=list(view_size((W, H), panel_width)),
                         x0_steps=[position[s] for s in x0_steps], point=point,
                         labels={p: plain_layer(p, layer["grid"]) for p, layer in layers.items()},
                         words=words, lut=heat_lut_bytes(),
                         num_clusters=int(getattr(data, "num_clusters", 0)), **kwargs)
        self.on_msg(self._answer)

    @t.validate("frame")
    def _clamp_frame(self, proposal):
        return int(min(max(proposal["value"], 0), max(self.num_frames - 1, 0)))

    def payload_message(self) -> tuple[dict, list[bytes]]:
        """The custom message that carries the arrays to a view: content (the arrays' structure, each
        ``bytes`` replaced by ``None`` and listed in ``buffer_paths``) and the buffers."""
        state, paths, buffers = split_buffers({"x0": self.x0, "layers": self.layers, "cross": self.cross,
                                               "loss_masks": self.loss_masks})
        return {"kind": "payload", "state": state, "buffer_paths": paths}, buffers

    def _answer(self, _widget, content, _buffers) -> None:
        if isinstance(content, dict) and content.get("kind") == "payload?":
            self.send(*self.payload_message())

    @t.validate("step")
    def _clamp_step(self, proposal):
        return int(min(max(proposal["value"], 0), max(len(self.steps) - 1, 0)))

    # --- without a kernel ---------------------------------------------------------------------------
    def snapshot(self):
        """The five panels at the current step and frame (each view at the nearest step that has it):
        x0, the clusters and the PCA-RGB of the hook point, self-attention from the query point (the
        frame centre until one is clicked) and cross-attention of the word."""
        data, size, f = self.data, tuple(self.panel_size), self.frame
        at = data.steps[self.step]
        items = []
        x0_step = _nearest(data.x0_steps, data.steps, at)
        if x0_step is None:
            items.append(("x0", placeholder(size, "x0 not kept (keep_x0=True)")))
        else:
            items.append((f"x0 at {x0_step.label}", enlarged(rgb(_at_frame(data.x0(x0_step), f)), size)))
        items += _feature_panels(self, size)
        items.append(_cross_panel(self, size))
        return panels(items, self.describe())

    def describe(self) -> str:
        from collections import Counter

        phases = Counter(s["phase"] for s in self.steps)
        W, H = self.frame_size
        return (f"Microscope: {len(self.steps)} steps (" + ", ".join(f"{n} {p}" for p, n in phases.items())
                + f"), {len(self.layers)} hook points, {self.num_frames} frames of {W}x{H}, "
                f"{len(self.words)} prompt words; the picture shows step {self.step + 1}, frame {self.frame + 1}; "
                "run the notebook to explore")

    @classmethod
    def from_result(cls, result, pipe=None, *, tokenizer=None, **kwargs) -> "Microscope":
        """The microscope of a :class:`~anyi2v_lab.method.generation.GenerationResult` (``generate(...,
        keep_x0=True, keep_masks=True, capture=microscope_capture(pipe, config))``); ``pipe`` gives the
        heads and the tokenizer (the prompt's words)."""
        from anyi2v_lab.microscope import MicroscopeData

        return cls(MicroscopeData.from_result(result, pipe, tokenizer=tokenizer), **kwargs)

    @classmethod
    def from_cache(cls, cache, pipe=None, *, frames=None, prompt: str | None = None, tokenizer=None,
                   **kwargs) -> "Microscope":
        """The microscope of an :class:`~anyi2v_lab.hooks.ActivationCache` from ``run_with_cache``
        (``frames``: the video it belongs to; ``prompt``: for the words)."""
        from anyi2v_lab.microscope import MicroscopeData

        return cls(MicroscopeData.from_cache(cache, pipe, frames=frames, prompt=prompt, tokenizer=tokenizer), **kwargs)


def _nearest(kept, steps, step):
    """The step of ``kept`` nearest to ``step`` in generation order (None if none is kept)."""
    position = {s: i for i, s in enumerate(steps)}
    return min(kept, key=lambda s: abs(position[s] - position[step]), default=None)


def _at_frame(video, frame: int):
    """Frame ``frame`` of a video; its one frame for an inversion step, which keeps one."""
    return video[min(frame, len(video) - 1)]


def _feature_panels(m: Microscope, size) -> list:
    """Clusters, PCA-RGB and self-attention of ``m.point`` for the static picture."""
    from anyi2v_lab.plots import short_name

    data, f, point = m.data, m.frame, m.point
    step = _nearest(data.feature_steps(point), data.steps, data.steps[m.step]) if point else None
    if step is None:
        return [(title, placeholder(size, "no features captured"))
                for title in ("clusters", "PCA-RGB", "self-attention")]
    name = short_name(point)
    items = [(f"{m.num_clusters} clusters of {name}", enlarged(rgb(_at_frame(data.cluster_rgb(point, step), f)), size)),
             (f"PCA-RGB of {name} at {step.label}", enlarged(rgb(_at_frame(data.pca_rgb(point, step), f)), size))]
    if point not in data.attention_points:
        return items + [("self-attention", placeholder(size, "no queries and keys at this hook point"))]
    W, H = m.frame_size
    xy = m.query if len(m.query) == 2 else [W / 2, H / 2]
    head = m.head if 0 <= m.head < data.heads(point) else None
    source = m.query_frame if m.attend == "video" else f
    cell = query_index(xy, (W, H), data.grid(point))
    maps = data.self_attention(point, step, source, cell, head=head, within_frame=m.attend == "frame")
    heat = enlarged(rgb(data.heat_rgb(_at_frame(maps, f))), size)
    cross(ImageDraw.Draw(heat), xy, QUERY_COLOUR, (size[0] / W, size[1] / H))
    return items + [(f"self-attention from ({xy[0]:.0f}, {xy[1]:.0f})", heat)]


def _cross_panel(m: Microscope, size) -> tuple:
    """Cross-attention of ``m.word`` at the nearest step with it (or the mean of all steps)."""
    data = m.data
    if not m.words or not data.cross_steps:
        return "cross-attention", placeholder(size, "no cross-attention captured")
    word = min(m.word, len(m.words) - 1)
    step = None if m.cross_steps == "all" else _nearest(data.cross_steps, data.steps, data.steps[m.step])
    head = m.head if 0 <= m.head < data.cross_heads else None
    maps = data.cross_attention(word, step=step, head=head)
    where = "mean of all steps" if step is None else step.label
    heat = enlarged(rgb(data.heat_rgb(_at_frame(maps, m.frame))), size)
    return f"cross-attention of \u201c{m.words[word]}\u201d, {where}", heat
