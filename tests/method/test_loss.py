"""The alignment loss (Eq. 8) against a hand computation, and its box/query geometry. Its fast twin is
checked equal to it in tests/accel/test_fast_loss.py."""
import inspect

import pytest
import torch
import torch.nn.functional as F

from anyi2v_lab.method.alignment import grid_boxes
from anyi2v_lab.method.loss import alignment_loss, box_crop


def test_grid_boxes_floor_and_min_size():
    g = grid_boxes(torch.tensor([[[5.0, 9.0, 6.0, 9.5]]]), 4)
    assert g.tolist() == [[[1, 2, 2, 3]]]


def test_box_crop_clips():
    f = torch.arange(2 * 5 * 6.0).view(2, 5, 6)
    assert box_crop(f, (-2, 1, 3, 9)).shape == (2, 4, 3)
    assert torch.equal(box_crop(f, (1, 1, 3, 4)), f[:, 1:4, 1:3])


def test_unmasked_loss_is_the_mean_square_over_moved_boxes():
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(3, 4, 10, 10, generator=g)
    boxes = torch.tensor([[[1, 1, 4, 3], [2, 1, 5, 3], [3, 2, 6, 4]]])  # same size, moving
    layers = [slice(0, 2), slice(2, 4)]
    parts = alignment_loss(feats, layers, boxes, [torch.zeros(1, 2)], mask="none")
    target = feats[0, :, 1:3, 1:4]
    num = 0.0
    for j in (1, 2):
        x0, y0, x1, y1 = boxes[0, j].tolist()
        d = target - feats[j, :, y0:y1, x0:x1]
        num += sum(float(d[sl].pow(2).mean(0).sum()) for sl in layers)
    assert float(parts.count) == 2 * 2 * 6
    assert abs(float(parts.loss) - num / 24) < 1e-5


def test_loss_is_zero_when_frames_follow_the_path():
    feats = torch.zeros(3, 2, 12, 12)
    obj = torch.randn(2, 3, 3)
    for j in range(3):
        feats[j, :, 2:5, 2 + 2 * j:5 + 2 * j] = obj
    boxes = torch.tensor([[[2, 2, 5, 5], [4, 2, 7, 5], [6, 2, 9, 5]]])
    parts = alignment_loss(feats, [slice(0, 1), slice(1, 2)], boxes, [torch.tensor([[1, 1]])])
    assert float(parts.loss) < 1e-10 and float(parts.count) > 0


def test_masks_are_per_object_and_clipped_boxes_skip():
    g = torch.Generator().manual_seed(1)
    feats = torch.randn(3, 4, 8, 8, generator=g)
    boxes = torch.tensor([[[0, 0, 3, 3], [1, 0, 4, 3], [9, 9, 12, 12]],   # leaves the map at frame 2
                          [[4, 4, 8, 8], [4, 3, 8, 7], [3, 3, 7, 7]]])
    parts = alignment_loss(feats, [slice(0, 2), slice(2, 4)], boxes, [torch.tensor([[1, 1]]), torch.tensor([[2, 2]])],
                           keep_masks=True)
    assert len(parts.masks) == 2
    assert parts.masks[0][2] is None and parts.masks[1][2] is not None
    assert parts.masks[1][0].shape == (2, 4, 4)  # object 1's own frame-0 mask, not object 0's


def test_background_term_pulls_towards_frame_zero():
    feats = torch.zeros(2, 1, 6, 6, requires_grad=True)
    shifted = feats + torch.tensor([0.0, 1.0]).view(2, 1, 1, 1)
    boxes = torch.tensor([[[0, 0, 2, 2], [0, 0, 2, 2]]])
    with_bg = alignment_loss(shifted, [slice(0, 1)], boxes, [torch.zeros(1, 2)], mask="none", background_weight=1.0)
    without = alignment_loss(shifted, [slice(0, 1)], boxes, [torch.zeros(1, 2)], mask="none")
    assert float((with_bg.loss - without.loss).detach()) == 1.0


@pytest.mark.parametrize("h, w, size", [(8, 8, (16, 16)), (16, 16, (16, 16)), (5, 7, (12, 9)), (32, 16, (16, 32))])
def test_bicubic_resize_equals_interpolate_forward_and_backward(h, w, size):
    from anyi2v_lab.method.grid import bicubic_resize

    g = torch.Generator().manual_seed(h * w)
    x = torch.randn(3, 4, h, w, generator=g, dtype=torch.float64, requires_grad=True)
    up = torch.randn(3, 4, *size, generator=g, dtype=torch.float64)
    ref = F.interpolate(x, size=size, mode="bicubic", align_corners=False)
    out = bicubic_resize(x, size)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)
    g_ref, = torch.autograd.grad((ref * up).sum(), x)
    g_out, = torch.autograd.grad((out * up).sum(), x)
    torch.testing.assert_close(g_out, g_ref, rtol=0, atol=1e-12)


def test_the_loss_function_fits_one_screen():
    lines, _ = inspect.getsourcelines(alignment_loss)
    assert len(lines) <= 30


def test_a_resized_box_compares_the_start_crop_resized_to_it():
    # Eq. 8's SG(F_1[B_1]) resized (bicubic) to a larger B_j, then a box cut by the grid's right edge
    g = torch.Generator().manual_seed(2)
    feats = torch.randn(3, 2, 10, 10, generator=g)
    boxes = torch.tensor([[[1, 1, 4, 4], [2, 2, 8, 8], [6, 2, 12, 8]]])  # 3x3 -> 6x6, then 4 of 6 columns on the grid
    parts = alignment_loss(feats, [slice(0, 2)], boxes, [torch.zeros(1, 2)], mask="none")
    big = F.interpolate(feats[None, 0, :, 1:4, 1:4], size=(6, 6), mode="bicubic", align_corners=False)[0]
    terms = [(big - feats[1, :, 2:8, 2:8]).pow(2).mean(0).sum(),
             (big[..., :4] - feats[2, :, 2:8, 6:10]).pow(2).mean(0).sum()]
    assert float(parts.count) == 36 + 24
    torch.testing.assert_close(parts.loss, sum(terms) / 60, rtol=1e-6, atol=0)
