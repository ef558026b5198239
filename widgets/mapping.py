"""Canvas <-> image pixel mapping: the Python twin of ``js/logic.js`` (same formulas, same operation order,
so both give the same doubles; ``js/fixtures.json`` pins them together).

A widget shows an image of ``image_size`` (W, H) on a canvas of ``display_size`` (w, h); every synced number
is in image pixels, the canvas only exists in the browser.
"""
from __future__ import annotations

import math

from anyi2v_lab.validate import check_count, check_image_size


def view_size(image_size, display_width: int) -> tuple[int, int]:
    """Display size ``(w, h)`` of an image shown ``display_width`` pixels wide (height rounded half up)."""
    W, H = check_image_size(image_size, "image_size")
    check_count(display_width, "display_width", example=512)
    return display_width, max(1, math.floor(H * display_width / W + 0.5))


def canvas_to_image(p, image_size, display_size) -> tuple[float, float]:
    (W, H), (w, h) = image_size, display_size
    return (p[0] * W / w, p[1] * H / h)


def image_to_canvas(p, image_size, display_size) -> tuple[float, float]:
    (W, H), (w, h) = image_size, display_size
    return (p[0] * w / W, p[1] * h / H)


def clamp_point(p, size) -> tuple[float, float]:
    """Clamp a point to ``[0, W] x [0, H]``."""
    return (min(max(float(p[0]), 0.0), float(size[0])), min(max(float(p[1]), 0.0), float(size[1])))
