"""Writing videos without a system ffmpeg: GIF through Pillow, MP4 through imageio-ffmpeg's binary."""
from __future__ import annotations

import numpy as np
from PIL import Image


def write_gif(frames: np.ndarray, path, fps: int = 8) -> None:
    """``frames`` ``(F, H, W, 3)`` uint8 -> looping GIF."""
    images = [Image.fromarray(f) for f in frames]
    images[0].save(path, format="GIF", save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)


def write_mp4(frames: np.ndarray, path, fps: int = 8) -> None:
    """``frames`` ``(F, H, W, 3)`` uint8 -> H.264 MP4 (sides rounded up to even, as yuv420p needs)."""
    import imageio_ffmpeg

    f, h, w, _ = frames.shape
    frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    writer = imageio_ffmpeg.write_frames(str(path), (w + w % 2, h + h % 2), fps=fps, codec="libx264",
                                         pix_fmt_out="yuv420p", macro_block_size=1, quality=8,
                                         output_params=["-f", "mp4"])
    writer.send(None)
    for frame in frames:
        writer.send(np.ascontiguousarray(frame))
    writer.close()


def upscale(frames: np.ndarray, min_side: int = 256) -> np.ndarray:
    """Nearest-neighbour upscaling so that tiny toy videos are visible (factor = whole number)."""
    k = max(1, int(np.ceil(min_side / min(frames.shape[1:3]))))
    return frames.repeat(k, axis=1).repeat(k, axis=2) if k > 1 else frames
