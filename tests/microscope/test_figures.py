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


def _colorbars(fig):
    return [ax._colorbar for ax in fig.axes if getattr(ax, "_colorbar", None) is not None]


def test_attention_and_masks_share_one_scale_over_the_frames(micro_data):
    d = micro_data
    fig = plots.plot_word_attention(d, ["red", "square"], frames=[0, 2])
    heat = [ax.images[-1] for ax in _panels(fig)]
    top = max(float(d.cross_attention(w)[[0, 2]].max()) for w in ("red", "square"))
    assert {im.get_clim() for im in heat} == {(0.0, top)}  # one scale for every word: a diffuse word stays dim
    assert all(np.array_equal(ax.images[0].get_array(), d.frames[f]) for ax, f in zip(_panels(fig), [0, 2] * 2))
    assert len(_colorbars(fig)) == 1 and "one scale" in _colorbars(fig)[0].ax.get_ylabel()
    fig = plots.plot_point_attention(d, xy=(40, 40), heads=True, frames=[0, 1])
    heads = d.heads(d.points[0])
    heat = [ax.images[-1] for ax in _panels(fig)[:2 * (1 + heads)]]  # every row but the x0 one
    assert len({im.get_clim() for im in heat}) == 1 and len(_colorbars(fig)) == 1
    fig = plots.plot_loss_masks(d)
    assert {ax.images[-1].get_clim() for ax in _panels(fig)} == {(0.0, 1.0)} and len(_colorbars(fig)) == 1
    assert all(len(ax.images) == 1 for ax in _panels(plots.plot_loss_masks(d, overlay=False)))
