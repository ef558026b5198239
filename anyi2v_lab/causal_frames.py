"""How Wan's causal VAE groups video frames into latent frames: frame 0 alone, then ``WAN_TEMPORAL`` each.

A video of ``4k + 1`` frames is ``k + 1`` latent frames; latent frame ``j >= 1`` encodes video frames
``4j - 3 .. 4j``.
"""
from __future__ import annotations

WAN_TEMPORAL = 4


def latent_frame_count(num_frames: int, temporal: int = WAN_TEMPORAL) -> int:
    """Latent frames of a ``num_frames`` video (``num_frames - 1`` a multiple of ``temporal``)."""
    return (num_frames - 1) // temporal + 1


def video_frames_of(latent_frame: int, temporal: int = WAN_TEMPORAL) -> range:
    """The video frames a latent frame encodes: frame 0 alone, then ``temporal`` each."""
    if latent_frame < 0:
        raise ValueError(f"latent_frame={latent_frame} must be >= 0")
    return range(0, 1) if latent_frame == 0 else range(temporal * (latent_frame - 1) + 1, temporal * latent_frame + 1)


def latent_frame_of(video_frame: int, temporal: int = WAN_TEMPORAL) -> int:
    """The latent frame that encodes ``video_frame`` (inverse of :func:`video_frames_of`)."""
    if video_frame < 0:
        raise ValueError(f"video_frame={video_frame} must be >= 0")
    return 0 if video_frame == 0 else (video_frame - 1) // temporal + 1
