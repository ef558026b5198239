"""Shared fixtures: tiny random models, offline, seeded."""
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

# the test folders mirror the package; ``helpers`` (file-layout writers) sits beside them
sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture(scope="session")
def tiny_pipe():
    from anyi2v_lab.models.tiny import tiny_pipeline

    return tiny_pipeline(seed=0)


@pytest.fixture(scope="session")
def tiny_unet(tiny_pipe):
    return tiny_pipe.unet


@pytest.fixture(scope="session")
def sd15_unet():
    from anyi2v_lab.models.tiny import sd15_motion_unet

    return sd15_motion_unet()


@pytest.fixture
def unet_inputs():
    """A seeded UNetMotionModel input: 1 video of 6 frames at 16x16 latents, per-frame embeddings."""
    from anyi2v_lab.layout import per_frame

    g = torch.Generator().manual_seed(0)
    sample = torch.randn(1, 4, 6, 16, 16, generator=g)
    ehs = per_frame(torch.randn(1, 77, 32, generator=g), 6)
    return sample, 500, ehs


@pytest.fixture(scope="session")
def tiny_wan_pipe():
    from anyi2v_lab.models.tiny_wan import tiny_wan_pipeline

    return tiny_wan_pipeline(seed=0)


@pytest.fixture(scope="session")
def tiny_wan(tiny_wan_pipe):
    return tiny_wan_pipe.transformer


@pytest.fixture
def wan_inputs():
    """A seeded WanTransformer3DModel input: 1 video of 3 latent frames at 4x4 latents (2x2 tokens a
    frame), 16 text tokens."""
    g = torch.Generator().manual_seed(0)
    return torch.randn(1, 16, 3, 4, 4, generator=g), torch.tensor([500.0]), torch.randn(1, 16, 32, generator=g)


@pytest.fixture(scope="session")
def image():
    """A 128 x 128 condition image: a red square on a blue ramp."""
    img = np.zeros((128, 128, 3), np.uint8)
    img[40:90, 30:80] = (250, 40, 40)
    img[:, :, 2] += np.linspace(0, 120, 128, dtype=np.uint8)[None]
    return img
