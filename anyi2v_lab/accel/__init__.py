"""Running AnyI2V fast: runtime options, CUDA graphs, regional compilation, memory savers.

>>> from anyi2v_lab.accel import Runtime
>>> generate(pipe, cond, prompt, traj, runtime=Runtime.fast())        # compiled blocks, graphs
>>> generate(pipe, cond, prompt, traj, runtime=Runtime.low_mem())     # fits 12 GB GPUs
>>> generate(pipe, cond, prompt, traj, runtime=Runtime.baseline())    # the reference's way
"""
from .graphs import GraphedCall, clear_graphs, graph_memory, graphed, unet_graph
from .memory import checkpointed_blocks, decode_video, frozen
from .regions import compile_units, compiled_regions, eligible_units, hooked_modules
from .runtime import Runtime, RuntimeOptionError
from .settings import backend_settings, prepare_layout
from .sync import timestep_tensor
from .timing import PhaseTimer

__all__ = ["GraphedCall", "clear_graphs", "graph_memory", "graphed", "unet_graph", "checkpointed_blocks", "decode_video", "frozen",
           "compile_units", "compiled_regions", "eligible_units", "hooked_modules", "Runtime",
           "RuntimeOptionError", "backend_settings", "prepare_layout", "PhaseTimer", "timestep_tensor"]
