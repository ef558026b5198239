import numpy as np

from anyi2v_lab.metrics import colour_mask, frechet_distance, iou, objmc


def test_objmc_pools_points_and_skips_misses():
    target = np.zeros((2, 3, 2))
    tracked = np.array([[[3, 4], [0, 0], [np.nan, np.nan]], [[0, 1], [0, 2], [0, 3]]], float)
    r = objmc(target, tracked)
    assert r == {"objmc": (5 + 0 + 1 + 2 + 3) / 5, "points": 5, "missed": 1}


def test_iou_and_colour_mask():
    a, b = np.zeros((4, 4), bool), np.zeros((4, 4), bool)
    a[:2], b[1:3] = True, True
    assert iou(a, b) == 4 / 12 and iou(np.zeros(3, bool), np.zeros(3, bool)) == 1.0
    frame = np.zeros((2, 2, 3), np.uint8)
    frame[0, 0] = (250, 10, 10)
    assert colour_mask(frame, (255, 0, 0)).tolist() == [[True, False], [False, False]]


def test_frechet_distance_of_gaussians():
    rng = np.random.default_rng(0)
    a = rng.normal(0, 1, (4000, 3))
    b = rng.normal(0, 1, (4000, 3)) + np.array([2.0, 0, 0])
    assert abs(frechet_distance(a, a)) < 1e-6
    assert abs(frechet_distance(a, b) - 4.0) < 0.2  # mean shift squared, equal covariances


def test_frechet_distance_matches_scipy_sqrtm_and_survives_singular_covariances():
    from scipy import linalg

    rng = np.random.default_rng(1)
    a = rng.normal(size=(500, 6)) @ rng.normal(size=(6, 6))
    b = rng.normal(size=(400, 6)) + 1
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    ref = ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(ca + cb - 2 * linalg.sqrtm(ca @ cb).real)
    assert abs(frechet_distance(a, b) - ref) < 1e-8 * abs(ref)
    flat = np.zeros((50, 4))
    flat[:, 0] = rng.normal(size=50)  # rank-1 covariance, as histograms give
    assert abs(frechet_distance(flat, flat)) < 1e-9 and np.isfinite(frechet_distance(flat, flat + 1))
