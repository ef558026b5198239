"""The trajectory on Wan's latent frames and one step of the latent optimisation on a tiny Wan transformer."""
import numpy as np
import pytest
import torch

from anyi2v_lab.causal_frames import video_frames_of
from anyi2v_lab.method.config import ConfigError
from anyi2v_lab.method.optimize import optimise_latents
from anyi2v_lab.method.wan import alignment as wa
from anyi2v_lab.method.wan.config import WanAnyI2VConfig
from anyi2v_lab.trajectory import Trajectory, TrajectoryWarning


def config(**kw) -> WanAnyI2VConfig:
    base = dict(num_frames=9, height=64, width=64, num_inference_steps=4, inject_steps=0, opt_steps=1, opt_iters=1,
                inject_blocks=(), align_blocks=(0, 1), lr=0.01)
    return WanAnyI2VConfig(**{**base, **kw})


def test_boxes_bin_to_latent_frames_as_the_causal_vae_encodes():
    boxes = np.arange(9 * 4, dtype=np.float64).reshape(1, 9, 4)
    binned = wa.latent_frame_boxes(boxes, 3)
    assert binned.shape == (1, 3, 4)
    np.testing.assert_array_equal(binned[0, 0], boxes[0, 0])          # frame 0 alone
    np.testing.assert_array_equal(binned[0, 1], boxes[0, 1:5].mean(0))  # video frames 1..4
    np.testing.assert_array_equal(binned[0, 2], boxes[0, 5:9].mean(0))  # video frames 5..8
    assert [list(video_frames_of(j)) for j in range(3)] == [[0], [1, 2, 3, 4], [5, 6, 7, 8]]
    with pytest.raises(ValueError, match="4k \\+ 1"):
        wa.latent_frame_boxes(boxes[:, :8], 3)


def test_alignment_grid_and_boxes():
    traj = Trajectory.single((8, 8, 32, 32), [(20, 20), (44, 44)], image_size=(64, 64))
    align, binned = wa.wan_alignment(traj, config(), (4, 4), "cpu")
    assert align.grid == (16, 16) and align.shapes == [(4, 4), (4, 4)]
    assert align.boxes.shape == (1, 3, 4) and binned.shape == (1, 3, 4)
    np.testing.assert_array_equal(align.boxes[0, 0].numpy(), [2, 2, 8, 8])  # frame 0's box / compress_factor 4
    assert (align.boxes[0, 2, :2] > align.boxes[0, 1, :2]).all()  # moving down-right
    with pytest.raises(ConfigError, match="compress_factor=5"):
        wa.wan_alignment(traj, config(compress_factor=5), (4, 4), "cpu")
    with pytest.warns(TrajectoryWarning, match="num_frames=1: one latent frame"):
        one, _ = wa.wan_alignment(traj, config(num_frames=1), (4, 4), "cpu")
    assert one.aligned_frames == 0


def test_one_optimisation_step_lowers_the_alignment_loss(tiny_wan):
    cfg = config()
    traj = Trajectory.single((8, 8, 32, 32), [(20, 20), (44, 44)], image_size=(64, 64))
    align, _ = wa.wan_alignment(traj, cfg, (4, 4), "cpu")
    g = torch.Generator().manual_seed(0)
    z = torch.randn(1, 16, 3, 8, 8, generator=g)
    inputs = wa.WanPassInputs(transformer=tiny_wan, edits={}, alignment=align, config=cfg,
                           embeds=torch.randn(1, 16, 32, generator=g), timestep=torch.tensor([900.0]), step_index=0)
    losses = []
    with wa.wan_passes(inputs) as passes:
        def loss_of(latent):
            captured = passes.forward(latent)
            return float(passes.loss(captured, passes.fit(captured))[0].loss)
        before = loss_of(z)
        z1 = optimise_latents(z, passes, cfg, None, lambda it, parts, *_: losses.append(float(parts.loss.detach())))
        after = loss_of(z1)
    assert losses == [pytest.approx(before)]  # the loop saw the same loss
    assert after < before
    assert (z1 - z).abs().max() <= cfg.lr * (1 + z.abs().max() * 0.01) + 1e-6  # one sign step of size lr
    assert wa.align_names(cfg) == ["blocks.0.attn1.query", "blocks.1.attn1.query"]
