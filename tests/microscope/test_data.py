"""MicroscopeData from a generation: axes, x0, masks, errors naming what is there."""
import numpy as np
import pytest

from anyi2v_lab.microscope import Step


def test_axes_of_a_generation(micro_data, micro_result):
    d = micro_data
    phases = [s.phase for s in d.steps]
    assert phases[:20] == ["inversion"] * 20
    assert [s.label for s in d.steps[20:]] == ["optimisation 0 (t=667)", "sampling 0 (t=667)",
                                               "optimisation 1 (t=334)", "sampling 1 (t=334)", "sampling 2 (t=1)"]
    assert d.points == d.attention_points and len(d.points) == len(micro_result.config.opt_layers)
    assert d.num_frames == 4 and d.frame_size == (128, 128)
    assert all(d.heads(p) == 2 for p in d.points)
    assert [s.phase for s in d.feature_steps(d.points[0])] == ["sampling"] * 3
    assert d.words and "".join(d.words) == "aredsquare"


def test_views_have_the_documented_shapes(micro_data, micro_result):
    d = micro_data
    last = d.feature_steps(d.points[1])[-1]
    h, w = d.grid(d.points[1])
    assert d.pca_rgb(d.points[1], last).shape == (4, h, w, 3)
    assert d.cluster_rgb(d.points[1], last).shape == (4, h, w, 3)
    assert d.clusters(d.points[1], last).max() < d.num_clusters
    assert np.array_equal(d.x0(last), micro_result.record.x0_video()[-1])
    assert d.x0(d.steps[0]).shape == (1, 128, 128, 3)
    att = d.self_attention(d.points[1], last, 0, d.cell_of(d.points[1], (40, 40)))
    assert att.shape == (4, h, w) and abs(att.sum() - 1) < 1e-5
    assert d.cross_attention("red").shape[0] == 4 and d.cross_attention("red", step=last).shape == (4, 8, 8)
    masks = d.loss_masks(d.mask_steps[-1])
    assert masks.shape[:2] == (1, 4) and 0 <= masks.min() and masks.max() <= 1
    assert d.heat_rgb(att).shape == (4, h, w, 3)
    assert d.precompute_seconds > 0 and d.nbytes > 0


def test_missing_views_name_what_exists(micro_data):
    with pytest.raises(KeyError, match="x0 steps"):
        micro_data.x0(Step("sampling", 99))
    with pytest.raises(KeyError, match="points"):
        micro_data.pca_rgb("nope", Step("sampling", 0))
    with pytest.raises(KeyError, match="its steps"):
        micro_data.pca_rgb(micro_data.points[0], Step("sampling", 99))


def test_batched_accessors_equal_the_single_ones(micro_data):
    d = micro_data
    last = d.feature_steps(d.points[0])[-1]
    q, k = d.query_key(d.points[0], last)
    assert q.shape == k.shape and q.shape[0] == 4
    every = d.cross_attention_words()
    assert every.shape[:2] == (4, len(d.words))
    assert np.allclose(every[:, 2], d.cross_attention(2), atol=1e-6)
    one_head = d.cross_attention_words(step=last, head=1)
    assert np.allclose(one_head[:, 0], d.cross_attention(0, step=last, head=1), atol=1e-6)
