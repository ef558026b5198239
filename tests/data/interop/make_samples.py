"""Writes the small sample files of each peer format in this folder, from their definitions (see
docs/trajectory-formats.md), with plain numpy / torch / json and none of anyi2v_lab's writers, so that
the tests read files made independently of the code under test. Run from the repository root:

    python tests/data/interop/make_samples.py
"""
import io
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

HERE = Path(__file__).parent


def blank(path, size, fmt=None):
    Image.new("RGB", size, (90, 120, 150)).save(path, format=fmt)


def reference():
    # two objects in the reference's 512x512 image; object 0 grows to a larger target box
    doc = {
        "bounding_box": [[100, 200, 180, 260], [300, 50, 360, 130]],
        "target_box": [[90, 190, 190, 270], [300, 50, 360, 130]],
        "center_traj": [[[140 + 10 * i, 230] for i in range(16)], [[330, 90 + 4 * i] for i in range(16)]],
        "query_point": [[[120, 220], [160, 240]], [[330, 90]]],
    }
    (HERE / "reference.json").write_text(json.dumps(doc, indent=1) + "\n")


def sgi2v():
    d = HERE / "sgi2v"
    d.mkdir(exist_ok=True)
    blank(d / "img.png", (128, 72))
    a = np.zeros((2, 2 + 14, 2))
    a[0, :2] = [[10, 20], [40, 50]]
    a[0, 2:] = [[25 + 2 * i, 35] for i in range(14)]
    a[1, :2] = [[80, 10], [110, 30]]
    a[1, 2:] = [[95, 20 + i] for i in range(14)]
    np.save(d / "traj.npy", a)


def draganything():
    d = HERE / "draganything"
    d.mkdir(exist_ok=True)
    blank(d / "demo.jpg", (96, 64), "JPEG")
    m = np.zeros((64, 96), np.uint8)
    m[20:40, 10:30] = 255
    Image.fromarray(m).save(d / "1_ball.png")
    m = np.zeros((64, 96), np.uint8)
    m[0:16, 60:90] = 255
    Image.fromarray(m).save(d / "2_sky.jpg", quality=95)
    doc = {
        "1": {"comment": "ball rolls right", "mask_name": "1_ball.png",
              "trajectory": [[18 + i, 32] for i in range(20)]},  # starts off the mask's centre
        "2": {"comment": "keep sky", "mask_name": "2_sky.jpg", "trajectory": [[75, 8]] * 20},
    }
    (d / "demo.json").write_text(json.dumps(doc) + "\n")


def mofa():
    # the Gradio state: two drags, the second a single click (a point held in place)
    (HERE / "mofa_tracks.json").write_text(json.dumps([[[10, 10], [30, 12], [50, 20]], [[60, 40]]]) + "\n")


def ati():
    f = np.arange(121)
    a = np.zeros((2, 121, 1, 3), np.float32)
    a[0, :, 0] = np.stack([20 + 0.5 * f, np.full(121, 30.0), np.ones(121)], -1)
    a[1, :100, 0] = np.stack([np.full(100, 100.0), 10 + 0.25 * f[:100], np.ones(100)], -1)  # then padded
    bio = io.BytesIO()
    np.savez_compressed(bio, array=8 * a)
    torch.save(bio.getvalue(), HERE / "ati_tracks.pth")


def wanmove():
    d = HERE / "wanmove"
    d.mkdir(exist_ok=True)
    blank(d / "input_image.jpg", (160, 96), "JPEG")
    f = np.arange(81)
    t = np.stack([np.stack([40 + f, np.full(81, 50.0)], -1), np.stack([np.full(81, 10.0), 10 + 0.5 * f], -1)], 1)
    v = np.ones((81, 2), bool)
    v[30:50, 1] = False  # the second point is occluded for 20 frames
    np.save(d / "tracks.npy", t[None].astype(np.float32))
    np.save(d / "visibility.npy", v[None])


if __name__ == "__main__":
    for make in (reference, sgi2v, draganything, mofa, ati, wanmove):
        make()
