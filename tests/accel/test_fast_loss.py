"""The fast alignment loss (accel/fast_loss.py) equals the plain Eq. 8 of method/loss.py: values, counts, kept
masks and gradients, on boxes that are clipped, scaled, several, or gone from the grid, in every mask mode."""
from types import SimpleNamespace

import pytest
import torch

from anyi2v_lab.accel.fast_loss import GridFeatures, fast_alignment_loss, fast_loss, frame_groups, grid_features
from anyi2v_lab.method.alignment import Alignment
from anyi2v_lab.method.config import AnyI2VConfig
from anyi2v_lab.method.grid import aligned_features, bicubic_resize
from anyi2v_lab.method.loss import alignment_loss, box_crop
from anyi2v_lab.method.optimize import eager_loss

GRID = (16, 16)
LAYERS = [slice(0, 3), slice(3, 5)]
# (O, F=5, 4) grid boxes (x0, y0, x1, y1) and each object's query offsets (dx, dy)
SCENES = {
    "moving": ([[[2, 2, 8, 8], [3, 2, 9, 8], [4, 3, 10, 9], [5, 4, 11, 10], [6, 4, 12, 10]]], [[[2, 3]]]),
    "clipped": ([[[1, 1, 7, 7], [-2, -1, 4, 5], [-3, 0, 3, 6], [11, 12, 17, 18], [12, 12, 18, 18]]],
                [[[4, 4], [1, 2]]]),
    "scaled": ([[[4, 4, 10, 10], [4, 4, 12, 12], [3, 3, 7, 7], [2, 5, 12, 9], [10, 10, 19, 19]]], [[[3, 1], [5, 5]]]),
    "left_the_grid": ([[[0, 0, 5, 5], [4, 0, 9, 5], [17, 2, 22, 7], [14, 20, 19, 25], [12, 0, 17, 5]]], [[[1, 1]]]),
    "several_objects": ([[[1, 1, 6, 6], [2, 1, 7, 6], [-1, 2, 4, 7], [3, 3, 8, 8], [16, 16, 21, 21]],
                         [[9, 8, 15, 14], [8, 8, 14, 14], [8, 7, 16, 15], [11, 10, 17, 16], [10, 10, 16, 16]]],
                        [[[2, 2]], [[1, 4], [4, 1]]]),
}


def _maps(dtype=torch.float64, seed=3):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(5, 3, 4, 4, generator=g, dtype=dtype, requires_grad=True),
            torch.randn(5, 2, 8, 8, generator=g, dtype=dtype, requires_grad=True)]


def _scene(name):
    boxes, queries = SCENES[name]
    return torch.tensor(boxes), [torch.tensor(q) for q in queries]


def _both(maps, name, **kw):
    boxes, queries = _scene(name)
    full = torch.cat([bicubic_resize(m, GRID) for m in maps], 1)
    plain = alignment_loss(full, LAYERS, boxes, queries, keep_masks=True, **kw)
    fast = fast_alignment_loss(GridFeatures(maps, GRID), LAYERS, boxes, queries, keep_masks=True, **kw)
    return plain, fast


@pytest.mark.parametrize("mask", ["semantic", "static", "none"])
@pytest.mark.parametrize("name", list(SCENES))
def test_the_fast_twin_equals_the_plain_loss(name, mask):
    maps = _maps()
    plain, fast = _both(maps, name, mask=mask, background_weight=0.5 if name == "clipped" else 0.0)
    assert float(plain.count) > 0
    # the loss is summed in fp32 (the crops are cast), frame by frame or a group at a time: float rounding
    torch.testing.assert_close(fast.loss, plain.loss, rtol=1e-6, atol=0)
    assert torch.equal(fast.count, plain.count)
    for masks_plain, masks_fast in zip(plain.masks, fast.masks, strict=True):
        for a, b in zip(masks_plain, masks_fast, strict=True):
            assert (a is None and b is None) or torch.equal(a, b)
    _assert_same_gradients(fast.loss, plain.loss, maps)


def _assert_same_gradients(a, b, inputs, rtol=1e-5):
    for ga, gb in zip(torch.autograd.grad(a, inputs), torch.autograd.grad(b, inputs)):
        assert ga.abs().max() > 0
        torch.testing.assert_close(ga, gb, rtol=rtol, atol=rtol * float(gb.abs().max()))


def test_fp32_maps_agree_to_float_rounding():
    maps = _maps(torch.float32, seed=5)
    plain, fast = _both(maps, "several_objects", mask="semantic", background_weight=0.25)
    torch.testing.assert_close(fast.loss, plain.loss, rtol=1e-6, atol=0)
    assert torch.equal(fast.count, plain.count)
    _assert_same_gradients(fast.loss, plain.loss, maps)


def test_frames_are_grouped_by_box_size_and_clipping():
    def groups(name, obj=0):
        return frame_groups(_scene(name)[0][obj].tolist(), *GRID)

    assert groups("moving") == [[1, 2, 3, 4]]  # one size, never clipped: one batch
    assert groups("several_objects", 1) == [[1, 4], [2], [3]]  # 3 is clipped; in order of first appearance
    assert groups("clipped") == [[1], [2], [3], [4]]  # clipped by different amounts
    assert groups("left_the_grid") == [[1], [4]]  # frames 2 and 3 lie wholly off the grid; 4 is clipped


def test_a_start_box_off_the_grid_is_the_same_error():
    maps, boxes = _maps(), torch.tensor([[[20, 20, 24, 24], [2, 2, 6, 6]]])
    full = torch.cat([bicubic_resize(m, GRID) for m in maps], 1)[:2]
    for loss, feats in ((alignment_loss, full), (fast_alignment_loss, GridFeatures([m[:2] for m in maps], GRID))):
        with pytest.raises(ValueError, match=r"object 0: its start box \[20, 20, 24, 24\] lies outside the 16x16"):
            loss(feats, LAYERS, boxes, [torch.tensor([[1, 1]])])


def test_grid_features_crop_the_upsampled_grid():
    # crops through row/column slices of the resampling matrices equal crops of the materialised grid,
    # for clipped boxes too
    maps = _maps()
    grid = GridFeatures(maps, GRID)
    full = torch.cat([bicubic_resize(m, GRID) for m in maps], 1)
    assert grid.shape == full.shape
    torch.testing.assert_close(grid.full(), full, rtol=0, atol=1e-12)
    boxes = [(-2, 3, 4, 9), (5, 5, 11, 11), (12, 10, 18, 16)]  # clipped left, inside, clipped right/bottom
    for frames, bs in (([0], boxes[:1]), ([1, 3], [boxes[1], (6, 2, 12, 8)]), ([2], boxes[2:])):
        ref = torch.stack([box_crop(full[j], b) for j, b in zip(frames, bs)])
        torch.testing.assert_close(grid.crop(frames, bs), ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("pca_dim", [2, None])
def test_the_runtime_loss_call_equals_the_eager_one(pca_dim):
    # what BoundRuntime hands the optimisation (fast_loss) against what the method makes (eager_loss), from
    # captured token tensors through the PCA, the grid and the loss, keeping masks and PCA previews
    g = torch.Generator().manual_seed(7)
    captured = [torch.randn(1, 5, 16, 6, generator=g, requires_grad=True),
                torch.randn(1, 5, 64, 4, generator=g, requires_grad=True)]
    boxes, queries = _scene("several_objects")
    alignment = Alignment(boxes=boxes, queries=queries, grid=GRID, shapes=[(4, 4), (8, 8)])
    config = AnyI2VConfig(pca_dim=pca_dim, background_weight=0.1)
    inputs = SimpleNamespace(alignment=alignment, config=config, keep_pca=True, keep_masks=True)
    (plain, plain_pca), (fast, fast_pca) = eager_loss(inputs)(captured, None), fast_loss(inputs)(captured, None)
    torch.testing.assert_close(fast.loss, plain.loss, rtol=1e-6, atol=0)
    assert torch.equal(fast.count, plain.count) and float(plain.count) > 0
    assert all(torch.equal(a, b) for a, b in zip(plain_pca, fast_pca, strict=True))
    _assert_same_gradients(fast.loss, plain.loss, captured)
    features = aligned_features(captured, alignment, config)[0]
    torch.testing.assert_close(grid_features(captured, alignment, config)[0].full(), features, rtol=0, atol=0)
