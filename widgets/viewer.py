"""FeatureViewer: a frame slider over three linked views of one generation.

* the frame, tinted with the semantic masks of the record, with the target boxes;
* the PCA-RGB image (first three components) of a hook point's features (first: the method's aligned
  query layers at an optimisation iteration);
* where a point attends, from a captured self-attention ``.probs`` point (by default the point follows
  the first object's box centre; a click moves it).

>>> FeatureViewer.from_result(result)             # frames, boxes, masks, the record's PCA, result.cache
>>> FeatureViewer.from_cache(cache, frames=video)  # an ActivationCache from run_with_cache
"""
from __future__ import annotations

from typing import Mapping

import anywidget
import numpy as np
import torch
import traitlets as t
from PIL import ImageDraw

from anyi2v_lab.overlay import masks_from_record
from anyi2v_lab.palette import QUERY_COLOUR

from .bundle import css, esm
from .features import (
    attention_map,
    components_to_rgb,
    feature_maps,
    heat_lut_bytes,
    heat_rgba,
    pca_rgb,
    plain_layer,
    query_index,
    token_grid,
)
from .images import mask_tints, png_bytes, video_frames
from .live import follow
from .mapping import view_size
from .static import StaticPicture, cross, decode, enlarged, framed, panels, placeholder, plural


def _entry_frames(cache, name: str, step=None, timestep=None) -> torch.Tensor:
    """The last stored entry of ``name`` (optionally at a step or timestep), cond branch: ``(F, ...)``."""
    hits = [e for e in cache.entries(name)
            if (step is None or e.step_index == step) and (timestep is None or e.timestep == timestep)]
    if not hits:
        raise KeyError(f"{name!r} has no entry with step={step}, timestep={timestep}; "
                       f"stored timesteps: {cache.timesteps(name)}")
    e = hits[-1]
    b = e.branches.index("cond") if "cond" in e.branches else len(e.branches) - 1
    return e.tensor[min(b, e.tensor.shape[0] - 1)].detach().float().cpu()


def _split_cache(cache, names, step, timestep) -> tuple[dict, dict]:
    """``.probs`` points with spatial keys -> attention views; other spatial points -> feature views."""
    features, probs = {}, {}
    for name in (cache if names is None else names):
        x = _entry_frames(cache, name, step, timestep)
        if name.endswith(".probs"):
            if x.shape[-1] == x.shape[-2]:  # cross-attention keys are text tokens: no spatial map
                probs[name] = x
        elif x.ndim in (3, 4) and name != "output":  # the UNet output is (C, F, H, W): not per frame
            features[name] = x
    return features, probs


class FeatureViewer(StaticPicture, anywidget.AnyWidget):
    """Linked views of features, attention and masks.

    ``features``: hook point -> ``(F, C, h, w)`` maps or ``(F, N, C)`` tokens (PCA-RGB is computed here);
    ``components``: name -> ``(F, 3, h, w)`` already-projected components (e.g. the record's ``.pca``);
    ``probs``: hook point -> ``(F, heads, N, N)`` self-attention; ``frames`` ``(F, H, W, 3)``;
    ``masks`` ``(O, F, H, W)`` in [0, 1]; ``boxes`` ``(O, F, 4)`` in frame pixels.
    ``query`` ((x, y) frame pixels) and ``frame`` are synced both ways; ``follow`` >= 0 keeps the query
    on that object's box centre as the frame changes (a click in the browser sets it to -1).
    """

    _esm = esm("viewer.js")
    _css = css("style.css")

    frames = t.List(t.Bytes()).tag(sync=True)
    masks = t.List(t.Bytes()).tag(sync=True)
    boxes = t.List().tag(sync=True)
    frame_size = t.List(t.Int(), [1, 1]).tag(sync=True)
    panel_size = t.List(t.Int(), [1, 1]).tag(sync=True)
    num_frames = t.Int(1).tag(sync=True)
    frame = t.Int(0).tag(sync=True)
    pca = t.Dict().tag(sync=True)  # name -> [PNG bytes per frame]
    pca_point = t.Unicode("").tag(sync=True)
    attention_points = t.List(t.Unicode()).tag(sync=True)
    attention_point = t.Unicode("").tag(sync=True)
    query = t.List(t.Float()).tag(sync=True)  # [] or [x, y] in frame pixels
    follow = t.Int(-1).tag(sync=True)  # >= 0: the query sits on this object's box centre in every frame
    attention = t.Bytes(b"").tag(sync=True)
    # "shared": one scale over every frame of the point (frames compare); "map": each map its own maximum
    scale = t.Enum(("shared", "map"), "shared").tag(sync=True)
    attention_range = t.List(t.Float(), [0.0, 0.0]).tag(sync=True)  # the weights at the colour bar's ends
    # the shown map's weights, float32 row-major over attention_grid [h, w]: the browser reads the value
    # under the pointer (16 x 16 tokens: 1 KiB a map)
    attention_values = t.Bytes(b"").tag(sync=True)
    attention_grid = t.List(t.Int(), [0, 0]).tag(sync=True)
    # what the shown attention was computed for ({frame, query, point}): the browser says it waits while
    # its own frame, query or point differ (a click while a cell runs is answered after the cell)
    answered = t.Dict().tag(sync=True)
    heat_lut = t.Bytes(b"").tag(sync=True)  # the colour bar's 256 colours, RGB
    labels = t.Dict().tag(sync=True)  # point name -> its plain label ("up_blocks.1 attention 0, 16x16: ...")
    status = t.Unicode("").tag(sync=True)

    def __init__(self, features: Mapping[str, torch.Tensor] | None = None,
                 probs: Mapping[str, torch.Tensor] | None = None, frames=None, masks=None, boxes=None,
                 components: Mapping[str, torch.Tensor] | None = None, panel_width: int = 256,
                 key: str | None = None, **kwargs):
        traits, self._probs = _viewer_traits(features, probs, frames, masks, boxes, components, panel_width)
        super().__init__(**traits, heat_lut=heat_lut_bytes(), **kwargs)
        self._panel_width = panel_width
        self.observe(self._follow_object, ["frame", "follow"])
        self.observe(self._update_attention, ["frame", "attention_point", "query", "scale"])
        self._follow_object()
        self._update_attention()
        follow(key, self)

    def show(self, result, cache=None, *, iteration: int = -1) -> None:
        """Show another :class:`~anyi2v_lab.method.generation.GenerationResult` in this viewer, in place
        (what :func:`~anyi2v_lab.widgets.show_run` calls), opening on it as :meth:`from_result` does, except
        that a clicked point stays at its frame; the chosen feature and attention points stay where the new
        run has them."""
        args, opening = _result_args(result, cache, iteration)
        traits, probs = _viewer_traits(panel_width=self._panel_width, **args)
        with self.hold_sync():
            self._probs = probs
            self.frame = min(self.frame, traits["num_frames"] - 1)
            for name, value in traits.items():
                if name in ("pca_point", "attention_point"):
                    old = getattr(self, name)
                    value = old if old in (traits["pca"] if name == "pca_point" else probs) else value
                setattr(self, name, value)
            if self.follow >= 0 or len(self.query) != 2:  # a clicked point stays, at its frame
                self.frame, self.follow = opening["frame"], opening.get("follow", -1)
            self._follow_object()
            self._update_attention()

    @t.validate("frame")
    def _clamp_frame(self, proposal):
        return int(min(max(proposal["value"], 0), max(self.num_frames - 1, 0)))

    def attention_at(self, point=None, frame: int | None = None, name: str | None = None) -> np.ndarray | None:
        """The ``(h, w)`` attention map of the token under ``point`` (frame pixels) in ``frame`` of the
        ``name`` probs (defaults: the current query, frame and attention point)."""
        name = self.attention_point if name is None else name
        point = self.query if point is None else point
        frame = self.frame if frame is None else frame
        if not name or len(point) != 2:
            return None
        probs = self._probs[name][frame]  # (heads, N, N)
        grid = token_grid(probs.shape[-1], self.frame_size[0] / self.frame_size[1])
        return attention_map(probs, query_index(point, self.frame_size, grid), grid)

    def _follow_object(self, _change=None) -> None:
        if 0 <= self.follow < len(self.boxes):
            x0, y0, x1, y1 = self.boxes[self.follow][self.frame]
            self.query = [(x0 + x1) / 2, (y0 + y1) / 2]

    def attention_top(self) -> float:
        """The weight at the top of the colour bar: the current map's largest, or with ``scale="shared"``
        the largest of this point's maps over every frame."""
        frames = range(self.num_frames) if self.scale == "shared" else [self.frame]
        maps = [self.attention_at(frame=f) for f in frames]
        return max((float(m.max()) for m in maps if m is not None), default=0.0)

    def _update_attention(self, _change=None) -> None:
        a = self.attention_at()
        top = self.attention_top()
        with self.hold_sync():
            self.attention = b"" if a is None else png_bytes(heat_rgba(a, top=top))
            self.attention_values = b"" if a is None else np.ascontiguousarray(a, "<f4").tobytes()
            self.attention_grid = [0, 0] if a is None else [int(v) for v in a.shape]
            self.attention_range = [0.0, top]
            self.answered = {"frame": self.frame, "query": list(self.query), "point": self.attention_point}

    # --- without a kernel ---------------------------------------------------------------------------
    def snapshot(self):
        """The three views at the current frame: the frame with masks and boxes, the PCA-RGB of the
        chosen hook point, and the attention from the query point over the frame."""
        size = tuple(self.panel_size)
        W, H = self.frame_size
        scale = (size[0] / W, size[1] / H)
        f = self.frame
        frame = decode(self.frames[f]) if self.frames else None
        shown = placeholder(size, "no frames given")
        if frame is not None:
            shown, _ = framed(frame, self.masks[f] if f < len(self.masks) else None, size,
                              [boxes[f] for boxes in self.boxes], scale)
        items = [(f"frame {f + 1} / {self.num_frames}" + (", masks" if self.masks else ""), shown)]
        from anyi2v_lab.plots import short_name

        pcs = self.pca.get(self.pca_point)
        items.append((f"PCA-RGB, {short_name(self.pca_point)}" if self.pca_point else "PCA-RGB",
                      enlarged(decode(pcs[f]), size) if pcs else placeholder(size, "no features given")))
        if self.attention:
            heat = enlarged(decode(self.attention, "RGBA"), size)
            under = enlarged(frame, size) if frame is not None else placeholder(size, "")
            under.paste(heat, mask=heat)
            cross(ImageDraw.Draw(under), self.query, QUERY_COLOUR, scale)
            items.append((f"attention from ({self.query[0]:.0f}, {self.query[1]:.0f}), "
                          f"{short_name(self.attention_point)} (0 to {self.attention_range[1]:.3g}, "
                          + ("shared over frames)" if self.scale == "shared" else "this map's largest)"), under))
        elif self.attention_points:
            items.append(("attention", placeholder(size, "no query point")))
        return panels(items, self.describe())

    def describe(self) -> str:
        return (f"FeatureViewer at frame {self.frame + 1} of {self.num_frames}: PCA-RGB of "
                f"{plural(len(self.pca), 'hook point')}, attention of {len(self.attention_points)}"
                + (f"; {self.status}" if self.status else ""))

    # --- constructors -----------------------------------------------------------------------------
    @classmethod
    def from_cache(cls, cache, frames=None, *, step: int | None = None, timestep: int | None = None,
                   names=None, **kwargs) -> "FeatureViewer":
        """Views of an :class:`~anyi2v_lab.hooks.ActivationCache`: ``.probs`` points (self-attention) become
        attention views, every other spatial point a PCA-RGB view. Each name's last entry is used
        (or the one at ``step``/``timestep``), cond branch when there is one."""
        features, probs = _split_cache(cache, names, step, timestep)
        return cls(features=features, probs=probs, frames=frames, **kwargs)

    @classmethod
    def from_result(cls, result, cache=None, *, iteration: int = -1, **kwargs) -> "FeatureViewer":
        """Views of a :class:`~anyi2v_lab.method.generation.GenerationResult`, opening on what the method
        works with: the last frame with its boxes and masks (``keep_masks=True``); the aligned layers'
        first three principal components at optimisation ``iteration`` as the loss saw them
        (``keep_pca=True``), finest layer first; then the hook points of ``cache`` (default:
        ``result.cache``, filled by ``generate(..., capture=...)``), self-attention probabilities with the
        most tokens first; and the query on the first object's box centre, following it frame by frame
        (a click anywhere ends that)."""
        args, opening = _result_args(result, cache, iteration)
        kwargs.setdefault("frame", opening["frame"])
        if "follow" in opening and "query" not in kwargs:  # a given query is kept
            kwargs.setdefault("follow", 0)
        return cls(**args, **kwargs)


def _result_args(result, cache, iteration: int) -> tuple[dict, dict]:
    """The views of a result (FeatureViewer's arguments) and where the viewer opens on them: the last
    frame, the query following the first object."""
    rec, frames = result.record, result.frames
    masks = None
    if rec.boxes is not None:
        masks = masks_from_record(rec, rec.boxes.shape[0], frames.shape[0], frames.shape[1:3])
    its = [it for it in rec.iterations if it.pca]
    components = {}
    if its:
        it = its[iteration]
        layers = sorted(it.pca, key=lambda k: -it.pca[k].shape[-1] * it.pca[k].shape[-2])
        label = f"step {it.step_index}, iteration {it.iteration}"
        components = {f"aligned {short_layer(k)}.query, PCA ({label})": it.pca[k] for k in layers}
    cache = result.cache if cache is None else cache
    features, probs = _split_cache(cache, None, None, None) if cache is not None else ({}, {})
    probs = dict(sorted(probs.items(), key=lambda kv: -kv[1].shape[-1]))
    opening = {"frame": frames.shape[0] - 1, **({"follow": 0} if rec.boxes is not None else {})}
    return {"features": features, "probs": probs, "frames": frames, "masks": masks, "boxes": rec.boxes,
            "components": components}, opening


def _viewer_traits(features, probs, frames, masks, boxes, components, panel_width) -> tuple[dict, dict]:
    """The synced traits of the views (PCA-RGB computed here) and the attention probabilities by name."""
    features, probs, components = dict(features or {}), dict(probs or {}), dict(components or {})
    video = None if frames is None else video_frames(frames)
    counts = {f"features[{k!r}]": v.shape[0] for k, v in {**features, **components, **probs}.items()}
    if video is not None:
        counts["frames"] = video.shape[0]
    if not counts:
        raise ValueError("nothing to show: give frames, features, components or probs")
    if len(set(counts.values())) > 1:
        raise ValueError(f"frame counts differ: {counts}; capture every frame of the same video")
    F = next(iter(counts.values()))
    H, W = (video.shape[1:3] if video is not None else (panel_width, panel_width))
    # the method's own components first: the view opens on what the loss aligns
    pca = {name: [png_bytes(im) for im in components_to_rgb(c)] for name, c in components.items()}
    labels = {name: plain_layer(name, tuple(c.shape[-2:])) for name, c in components.items()}
    for name, x in features.items():
        maps = feature_maps(torch.as_tensor(x), W / H)
        pca[name] = [png_bytes(im) for im in pca_rgb(maps)]
        labels[name] = plain_layer(name, tuple(maps.shape[-2:]))
    for name, p in probs.items():
        if p.ndim != 4 or p.shape[-1] != p.shape[-2]:
            raise ValueError(f"probs[{name!r}] has shape {tuple(p.shape)}; give self-attention (F, heads, N, N) "
                             "(cross-attention has no spatial keys)")
        labels[name] = plain_layer(name, token_grid(p.shape[-1], W / H))
    mask_list = []
    if masks is not None:
        m = np.asarray(masks)
        if video is None or m.ndim != 4 or m.shape[1:] != video.shape[:3]:
            raise ValueError(f"masks has shape {m.shape}; give (objects, F, H, W) matching frames")
        mask_list = [png_bytes(tint) for tint in mask_tints(m)]
    box_list = [] if boxes is None else np.asarray(boxes, dtype=np.float64).tolist()
    traits = {"frames": [] if video is None else [png_bytes(f) for f in video], "masks": mask_list,
              "boxes": box_list, "frame_size": [int(W), int(H)],
              "panel_size": list(view_size((int(W), int(H)), panel_width)), "num_frames": int(F), "pca": pca,
              "pca_point": next(iter(pca), ""), "attention_points": list(probs),
              "attention_point": next(iter(probs), ""), "labels": labels}
    return traits, {k: torch.as_tensor(v).detach().float().cpu() for k, v in probs.items()}

def short_layer(name: str) -> str:
    """``up_blocks.2.attentions.0.transformer_blocks.0.attn1`` -> ``up_blocks.2.attentions.0``."""
    return name.split(".transformer_blocks")[0]
