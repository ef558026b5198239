"""Clipped boxes: the two rules where ours and the reference differ (docs/method.md, "Where we differ"), each
pinned on a clipped case against an independent computation.

(i) A moved box that leaves the image: frame 1's mask is resized to the full moved box and cut, exactly as
    the start crop of features it weights is; the reference squeezes the mask into the visible part.
(ii) A query point's cell is the grid cell it falls in, ``floor(p/4) - floor(box0/4)`` from the start box's
    corner cell; the reference's ``floor((p - box0)/4)`` is one cell short when ``p mod 4 < box0 mod 4``.
"""
import json
import warnings
from pathlib import Path

import numpy as np
import torch

from anyi2v_lab.method.alignment import build_alignment, query_cells
from anyi2v_lab.method.config import AnyI2VConfig
from anyi2v_lab.method.loss import alignment_loss
from anyi2v_lab.trajectory import Trajectory, TrajectoryWarning, frame_boxes

HORSE = Path(__file__).parents[1] / "data" / "reference_horse_canny.json"


# --- (i) the frame-0 mask on a box that leaves the image -------------------------------------------------
def _scene():
    """A 16x12 grid, 3 frames; the object fills the left 4 of the start box's 8 columns in frame 0. The box
    moves right by 2 (inside) and then by 6 cells (its right 2 columns leave the grid)."""
    H, W, C = 12, 16, 4
    obj, ground = torch.tensor([1.0, 0, 0, 0]), torch.tensor([0, 1.0, 0, 0])
    feats = ground.view(1, C, 1, 1).repeat(3, 1, H, W)
    feats[0, :, 2:8, 4:8] = obj.view(C, 1, 1)  # start box x 4..12, y 2..8: object in columns 4..7
    boxes = torch.tensor([[[4, 2, 12, 8], [6, 2, 14, 8], [10, 2, 18, 8]]])
    queries = [torch.tensor([[1, 2]])]  # (dx, dy) from the start box: on the object
    return feats, boxes, queries


def test_a_clipped_boxs_mask_is_the_cut_of_the_moved_mask_and_stays_on_the_object():
    feats, boxes, queries = _scene()
    parts = alignment_loss(feats, [slice(0, 4)], boxes, queries, mask="static", keep_masks=True)
    masks = parts.masks[0]
    expected0 = torch.zeros(1, 6, 8)
    expected0[..., :4] = 1  # the object's columns of the start box
    assert torch.equal(masks[0], expected0)
    assert torch.equal(masks[1], expected0)  # moved inside the grid: the same mask
    # clipped at the right edge: 6 of 8 columns visible; the mask is the full moved mask's first 6 columns
    assert masks[2].shape == (1, 6, 6) and torch.equal(masks[2], expected0[..., :6])
    # ... which is where the target (frame 0's crop, moved and cut the same way) holds the object
    target = feats[0, :, 2:8, 4:8 + 4][:, :, :6]  # the start crop (8 wide), cut to the visible 6
    assert torch.equal(masks[2][0] > 0, target[0] == 1)
    # the reference's rule squeezes the 8-column mask into the 6 visible columns: it would cover 3 of
    # the 4 object columns the target still shows, and the loss would stop pulling the fourth
    squeezed = torch.nn.functional.interpolate(expected0[None], size=(6, 6), mode="bilinear")[0]
    assert squeezed[0, 0].tolist() == [1, 1, 1, 0, 0, 0] and masks[2][0, 0].tolist() == [1, 1, 1, 1, 0, 0]


def test_the_loss_counts_only_the_visible_part_of_a_clipped_box():
    feats, boxes, queries = _scene()
    parts = alignment_loss(feats, [slice(0, 4)], boxes, queries, mask="static", keep_masks=True)
    # frames 1 and 2: 4 x 6 and 4 x 6 object cells visible (frame 2 cuts only background columns)
    assert parts.count.item() == 24 + 24


# --- (ii) query cells -----------------------------------------------------------------------------------
def test_query_cells_are_the_cells_the_points_fall_in():
    traj = Trajectory.load(HORSE)  # the reference's example: box corner (94, 105), off the 4-px lattice
    points = np.array(traj.objects[0].query_points, float)
    cells = query_cells(points, traj.objects[0].box, 4)
    assert cells.tolist() == [[20, 26], [56, 22], [86, 18]]
    # independently: the cell at that offset from the start crop's corner covers the point's pixel
    corner = np.array([94 // 4, 105 // 4])
    lo = 4 * (corner + cells.numpy())
    assert np.all((lo <= points) & (points < lo + 4))
    # the reference's floor((p - box0) / 4): two of the three points land one cell to the left/up
    ref = np.floor((points - np.array([94, 105])) / 4).astype(int)
    assert ref.tolist() == [[20, 26], [55, 22], [85, 17]]
    assert int((ref != cells.numpy()).any(1).sum()) == 2


def test_build_alignment_uses_those_cells_on_a_clipped_example():
    traj = Trajectory.load(HORSE)
    cfg = AnyI2VConfig(num_frames=16)
    assert frame_boxes(traj, 16)[0, -1, 2] > 512  # the box leaves the right edge (from frame 3 on)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        align, boxes = build_alignment(traj, cfg, (512, 512), (64, 64), [(16, 16), (32, 32)], "cpu")
    assert any(issubclass(w.category, TrajectoryWarning) and "clipped" in str(w.message) for w in seen)
    assert align.queries[0].tolist() == [[20, 26], [56, 22], [86, 18]]
    assert align.boxes[0, 0].tolist() == [23, 26, 120, 70]
    raw = json.loads(HORSE.read_text())["center_traj"][0]
    assert align.boxes[0, -1, 0].item() == (94 + raw[15][0] - raw[0][0]) // 4  # unclipped on the grid
