"""The toy world: seeded cases, ground truth against masks, condition images, held-out split, tracker."""
from dataclasses import fields, replace

import numpy as np
import pytest
import torch

from anyi2v_lab.toy import scene, tracking, world


@pytest.fixture(scope="module")
def cases():
    kinds = [{}, {"motion": "occlude"}, {"motion": "scale"}, {"motion": "still", "num_objects": 3},
             {"background": "striped"}, {"background": "checkered"}, {"background": "dotted"},
             {"background": "gradient", "num_objects": 1}]
    return [world.make_case(100 + i, **kw) for i, kw in enumerate(kinds)]


def _rows(spec, i):
    return replace(spec, **{f.name: getattr(spec, f.name)[i:i + 1] for f in fields(spec)
                            if isinstance(getattr(spec, f.name), torch.Tensor)})


def test_case_is_deterministic_per_seed():
    a, b, c = world.make_case(7), world.make_case(7), world.make_case(8)
    assert a.caption == b.caption and np.array_equal(a.frames, b.frames)
    assert np.array_equal(a.boxes, b.boxes) and np.array_equal(a.masks, b.masks)
    assert all(np.array_equal(a.conditions[m], b.conditions[m]) for m in world.MODALITIES)
    assert not np.array_equal(a.frames, c.frames)


def test_case_fields_and_overrides(cases):
    c = cases[3]
    assert c.motion == "still" and len(c.objects) == 3
    assert c.frames.shape == (16, 64, 64, 3) and c.frames.dtype == np.uint8
    assert c.boxes.shape == (3, 16, 4) and c.centres.shape == (3, 16, 2) and c.masks.shape == (3, 16, 64, 64)
    assert np.allclose(c.centres, c.centres[:, :1])                      # still means still
    assert cases[1].motion == "occlude" and len(cases[1].objects) >= 2
    assert world.make_case(3, size=96, num_frames=8).frames.shape == (8, 96, 96, 3)
    with pytest.raises(ValueError, match="background"):
        world.make_case(0, background="wavy")
    with pytest.raises(ValueError, match="occlude"):
        world.make_case(0, motion="occlude", num_objects=1)


def test_caption_names_every_object(cases):
    for c in cases:
        for o in c.objects:
            assert f"{o.size} {o.colour} {o.shape}" in c.caption
        assert c.caption.endswith(f"on a {c.background} background")
        assert c.modality_caption("canny") == c.caption + ", canny edges"
    with pytest.raises(ValueError, match="modality"):
        cases[0].modality_caption("normal")


def test_boxes_and_centres_agree_with_masks(cases):
    for c in cases:
        assert np.allclose(c.centres, (c.boxes[..., :2] + c.boxes[..., 2:]) / 2, atol=1e-4)
        assert (c.boxes[..., 0] >= 0).all() and (c.boxes[..., 2] <= 64).all()
        for o in range(len(c.objects)):
            others = [p for p in range(len(c.objects)) if p != o]
            for f in range(16):
                ys, xs = np.nonzero(c.masks[o, f])
                x0, y0, x1, y1 = c.boxes[o, f]
                if len(xs):   # visible pixel centres lie inside the box
                    assert (xs + 0.5 >= x0).all() and (xs + 0.5 <= x1).all()
                    assert (ys + 0.5 >= y0).all() and (ys + 0.5 <= y1).all()
                b = c.boxes[:, f]
                alone = all(b[p, 0] > x1 or b[p, 2] < x0 or b[p, 1] > y1 or b[p, 3] < y0 for p in others)
                if alone:     # an unoccluded object fills its box (sharp tips may miss pixel centres)
                    assert abs(xs.min() + 0.5 - x0) <= 2 and abs(xs.max() + 0.5 - x1) <= 2
                    assert abs(ys.min() + 0.5 - y0) <= 2 and abs(ys.max() + 0.5 - y1) <= 2
        # masks are disjoint and show the object's colour
        assert (c.masks.sum(0) <= 1).all()
        for o, obj in enumerate(c.objects):
            px = c.frames[c.masks[o]]
            assert np.abs(px.astype(int) - obj.rgb).max() <= 130 and np.median(np.abs(px.astype(int) - obj.rgb)) <= 2


def test_motion_is_slow_and_smooth():
    spec = world.sample_specs(256, torch.Generator().manual_seed(1))
    step = (spec.centres[:, :, 1:] - spec.centres[:, :, :-1]).norm(dim=-1)[spec.valid]
    assert step.max() <= scene.MAX_SPEED + 1e-4
    acc = (spec.centres[:, :, 2:] - 2 * spec.centres[:, :, 1:-1] + spec.centres[:, :, :-2]).norm(dim=-1)[spec.valid]
    assert acc.max() < 1.0                                                # no kinks


def test_conditions_shapes_and_values(cases):
    for c in cases:
        assert set(c.conditions) == set(world.MODALITIES)
        for m, img in c.conditions.items():
            assert img.shape == (64, 64, 3) and img.dtype == np.uint8, m
        for m in ("canny", "hed", "depth", "sketch"):               # grey maps
            img = c.conditions[m].astype(int)
            assert (img[..., 0] == img[..., 1]).all() and (img[..., 0] == img[..., 2]).all(), m
        assert set(np.unique(c.conditions["canny"])) <= {0, 255}
        seg_cols = {tuple(v) for v in c.conditions["segmentation"].reshape(-1, 3)}
        assert seg_cols <= {tuple(v) for v in world.SEG_PALETTE.values()}
        # every object's outline shows in canny and sketch near its visible pixels
        near = np.zeros((64, 64), bool)
        for o in range(len(c.objects)):
            m = c.masks[o, 0]
            ring = m ^ np.pad(m, 1)[2:, 1:-1] | m ^ np.pad(m, 1)[:-2, 1:-1]
            near |= ring
        assert (c.conditions["canny"][..., 0][near] > 0).mean() > 0.3
        assert (c.conditions["sketch"][..., 0][near] < 128).mean() > 0.5
        # depth: objects are nearer (brighter) than the background behind them
        fg = c.masks[:, 0].any(0)
        assert c.conditions["depth"][..., 0][fg].mean() > c.conditions["depth"][..., 0][~fg].mean()


def test_batched_render_equals_single_render():
    spec = world.sample_specs(3, torch.Generator().manual_seed(5))
    whole = world.render_specs(spec, conditions=True)
    for i in range(3):
        one = world.render_specs(_rows(spec, i), conditions=True)
        assert torch.allclose(whole["frames"][i], one["frames"][0], atol=1e-6)
        assert torch.equal(whole["masks"][i], one["masks"][0])
        for m in world.MODALITIES:
            assert torch.allclose(whole["conditions"][m][i], one["conditions"][m][0], atol=1e-5)


def test_heldout_captions_never_reach_the_training_sampler():
    g = torch.Generator().manual_seed(0)
    spec = world.sample_specs(2048, g, num_frames=1, reject=world.is_heldout)
    assert not world.is_heldout(spec).any()
    train_caps = set(world.captions_of(spec))
    held = world.heldout_cases(6)
    assert [h.seed for h in held] == [h.seed for h in world.heldout_cases(6)]
    for h in held:
        assert h.seed >= world.HELDOUT_SEED_BASE and h.caption not in train_caps
        assert np.array_equal(world.make_case(h.seed).frames, h.frames)
    all_spec = world.sample_specs(2048, torch.Generator().manual_seed(0), num_frames=1)
    frac = world.is_heldout(all_spec).float().mean().item()
    assert 0.02 < frac < 0.09                                              # about 1 in 20


def test_tracker_follows_objects(cases):
    for c in cases[:4]:
        for o, obj in enumerate(c.objects):
            t = tracking.track_colour(c.frames, obj.rgb)
            area = c.masks[o].sum((1, 2))
            whole = area >= 0.95 * area.max()              # frames where nothing hides the object
            assert t["present"][whole].all() and (t["blobs"][whole] == 1).all()
            for f in np.nonzero(whole)[0]:
                ys, xs = np.nonzero(c.masks[o, f])
                assert np.allclose(t["centroid"][f].numpy(), [xs.mean() + 0.5, ys.mean() + 0.5], atol=1.0)


def test_components_methods_agree():
    m = torch.rand(40, 32, 32, generator=torch.Generator().manual_seed(0)) < 0.35
    assert torch.equal(tracking.components(m, "torch"), tracking.components(m, "scipy"))


def test_glitches_on_data_and_on_made_up_glitches(cases):
    data = np.stack([c.frames for c in cases])
    r = tracking.motion_glitch_rate(data, cases)
    assert r["rate"] <= 1 / 16 and r["threshold"] == pytest.approx(tracking.DATA_MAX_JUMP["clean"])
    assert tracking.colour_binding(data, cases)["accuracy"] == 1.0
    c = cases[3]                                             # three still objects on a plain background
    bad = c.frames.copy()
    bad[8:] = np.roll(bad[8:], 12, axis=2)                   # a teleport at frame 8
    r = tracking.motion_glitch_rate(bad[None], [c])
    assert r["jump_rate"] == pytest.approx(1 / 16)
    dup = c.frames.copy()
    o = 0
    ys, xs = np.nonzero(c.masks[o, 0])
    dy = 20 if ys.max() + 20 < 64 else -20
    dx = 20 if xs.max() + 20 < 64 else -20
    dup[4, ys + dy, xs + dx] = c.objects[o].rgb                # a copy in frame 4
    r = tracking.motion_glitch_rate(dup[None], [c])
    assert r["dup_rate"] >= 1 / 16


def test_frechet_colour_distance_is_a_distance(cases):
    a = np.stack([c.frames for c in cases[:4]])
    b = np.stack([c.frames for c in cases[4:]])
    assert abs(tracking.frechet_colour_distance(a, a)) < 1e-6
    assert tracking.frechet_colour_distance(a, b) > 1e-3


def test_object_probs_weight_training_scenes_and_are_checked():
    g = torch.Generator().manual_seed(0)
    assert (world.sample_specs(64, g, object_probs=(0, 0, 1)).n == 3).all()
    n = world.sample_specs(2000, g, object_probs=(1, 1, 0)).n
    assert set(n.tolist()) == {1, 2} and 0.3 < (n == 1).float().mean() < 0.6  # occluding scenes need 2
    with pytest.raises(ValueError, match="object_probs must be 3 non-negative"):
        world.sample_specs(2, g, object_probs=(1, -1, 1))
