"""One palette: what Python draws with, checked against matplotlib and against the modules that use it.
(Its browser twin ``widgets/js/palette.js`` is pinned in ``tests/widgets/test_widgets_js.py``.)"""
import numpy as np
from matplotlib import colormaps

from anyi2v_lab import overlay, palette
from anyi2v_lab.microscope.clusters import label_rgb
from anyi2v_lab.microscope.data import MicroscopeData


def test_heat_colours_are_matplotlibs_inferno_exactly():
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.random(20000), [0.0, 1.0, 0.5, 255 / 256, 1 / 256, np.nextafter(1 / 256, 0)]])
    for dtype in (np.float64, np.float32):
        x = values.astype(dtype)
        expected = (colormaps["inferno"](x)[..., :3] * 255).round().astype(np.uint8)
        np.testing.assert_array_equal(palette.heat_colours(x), expected)
    assert palette.heat_lut().shape == (256, 3) and not palette.heat_lut().flags.writeable
    np.testing.assert_array_equal(palette.heat_colours([-1.0, 2.0, np.nan]), palette.heat_lut()[[0, 255, 0]])


def test_every_user_draws_with_the_one_palette():
    assert overlay.COLOURS is palette.OBJECT_COLOURS
    assert palette.object_colour(6) == palette.OBJECT_COLOURS[1]
    clusters = palette.CLUSTER_COLOURS
    np.testing.assert_array_equal(label_rgb(np.array([[0, 11]])), [[clusters[0], clusters[1]]])
    maps = np.linspace(0, 2, 12).reshape(3, 2, 2)
    np.testing.assert_array_equal(MicroscopeData.heat_rgb(maps), palette.heat_colours(maps / 2))
