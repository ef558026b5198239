"""Every trajectory the validation accepts, the method runs: objects that leave the image after frame 0
(wholly: nothing to align, injection only; partly: the frames still on it are aligned), one-frame videos,
and paths of one point (the object stays)."""
import warnings

import numpy as np
import pytest
import torch

from anyi2v_lab.method import AnyI2VConfig, generate
from anyi2v_lab.method.loss import LossParts
from anyi2v_lab.method.optimize import Passes, optimise_latents
from anyi2v_lab.trajectory import Trajectory, TrajectoryWarning

SMALL = dict(num_frames=4, num_inference_steps=3, inversion_timestep=21, load_feature_step=2, opt_step=1, opt_iters=2)


def _run(pipe, image, traj, **changes):
    return generate(pipe, image, "a red square", traj, AnyI2VConfig(**{**SMALL, **changes}), seed=0, progress=False,
                    keep_masks=True)


def test_an_object_that_leaves_after_frame_0_runs_with_injection_only(tiny_pipe, image):
    gone = Trajectory.single((10, 10, 40, 40), [(25, 25), (1000, 25)], image_size=(128, 128), query_points=[(25, 25)])
    with pytest.warns(TrajectoryWarning, match="every object's box lies outside the image after frame 0, so the "
                                               "trajectory has nothing to align"):
        res = _run(tiny_pipe, image, gone)
    assert res.record.iterations == [] and res.record.losses().size == 0
    assert np.isfinite(res.video).all() and res.video.shape[0] == 4
    # what ran is injection alone: the video of the same call without a trajectory
    assert np.array_equal(res.video, _run(tiny_pipe, image, None).video)


def test_one_frame_with_a_trajectory_runs_with_injection_only(tiny_pipe, image):
    moving = Trajectory.single((10, 10, 40, 40), [(25, 25), (60, 25)], image_size=(128, 128))
    with pytest.warns(TrajectoryWarning, match="num_frames=1: a one-frame video has no later frame"):
        res = _run(tiny_pipe, image, moving, num_frames=1)
    assert res.record.iterations == [] and res.video.shape == (1, 128, 128, 3)
    assert np.array_equal(res.video, _run(tiny_pipe, image, None, num_frames=1).video)


def test_an_object_that_partly_leaves_is_aligned_on_the_frames_it_is_on(tiny_pipe, image):
    # x centre 25 -> 75 -> 125 -> 175 with a 30-px box: frame 2 is clipped, frame 3 wholly outside
    leaving = Trajectory.single((10, 10, 40, 40), [(25, 25), (175, 25)], image_size=(128, 128), query_points=[(25, 25)])
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        res = _run(tiny_pipe, image, leaving)
    assert [str(w.message) for w in seen if "nothing to align" in str(w.message)] == []
    assert any("wholly outside, skipped: 3" in str(w.message) for w in seen)
    losses = res.record.losses()
    assert losses.shape == (2, 2) and np.isfinite(losses).all() and losses[0, 0] > 0
    for it in res.record.iterations:
        assert not it.skipped
        masks = it.masks[0]
        assert masks[1] is not None and masks[2] is not None and masks[3] is None
        assert masks[2].shape[-1] < masks[1].shape[-1]  # the clipped box keeps its visible columns


def test_a_path_of_one_point_keeps_the_object_in_place(tiny_pipe, image):
    still = Trajectory.single((30, 40, 80, 90), [(55, 65)], image_size=(128, 128), query_points=[(55, 65)])
    res = _run(tiny_pipe, image, still)
    assert (res.record.boxes == res.record.boxes[:, :1]).all()
    assert len(res.record.iterations) == 4 and not any(it.skipped for it in res.record.iterations)
    assert np.isfinite(res.record.losses()).all() and np.isfinite(res.video).all()


def test_a_loss_with_no_term_skips_its_iterations_without_a_gradient():
    """A loss that does not depend on the latent (no box on the grid) is a constant: no update, no crash."""
    z = torch.randn(1, 4, 2, 4, 4)
    seen = []
    passes = Passes(forward=lambda leaf: [leaf * 2], fit=lambda captured: None,
                    loss=lambda captured, fits: (LossParts(torch.zeros(()), torch.zeros(()), None), []))
    out = optimise_latents(z, passes, AnyI2VConfig(opt_iters=3),
                           record=lambda it, parts, skipped, previews, latent: seen.append(bool(skipped)))
    assert torch.equal(out, z) and seen == [True, True, True]
