"""FlopCount: per-phase FLOPs of a generation, counted from outside the method (tiny model, CPU)."""
from contextlib import contextmanager

import numpy as np
import pytest
import torch

from anyi2v_lab.accel import Runtime
from anyi2v_lab.accel.flops import FlopCount, op_kind
from anyi2v_lab.method import AnyI2VConfig, generate
from anyi2v_lab.trajectory import Trajectory

SMALL = dict(num_frames=2, num_inference_steps=2, inversion_timestep=5, load_feature_step=1, opt_step=0, opt_iters=1)


class _StubCalls:
    @contextmanager
    def running(self, config, optimises):
        yield

    @contextmanager
    def phase(self, name):
        yield


class _StubRuntime:
    def replace(self, **changes):
        return self

    def bind(self, pipe):
        return _StubCalls()


def test_counts_a_known_product_per_phase():
    counter = FlopCount(_StubRuntime())
    calls = counter.bind(None)
    a, b = torch.randn(8, 16), torch.randn(16, 4)
    with calls.running(None, False):
        with calls.phase("sampling"):
            a @ b
        with calls.phase("decode"):
            torch.nn.functional.conv2d(torch.randn(1, 2, 5, 5), torch.randn(3, 2, 3, 3))
        with calls.phase("sampling"):
            a @ b
    out = counter.summary()
    assert out["phases"]["sampling"] == 2 * (2 * 8 * 16 * 4)
    assert out["phases"]["decode"] == 2 * 3 * 2 * 9 * 9  # 2 x out channels x in channels x taps x outputs
    assert out["by_kind"] == {"sampling": {"matmul": 2048}, "decode": {"convolution": 972}}


def test_op_kind():
    aten = torch.ops.aten
    assert op_kind(aten.addmm) == "matmul" and op_kind(aten.convolution_backward) == "convolution"
    assert op_kind(aten._scaled_dot_product_flash_attention_for_cpu) == "attention"


@pytest.fixture(scope="module")
def counted(tiny_pipe, image):
    traj = Trajectory.single((20, 20, 60, 60), [(40, 40), (80, 40)], image_size=(128, 128), query_points=[(40, 40)])
    out = {}
    for name, rt in (("baseline", Runtime.baseline()), ("default", Runtime())):
        counter = FlopCount(rt)
        res = generate(tiny_pipe, image, "a red square", traj, AnyI2VConfig(**SMALL), seed=1, progress=False,
                       runtime=counter, inversion_cache=None)
        out[name] = (counter.summary(), res.video)
    return out


def test_every_phase_counted_and_split(counted):
    summary, video = counted["default"]
    phases = summary["phases"]
    for ph in ("inversion", "optimisation", "sampling", "decode"):
        assert phases[ph] > 0, ph
        assert sum(summary["by_kind"][ph].values()) == phases[ph]
    assert phases["total"] >= sum(phases[p] for p in ("inversion", "optimisation", "sampling", "decode"))
    assert summary["by_kind"]["sampling"]["attention"] > 0  # the CPU attention kernel is counted
    assert np.isfinite(video).all()


def test_truncation_shows_in_the_optimisation_count(counted):
    base, default = counted["baseline"][0]["phases"], counted["default"][0]["phases"]
    assert base["sampling"] == default["sampling"] and base["inversion"] == default["inversion"]
    assert base["optimisation"] > default["optimisation"]  # the baseline's forwards run past the last aligned layer
