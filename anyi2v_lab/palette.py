"""The colours of every picture the toolkit draws: objects, clusters, heat maps and the query point.

Python draws with these (``overlay``, ``microscope``, the widgets' images and static pictures); the
browser views draw with their twin ``widgets/js/palette.js``, which ``tests/widgets/test_widgets_js.py``
pins to this module.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

# object o of a trajectory: its box, path and mask tint (light colours that stay visible on a dark frame)
OBJECT_COLOURS = [(255, 215, 0), (0, 200, 255), (255, 80, 200), (120, 255, 80), (255, 140, 0)]
# cluster label j: matplotlib's tab10, distinct for up to ten clusters on a grey frame
CLUSTER_COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
                   (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]
QUERY_COLOUR = (0, 255, 136)  # the cross on a clicked point, in every panel
# the microscope's timeline: one colour a phase of the generation
PHASE_COLOURS = {"inversion": (126, 87, 194), "optimisation": (239, 108, 0), "sampling": (30, 136, 229)}
MASK_ALPHA = 0.45  # opacity of an object's mask tint where its mask is 1
HEAT_CMAP = "inferno"  # attention and other non-negative maps


def object_colour(index: int) -> tuple[int, int, int]:
    """The colour of object ``index`` (colours repeat after the fifth object)."""
    return OBJECT_COLOURS[index % len(OBJECT_COLOURS)]


def cluster_colours(labels) -> np.ndarray:
    """Integer labels ``(...)`` -> ``(..., 3)`` uint8 cluster colours."""
    return np.asarray(CLUSTER_COLOURS, np.uint8)[np.asarray(labels) % len(CLUSTER_COLOURS)]


@lru_cache(maxsize=4)
def heat_lut(cmap: str = HEAT_CMAP) -> np.ndarray:
    """``(256, 3)`` uint8: the colours of ``cmap`` at 256 even steps (read-only; the browser views
    receive it as 768 bytes and colour attention through it)."""
    from matplotlib import colormaps

    lut = (colormaps[cmap](np.linspace(0, 1, 256))[:, :3] * 255).round().astype(np.uint8)
    lut.flags.writeable = False
    return lut


def heat_colours(unit, cmap: str = HEAT_CMAP) -> np.ndarray:
    """Values ``(...)`` in [0, 1] -> ``(..., 3)`` uint8 through :func:`heat_lut`: the colours matplotlib
    gives (value ``v`` takes entry ``floor(256 v)``, 1 the last)."""
    v = np.clip(np.nan_to_num(np.asarray(unit, np.float64)), 0.0, 1.0)
    return heat_lut(cmap)[np.minimum((v * 256).astype(np.int64), 255)]
