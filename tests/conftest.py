"""Shared fixtures: tiny random models, offline, seeded."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# OpenMP workers that busy-wait make torch 20x slower when other processes share the 2 cores
# (notebook kernels started by nbmake inherit this; it must be set before torch is imported).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")

import pytest
import torch

# 2 threads on CI's idle 2 cores; ANYI2V_TEST_THREADS=1 on a busy machine (OpenMP oversubscription
# slows tiny models down by 5x or more when other processes share the cores).
torch.set_num_threads(int(os.environ.get("ANYI2V_TEST_THREADS", min(2, torch.get_num_threads()))))


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
