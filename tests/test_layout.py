import torch

from anyi2v_lab import layout


def test_round_trips():
    v = torch.randn(2, 4, 3, 5, 6)
    f = layout.video_to_frames(v)
    assert f.shape == (6, 4, 5, 6)
    assert torch.equal(f[1 * 3 + 2], v[1, :, 2])  # row b*F+f
    assert torch.equal(layout.frames_to_video(f, 3), v)
    maps = torch.randn(2, 3, 4, 5, 6)
    tokens = layout.maps_to_tokens(maps)
    assert tokens.shape == (6, 30, 4)
    assert torch.equal(tokens[4, 2 * 6 + 3], maps[1, 1, :, 2, 3])
    assert torch.equal(layout.tokens_to_maps(tokens, 3, 5, 6), maps)


def test_branches():
    assert layout.infer_branches(2) == ("uncond", "cond")
    assert layout.branch_index(("uncond", "cond"), "cond") == 1
    u, c = layout.split_cfg(torch.arange(4))
    assert u.tolist() == [0, 1] and c.tolist() == [2, 3]
