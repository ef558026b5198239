"""The modality-consistency training term (training.consistency) and its place in the joint phase."""
import pytest
import torch

from training.consistency import consistency_points, feature_consistency


def test_term_is_zero_for_equal_features_and_trains_only_the_condition_side():
    g = torch.Generator().manual_seed(0)
    rgb = {"a": torch.randn(2, 4, 8, 8, generator=g, requires_grad=True), "b": torch.randn(2, 16, 4, generator=g)}
    assert feature_consistency(rgb, {k: v.detach().clone() for k, v in rgb.items()}).item() == 0.0
    cond = {k: (v.detach() + 0.5).requires_grad_() for k, v in rgb.items()}
    loss = feature_consistency(rgb, cond)
    expected = sum(0.25 / (v.detach().var() + 1e-6) for v in rgb.values()) / 2  # an offset of 0.5 everywhere
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    loss.backward()
    assert rgb["a"].grad is None and cond["a"].grad.abs().sum() > 0


def test_centred_term_ignores_each_channels_offset_and_sees_layout():
    """``centred``: a per-channel offset (a look: colour, background, style) costs nothing; moving the
    pattern (the layout) costs as much as an unrelated map."""
    from training.consistency import structure

    g = torch.Generator().manual_seed(1)
    rgb = {"up.res.residual": torch.randn(2, 1, 4, 8, 8, generator=g),
           "up.attn.query": torch.randn(2, 1, 64, 4, generator=g)}
    shifted = {"up.res.residual": rgb["up.res.residual"] + torch.randn(2, 1, 4, 1, 1, generator=g),
               "up.attn.query": rgb["up.attn.query"] + torch.randn(2, 1, 1, 4, generator=g)}
    assert feature_consistency(rgb, shifted, centred=True).item() == pytest.approx(0.0, abs=1e-6)
    assert feature_consistency(rgb, shifted).item() > 0.1
    residual_means = structure("x.residual", rgb["up.res.residual"]).mean(dim=(-2, -1))
    assert torch.allclose(residual_means, torch.zeros(2, 1, 4), atol=1e-6)
    assert torch.allclose(structure("x.query", rgb["up.attn.query"]).mean(dim=-2), torch.zeros(2, 1, 4), atol=1e-6)
    moved = {k: v.roll(3, dims=-2) for k, v in rgb.items()}   # the same values elsewhere: about 2 for white noise
    assert feature_consistency(rgb, moved, centred=True).item() > 1.0


def test_joint_image_batches_add_the_term_when_asked(tmp_path, monkeypatch):
    """The joint phase's image batches add the term only with a positive weight; it is the term of the
    frames' and conditions' features at the method's injection points, and it trains the decoder."""
    from anyi2v_lab.method.config import ATTN_LAYERS, RES_LAYERS
    from training.config import TrainConfig
    from training.trainer import Log, Trainer

    small = {"vae": 4, "image": 8, "motion": 1, "joint": 1, "decoder": 4}
    with pytest.raises(ValueError, match="feature_consistency"):
        TrainConfig(feature_consistency=-1)
    for weight, calls in ((0.0, 0), (0.5, 1)):
        tr = Trainer(TrainConfig(out=str(tmp_path), device="cpu", batch=small, feature_consistency=weight),
                     Log(tmp_path / "log.txt"))
        params, loss_fn = tr.setup("joint")
        seen = []
        original = tr.consistency_loss
        monkeypatch.setattr(tr, "consistency_loss", lambda net, n: seen.append(n) or original(net, n))
        loss = loss_fn(tr.cfg.image_every - 1)     # an image batch
        assert torch.isfinite(loss) and seen == [2] * calls
    assert consistency_points() == tuple(f"{r}.residual" for r in RES_LAYERS) + tuple(f"{a}.query" for a in ATTN_LAYERS)
    term = original(tr.unet, 2)
    assert torch.isfinite(Trainer(TrainConfig(out=str(tmp_path), device="cpu", batch=small, feature_consistency=0.5,
                                              consistency_centred=True), Log(tmp_path / "log.txt"))
                          .consistency_loss(tr.unet, 2))
    term.backward()
    assert term.item() > 0 and tr.unet.up_blocks[2].resnets[1].conv2.weight.grad.abs().sum() > 0
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in tr.unet.modules())  # hooks removed
