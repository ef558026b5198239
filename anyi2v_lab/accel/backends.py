"""Process-level settings a run switches on for its duration: SDPA kernel, cuDNN autotuning, layout."""
from __future__ import annotations

from contextlib import ExitStack, contextmanager

import torch


def _sdpa_order(name: str):
    from torch.nn.attention import SDPBackend

    b = SDPBackend
    return {"flash": [b.FLASH_ATTENTION, b.EFFICIENT_ATTENTION, b.MATH],
            "efficient": [b.EFFICIENT_ATTENTION, b.FLASH_ATTENTION, b.MATH],
            "cudnn": [b.CUDNN_ATTENTION, b.FLASH_ATTENTION, b.EFFICIENT_ATTENTION, b.MATH],
            "math": [b.MATH]}[name]


@contextmanager
def backend_settings(runtime, device="cuda"):
    """``runtime``'s (a :class:`~anyi2v_lab.accel.Runtime`) preferred SDPA kernel (others stay as
    fallbacks; CUDA only, a CPU keeps PyTorch's choice) and cuDNN autotuning, restored on exit."""
    with ExitStack() as stack:
        if runtime.attention != "auto" and torch.device(device).type == "cuda":
            from torch.nn.attention import sdpa_kernel
            stack.enter_context(sdpa_kernel(_sdpa_order(runtime.attention), set_priority=True))
        previous = torch.backends.cudnn.benchmark
        torch.backends.cudnn.benchmark = previous or runtime.cudnn_benchmark
        stack.callback(setattr, torch.backends.cudnn, "benchmark", previous)
        yield


def prepare_layout(pipe, runtime) -> None:
    """Put the UNet's and the VAE's conv weights in the runtime's memory format (no-op if they are).

    Kept after the run: converting back and forth every call would cost more than it saves."""
    if runtime.channels_last is None:
        return
    fmt = torch.channels_last if runtime.channels_last else torch.contiguous_format
    for model in (pipe.unet, pipe.vae):
        conv = next((m for m in model.modules() if isinstance(m, torch.nn.Conv2d)), None)
        if conv is not None and not conv.weight.is_contiguous(memory_format=fmt):
            model.to(memory_format=fmt)
