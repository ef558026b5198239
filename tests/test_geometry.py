"""ResizeMap: policy arithmetic, inverse round trips, and images moving with their points."""
import numpy as np
import pytest
from PIL import Image, ImageDraw

from anyi2v_lab.geometry import POLICIES, ResizeMap, box_from_corners, clip_box

SIZES = [((1024, 768), (512, 512)), ((300, 200), (512, 320)), ((97, 131), (64, 128)), ((512, 512), (512, 512)),
         ((40, 30), (96, 64))]


def test_policy_parameters_by_hand():
    src, dst = (1024, 768), (512, 512)
    st = ResizeMap.from_policy(src, dst, "stretch")
    assert st.scale == (0.5, 512 / 768) and st.offset == (0.0, 0.0)
    cr = ResizeMap.from_policy(src, dst, "crop")  # cover: scale 2/3, 682.67 px wide, centred
    assert cr.scale == (512 / 768, 512 / 768)
    assert cr.offset == pytest.approx(((512 - 1024 * 2 / 3) / 2, 0.0))
    pad = ResizeMap.from_policy(src, dst, "pad")  # fit: scale 1/2 -> 512x384 at y offset 64
    assert pad.scale == (0.5, 0.5) and pad.offset == (0.0, 64.0)
    assert pad.content_box == (0.0, 64.0, 512.0, 448.0)
    assert pad.points([[512, 384]]).tolist() == [[256.0, 256.0]]


def test_pad_content_is_whole_pixels():
    m = ResizeMap.from_policy((97, 131), (64, 128), "pad")
    x0, y0, x1, y1 = m.content_box
    assert all(abs(v - round(v)) < 1e-9 for v in (x0, y0, x1, y1))
    # fit scale min(64/97, 128/131) = 64/97: 64 x round(131 * 64/97) = 64 x 86, at y offset (128 - 86) // 2
    assert (x0, y0, x1, y1) == (0.0, 21.0, 64.0, 107.0)
    assert m.scale == (64 / 97, 86 / 131)


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("src,dst", SIZES)
def test_inverse_round_trip(policy, src, dst):
    m = ResizeMap.from_policy(src, dst, policy)
    inv = m.inverse()
    assert inv.src_size == dst and inv.dst_size == src
    assert inv.inverse() == m
    pts = np.random.default_rng(0).uniform(-50, 600, size=(3, 7, 2))
    np.testing.assert_allclose(inv.points(m.points(pts)), pts, rtol=0, atol=1e-9)
    np.testing.assert_allclose(m.points(inv.points(pts)), pts, rtol=0, atol=1e-9)
    boxes = np.concatenate([pts[0], pts[0] + 10], axis=-1)
    np.testing.assert_allclose(m.boxes(boxes)[:, :2], m.points(boxes[:, :2]))
    np.testing.assert_allclose(m.boxes(boxes)[:, 2:], m.points(boxes[:, 2:]))


@pytest.mark.parametrize("policy", POLICIES)
def test_image_corners_map_to_content_box(policy):
    m = ResizeMap.from_policy((300, 200), (128, 128), policy)
    x0, y0, x1, y1 = m.boxes([0, 0, 300, 200])
    if policy == "stretch":
        assert (x0, y0, x1, y1) == (0, 0, 128, 128)
    elif policy == "crop":  # covers: the short side fills, the long side overflows equally
        assert (y0, y1) == (0, 128) and x0 == pytest.approx(-(x1 - 128))
    else:
        assert (x0, x1) == (0, 128) and (y0, y1) == (21, 106)  # 128 x round(85.33); odd slack: 21 above, 22 below


def _mapped_pixels_agree(m: ResizeMap, src_img: Image.Image, out: Image.Image, margin: float):
    """Every canvas pixel whose centre maps well inside a source pixel has that pixel's value."""
    W, H = m.dst_size
    jj, ii = np.mgrid[0:H, 0:W]
    centres = np.stack([ii + 0.5, jj + 0.5], axis=-1)
    src = m.inverse().points(centres)
    frac = src - np.floor(src)
    ok = (np.all((frac > margin) & (frac < 1 - margin), axis=-1)
          & (src[..., 0] > 0) & (src[..., 1] > 0) & (src[..., 0] < m.src_size[0]) & (src[..., 1] < m.src_size[1]))
    sx, sy = np.floor(src[..., 0]).astype(int), np.floor(src[..., 1]).astype(int)
    a, b = np.asarray(src_img), np.asarray(out)
    assert ok.sum() > 0.2 * ok.size
    np.testing.assert_array_equal(b[ok], a[sy[ok], sx[ok]])


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("src,dst", SIZES[1:] + [((1000, 750), (512, 512))])  # no exact 2:1, where NEAREST ties
def test_nearest_resampling_uses_the_point_arithmetic(policy, src, dst):
    rng = np.random.default_rng(1)
    img = Image.fromarray(rng.integers(0, 255, size=(src[1], src[0]), dtype=np.uint8), "L")
    m = ResizeMap.from_policy(src, dst, policy)
    out = m.apply_image(img, Image.Resampling.NEAREST, fill=0)
    assert out.size == dst
    _mapped_pixels_agree(m, img, out, margin=0.05)
    back = m.inverse()  # the inverse of crop takes the affine path, the others the resize path
    _mapped_pixels_agree(back, out, back.apply_image(out, Image.Resampling.NEAREST), margin=0.05)


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("resample", [Image.Resampling.BILINEAR, Image.Resampling.BICUBIC])
def test_drawn_box_lands_where_the_box_maps(policy, resample):
    src_size, box = (300, 200), (120.0, 40.0, 210.0, 150.0)
    img = Image.new("L", src_size, 0)
    ImageDraw.Draw(img).rectangle([box[0], box[1], box[2] - 1, box[3] - 1], fill=255)  # covers [x0, x1)
    for dst in [(128, 128), (512, 256)]:
        m = ResizeMap.from_policy(src_size, dst, policy)
        out = np.asarray(m.apply_image(img, resample, fill=0)).astype(float)
        bx0, by0, bx1, by1 = m.boxes(box)
        jj, ii = np.mgrid[0:dst[1], 0:dst[0]]
        cx, cy = ii + 0.5, jj + 0.5
        inside = (cx > bx0 + 2) & (cx < bx1 - 2) & (cy > by0 + 2) & (cy < by1 - 2)
        outside = (cx < bx0 - 2) | (cx > bx1 + 2) | (cy < by0 - 2) | (cy > by1 + 2)
        assert inside.any() and outside.any()
        assert out[inside].min() > 240 and out[outside].max() < 15
        # the brightness centroid is the mapped box centre
        cen = ((out * cx).sum() / out.sum(), (out * cy).sum() / out.sum())
        assert cen == pytest.approx(((bx0 + bx1) / 2, (by0 + by1) / 2), abs=0.05)


def test_pad_fill_colour_and_rgb():
    img = Image.new("RGB", (200, 100), (10, 200, 30))
    m = ResizeMap.from_policy(img.size, (64, 64), "pad")
    out = np.asarray(m.apply_image(img, fill=(255, 0, 255)))
    assert m.content_box == (0.0, 16.0, 64.0, 48.0)
    assert (out[:16] == (255, 0, 255)).all() and (out[48:] == (255, 0, 255)).all()
    assert (out[16:48] == (10, 200, 30)).all()


def test_stretch_matches_plain_pil_resize():
    img = Image.fromarray(np.random.default_rng(2).integers(0, 255, (77, 91, 3), dtype=np.uint8))
    m = ResizeMap.from_policy(img.size, (64, 48), "stretch")
    np.testing.assert_array_equal(np.asarray(m.apply_image(img)), np.asarray(img.resize((64, 48))))


@pytest.mark.parametrize("bad", [(0, 5), (5, -1), (5.0, 5), (True, 4), "512", (512,), None, (1, 2, 3)])
def test_bad_sizes_are_named(bad):
    with pytest.raises(ValueError, match="src_size"):
        ResizeMap.from_policy(bad, (64, 64), "stretch")


def test_bad_policy_and_shapes():
    with pytest.raises(ValueError, match=r"policy = 'fit' is unknown; use one of 'stretch', 'crop', 'pad'"):
        ResizeMap.from_policy((10, 10), (8, 8), "fit")
    m = ResizeMap.identity((10, 10))
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 2\)"):
        m.points([1, 2, 3])
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 4\)"):
        m.boxes([1, 2])
    with pytest.raises(ValueError, match="does not match"):
        m.apply_image(Image.new("L", (11, 10)))


def test_clip_box_and_corners():
    np.testing.assert_array_equal(clip_box([[-5, 3, 700, 40], [600, 600, 700, 700]], (512, 256)),
                                  [[0, 3, 512, 40], [512, 256, 512, 256]])
    assert box_from_corners((30, 5), (10, 20)) == (10.0, 5.0, 30.0, 20.0)
