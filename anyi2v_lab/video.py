"""Writing videos without a system ffmpeg: GIF through Pillow, MP4 through imageio-ffmpeg's bundled binary.

MP4s are H.264 in yuv420p, the one pixel format every browser plays; yuv420p needs even sides, so odd
sides are padded by repeating the last row or column (an encoder that silently switches to yuv444p for
odd sizes writes files that Firefox and Safari refuse).
"""
from __future__ import annotations

import numbers

import numpy as np
from PIL import Image


def _check(frames, fps) -> np.ndarray:
    if not isinstance(frames, np.ndarray) or frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] < 1:
        shape = getattr(frames, "shape", type(frames).__name__)
        raise ValueError(f"frames has shape {shape}; expected a numpy array (frames, height, width, 3) with at "
                         "least one frame")
    if frames.dtype != np.uint8:
        raise ValueError(f"frames has dtype {frames.dtype}; expected uint8 (0-255), e.g. "
                         "(np.clip(x, 0, 1) * 255).round().astype(np.uint8)")
    if frames.shape[1] < 1 or frames.shape[2] < 1:
        raise ValueError(f"frames has shape {frames.shape}; height and width must be at least 1")
    if isinstance(fps, bool) or not isinstance(fps, numbers.Real) or not 0 < fps <= 1000:
        raise ValueError(f"fps = {fps!r} must be a positive number of frames per second, e.g. 8")
    return frames


def write_gif(frames: np.ndarray, path, fps: int = 8) -> None:
    """``frames`` ``(F, H, W, 3)`` uint8 -> looping GIF (Pillow; GIF delays are whole centiseconds)."""
    frames = _check(frames, fps)
    images = [Image.fromarray(f) for f in frames]
    images[0].save(path, format="GIF", save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)


def write_mp4(frames: np.ndarray, path, fps: int = 8) -> None:
    """``frames`` ``(F, H, W, 3)`` uint8 -> H.264 yuv420p MP4 (odd sides padded to even by edge repeat)."""
    import imageio_ffmpeg

    frames = _check(frames, fps)
    _, h, w, _ = frames.shape
    frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    writer = imageio_ffmpeg.write_frames(str(path), (w + w % 2, h + h % 2), fps=fps, codec="libx264",
                                         pix_fmt_out="yuv420p", macro_block_size=1, quality=8,
                                         output_params=["-f", "mp4"])
    writer.send(None)
    try:
        for frame in frames:
            writer.send(np.ascontiguousarray(frame))
    finally:
        writer.close()


def upscale(frames: np.ndarray, min_side: int = 256) -> np.ndarray:
    """Nearest-neighbour upscaling so that tiny toy videos are visible (factor = whole number)."""
    k = max(1, int(np.ceil(min_side / min(frames.shape[1:3]))))
    return frames.repeat(k, axis=1).repeat(k, axis=2) if k > 1 else frames
