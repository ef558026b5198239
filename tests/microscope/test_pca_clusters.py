"""One PCA basis and one set of cluster centroids per hook point, shared by every step and frame."""
import numpy as np
import torch

from anyi2v_lab.microscope import MicroscopeData, Step


def test_same_feature_gives_same_colour_and_cluster_at_two_steps():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(2, 16, 8, generator=g)
    b = 3 * torch.randn(2, 16, 8, generator=g) + 1  # another step, another distribution
    b[1, 5] = a[0, 3]  # one token shared
    s0, s1 = Step("sampling", 0, 900), Step("sampling", 1, 500)
    data = MicroscopeData(features={"x.query": {s0: a, s1: b}}, grids={"x.query": (4, 4)}, num_clusters=3)
    p0, p1 = data.pca_rgb("x.query", s0), data.pca_rgb("x.query", s1)
    assert p0.shape == (2, 4, 4, 3) and p0.dtype == np.uint8
    assert np.array_equal(p0[0, 0, 3], p1[1, 1, 1])
    assert data.clusters("x.query", s0)[0, 0, 3] == data.clusters("x.query", s1)[1, 1, 1]
    # a per-step fit would give the shared token other colours: the fit really is over both steps
    alone = MicroscopeData(features={"x.query": {s1: b}}, grids={"x.query": (4, 4)}, num_clusters=3)
    assert not np.array_equal(alone.pca_rgb("x.query", s1), p1)
    assert data.steps == [s0, s1] and data.points == ["x.query"] and data.attention_points == []


def test_pca_colours_follow_the_first_component():
    """Tokens along the first principal direction go from dark to bright red in the order of their projection."""
    t = torch.linspace(-1, 1, 16)
    tokens = torch.stack([t * 5, t * 0.1, torch.zeros(16)], 1).view(1, 16, 3)
    data = MicroscopeData(features={"p": {Step("forward", 0): tokens}}, grids={"p": (4, 4)}, num_clusters=2)
    red = data.pca_rgb("p", Step("forward", 0))[0, ..., 0].ravel().astype(int)
    assert np.all(np.diff(red) >= 0) or np.all(np.diff(red) <= 0)
    assert red.max() - red.min() > 200


def test_data_without_cross_attention_or_words_says_so():
    import pytest

    data = MicroscopeData(features={"p": {Step("forward", 0): torch.zeros(1, 4, 3)}}, grids={"p": (2, 2)})
    assert data.cross_grid is None and data.words is None and data.cross_steps == []
    with pytest.raises(ValueError, match="no prompt words"):
        data.cross_attention(0)
