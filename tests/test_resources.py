"""The memory estimate: its formula against measured peaks, the refusal of sizes that cannot fit, and the
free memory of a device."""
import sys

import pytest

from anyi2v_lab import resources
from anyi2v_lab.method.config import AnyI2VConfig
from anyi2v_lab.resources import (
    SD15_UNET,
    MemoryLimitError,
    available_memory,
    check_memory,
    estimate_generation,
    model_footprint,
)

GIB = 2**30


def test_8192_px_at_16_frames_is_refused_and_the_demos_size_is_accepted(monkeypatch):
    huge = estimate_generation(SD15_UNET, AnyI2VConfig(), (8192, 8192), element_size=2)
    assert huge.total > 1000 * GIB  # an H100 has 80 GB
    monkeypatch.setattr(resources, "available_memory", lambda device: (80 * GIB, "free GPU memory"))
    with pytest.raises(MemoryLimitError) as e:
        check_memory(huge, "cuda:0")
    message = str(e.value)
    assert message.startswith("height=8192, width=8192, num_frames=16 need an estimated ~")
    assert "but cuda:0 has 80.0 GiB of free GPU memory: " in message
    assert "lower height, width or num_frames" in message
    assert "--no-memory-check (Python: generate(..., memory_check=False))" in message
    monkeypatch.undo()
    toy = model_footprint(None)  # the demo: the embedded toy model, 128 px, 8 frames, on CPU
    demo = estimate_generation(toy["unet"], AnyI2VConfig(num_frames=8), (128, 128), vae_config=toy["vae"],
                               weights=toy["weights"])
    assert demo.total < GIB
    check_memory(demo, "cpu")  # this machine's real free RAM


def test_the_formula_against_measured_peaks():
    """Measured, the toy model on CPU in float32 at 16 frames, one thread: peak RSS 346 MiB above the loaded
    model at 64 px, 1221 MiB at 128 px. SD1.5 + AnimateDiff on an H100 in float16 at 512 px and 16 frames
    (docs/lab-notes.md, benchmarks/README.md, README.md): decoding 4 frames at once 2.17 GB above the
    model, 16 frames 8.59 GB; peak allocated with about 3 GB of weights 24.9 GB for optimisation passes
    through the whole UNet, 5.6 GB for Runtime.low_mem(). The estimate is an upper one within 25 %."""
    from anyi2v_lab.accel import Runtime

    toy = model_footprint(None)
    cfg = AnyI2VConfig(num_frames=16)
    for px, measured in ((64, 346), (128, 1221)):
        est = estimate_generation(toy["unet"], cfg, (px, px), vae_config=toy["vae"]).total / 2**20
        assert 0.85 * measured < est < 1.25 * measured, (px, est)

    def sd15(runtime):
        return estimate_generation(SD15_UNET, cfg, (512, 512), element_size=2, runtime=runtime)
    assert 2.17e9 < sd15(None).decode < 1.1 * 2.17e9
    assert 8.59e9 < sd15(Runtime(decode_chunk=16)).decode < 1.1 * 8.59e9
    assert 24.9e9 < sd15(Runtime(truncate=False)).total + 3e9 < 1.25 * 24.9e9
    assert 5.6e9 < sd15(Runtime.low_mem()).total + 3e9 < 1.25 * 5.6e9


def test_the_estimate_grows_with_pixels_and_frames_and_drops_parts_that_do_not_run():
    cfg = AnyI2VConfig(num_frames=8)
    small = estimate_generation(SD15_UNET, cfg, (256, 256))
    assert estimate_generation(SD15_UNET, cfg, (512, 512)).sampling == 4 * small.sampling
    assert estimate_generation(SD15_UNET, cfg.replace(num_frames=16), (256, 256)).sampling == 2 * small.sampling
    assert estimate_generation(SD15_UNET, cfg, (256, 256), trajectory=False).optimisation == 0
    assert estimate_generation(SD15_UNET, cfg.replace(optimisation=False), (256, 256)).optimisation == 0
    assert estimate_generation(SD15_UNET, cfg.replace(guidance_scale=1.0), (256, 256)).sampling == small.sampling // 2


def test_free_memory_of_the_cpu_with_and_without_psutil(monkeypatch):
    free, what = available_memory("cpu")
    assert free > 0 and what == "available RAM"
    monkeypatch.setitem(sys.modules, "psutil", None)  # not installed: /proc/meminfo
    again = available_memory("cpu")
    assert again is not None and 0.5 * free < again[0] < 2 * free


def test_a_model_is_measured_from_its_files_without_loading(tmp_path):
    toy = model_footprint(None)
    assert toy["unet"]["block_out_channels"] == [64, 128, 128] and toy["max_frames"] == 32
    assert 10 * 2**20 < toy["weights"] < 50 * 2**20
    hub = model_footprint("stable-diffusion-v1-5/stable-diffusion-v1-5")  # not local: SD1.5's shape
    assert hub["unet"] == SD15_UNET and hub["weights"] == 0 and hub["max_frames"] is None
    assert model_footprint("tiny")["unet"]["block_out_channels"] == (16, 32, 32, 32)
