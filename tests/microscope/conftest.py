"""One small generation with everything the microscope reads, shared by the microscope tests."""
import numpy as np
import pytest

from anyi2v_lab.method import AnyI2VConfig, generate
from anyi2v_lab.microscope import microscope_capture
from anyi2v_lab.trajectory import Trajectory

CONFIG = AnyI2VConfig(num_frames=4, num_inference_steps=3, inversion_timestep=21, load_feature_step=2, opt_step=1,
                      opt_iters=2)


@pytest.fixture(scope="package")
def micro_result(tiny_pipe, image):
    traj = Trajectory.single((20, 20, 60, 60), [(40, 40), (80, 40)], image_size=(128, 128), query_points=[(40, 40)])
    return generate(tiny_pipe, image, "a red square", traj, CONFIG, seed=0, progress=False, keep_x0=True,
                    keep_masks=True, capture=microscope_capture(tiny_pipe, CONFIG))


@pytest.fixture(scope="package")
def micro_data(micro_result, tiny_pipe):
    from anyi2v_lab.microscope import MicroscopeData

    return MicroscopeData.from_result(micro_result, tiny_pipe)


@pytest.fixture
def frames4():
    return np.zeros((4, 128, 128, 3), np.uint8)
