"""The microscope's figures (anyi2v_lab.plots.microscope): one panel per (row, frame), the data's own images."""
import numpy as np
import pytest

from anyi2v_lab import plots


def _panels(fig):
    return [ax for ax in fig.axes if ax.images]


def test_figures_lay_out_rows_by_frames(micro_data):
    d = micro_data
    fig = plots.plot_x0_steps(d, frames=[0, 2])
    assert len(_panels(fig)) == 3 * 2  # three sampling steps, two frames
    last = d.x0_steps[-1]
    assert np.array_equal(_panels(fig)[-1].images[0].get_array(), d.x0(last)[2])
    fig = plots.plot_feature_steps(d, view="clusters", frames=[1])
    assert len(_panels(fig)) == len(d.feature_steps(d.points[0]))
    fig = plots.plot_point_attention(d, xy=(40, 40), heads=True)
    assert len(_panels(fig)) == (1 + d.heads(d.points[0]) + 1) * 4  # mean, each head, x0
    assert len(_panels(plots.plot_word_attention(d, ["red", 0], frames=[0]))) == 2
    assert len(_panels(plots.plot_loss_masks(d))) == 4
    with pytest.raises(ValueError, match="view="):
        plots.plot_feature_steps(d, view="umap")
