"""Running AnyI2V fast, attached from outside the method: a :class:`Runtime` binds to a pipeline and
hands :func:`~anyi2v_lab.method.generate` faster calls that compute the same (CUDA graphs, regional
compilation, overlapped PCA fits, memory savers, a phase timer).

>>> from anyi2v_lab.accel import Runtime
>>> generate(pipe, cond, prompt, traj, runtime=Runtime.fast())        # compiled blocks, graphs
>>> generate(pipe, cond, prompt, traj, runtime=Runtime.low_mem())     # fits 12 GB GPUs
>>> generate(pipe, cond, prompt, traj, runtime=Runtime.baseline())    # the reference's way
"""
from . import graphs
from .backends import backend_settings, prepare_layout
from .bound import BoundRuntime, timestep_tensor
from .checkpointing import checkpointed_blocks
from .graphs import GraphedCall, clear_graphs, graph_memory, graphed, unet_graph
from .regions import compile_units, compiled_regions, eligible_units, hooked_modules
from .runtime import Runtime, RuntimeOptionError
from .timing import PhaseTimer

__all__ = ["graphs", "backend_settings", "prepare_layout", "BoundRuntime", "timestep_tensor", "checkpointed_blocks",
           "GraphedCall", "clear_graphs", "graph_memory", "graphed", "unet_graph", "compile_units", "compiled_regions",
           "eligible_units", "hooked_modules", "Runtime", "RuntimeOptionError", "PhaseTimer"]
