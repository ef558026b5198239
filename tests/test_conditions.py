"""Condition images: modes and arrays to model tensors, policies, compositing of mixed conditions."""
import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from anyi2v_lab.conditions import (
    Condition,
    ConditionError,
    check_condition_files,
    compose_conditions,
    condition_from_files,
    load_condition,
    pil_to_pixels,
    to_rgb,
)
from anyi2v_lab.geometry import ResizeMap


def _reference_pixels(img: Image.Image, size) -> np.ndarray:
    """The reference path: convert('RGB'), PIL's default resize, to_tensor, (x - 0.5) * 2."""
    a = np.asarray(img.convert("RGB").resize(size), dtype=np.float32) / np.float32(255)
    return ((a - np.float32(0.5)) * np.float32(2)).transpose(2, 0, 1)[None]


def test_rgb_file_matches_the_reference_arithmetic(tmp_path):
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8))
    img.save(tmp_path / "c.png")
    c = load_condition(tmp_path / "c.png", (512, 256))
    assert isinstance(c, Condition) and c.size == (512, 256) and c.source_size == (400, 300)
    assert c.pixels.shape == (1, 3, 256, 512) and c.pixels.dtype == torch.float32
    assert c.image.mode == "RGB" and c.image.size == (512, 256)
    assert c.resize_map == ResizeMap.from_policy((400, 300), (512, 256), "stretch")
    np.testing.assert_array_equal(c.pixels.numpy(), _reference_pixels(img, (512, 256)))
    assert c.pixels.min() >= -1 and c.pixels.max() <= 1


def test_pixels_of_extremes():
    c = load_condition(np.array([[0, 255]] * 8, np.uint8).repeat(4, axis=1), (8, 8))
    assert c.pixels[0, :, :, :4].eq(-1).all() and c.pixels[0, :, :, 4:].eq(1).all()


@pytest.mark.parametrize("policy", ["crop", "pad"])
def test_policies_move_a_drawn_box_with_the_map(policy):
    img = Image.new("L", (400, 200), 0)
    box = (250, 60, 330, 140)
    ImageDraw.Draw(img).rectangle([box[0], box[1], box[2] - 1, box[3] - 1], fill=255)
    c = load_condition(img, (256, 256), policy, pad_color=(0, 0, 255))
    x0, y0, x1, y1 = c.resize_map.boxes(box)
    a = np.asarray(c.image).astype(int)
    assert (a[int(y0) + 2:int(y1) - 2, int(x0) + 2:int(x1) - 2] > 245).all()
    white = a[..., 0] > 128
    ys, xs = np.nonzero(white)
    assert xs.min() >= x0 - 1 and xs.max() <= x1 and ys.min() >= y0 - 1 and ys.max() <= y1
    if policy == "pad":  # 256 x 128 content centred vertically, blue bands above and below
        assert c.resize_map.content_box == (0.0, 64.0, 256.0, 192.0)
        assert (a[:64] == (0, 0, 255)).all() and (a[192:] == (0, 0, 255)).all()


def test_16bit_depth_png_is_stretched_by_its_min_max(tmp_path):
    depth = np.linspace(1000, 5000, 64 * 64).reshape(64, 64).astype(np.uint16)
    Image.fromarray(depth).save(tmp_path / "d.png")
    with Image.open(tmp_path / "d.png") as im:
        assert im.mode.startswith("I")
    c = load_condition(tmp_path / "d.png", (64, 64))
    a = np.asarray(c.image)
    assert (a[..., 0] == a[..., 1]).all() and (a[..., 0] == a[..., 2]).all()
    expected = np.round((depth.astype(float) - 1000) * 255 / 4000).astype(np.uint8)
    np.testing.assert_array_equal(a[..., 0], expected)
    assert a.min() == 0 and a.max() == 255


def test_int32_and_float_images_and_arrays():
    f = Image.fromarray(np.array([[2.0, 4.0], [6.0, 10.0]], np.float32).repeat(4, 0).repeat(4, 1), "F")
    np.testing.assert_array_equal(np.asarray(to_rgb(f))[::4, ::4, 0], [[0, 64], [128, 255]])
    i32 = Image.fromarray(np.array([[-5, 5]], np.int32))
    np.testing.assert_array_equal(np.asarray(to_rgb(i32))[0, :, 0], [0, 255])
    unit = np.array([[0.0, 0.5, 1.0]])
    np.testing.assert_array_equal(np.asarray(to_rgb(unit))[0, :, 1], [0, 128, 255])
    metres = np.array([[2.0, 3.0, 4.0]])
    np.testing.assert_array_equal(np.asarray(to_rgb(metres))[0, :, 2], [0, 128, 255])
    np.testing.assert_array_equal(np.asarray(to_rgb(np.array([[7, 7]], np.uint16))), np.zeros((1, 2, 3)))
    hwc = np.zeros((4, 6, 3), np.uint8)
    hwc[..., 1] = 200
    assert to_rgb(hwc).size == (6, 4) and np.asarray(to_rgb(hwc))[0, 0].tolist() == [0, 200, 0]
    assert np.asarray(to_rgb(np.array([[True, False]])))[0, :, 0].tolist() == [255, 0]
    assert np.asarray(to_rgb(np.array([[10, 20]], np.uint8), normalize="minmax"))[0, :, 0].tolist() == [0, 255]


def test_rgba_la_and_p_composite_on_background():
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[0, 0] = (255, 0, 0, 0)  # fully transparent red: the reference's convert("RGB") would keep red
    rgba[0, 1] = (200, 100, 50, 255)
    rgba[1, 0] = (255, 255, 255, 128)
    rgba[1, 1] = (255, 0, 0, 255)
    out = np.asarray(to_rgb(Image.fromarray(rgba, "RGBA"))).astype(int)
    assert out[0, 0].tolist() == [0, 0, 0] and out[0, 1].tolist() == [200, 100, 50]
    assert out[1, 0].tolist() == [128, 128, 128] and out[1, 1].tolist() == [255, 0, 0]
    white = np.asarray(to_rgb(Image.fromarray(rgba, "RGBA"), background=(255, 255, 255)))
    assert white[0, 0].tolist() == [255, 255, 255]
    assert np.asarray(to_rgb(rgba))[0, 0].tolist() == [0, 0, 0]  # HxWx4 arrays are RGBA too
    la = Image.fromarray(np.array([[[90, 0], [90, 255]]], np.uint8), "LA")
    assert np.asarray(to_rgb(la))[0].tolist() == [[0, 0, 0], [90, 90, 90]]
    p = Image.new("P", (2, 1))
    p.putpalette([0, 0, 0, 250, 10, 10] + [0] * 762)
    p.putpixel((0, 0), 1)
    p.putpixel((1, 0), 0)
    assert np.asarray(to_rgb(p))[0].tolist() == [[250, 10, 10], [0, 0, 0]]
    p.info["transparency"] = 1
    assert np.asarray(to_rgb(p))[0].tolist() == [[0, 0, 0], [0, 0, 0]]
    assert np.asarray(to_rgb(Image.new("1", (2, 1), 1)))[0, 0].tolist() == [255, 255, 255]


def test_compose_paints_later_layers_over_earlier_ones():
    depth = np.full((100, 200), 1000, np.uint16)
    depth[:, 100:] = 3000  # stretched: left 0, right 255
    sketch = Image.new("RGB", (200, 100), (10, 200, 30))
    mask = np.zeros((50, 100), bool)  # half resolution: foreground is the top-left quarter
    mask[:25, :50] = True
    c = compose_conditions([(depth, None), (sketch, mask)], (64, 32))
    a = np.asarray(c.image)
    assert c.source_size == (200, 100) and c.resize_map == ResizeMap.from_policy((200, 100), (64, 32), "stretch")
    assert (a[:16, :32] == (10, 200, 30)).all()
    assert (a[16:, :31] == 0).all() and (a[:, 33:] == 255).all()
    np.testing.assert_array_equal(c.pixels, pil_to_pixels(c.image))
    # a mask given as an L image at another size, and a region no layer sets keeps the pad colour
    m = Image.new("L", (40, 40), 0)
    ImageDraw.Draw(m).rectangle([20, 0, 39, 39], fill=255)
    c2 = compose_conditions([(sketch, m)], (32, 32), pad_color=(1, 2, 3))
    b = np.asarray(c2.image)
    assert (b[:, :16] == (1, 2, 3)).all() and (b[:, 16:] == (10, 200, 30)).all()


def test_compose_with_pad_policy_keeps_layers_aligned():
    bg = Image.new("RGB", (200, 100), (255, 255, 255))
    fg = Image.new("RGB", (200, 100), (255, 0, 0))
    mask = np.zeros((100, 200), np.float32)
    mask[:, 100:] = 1.0
    c = compose_conditions([(bg, None), (fg, mask)], (64, 64), "pad", pad_color=(0, 0, 0))
    a = np.asarray(c.image)
    assert (a[:16] == 0).all() and (a[48:] == 0).all()  # pad bands, not painted by any mask
    assert (a[16:48, :31] == 255).all() and (a[16:48, 33:] == (255, 0, 0)).all()
    # a mask-less layer of another shape paints only where its own content lands, not its pad bands
    tall = Image.new("RGB", (50, 100), (0, 255, 0))
    d = np.asarray(compose_conditions([(bg, None), (tall, None)], (64, 64), "pad").image)
    assert (d[16:48, :16] == 255).all() and (d[:, 16:48] == (0, 255, 0)).all() and (d[16:48, 48:] == 255).all()


def test_errors_are_clear(tmp_path):
    with pytest.raises(ConditionError, match=r"divisible by 8.*try \(512, 320\)"):
        load_condition(np.zeros((8, 8), np.uint8), (513, 321))
    with pytest.raises(FileNotFoundError, match="condition image not found: .*nope.png"):
        load_condition(tmp_path / "nope.png")
    (tmp_path / "bad.png").write_bytes(b"not an image at all")
    with pytest.raises(ConditionError, match="cannot read .*bad.png"):
        load_condition(tmp_path / "bad.png")
    with pytest.raises(ConditionError, match=r"shape \(2, 2, 5\)"):
        load_condition(np.zeros((2, 2, 5), np.uint8))
    with pytest.raises(ConditionError, match="NaN"):
        load_condition(np.array([[np.nan, 2.0]]), (8, 8))
    with pytest.raises(ConditionError, match="policy = 'fill'"):
        load_condition(np.zeros((8, 8), np.uint8), (8, 8), "fill")
    with pytest.raises(ConditionError, match="file path, a PIL image or a numpy array"):
        load_condition([[0, 1]])
    loaded = load_condition(np.zeros((8, 16), np.uint8), (16, 16), "pad")
    assert load_condition(loaded, (16, 16), "pad") is loaded
    with pytest.raises(ConditionError, match="same size and policy"):
        compose_conditions([(loaded, None)], (16, 16), "crop")
    with pytest.raises(ConditionError, match=r"pair \(image, mask\)"):
        compose_conditions([np.zeros((8, 8), np.uint8)], (8, 8))
    with pytest.raises(ConditionError, match="2-D"):
        compose_conditions([(np.zeros((8, 8), np.uint8), np.zeros((2, 2, 2)))], (8, 8))
    assert issubclass(ConditionError, ValueError)


def test_condition_from_files_one_or_composed(tmp_path):
    from anyi2v_lab.conditions import ConditionError, condition_from_files

    a, b, m = tmp_path / "a.png", tmp_path / "b.png", tmp_path / "m.png"
    Image.new("RGB", (32, 32), (255, 0, 0)).save(a)
    Image.new("RGB", (32, 32), (0, 0, 255)).save(b)
    mask = Image.new("L", (32, 32), 0)
    mask.paste(255, (0, 0, 16, 32))
    mask.save(m)
    one = condition_from_files([a], size=(16, 16))
    assert np.asarray(one.image)[0, 0].tolist() == [255, 0, 0]
    both = condition_from_files([b, a], [None, m], size=(16, 16))  # red painted where the mask is set
    px = np.asarray(both.image)
    assert px[8, 2].tolist() == [255, 0, 0] and px[8, 13].tolist() == [0, 0, 255]
    with pytest.raises(ConditionError, match="at most one mask each"):
        condition_from_files([a], [m, m])
    with pytest.raises(ConditionError, match="no condition image"):
        condition_from_files([])


def test_files_are_checked_before_the_model_size_is_known(tmp_path):
    """The command line checks condition files before it loads a model: everything but the size."""
    Image.new("RGB", (40, 30), (200, 10, 10)).save(tmp_path / "a.png")
    Image.new("L", (40, 30), 255).save(tmp_path / "m.png")
    (tmp_path / "notes.png").write_text("not an image")
    buf = (tmp_path / "a.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(buf[: len(buf) // 2])  # header fine, pixels missing
    a, m = str(tmp_path / "a.png"), str(tmp_path / "m.png")
    check_condition_files([a], [])
    check_condition_files([a, a], [m])
    for images, masks, error, match in [
        ([str(tmp_path / "notes.png")], [], ConditionError, "cannot read the condition image .*notes.png"),
        ([str(tmp_path / "cut.png")], [], ConditionError, "cannot read the condition image .*cut.png"),
        ([a], [str(tmp_path / "notes.png")], ConditionError, "cannot read the mask .*notes.png"),
        ([a], [str(tmp_path / "none.png")], FileNotFoundError, "mask not found: .*none.png"),
        ([str(tmp_path / "none.png")], [], FileNotFoundError, "condition image not found"),
        ([], [], ConditionError, "no condition image given"),
        ([a], [m, m], ConditionError, "2 masks for 1 condition images"),
    ]:
        with pytest.raises(error, match=match):
            check_condition_files(images, masks)
        with pytest.raises(error, match=match):  # the same message as when the run loads them
            condition_from_files(images, masks, size=(64, 64))


def _png_header(path, width: int, height: int) -> None:
    """A PNG that declares ``width`` x ``height`` (8-bit grey) and holds no pixels: what a decompression bomb
    shows before it is decoded."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b""))
                     + chunk(b"IEND", b""))


@pytest.mark.parametrize("side, message", [
    (20000, r"is too large: Image size \(400000000 pixels\) exceeds limit .* Here at most 67,108,864 pixels "
            r"\(8192x8192\) are allowed; downscale it first"),  # PIL refuses it as a bomb
    (9000, r"is 9000x9000 = 81,000,000 pixels, more than the 67,108,864 \(8192x8192\) allowed; downscale it first"),
])
def test_a_huge_image_is_refused_from_its_header(tmp_path, side, message):
    _png_header(tmp_path / "bomb.png", side, side)
    for check in (lambda p: check_condition_files([p]), lambda p: load_condition(p, (64, 64))):
        with pytest.raises(ConditionError, match=rf"condition image '.*bomb.png' {message}"):
            check(str(tmp_path / "bomb.png"))
    with pytest.raises(ConditionError, match=r"mask '.*bomb.png' is"):
        Image.new("L", (8, 8)).save(tmp_path / "a.png")
        check_condition_files([str(tmp_path / "a.png")], [str(tmp_path / "bomb.png")])


def test_a_folder_is_named_as_one_with_the_images_inside(tmp_path):
    (tmp_path / "conds").mkdir()
    with pytest.raises(ConditionError, match=r"condition image '.*conds' is a folder; give an image file \(PNG, JPEG, "
                       r"\.\.\.\)$"):
        check_condition_files([str(tmp_path / "conds")])
    Image.new("L", (8, 8)).save(tmp_path / "conds" / "depth.png")
    with pytest.raises(ConditionError, match=r"is a folder; give an image file \(PNG, JPEG, \.\.\.\), such as "
                       r"'.*conds/depth.png'"):
        load_condition(tmp_path / "conds", (8, 8))


def test_wide_images_are_decoded_once_and_stretched_in_float32(tmp_path, monkeypatch):
    """A 16-bit PNG is decoded in place (no copy of the pixels) and stretched in float32 (a quarter of float64's
    memory), exactly as the rational (v - lo) * 255 / (hi - lo) rounds half to even."""
    import tracemalloc
    from fractions import Fraction

    from anyi2v_lab.conditions import _stretch
    rng = np.random.default_rng(0)
    depth = rng.integers(0, 65536, (1000, 1000), dtype=np.uint16)
    depth[0, :2] = 0, 65535
    tracemalloc.start()
    got = _stretch(depth)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 5.5 * depth.size  # one float32 copy and the uint8 result; float64 took 8 bytes a pixel per copy
    values = [0, 1, 257, 32767, 32768, 65535] + rng.integers(0, 65536, 200).tolist()
    for v in values:
        exact = Fraction(v) * 255 / 65535
        assert got[depth == v][:1].tolist() in ([], [round(exact)]), v  # round(): half to even
    odd = np.array([[0, 1, 3]], np.uint16)  # 1 * 255 / 2 = 127.5 -> 128, 3 -> 255; (v - lo) * 255 / 3 ties
    assert (_stretch(odd).tolist() == [[0, 85, 255]]
            and _stretch(np.array([[0, 1, 2]], np.uint16)).tolist() == [[0, 128, 255]])
    Image.fromarray(depth).save(tmp_path / "d.png")

    def no_copy(self):
        raise AssertionError("the decoded pixels were copied")
    monkeypatch.setattr(Image.Image, "copy", no_copy)
    assert np.array_equal(np.asarray(to_rgb(tmp_path / "d.png"))[..., 0], got)
