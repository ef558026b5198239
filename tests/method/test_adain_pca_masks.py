"""Small pure functions of the method against independent computations."""
import numpy as np
import pytest
import torch

from anyi2v_lab.method.adain import adain, patch_adain
from anyi2v_lab.method.masks import semantic_mask, similarity_maps, two_means_threshold
from anyi2v_lab.method.optimize import fresh_adamw_step
from anyi2v_lab.method.pca import explained_variance, pca_fit, pca_project


def test_patch_adain_matches_per_window_loop():
    g = torch.Generator().manual_seed(0)
    target, source = torch.randn(3, 8, 12, generator=g), torch.randn(3, 8, 12, generator=g) * 2 + 1
    out = patch_adain(target, source, patch=4)
    expected = torch.empty_like(target)
    for c in range(3):
        for i in range(0, 8, 4):
            for j in range(0, 12, 4):
                t, s = target[c, i:i + 4, j:j + 4].double(), source[c, i:i + 4, j:j + 4].double()
                expected[c, i:i + 4, j:j + 4] = (s.std() * (t - t.mean()) / (t.std() + 1e-6) + s.mean()).float()
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    # each window now has the source's mean and (nearly) its std
    w_out, w_src = out[1, 4:8, 8:12], source[1, 4:8, 8:12]
    assert abs(w_out.mean() - w_src.mean()) < 1e-5 and abs(w_out.std() - w_src.std()) < 1e-4


def test_patch_adain_constant_patches_stay_finite():
    target = torch.zeros(2, 8, 8)
    target[:, :4] = 5.0  # flat regions, as a canny map has
    source = torch.randn(2, 8, 8)
    out = patch_adain(target, source, patch=4)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out[0, :4, :4], source[0, :4, :4].mean().expand(4, 4))
    half = patch_adain(target.half(), source.half(), patch=4)
    assert half.dtype == torch.float16 and torch.isfinite(half).all()


def test_global_adain_and_bad_patch():
    t, s = torch.randn(2, 4, 4), torch.randn(2, 4, 4) + 3
    torch.testing.assert_close(adain(t, s).mean((1, 2)), s.mean((1, 2)))
    with pytest.raises(ValueError, match="cannot be tiled"):
        patch_adain(torch.randn(1, 6, 6), torch.randn(1, 6, 6), patch=4)


def test_fresh_adamw_step_equals_torch_adamw():
    g = torch.Generator().manual_seed(1)
    z, grad = torch.randn(2, 4, 3, 5, 5, generator=g), torch.randn(2, 4, 3, 5, 5, generator=g)
    grad[0, 0, 0, 0, 0] = 0.0
    p = z.clone().requires_grad_(True)
    opt = torch.optim.AdamW([p], lr=0.01)
    p.grad = grad.clone()
    opt.step()
    torch.testing.assert_close(fresh_adamw_step(z, grad, 0.01), p.detach(), rtol=0, atol=1e-7)


def test_pca_eigh_matches_svd_and_is_deterministic():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(300, 20, generator=g) @ torch.randn(20, 20, generator=g)
    mean, comps = pca_fit(x, 5)
    _, _, vh = torch.linalg.svd(x - x.mean(0), full_matrices=False)
    for k in range(5):  # same subspace, up to sign
        assert abs(abs(float(comps[k] @ vh[k])) - 1) < 1e-4
    again = pca_fit(x, 5)[1]
    assert torch.equal(comps, again)
    assert torch.all(comps.gather(1, comps.abs().argmax(1, keepdim=True)) > 0)  # sign convention
    low = pca_fit(x, 5, method="lowrank", seed=3)[1]
    assert torch.allclose((low @ comps.T).abs().diagonal(), torch.ones(5), atol=1e-3)
    ev = explained_variance(x, comps)
    assert torch.all(ev[:-1] >= ev[1:]) and float(ev.sum()) <= 1 + 1e-5
    assert pca_project(x, mean, comps).shape == (300, 5)


def test_two_means_is_the_best_1d_split():
    rng = np.random.default_rng(3)
    for _ in range(20):
        v = np.concatenate([rng.normal(0, 1, rng.integers(3, 40)),
                            rng.normal(rng.uniform(2, 6), 1, rng.integers(3, 40))])
        thr = float(two_means_threshold(torch.tensor(v)))
        s = np.sort(v)
        costs = [((s[:k] - s[:k].mean()) ** 2).sum() + ((s[k:] - s[k:].mean()) ** 2).sum() for k in range(1, len(s))]
        k = int(np.argmin(costs)) + 1
        assert (v >= thr).sum() == len(s) - k
    assert float(two_means_threshold(torch.full((5,), 0.3))) == pytest.approx(0.3)


def test_semantic_mask_finds_the_object():
    feats = torch.zeros(8, 6, 6)
    feats[:4] = 1.0  # background direction in layer 0 channels, object below
    feats[:, 2:5, 1:4] = 0
    feats[0:4, 2:5, 1:4] = torch.tensor([0.0, 1.0, 0.0, 0.0])[:, None, None]
    feats[4:8] = feats[0:4]
    layers = [slice(0, 4), slice(4, 8)]
    query = feats[:, 3, 2][None]
    sim = similarity_maps(query, feats, layers)
    assert sim.shape == (2, 6, 6)
    mask = semantic_mask(query, feats, layers)
    expected = torch.zeros(6, 6)
    expected[2:5, 1:4] = 1
    assert torch.equal(mask[0], expected) and torch.equal(mask[1], expected)
