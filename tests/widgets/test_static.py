"""What a notebook shows where no kernel runs the widgets (GitHub, nbviewer, an HTML export): each
widget's display bundle keeps the live view and adds a PNG of its state and a sentence."""
import base64
import io

import numpy as np
import pytest
from PIL import Image

from anyi2v_lab.overlay import COLOURS
from anyi2v_lab.trajectory import Trajectory
from anyi2v_lab.widgets import FeatureViewer, TrajectoryCanvas, VideoPlayer
from anyi2v_lab.widgets.buffers import split_buffers
from anyi2v_lab.widgets.static import WIDGET_VIEW

FRAME_COLOURS = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (200, 200, 30)]


def picture(widget) -> tuple[np.ndarray, str, dict]:
    """The PNG a viewer without a kernel shows, the sentence, and the whole bundle."""
    data, _ = widget._repr_mimebundle_()
    assert WIDGET_VIEW in data, "the live view must stay in the bundle"
    png = np.asarray(Image.open(io.BytesIO(base64.b64decode(data["image/png"]))).convert("RGB"))
    return png, data["text/plain"], data


def has_colour(png: np.ndarray, rgb, tol: int = 2) -> bool:
    return bool((np.abs(png.astype(int) - rgb).max(-1) <= tol).any())


@pytest.fixture
def video():
    """Four frames, one solid colour each, 32 x 32."""
    return np.stack([np.full((32, 32, 3), c, np.uint8) for c in FRAME_COLOURS])


def test_the_canvas_picture_shows_the_image_box_and_path(image):
    traj = Trajectory.single((20, 20, 60, 60), [(40, 40), (100, 90)], image_size=(128, 128), query_points=[(40, 40)])
    png, text, _ = picture(TrajectoryCanvas(image, trajectory=traj, num_frames=8, display_width=256))
    assert png.shape[1] >= 256
    assert has_colour(png, image[60, 50], 0) and has_colour(png, COLOURS[0], 0)  # the image's square, the object
    assert text.startswith("TrajectoryCanvas, 8 frames on the 128x128 image: ") and "2 path points" in text
    _, empty, _ = picture(TrajectoryCanvas(image))
    assert empty == "TrajectoryCanvas: nothing drawn yet on the 128x128 image"


def test_the_player_picture_shows_every_frame_with_its_box(video):
    boxes = np.array([[[4, 4, 12, 12], [8, 8, 16, 16], [12, 12, 20, 20], [16, 16, 24, 24]]], float)
    png, text, _ = picture(VideoPlayer(video, boxes=boxes, fps=4, caption="run x"))
    assert all(has_colour(png, c) for c in FRAME_COLOURS), "one panel per frame"
    assert has_colour(png, COLOURS[0])
    assert text == "VideoPlayer: 4 frames of 32x32 at 4 fps with 1 box; run x"


def test_a_long_video_shows_eight_frames_first_and_last_included():
    frames = np.stack([np.full((16, 16, 3), 10 * j, np.uint8) for j in range(20)])
    png, _, _ = picture(VideoPlayer(frames))
    assert has_colour(png, (0, 0, 0), 0) and has_colour(png, (190, 190, 190), 0)
    assert not has_colour(png, (10, 10, 10), 0)  # frame 1 is not among the eight spread over 20


def test_the_viewer_picture_shows_frame_features_and_attention(video):
    import torch

    g = torch.Generator().manual_seed(0)
    feats = torch.randn(4, 8, 4, 4, generator=g)
    probs = torch.softmax(torch.randn(4, 2, 16, 16, generator=g), -1)
    boxes = np.array([[[4, 4, 12, 12]] * 4], float)
    viewer = FeatureViewer(features={"up.attn": feats}, probs={"up.attn.probs": probs}, frames=video, boxes=boxes,
                           query=[8.0, 8.0], frame=2)
    png, text, _ = picture(viewer)
    assert has_colour(png, FRAME_COLOURS[2]) and not has_colour(png, FRAME_COLOURS[0])  # the current frame
    assert png.shape[1] > 3 * 256  # three panels
    assert text == "FeatureViewer at frame 3 of 4: PCA-RGB of 1 hook point, attention of 1"


def test_a_picture_that_fails_keeps_the_live_view(video, monkeypatch):
    player = VideoPlayer(video)
    monkeypatch.setattr(VideoPlayer, "snapshot", lambda self: 1 / 0)
    data, _ = player._repr_mimebundle_()
    assert WIDGET_VIEW in data and "image/png" not in data
    assert data["text/plain"] == "VideoPlayer (no static picture: ZeroDivisionError: division by zero)"


def test_split_buffers_lists_every_bytes_with_its_path():
    state, paths, buffers = split_buffers({"a": [b"x", 1], "b": {"c": b"yz", "d": "s"}})
    assert state == {"a": [None, 1], "b": {"c": None, "d": "s"}}
    assert paths == [["a", 0], ["b", "c"]] and buffers == [b"x", b"yz"]
