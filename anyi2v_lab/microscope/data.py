"""MicroscopeData: everything the denoising microscope shows, precomputed once so that a slider move
only looks arrays up.

>>> data = MicroscopeData.from_result(result, pipe)   # generate(..., keep_x0=True, capture=microscope_capture(...))
>>> data = MicroscopeData.from_cache(cache, pipe, frames=video, prompt=prompt)   # a run_with_cache cache
>>> data.pca_rgb(data.points[0], data.feature_steps(data.points[0])[-1])   # (F, h, w, 3) uint8
"""
from __future__ import annotations

import time
from typing import Mapping

import numpy as np
import torch

from ..method.record import mask_grid
from ..palette import HEAT_CMAP, heat_colours
from .attention import attention_from_point, word_maps
from .clusters import assign, kmeans, label_rgb
from .pca import SharedPCA
from .steps import Step, ordered
from .words import prompt_tokens, token_positions

Series = Mapping[Step, torch.Tensor]


def _cond(entry) -> torch.Tensor:
    """The conditional branch of a cache entry ``(b, F, ...)`` -> ``(F, ...)`` (CFG puts it last)."""
    b = entry.branches.index("cond") if "cond" in entry.branches else len(entry.branches) - 1
    return entry.tensor[min(b, entry.tensor.shape[0] - 1)].detach().cpu()


def _grid(n: int, aspect: float) -> tuple[int, int]:
    """The ``(h, w)`` with ``h * w = n`` closest to the frame's aspect ``W / H``."""
    pairs = [(h, n // h) for h in range(1, n + 1) if n % h == 0]
    return min(pairs, key=lambda hw: abs(np.log(hw[1] / hw[0]) - np.log(aspect)))


def _series(cache, name: str) -> dict[Step, torch.Tensor]:
    out = {}
    for pos, e in enumerate(cache.entries(name)):
        out[Step(e.phase, pos if e.step_index is None else e.step_index, e.timestep)] = _cond(e)
    return out


def _tokens(x: torch.Tensor) -> torch.Tensor:
    """Maps ``(F, C, h, w)`` or tokens ``(F, N, C)`` -> tokens ``(F, N, C)``."""
    return x.flatten(2).transpose(1, 2) if x.ndim == 4 else x


class MicroscopeData:
    """Linked views over steps x hook points x heads x frames (see ``docs`` of each method).

    ``features``: hook point -> {step: ``(F, N, C)`` tokens}; ``keys``: ``.query`` point -> {step: keys
    ``(F, N, C)``} (self-attention from a point); ``cross``: cross-attention ``.probs`` point -> {step:
    ``(F, heads, N, T)``}; ``grids``: point -> ``(h, w)``; ``heads``: point -> heads; ``x0``: step ->
    ``(F, H, W, 3)`` uint8; ``masks``: step -> ``(O, F, Hg, Wg)``; ``words``: the prompt's tokens.
    """

    def __init__(self, *, features: Mapping[str, Series] = {}, keys: Mapping[str, Series] = {},
                 cross: Mapping[str, Series] = {}, grids: Mapping[str, tuple[int, int]] = {},
                 heads: Mapping[str, int] = {}, x0: Mapping[Step, np.ndarray] = {}, frames: np.ndarray | None = None,
                 masks: Mapping[Step, np.ndarray] = {}, words: list[str] | None = None, meta: dict | None = None,
                 num_clusters: int = 5, max_tokens: int = 20000, seed: int = 0):
        start = time.perf_counter()
        self.frames = None if frames is None else np.asarray(frames)
        self.words = words
        self.meta = dict(meta or {})
        self.num_clusters = num_clusters
        self._features = {p: dict(s) for p, s in features.items()}
        self._keys = {p: dict(s) for p, s in keys.items() if p in self._features}
        self._grids = dict(grids)
        self._heads = {p: int(heads.get(p, 1)) for p in self._keys}
        self._x0 = dict(x0)
        self._masks = dict(masks)
        self.points = list(self._features)
        self.attention_points = list(self._keys)
        counts = {len(v) for s in self._features.values() for v in s.values()} | {v.shape[0] for v in self._x0.values()
                                                                                  if v.shape[0] > 1}
        if self.frames is not None:
            counts.add(self.frames.shape[0])
        if len(counts) > 1:
            raise ValueError(f"frame counts differ between the views: {sorted(counts)}; capture every frame")
        self.num_frames = counts.pop() if counts else 1
        self._pca, self._rgb, self._labels = {}, {}, {}
        self.cross_grid: tuple[int, int] | None = None  # the finest cross-attention grid, when there are words
        for point, series in self._features.items():
            self._fit_point(point, series, max_tokens, seed)
        self._cross_maps, self.cross_heads, self._cross = self._aggregate_cross(dict(cross))
        self.precompute_seconds = time.perf_counter() - start

    # constructors ---------------------------------------------------------------------------------------

    @classmethod
    def from_result(cls, result, pipe=None, tokenizer=None, *, model: str | None = None, **options) -> "MicroscopeData":
        """From a :class:`~anyi2v_lab.method.generation.GenerationResult`: ``record.x0`` (``keep_x0=True``),
        the loss masks (``keep_masks=True``) and ``result.cache`` (``capture=microscope_capture(pipe,
        config)`` or any capture of token/map points, ``.key`` beside ``.query``, cross-attention
        ``.probs``). ``pipe`` gives the heads, the tokenizer and the weights' fingerprint; ``model`` names
        the model in :attr:`meta` (and in the export's provenance)."""
        record = result.record
        x0 = {Step(x.phase, x.step_index, x.timestep): x.frames for x in record.x0}
        meta = {"prompt": result.prompt, "negative_prompt": result.negative_prompt, "seed": result.seed,
                "config": result.config.to_dict(), "model": model}
        return cls._from_parts(result.cache, result.frames, pipe, tokenizer, result.prompt, x0,
                               _loss_masks(record), meta, options)

    @classmethod
    def from_cache(cls, cache, pipe=None, *, frames=None, prompt: str | None = None, tokenizer=None,
                   x0: Mapping[Step, np.ndarray] | None = None, model: str | None = None,
                   **options) -> "MicroscopeData":
        """From an :class:`~anyi2v_lab.hooks.ActivationCache` (``run_with_cache``, one forward or a whole
        generation); ``frames`` ``(F, H, W, 3)`` the video it belongs to, ``prompt`` for the words."""
        return cls._from_parts(cache, frames, pipe, tokenizer, prompt, x0 or {}, {},
                               {"prompt": prompt, "model": model}, options)

    @classmethod
    def _from_parts(cls, cache, frames, pipe, tokenizer, prompt, x0, masks, meta, options) -> "MicroscopeData":
        from ..hooks import hook_points

        frames = None if frames is None else np.asarray(frames)
        aspect = 1.0 if frames is None else frames.shape[2] / frames.shape[1]
        features, keys, cross, grids = {}, {}, {}, {}
        names = list(cache or ())
        for name in names:
            series = _series(cache, name)
            first = next(iter(series.values()))
            if name.endswith(".probs"):
                if first.shape[-1] != first.shape[-2]:  # text keys: cross-attention
                    cross[name] = series
                    grids[name] = _grid(first.shape[-2], aspect)
                continue
            if name.endswith(".key") and name[:-4] + ".query" in names:
                keys[name[:-4] + ".query"] = {s: _tokens(x) for s, x in series.items()}
                continue
            if first.ndim not in (3, 4) or name == "output":
                continue
            features[name] = {s: _tokens(x) for s, x in series.items()}
            grids[name] = tuple(first.shape[-2:]) if first.ndim == 4 else _grid(first.shape[1], aspect)
        heads = {}
        if pipe is not None:
            heads = {p.name: p.heads for p in hook_points(pipe.unet)}
            tokenizer = tokenizer or pipe.tokenizer
            from ..method.feature_bank import model_fingerprint

            meta["model"] = meta.get("model") or getattr(pipe, "name_or_path", None) or None
            meta["model_fingerprint"] = model_fingerprint(pipe.unet)
        meta["hook_points"] = names
        words = prompt_tokens(tokenizer, prompt) if tokenizer is not None and prompt else None
        return cls(features=features, keys=keys, cross=cross, grids=grids, heads=heads, x0=x0, frames=frames,
                   masks=masks, words=words, meta=meta, **options)

    # precomputation -------------------------------------------------------------------------------------

    def _fit_point(self, point: str, series: dict, max_tokens: int, seed: int) -> None:
        h, w = self._grids[point]
        pca = SharedPCA(torch.cat([x.reshape(-1, x.shape[-1]) for x in series.values()]), max_tokens=max_tokens,
                        seed=seed)
        centroids = kmeans(pca.sample, self.num_clusters, seed=seed)
        self._pca[point] = (pca, centroids)
        for step, x in series.items():
            tokens = x.reshape(-1, x.shape[-1])
            nf = x.shape[0]
            self._rgb.setdefault(point, {})[step] = pca.rgb(tokens).reshape(nf, h, w, 3)
            self._labels.setdefault(point, {})[step] = (assign(pca.project(tokens), centroids).to(torch.uint8)
                                                        .numpy().reshape(nf, h, w))

    def _aggregate_cross(self, cross: dict) -> tuple[dict, int, dict]:
        """Per step, the DAAM maps of every word: heads averaged, each layer upsampled to the largest grid,
        layers averaged: ``{step: (F, words, Hc, Wc)}``."""
        if not cross or not self.words:
            return {}, 0, cross
        self.cross_grid = max((self._grids[p] for p in cross), key=lambda hw: hw[0] * hw[1])
        tokens = list(range(1, len(self.words) + 1))
        per_step: dict[Step, list[torch.Tensor]] = {}
        for point, series in cross.items():
            for step, probs in series.items():
                per_step.setdefault(step, []).append(word_maps(probs, self._grids[point], self.cross_grid, tokens))
        heads = {int(x.shape[1]) for s in cross.values() for x in s.values()}
        return {s: torch.stack(v).mean(0).numpy() for s, v in per_step.items()}, min(heads), cross

    # axes -----------------------------------------------------------------------------------------------

    @property
    def steps(self) -> list[Step]:
        """Every step with anything to show, in the order the generation made them."""
        keys = [s for series in self._features.values() for s in series]
        keys += [*self._x0, *self._masks, *self._cross_maps]
        return ordered(keys)

    @property
    def x0_steps(self) -> list[Step]:
        return ordered(self._x0)

    @property
    def mask_steps(self) -> list[Step]:
        return ordered(self._masks)

    @property
    def cross_steps(self) -> list[Step]:
        return ordered(self._cross_maps)

    def feature_steps(self, point: str) -> list[Step]:
        return ordered(self._series(point))

    def heads(self, point: str) -> int:
        """Heads of an attention point (0 for a point without self-attention)."""
        return self._heads.get(point, 0)

    def grid(self, point: str) -> tuple[int, int]:
        """``(h, w)`` token grid of a feature or cross-attention point."""
        if point not in self._grids:
            raise KeyError(f"{point!r} is not here; points: {self.points}, cross-attention: {self.cross_points}")
        return self._grids[point]

    @property
    def cross_points(self) -> list[str]:
        """The cross-attention ``.probs`` points averaged into :meth:`cross_attention`."""
        return list(self._cross)

    @property
    def frame_size(self) -> tuple[int, int]:
        """``(W, H)`` of the video frames (of the x0 frames without a video)."""
        ref = self.frames if self.frames is not None else next((v for v in self._x0.values()), None)
        return (1, 1) if ref is None else (int(ref.shape[2]), int(ref.shape[1]))

    @property
    def nbytes(self) -> int:
        """Bytes held: captured tensors and precomputed images."""
        series = (*self._features.values(), *self._keys.values(), *self._cross.values())
        tensors = [x for s in series for x in s.values()]
        arrays = [a for table in (self._rgb, self._labels) for s in table.values() for a in s.values()]
        arrays += [*self._x0.values(), *self._masks.values(), *self._cross_maps.values()]
        return (sum(x.numel() * x.element_size() for x in tensors) + sum(a.nbytes for a in arrays)
                + (0 if self.frames is None else self.frames.nbytes))

    # views ----------------------------------------------------------------------------------------------

    def x0(self, step: Step) -> np.ndarray:
        """``(F, H, W, 3)`` uint8: the predicted clean video at ``step`` (inversion: one frame)."""
        if step not in self._x0:
            raise KeyError(f"no x0 at {step}; x0 steps: {[s.label for s in self.x0_steps] or 'none (keep_x0=True)'}")
        return self._x0[step]

    def pca_rgb(self, point: str, step: Step) -> np.ndarray:
        """``(F, h, w, 3)`` uint8 PCA-RGB in the point's one basis (shared by every step and frame)."""
        return self._at(self._rgb, point, step)

    def clusters(self, point: str, step: Step) -> np.ndarray:
        """``(F, h, w)`` uint8 cluster labels, centroids shared by every step (label j means one thing)."""
        return self._at(self._labels, point, step)

    def cluster_rgb(self, point: str, step: Step) -> np.ndarray:
        return label_rgb(self.clusters(point, step))

    def loss_masks(self, step: Step) -> np.ndarray | None:
        """``(O, F, Hg, Wg)`` the method's loss weights at an optimisation step (last iteration, mean over
        the aligned layers), or ``None``."""
        return self._masks.get(step)

    def cell_of(self, point: str, xy) -> tuple[int, int]:
        """Frame pixel ``(x, y)`` -> ``(row, col)`` of the point's token grid."""
        h, w = self.grid(point)
        W, H = self.frame_size
        return (min(max(int(xy[1] * h / H), 0), h - 1), min(max(int(xy[0] * w / W), 0), w - 1))

    def self_attention(self, point: str, step: Step, frame: int, cell, head: int | None = None,
                       within_frame: bool = False) -> np.ndarray:
        """``(F, h, w)`` float32: the query at ``cell`` ((row, col) or a token index) of ``frame`` against
        the keys of every frame, ``softmax(q k^T / sqrt(d))`` of one ``head`` or the heads' mean; sums to 1."""
        if point not in self._keys:
            raise KeyError(f"{point!r} has no keys captured; self-attention points: {self.attention_points}")
        h, w = self._grids[point]
        heads = self._heads[point]
        if head is not None and not 0 <= head < heads:
            raise IndexError(f"head={head}, but {point!r} has {heads} heads")
        if not 0 <= frame < self.num_frames:
            raise IndexError(f"frame={frame}, but the video has {self.num_frames} frames")
        index = cell if isinstance(cell, (int, np.integer)) else int(cell[0]) * w + int(cell[1])
        q, k = self._at(self._features, point, step), self._at(self._keys, point, step)
        probs = attention_from_point(q, k, frame, index, heads, head, within_frame)
        return probs.reshape(-1, h, w).numpy()

    def query_key(self, point: str, step: Step) -> tuple[torch.Tensor, torch.Tensor]:
        """The ``(F, N, C)`` queries and keys :meth:`self_attention` reads (``C = heads * d``; head ``j``
        holds channels ``j*d:(j+1)*d``), as captured (no scale applied)."""
        if point not in self._keys:
            raise KeyError(f"{point!r} has no keys captured; self-attention points: {self.attention_points}")
        return self._at(self._features, point, step), self._at(self._keys, point, step)

    def cross_attention_words(self, step: Step | None = None, head: int | None = None) -> np.ndarray:
        """``(F, words, Hc, Wc)`` float32: :meth:`cross_attention` of every word at once."""
        self._check_cross(step, head)
        steps = self.cross_steps if step is None else [step]
        if head is None:
            return np.stack([self._cross_maps[s] for s in steps]).mean(0).astype(np.float32)
        tokens = list(range(1, len(self.words) + 1))
        return np.stack([torch.stack([word_maps(series[s], self._grids[p], self.cross_grid, tokens, head)
                                      for p, series in self._cross.items() if s in series]).mean(0).numpy()
                         for s in steps]).mean(0).astype(np.float32)

    def _check_cross(self, step: Step | None, head: int | None) -> None:
        if not self.words:
            raise ValueError("no prompt words: build with pipe= (or tokenizer=) and a prompt")
        if not self._cross:
            raise ValueError("no cross-attention captured: capture '<...>.attn2.probs' points")
        if step is not None and step not in self._cross_maps:
            raise KeyError(f"no cross-attention at {step}; steps: {[s.label for s in self.cross_steps]}")
        if head is not None and not 0 <= head < self.cross_heads:
            raise IndexError(f"head={head}, but the cross-attentions have {self.cross_heads} heads")

    def cross_attention(self, word, step: Step | None = None, head: int | None = None) -> np.ndarray:
        """``(F, Hc, Wc)`` float32: the cells' attention to ``word`` (index into :attr:`words`, a token or a
        phrase), averaged over the cross-attention layers (each upsampled to the largest grid), over heads
        or of one ``head``, and over all steps (``step=None``) or at one step (DAAM)."""
        self._check_cross(step, head)
        cols = [p - 1 for p in token_positions(self.words, word)]
        steps = self.cross_steps if step is None else [step]
        if head is None:
            maps = np.stack([self._cross_maps[s][:, cols] for s in steps])
        else:
            tokens = [c + 1 for c in cols]
            maps = np.stack([torch.stack([word_maps(series[s], self._grids[p], self.cross_grid, tokens, head)
                                          for p, series in self._cross.items() if s in series]).mean(0).numpy()
                             for s in steps])
        return maps.mean(axis=(0, 2)).astype(np.float32)

    @staticmethod
    def heat_rgb(maps: np.ndarray, cmap: str = HEAT_CMAP) -> np.ndarray:
        """Maps ``(..., h, w)`` -> ``(..., h, w, 3)`` uint8, scaled to [0, 1] by the whole array's minimum
        and maximum (one scale for every frame, so frames compare)."""
        m = np.asarray(maps, dtype=np.float32)
        return heat_colours((m - m.min()) / max(float(m.max() - m.min()), 1e-12), cmap)

    def export_figures(self, out_dir, **selection):
        """Write a figure set (PNG, SVG, MP4, GIF) and ``provenance.json``: see :func:`.export.export_figures`."""
        from .export import export_figures

        return export_figures(self, out_dir, **selection)

    # lookups --------------------------------------------------------------------------------------------

    def _series(self, point: str) -> dict:
        if point not in self._features:
            raise KeyError(f"{point!r} has no features here; points: {self.points}")
        return self._features[point]

    def _at(self, table: dict, point: str, step: Step):
        self._series(point)
        value = table.get(point, {}).get(step)
        if value is None:
            labels = [s.label for s in self.feature_steps(point)]
            raise KeyError(f"{point!r} has nothing at {step}; its steps: {labels}")
        return value

    def __repr__(self) -> str:
        return (f"MicroscopeData({len(self.steps)} steps, {len(self.points)} points, {self.num_frames} frames, "
                f"words={self.words}, {self.nbytes / 2**20:.1f} MiB, precomputed in {self.precompute_seconds:.2f} s)")


def _loss_masks(record) -> dict[Step, np.ndarray]:
    """The last iteration's loss weights of each optimised step, every object: ``(O, F, Hg, Wg)``."""
    last = {}
    for k, it in enumerate(record.iterations):
        if it.masks is not None:
            last[it.step_index] = (k, it)
    out = {}
    for i, (k, it) in last.items():
        maps = [mask_grid(record, iteration=k, obj=o).mean(1) for o in range(len(it.masks))]
        out[Step("optimisation", i, it.timestep)] = np.stack(maps)
    return out
