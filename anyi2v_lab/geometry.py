"""Pixel geometry between a user's image and the model canvas.

Coordinates are continuous pixels: an image of size (W, H) spans [0, W] x [0, H] and pixel (i, j) has its
centre at (i + 0.5, j + 0.5). A :class:`ResizeMap` is the affine map ``x' = x * sx + ox, y' = y * sy + oy``
from a source image to a destination canvas. Points, boxes and images all go through the same numbers, so a
box drawn on the source lands on the same pixels of the resized image.

Policies (source (W, H) -> canvas (W', H')):

* ``"stretch"``: independent x/y scales ``W'/W`` and ``H'/H`` (what the reference does to every image).
* ``"crop"``: one scale ``max(W'/W, H'/H)`` so the image covers the canvas, centred; the overflow is cut.
* ``"pad"``: one scale ``min(W'/W, H'/H)`` so the image fits, centred on a filled canvas. The content is
  rounded to whole pixels (so ``sx`` and ``sy`` can differ by less than one pixel over the image) because
  that keeps the image resampling exact: the content is a plain resize pasted at an integer offset.

numpy only (no torch): the widgets use this module too.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .validate import check_choice, check_coords, check_image_size

POLICIES = ("stretch", "crop", "pad")
_ALIGN_TOL = 1e-6  # a content edge this close to an integer counts as pixel-aligned


def _forward_params(src, dst, policy) -> tuple[tuple[float, float], tuple[float, float]]:
    (w, h), (W, H) = src, dst
    if policy == "stretch":
        return (W / w, H / h), (0.0, 0.0)
    if policy == "crop":
        s = max(W / w, H / h)
        return (s, s), ((W - w * s) / 2, (H - h * s) / 2)
    s = min(W / w, H / h)  # pad
    cw, ch = max(1, min(W, round(w * s))), max(1, min(H, round(h * s)))
    return (cw / w, ch / h), (float((W - cw) // 2), float((H - ch) // 2))


@dataclass(frozen=True)
class ResizeMap:
    """Affine map from pixel coordinates of a ``src_size`` image to a ``dst_size`` canvas under ``policy``.

    ``inverted=True`` is the inverse map (canvas -> source) of the map with the sizes swapped back, so that
    ``m.inverse().inverse() == m`` exactly.

    >>> m = ResizeMap.from_policy((1024, 768), (512, 512), "pad")
    >>> m.points([[512.0, 384.0]])          # the image centre goes to the canvas centre
    array([[256., 256.]])
    """

    src_size: tuple[int, int]
    dst_size: tuple[int, int]
    policy: str = "stretch"
    inverted: bool = False
    scale: tuple[float, float] = field(init=False, repr=False, compare=False)
    offset: tuple[float, float] = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        src, dst = check_image_size(self.src_size, "src_size"), check_image_size(self.dst_size, "dst_size")
        object.__setattr__(self, "src_size", src)
        object.__setattr__(self, "dst_size", dst)
        check_choice(self.policy, "policy", POLICIES)
        object.__setattr__(self, "inverted", bool(self.inverted))
        if not self.inverted:
            scale, offset = _forward_params(src, dst, self.policy)
        else:
            (sx, sy), (ox, oy) = _forward_params(dst, src, self.policy)
            scale, offset = (1.0 / sx, 1.0 / sy), (-ox / sx, -oy / sy)
        object.__setattr__(self, "scale", scale)
        object.__setattr__(self, "offset", offset)

    @classmethod
    def from_policy(cls, src_size, dst_size, policy: str = "stretch") -> "ResizeMap":
        """The map that resizes a ``src_size`` image onto a ``dst_size`` canvas with ``policy``."""
        return cls(src_size, dst_size, policy)

    @classmethod
    def identity(cls, size) -> "ResizeMap":
        return cls(size, size, "stretch")

    def inverse(self) -> "ResizeMap":
        """The map back from the canvas to the source image."""
        return ResizeMap(self.dst_size, self.src_size, self.policy, not self.inverted)

    def points(self, xy) -> np.ndarray:
        """Map points: array-like (..., 2) of (x, y) -> float64 array (..., 2)."""
        return check_coords(xy, "points", "x, y") * np.asarray(self.scale) + np.asarray(self.offset)

    def boxes(self, b) -> np.ndarray:
        """Map boxes: array-like (..., 4) of (x0, y0, x1, y1) -> float64 array (..., 4)."""
        a = check_coords(b, "boxes", "x0, y0, x1, y1")
        return np.concatenate([self.points(a[..., :2]), self.points(a[..., 2:])], axis=-1)

    @property
    def content_box(self) -> tuple[float, float, float, float]:
        """Part of the canvas covered by the source image, (x0, y0, x1, y1) in canvas pixels."""
        x0, y0, x1, y1 = self.boxes([0.0, 0.0, *self.src_size])
        W, H = self.dst_size
        return (max(float(x0), 0.0), max(float(y0), 0.0), min(float(x1), float(W)), min(float(y1), float(H)))

    def apply_image(self, image, resample=None, fill=0):
        """Resample a PIL image of ``src_size`` onto a new PIL image of ``dst_size``.

        ``fill`` colours the canvas outside the content (pad). ``resample`` is a PIL filter (default
        bicubic, as PIL's own resize and the reference). When the content edges fall on whole pixels (every
        forward policy and the inverse of stretch/pad) this is ``Image.resize`` with a sub-pixel source box,
        which antialiases; otherwise (inverse of crop) an affine transform with the same arithmetic.
        """
        from PIL import Image

        if resample is None:
            resample = Image.Resampling.BICUBIC
        if tuple(image.size) != self.src_size:
            raise ValueError(f"image size {image.size} does not match this map's src_size {self.src_size}; "
                             f"build the map with ResizeMap.from_policy({image.size}, {self.dst_size}, ...)")
        cx0, cy0, cx1, cy1 = self.content_box
        edges = np.array([cx0, cy0, cx1, cy1])
        if np.all(np.abs(edges - np.round(edges)) < _ALIGN_TOL):
            x0, y0, x1, y1 = (int(v) for v in np.round(edges))
            # float round-off must not push the source box past the image (PIL rejects that)
            src_box = clip_box(self.inverse().boxes([x0, y0, x1, y1]), self.src_size)
            content = image.resize((x1 - x0, y1 - y0), resample, box=tuple(float(v) for v in src_box))
            out = Image.new(image.mode, self.dst_size, fill)
            out.paste(content, (x0, y0))
            return out
        (sx, sy), (ox, oy) = self.scale, self.offset
        data = (1.0 / sx, 0.0, -ox / sx, 0.0, 1.0 / sy, -oy / sy)  # canvas -> source, pixel-centre based
        return image.transform(self.dst_size, Image.Transform.AFFINE, data, resample=resample, fillcolor=fill)


def clip_box(box, size) -> np.ndarray:
    """Clip boxes (..., 4) to the image [0, W] x [0, H]. A box wholly outside comes back with zero area."""
    W, H = check_image_size(size, "size")
    b = check_coords(box, "boxes", "x0, y0, x1, y1")
    lo, hi = np.zeros(4), np.array([W, H, W, H], dtype=np.float64)
    return np.clip(b, lo, hi)


def box_from_corners(p, q) -> tuple[float, float, float, float]:
    """Box (x0, y0, x1, y1) spanned by two corner points given in any order (e.g. two clicks)."""
    (px, py), (qx, qy) = p, q
    return (float(min(px, qx)), float(min(py, qy)), float(max(px, qx)), float(max(py, qy)))
