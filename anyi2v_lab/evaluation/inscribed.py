"""The query point of an object: the centre of the largest circle inscribed in its mask.

DragAnything (``utils/cotracker/Generate_Trajectory_for_VIPSeg.py``) takes the maximum of the mask's
distance transform (``cv2.distanceTransform``, a 5x5 approximation of the Euclidean distance) and its first
location in raster order. We compute the exact Euclidean distance transform (scipy) and take the first
maximum in raster order as well. As in OpenCV, the image border does not bound the circle: a mask that
touches the border has its centre pulled towards it. ``bounded_by_frame=True`` treats the outside as
background instead (a circle that stays inside the frame).
"""
from __future__ import annotations

import numpy as np


def inscribed_circle_centre(mask, *, bounded_by_frame: bool = False) -> tuple[float, float]:
    """``mask`` (H, W) bool -> (x, y) of the pixel centre farthest from the mask's outside.

    Pixel (row i, column j) is centred at (j + 0.5, i + 0.5). Ties go to the first pixel in raster order.
    """
    from scipy.ndimage import distance_transform_edt

    m = np.asarray(mask)
    if m.ndim != 2:
        raise ValueError(f"mask must be a 2-D (H, W) array, got shape {m.shape}")
    m = m.astype(bool)
    if not m.any():
        raise ValueError("mask is empty: an object needs at least one pixel to place its query point")
    if bounded_by_frame or m.all():
        # a mask covering the whole frame has no outside pixel; the frame then bounds it
        dist = distance_transform_edt(np.pad(m, 1))[1:-1, 1:-1]
    else:
        dist = distance_transform_edt(m)
    i, j = np.unravel_index(int(np.argmax(dist)), dist.shape)
    return float(j) + 0.5, float(i) + 0.5
