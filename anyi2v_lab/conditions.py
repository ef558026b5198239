"""Condition images (canny, depth, sketch, ...) brought to the model canvas.

:func:`load_condition` turns a file, PIL image or numpy array into a :class:`Condition`: an RGB image at
the model size plus the (1, 3, H, W) tensor in [-1, 1] the VAE takes, and the :class:`ResizeMap` that took
user coordinates to the canvas. :func:`compose_conditions` paints several conditions into one (mixed
conditions, e.g. a depth background with a sketch foreground; docs/method.md §1; the reference has no code for this,
the composite is simply the condition image).

Value conversion to 8-bit RGB (``normalize="auto"``):

* 8-bit data (L, RGB, P, uint8 arrays) is used as is; "1" becomes 0/255.
* 16-bit and 32-bit integer data (PIL ``I;16``/``I``, uint16/int arrays; typically depth PNGs) and PIL
  ``F`` images are stretched by their own min and max to 0..255. A constant image becomes black.
* float arrays: values in [0, 1] are multiplied by 255, anything else is min/max stretched.

``normalize="minmax"`` stretches every input, 8-bit included. Alpha (LA, RGBA, PA, P with transparency,
HxWx4 arrays) is composited over ``background`` (black by default) rather than dropped, as the reference's
``convert("RGB")`` did.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, UnidentifiedImageError

from .geometry import ResizeMap
from .validate import InputError, check_image_size

if TYPE_CHECKING:  # torch is imported where pixels are made, so that checking a file stays cheap
    import torch

_WIDE_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")
_ALPHA_MODES = ("LA", "La", "RGBA", "RGBa", "PA")
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")


MAX_SIDE = 8192
MAX_PIXELS = MAX_SIDE * MAX_SIDE  # checked from the header before decoding: a decompression bomb never decodes


class ConditionError(InputError):
    """A condition image or mask that cannot be used; the message says which and how to fix it."""


@dataclass(frozen=True, eq=False)
class Condition:
    """A condition image at model size. ``pixels``: (1, 3, H, W) float32 in [-1, 1]; ``image``: PIL RGB
    (W, H); ``resize_map``: user (source) pixels -> model pixels; ``source_size``: (W, H) of the input."""

    pixels: torch.Tensor
    image: Image.Image
    resize_map: ResizeMap
    source_size: tuple[int, int]

    @property
    def size(self) -> tuple[int, int]:
        return self.resize_map.dst_size

    @property
    def policy(self) -> str:
        return self.resize_map.policy


def _model_size(size) -> tuple[int, int]:
    w, h = check_image_size(size, "size", error=ConditionError)
    if w % 8 or h % 8:
        raise ConditionError(f"size = {(w, h)} must be divisible by 8 (the VAE downsamples by 8); "
                             f"try {(max(8, w // 8 * 8), max(8, h // 8 * 8))}")
    return w, h


def _stretch(a: np.ndarray) -> np.ndarray:
    """Min/max stretch to uint8, rounding half to even. Integer data of a span up to 65793 (16-bit
    included) is stretched in float32, where ``(a - lo) * 255`` is exact and one division rounds as the
    exact value would: a quarter of float64's memory, the same result."""
    lo, hi = a.min(), a.max()
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise ConditionError("the image holds NaN or inf values; replace them before loading")
    if hi <= lo:
        return np.zeros(a.shape, np.uint8)
    exact32 = a.dtype.kind in "biu" and max(-float(lo), float(hi)) < 2 ** 24 and (float(hi) - float(lo)) * 255 < 2 ** 24
    work = a.astype(np.float32 if exact32 or a.dtype == np.float32 else np.float64)  # the one full-size copy
    work -= work.dtype.type(lo)
    work *= 255
    work /= work.dtype.type(float(hi) - float(lo))
    np.rint(work, out=work)
    return work.astype(np.uint8)


def _array_to_pil(a: np.ndarray, normalize: str) -> Image.Image:
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)) or 0 in a.shape:
        raise ConditionError(f"array of shape {a.shape} is not an image; use (H, W), (H, W, 3) or (H, W, 4)")
    if a.dtype == np.bool_:
        a = a.astype(np.uint8) * 255
    elif a.dtype == np.uint8:
        a = _stretch(a) if normalize == "minmax" else a
    elif np.issubdtype(a.dtype, np.integer):
        a = _stretch(a)
    elif np.issubdtype(a.dtype, np.floating):
        finite = np.all(np.isfinite(a))
        if finite and normalize == "auto" and a.min() >= 0.0 and a.max() <= 1.0:
            a = np.round(a * 255.0).astype(np.uint8)
        else:
            a = _stretch(a)
    else:
        raise ConditionError(f"array dtype {a.dtype} is not an image type; use uint8, uint16 or float")
    mode = {2: "L", 3: "RGB", 4: "RGBA"}[a.shape[2] if a.ndim == 3 else 2]
    return Image.fromarray(np.ascontiguousarray(a), mode)


def _checked_path(source, what: str) -> str:
    path = os.fspath(source)
    if os.path.isdir(path):
        inside = sorted(n for n in os.listdir(path) if n.lower().endswith(_IMAGE_SUFFIXES))[:3]
        such = f", such as {' or '.join(repr(os.path.join(path, n)) for n in inside)}" if inside else ""
        raise ConditionError(f"{what} {path!r} is a folder; give an image file (PNG, JPEG, ...){such}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} not found: {path!r} (working directory {os.getcwd()!r})")
    return path


def _check_pixels(size: tuple[int, int], path: str, what: str) -> None:
    w, h = size
    if w * h > MAX_PIXELS:
        raise ConditionError(f"{what} {path!r} is {w}x{h} = {w * h:,} pixels, more than the {MAX_PIXELS:,} "
                             f"({MAX_SIDE}x{MAX_SIDE}) allowed; downscale it first, e.g. to 1024 px a side "
                             "(the model canvas is far smaller)")


def _open_header(path: str, what: str) -> Image.Image:
    """The opened, not yet decoded image, its size checked; PIL's decompression-bomb check and unreadable
    files become a ConditionError naming the file (and the limit)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(path)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ConditionError(f"{what} {path!r} is too large: {e} Here at most {MAX_PIXELS:,} pixels "
                             f"({MAX_SIDE}x{MAX_SIDE}) are allowed; downscale it first") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise ConditionError(f"cannot read the {what} {path!r} as an image: {e}") from None
    try:
        _check_pixels(im.size, path, what)
    except ConditionError:
        im.close()
        raise
    return im


def image_file_size(source, what: str = "condition image") -> tuple[int, int]:
    """(W, H) of an image file from its header (nothing decoded), with the checks and messages of
    :func:`load_condition`: a file, not a folder, readable, at most :data:`MAX_PIXELS` pixels."""
    with _open_header(_checked_path(source, what), what) as im:
        return im.size


def open_image(source, what: str = "condition image") -> Image.Image:
    """An image file decoded once, its size checked from the header first (:func:`image_file_size`'s
    checks and messages), or a PIL image as is. ``what`` names the file in errors."""
    if isinstance(source, Image.Image):
        return source
    if not isinstance(source, (str, os.PathLike)):
        raise ConditionError(f"a condition must be a file path, a PIL image or a numpy array, "
                             f"got {type(source).__name__}")
    path = _checked_path(source, what)
    im = _open_header(path, what)
    try:
        im.load()  # decoded once, in place (a copy() would hold the pixels twice); closes a one-frame file
    except (OSError, SyntaxError) as e:  # truncated files raise OSError
        im.close()
        raise ConditionError(f"cannot read the {what} {path!r} as an image: {e}") from None
    if getattr(im, "fp", None) is not None:  # a multi-frame file stays open: keep the first frame
        frame = im.copy()
        im.close()
        return frame
    return im


def to_rgb(source, background=(0, 0, 0), normalize: str = "auto") -> Image.Image:
    """Any supported input (path, PIL image, numpy array) -> PIL RGB at its own size (rules: module doc)."""
    if normalize not in ("auto", "minmax"):
        raise ConditionError(f"normalize = {normalize!r} is unknown; use 'auto' or 'minmax'")
    im = _array_to_pil(source, normalize) if isinstance(source, np.ndarray) else open_image(source)
    if im.mode in _WIDE_MODES:
        pixels, im = np.asarray(im), None  # a file's decoded image is freed before the stretch's float copy
        im = Image.fromarray(_stretch(pixels), "L")
    elif im.mode == "P":
        im = im.convert("RGBA") if "transparency" in im.info else im.convert("RGB")
    elif im.mode == "1":
        im = im.convert("L")
    if im.mode in _ALPHA_MODES:
        rgba = im.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, tuple(int(c) for c in background) + (255,))
        im = Image.alpha_composite(bg, rgba)
    if normalize == "minmax" and im.mode in ("L", "RGB"):
        im = Image.fromarray(_stretch(np.asarray(im)), im.mode)
    try:
        return im.convert("RGB")
    except ValueError as e:
        raise ConditionError(f"cannot convert a {im.mode!r} image to RGB ({e}); save it as RGB or L") from None


def pil_to_pixels(image: Image.Image) -> torch.Tensor:
    """PIL RGB (W, H) -> (1, 3, H, W) float32 in [-1, 1], with the reference's arithmetic
    (``to_tensor`` then ``(x - 0.5) * 2``)."""
    import torch

    t = torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.uint8).copy()).permute(2, 0, 1)
    return ((t.float().div(255.0) - 0.5) * 2.0).unsqueeze(0)


def load_condition(source, size=(512, 512), policy: str = "stretch", *, background=(0, 0, 0),
                   pad_color=(0, 0, 0), normalize: str = "auto", resample=None) -> Condition:
    """Load a condition image and bring it to the model ``size`` = (W, H) with ``policy``
    ("stretch" as the reference, "crop" or "pad"; see :mod:`anyi2v_lab.geometry`).

    ``source``: path, PIL image (RGB, L, LA, RGBA, P, 1, I;16, I, F) or numpy array ((H, W), (H, W, 3|4);
    uint8, uint16, float). ``resample``: PIL filter, default bicubic (the reference's ``resize``).
    """
    size = _model_size(size)
    if isinstance(source, Condition):
        return _check_same(source, size, policy)
    rgb = to_rgb(source, background, normalize)
    try:
        rmap = ResizeMap.from_policy(rgb.size, size, policy)
    except ValueError as e:
        raise ConditionError(str(e)) from None
    image = rmap.apply_image(rgb, resample, tuple(int(c) for c in pad_color))
    return Condition(pil_to_pixels(image), image, rmap, rgb.size)


def _check_same(c: Condition, size, policy) -> Condition:
    if c.size != size or c.policy != policy:
        raise ConditionError(f"condition was loaded at {c.size} with policy {c.policy!r}, but {size} with "
                             f"{policy!r} is asked for; load every layer with the same size and policy")
    return c


def _mask_to_pil(mask) -> Image.Image:
    """bool / uint8 / float array or PIL image -> PIL "F" with values in [0, 1]."""
    if isinstance(mask, (str, os.PathLike)):
        mask = open_image(mask, "mask")
    if isinstance(mask, Image.Image):
        if mask.mode in _WIDE_MODES:
            mask = np.asarray(mask) > 0
        else:
            mask = np.asarray(mask.convert("L"))
    a = np.asarray(mask)
    if a.ndim != 2 or 0 in a.shape:
        raise ConditionError(f"mask of shape {a.shape} must be 2-D (H, W)")
    if a.dtype == np.bool_:
        f = a.astype(np.float32)
    elif a.dtype == np.uint8:
        f = a.astype(np.float32) / 255.0
    elif np.issubdtype(a.dtype, np.number):
        f = np.clip(np.nan_to_num(a.astype(np.float64)), 0.0, 1.0).astype(np.float32)
    else:
        raise ConditionError(f"mask dtype {a.dtype} is not supported; use bool, uint8 or float in [0, 1]")
    return Image.fromarray(f, "F")


def compose_conditions(layers, size=(512, 512), policy: str = "stretch", *, background=(0, 0, 0),
                       pad_color=(0, 0, 0), normalize: str = "auto", resample=None,
                       mask_threshold: float = 0.5) -> Condition:
    """Paint condition layers into one condition image (mixed conditions).

    ``layers``: sequence of ``(image, mask)``; ``image`` is anything :func:`load_condition` takes (or a
    Condition loaded with the same size and policy); ``mask`` is a PIL image, a bool/uint8/float array or
    a path, at any size, or None for "the whole image". PIL masks are read as L (luminance, alpha
    ignored), uint8 as /255, floats as [0, 1]. Masks are resized with the same policy (bilinear; the pad
    area counts as unset) and thresholded at ``mask_threshold``. Later layers are painted
    over earlier ones where their mask is set; pixels no layer sets are ``pad_color``.

    The result's ``resize_map`` and ``source_size`` are those of the first layer: draw trajectories on the
    first layer's image (best: give every layer and mask the same source size).
    """
    size = _model_size(size)
    if not isinstance(layers, (list, tuple)) or not layers:
        raise ConditionError("layers must be a non-empty list of (image, mask) pairs")
    canvas = np.empty((size[1], size[0], 3), np.uint8)
    canvas[:] = np.asarray(tuple(int(c) for c in pad_color), np.uint8)
    first = None
    for i, layer in enumerate(layers):
        if not isinstance(layer, (list, tuple)) or len(layer) != 2:
            raise ConditionError(f"layers[{i}] must be a pair (image, mask); use mask=None for the whole image")
        src, mask = layer
        cond = load_condition(src, size, policy, background=background, pad_color=pad_color,
                              normalize=normalize, resample=resample)
        if first is None:
            first = cond
        if mask is None:  # the whole content area, so a padded layer never paints its pad bands
            x0, y0, x1, y1 = (int(round(v)) for v in cond.resize_map.content_box)
            sel = np.zeros((size[1], size[0]), bool)
            sel[y0:y1, x0:x1] = True
        else:
            m = _mask_to_pil(mask)
            mm = ResizeMap.from_policy(m.size, size, policy)
            sel = np.asarray(mm.apply_image(m, Image.Resampling.BILINEAR, 0.0)) >= mask_threshold
        canvas[sel] = np.asarray(cond.image)[sel]
    image = Image.fromarray(canvas, "RGB")
    return Condition(pil_to_pixels(image), image, first.resize_map, first.source_size)


def _check_counts(images: list, masks: list) -> None:
    if not images:
        raise ConditionError("no condition image given; pass at least one image path")
    if len(masks) > len(images):
        raise ConditionError(f"{len(masks)} masks for {len(images)} condition images; give at most one mask each")


def check_condition_files(images, masks=()) -> None:
    """What :func:`condition_from_files` can check before the model size is known: the counts, and that
    every image and mask file decodes (in full, so a truncated file fails here, before a model loads)."""
    images, masks = list(images), list(masks)
    _check_counts(images, masks)
    for path in images:
        to_rgb(path)
    for path in masks:
        _mask_to_pil(path)


def condition_from_files(images, masks=(), size=(512, 512), policy: str = "stretch") -> Condition:
    """The condition of a run given as paths: one image, or several with a mask each (the last
    ones may go without, meaning "the whole image") composed by :func:`compose_conditions`."""
    images, masks = list(images), list(masks)
    _check_counts(images, masks)
    if len(images) == 1 and not masks:
        return load_condition(images[0], size=size, policy=policy)
    masks += [None] * (len(images) - len(masks))
    return compose_conditions(list(zip(images, masks)), size=size, policy=policy)
