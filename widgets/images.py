"""Images for the widgets: inputs to uint8 RGB arrays, arrays to PNG bytes, mask tints."""
from __future__ import annotations

import io
import os

import numpy as np
from PIL import Image

from anyi2v_lab.palette import MASK_ALPHA, object_colour


def as_rgb(image) -> np.ndarray:
    """A PIL image, an (H, W, 3|4) or (H, W) array (uint8, or float in [0, 1]), a file path or a
    :class:`~anyi2v_lab.conditions.Condition` (its model-size image) -> (H, W, 3) uint8."""
    if hasattr(image, "resize_map") and hasattr(image, "image"):  # a Condition
        image = image.image
    if isinstance(image, (str, os.PathLike)):
        with Image.open(image) as im:
            image = im.convert("RGB")
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    a = np.asarray(image)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=-1)
    if a.ndim != 3 or a.shape[-1] not in (3, 4) or a.size == 0:
        raise ValueError(f"image has shape {a.shape}; give (H, W, 3) RGB, (H, W, 4) RGBA or (H, W) grey")
    a = a[..., :3]
    if a.dtype != np.uint8:
        if not np.issubdtype(a.dtype, np.floating):
            raise ValueError(f"image dtype {a.dtype} is not supported; give uint8, or floats in [0, 1]")
        a = (np.clip(a, 0.0, 1.0) * 255).round().astype(np.uint8)
    return np.ascontiguousarray(a)


def png_bytes(array: np.ndarray) -> bytes:
    """(H, W, 3|4) or (H, W) uint8 -> PNG bytes (fast compression: these are sent once, not stored)."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def video_frames(frames) -> np.ndarray:
    """(F, H, W, 3) uint8, or floats in [0, 1] -> (F, H, W, 3) uint8."""
    a = np.asarray(frames)
    if a.ndim != 4 or a.shape[-1] != 3 or a.shape[0] == 0:
        raise ValueError(f"frames has shape {a.shape}; give (F, H, W, 3) with F >= 1, e.g. result.frames")
    return np.stack([as_rgb(f) for f in a])


def mask_tints(masks: np.ndarray, alpha: float = MASK_ALPHA) -> np.ndarray:
    """Masks (O, F, H, W) in [0, 1] -> RGBA tints (F, H, W, 4) uint8, one overlay colour an object
    (``palette.object_colour``), composited in object order like :func:`~anyi2v_lab.overlay.draw_overlay`."""
    m = np.asarray(masks, dtype=np.float32)
    if m.ndim != 4:
        raise ValueError(f"masks has shape {m.shape}; give (objects, frames, H, W) in [0, 1]")
    m = np.clip(np.nan_to_num(m), 0.0, 1.0)
    _, F, H, W = m.shape
    rgb, a = np.zeros((F, H, W, 3), np.float32), np.zeros((F, H, W, 1), np.float32)
    for o in range(m.shape[0]):
        ao = alpha * m[o][..., None]
        colour = np.asarray(object_colour(o), np.float32)
        # "over" compositing with premultiplied colour
        rgb = colour * ao + rgb * (1 - ao)
        a = ao + a * (1 - ao)
    straight = np.where(a > 0, rgb / np.maximum(a, 1e-12), 0.0)
    return np.concatenate([straight, a * 255], axis=-1).round().clip(0, 255).astype(np.uint8)
