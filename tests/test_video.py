"""Video writing: MP4 and GIF read back (frame count, size, pixel values, browser-playable encoding)."""
import re
import subprocess

import imageio_ffmpeg
import numpy as np
import pytest
from PIL import Image

from anyi2v_lab.video import upscale, write_gif, write_mp4


def _frames(f=6, h=32, w=48, seed=0):
    """Smooth, distinct frames: a bright square that moves right on a colour gradient (codec-friendly)."""
    yy, xx = np.mgrid[0:h, 0:w]
    out = np.empty((f, h, w, 3), np.uint8)
    for i in range(f):
        img = np.stack([xx * 255 // max(w - 1, 1), yy * 255 // max(h - 1, 1), np.full_like(xx, 60)], -1)
        x0 = 2 + 4 * i
        img[h // 4: h // 4 + 10, x0: x0 + 10] = 250
        out[i] = img
    return out


def _read_mp4(path):
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    w, h = meta["size"]
    frames = np.stack([np.frombuffer(b, np.uint8).reshape(h, w, 3) for b in reader])
    return meta, frames


def _stream_info(path) -> str:
    err = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)],
                         capture_output=True, text=True).stderr
    return next(line for line in err.splitlines() if "Video:" in line)


def test_mp4_round_trip(tmp_path):
    frames = _frames()
    write_mp4(frames, tmp_path / "v.mp4", fps=8)
    meta, back = _read_mp4(tmp_path / "v.mp4")
    assert back.shape == frames.shape
    assert meta["fps"] == pytest.approx(8)
    err = np.abs(back.astype(int) - frames.astype(int))
    assert err.mean() < 4 and np.percentile(err, 99) < 40  # lossy H.264 at quality 8, chroma subsampled
    # the moving square is where it was drawn, in every frame
    for i in range(len(frames)):
        x0 = 2 + 4 * i
        assert back[i, 8 + 3: 8 + 7, x0 + 3: x0 + 7].mean() > 220


def test_mp4_is_browser_playable_h264_yuv420p(tmp_path):
    write_mp4(_frames(), tmp_path / "v.mp4")
    info = _stream_info(tmp_path / "v.mp4")
    assert "h264" in info and "yuv420p" in info and "48x32" in info


def test_mp4_odd_sides_are_padded_to_even(tmp_path):
    frames = _frames(f=3, h=31, w=47)
    write_mp4(frames, tmp_path / "odd.mp4")
    info = _stream_info(tmp_path / "odd.mp4")
    assert "yuv420p" in info and "48x32" in re.sub(r"\s", "", info)
    _, back = _read_mp4(tmp_path / "odd.mp4")
    assert back.shape == (3, 32, 48, 3)
    assert np.abs(back[:, :31, :47].astype(int) - frames.astype(int)).mean() < 4


def test_single_frame_mp4_and_gif(tmp_path):
    frames = _frames(f=1)
    write_mp4(frames, tmp_path / "one.mp4")
    write_gif(frames, tmp_path / "one.gif")
    assert _read_mp4(tmp_path / "one.mp4")[1].shape == (1, 32, 48, 3)
    with Image.open(tmp_path / "one.gif") as im:
        assert im.n_frames == 1


def test_gif_round_trip(tmp_path):
    frames = _frames()
    write_gif(frames, tmp_path / "v.gif", fps=8)
    with Image.open(tmp_path / "v.gif") as im:
        assert im.n_frames == len(frames) and im.size == (48, 32)
        assert im.info["loop"] == 0 and abs(im.info["duration"] - 125) < 10  # whole centiseconds
        back = []
        for i in range(im.n_frames):
            im.seek(i)
            back.append(np.asarray(im.convert("RGB")))
    back = np.stack(back)
    assert np.abs(back.astype(int) - frames.astype(int)).mean() < 6  # 256-colour palette


@pytest.mark.parametrize("bad, match", [
    (np.zeros((4, 8, 8), np.uint8), "shape"),
    (np.zeros((0, 8, 8, 3), np.uint8), "at least one frame"),
    (np.zeros((2, 8, 8, 3), np.float32), "uint8"),
    ([[0]], "shape"),
])
@pytest.mark.parametrize("writer", [write_mp4, write_gif])
def test_bad_frames_name_the_argument(tmp_path, writer, bad, match):
    with pytest.raises(ValueError, match=f"frames.*{match}|{match}.*frames"):
        writer(bad, tmp_path / "x")
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("fps", [0, -1, True, "8"])
def test_bad_fps(tmp_path, fps):
    with pytest.raises(ValueError, match="fps"):
        write_mp4(_frames(f=2), tmp_path / "x.mp4", fps=fps)


def test_upscale_is_whole_number_nearest_neighbour():
    frames = _frames(f=2, h=10, w=20)
    big = upscale(frames, min_side=25)
    assert big.shape == (2, 30, 60, 3)
    assert np.array_equal(big[:, ::3, ::3], frames)
    assert upscale(frames, min_side=5) is frames
