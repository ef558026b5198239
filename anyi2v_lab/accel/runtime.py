"""How to run the method, as opposed to what it computes (:class:`~anyi2v_lab.method.AnyI2VConfig`).

Every setting here keeps the results within fp16 noise of the reference's way of running: it changes
speed and memory, never the paper's hyper-parameters. ``Runtime.baseline()`` keeps the reference's
choices (optimisation forwards stopped after ``up_blocks[2]``, eager, no graph capture, diffusers'
16-frame decode) and is what ``benchmarks/gpu_pipeline.py`` measures the fast paths against.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from .bound import BoundRuntime
from .truncation import REFERENCE_STOP, check_block

COMPILE = (False, "regional", "sampling")
ATTENTION = ("auto", "flash", "efficient", "cudnn", "math")


class RuntimeOptionError(ValueError):
    """An impossible or unknown runtime setting."""


@dataclass(frozen=True)
class Runtime:
    """Performance options for :func:`~anyi2v_lab.method.generate`; ``bind(pipe)`` gives the calls it makes.

    * ``truncate``: where the optimisation forwards stop. ``True``: after the last aligned layer (the
      query of ``up_blocks.1.attentions.1`` for the paper's layers); a block path such as
      ``"up_blocks.2"``: after that block, as the reference does; ``False``: the whole UNet. What runs
      after the last aligned layer gets no gradient, so every choice gives the same latents
      (:mod:`~anyi2v_lab.accel.truncation`).
    * ``cuda_graphs``: replay the inversion's hook-free UNet calls from one CUDA graph; ``"auto"``
      turns it on for CUDA devices.
    * ``graph_optimisation``: with CUDA graphs on, the optimisation passes replay one captured
      truncated forward and its backward, and the loss its own captured graph
      (:mod:`~anyi2v_lab.accel.optimisation_graphs`): eager, a pass is bound by kernel launches.
      Captured once per shape and settings; its memory pool stays reserved for later generations.
    * ``graph_sampling``: with CUDA graphs on, the sampling steps that carry no hook (after the
      injection window, and only when the call has no edits or captures of its own) replay one
      captured CFG step. Off by default: in a fresh process the capture costs about as much as its
      replays save; ``fast()``, which warms up, turns it on.
    * ``share_graph_pool``: the inversion, sampling and optimisation-pass graphs capture into one
      memory pool instead of one each (``accel.graphs`` says why that is safe): less memory held
      between videos, the same video bit for bit.
    * ``compile``: ``"regional"`` compiles every repeated block (ResNet, spatial transformer, motion
      module, up/down sampler) that carries no hook of the run, for sampling and optimisation;
      ``"sampling"`` only for the sampling forwards (half the compile time). Compiled code is cached
      per process (and on disk by Inductor), so the cost is paid once a session.
    * ``compile_levels``: compile only the blocks of the N finest resolution levels (``None``: all).
      The fine levels hold the large, memory-bound activations that fusion speeds up most.
    * ``compile_inversion``: compile the image model's blocks (all levels) for the inversion's graphed
      single-frame calls, many short kernels that fusion merges. Only with CUDA graphs (an eager
      compiled call would pay Dynamo's guards on every block, at every call).
    * ``channels_last``: put conv weights (UNet and VAE) in NHWC; ``None`` leaves the model as it is.
    * ``attention``: preferred SDPA kernel on CUDA; ``"auto"`` is PyTorch's own choice (cuDNN's
      attention on an H100), the fastest once running but built at first use in every process. So
      the default is ``"flash"``, and ``fast()``, which warms up, keeps ``"auto"``.
    * ``cudnn_benchmark``: let cuDNN time its convolution algorithms once per shape. Off by default
      (a fresh process would time every forward and backward shape); after a warm-up it pays (``fast()``).
    * ``overlap_pca``: on CUDA, start each aligned layer's PCA fit (an ``eigh`` that holds its thread
      until the GPU is done) on a side stream as soon as the forward has produced the layer, so it
      runs while the forward goes on; in a graphed pass, when an event recorded inside the graph
      fires. Off with ``low_memory`` (its backward re-runs the forward).
    * ``low_memory``: gradient checkpointing of every block in the optimisation passes and a
      frame-by-frame VAE decode, for 12 GB GPUs (a slower optimisation).
    * ``decode_chunk``: frames per VAE decode call; ``None``: 4, or 1 with ``low_memory``. The decode is
      the job's largest eager peak, about proportional to the frames decoded at once. ``baseline()``
      keeps diffusers' 16.
    * ``compile_cache``: where a compiling runtime (Inductor backend) keeps its compiled code across
      processes: ``True``, the user's cache folder (``~/.cache/anyi2v-lab/compile``, or
      ``$ANYI2V_COMPILE_CACHE``); a path; ``False``: none beyond Inductor's own. The first process
      on a machine compiles and saves; a later one loads the saved artefacts before its first
      generation (:mod:`~anyi2v_lab.accel.compile_cache`).

    Measured speeds and memory of each setting: ``benchmarks/README.md``.
    """

    truncate: bool | str = True
    cuda_graphs: bool | str = "auto"
    graph_optimisation: bool = True
    graph_sampling: bool = False
    share_graph_pool: bool = True
    compile: bool | str = False
    compile_backend: str = "inductor"
    compile_mode: str | None = None
    compile_levels: int | None = None
    compile_inversion: bool = False
    channels_last: bool | None = None
    attention: str = "flash"
    cudnn_benchmark: bool = False
    overlap_pca: bool = True
    low_memory: bool = False
    decode_chunk: int | None = None
    compile_cache: bool | str = True

    def __post_init__(self):
        if self.compile is True:
            object.__setattr__(self, "compile", "regional")
        if not isinstance(self.truncate, (bool, str)) or self.truncate == "":
            raise RuntimeOptionError(f"Runtime.truncate={self.truncate!r}: use True (after the last aligned layer), "
                                     f"False (the whole UNet) or a block path such as 'up_blocks.2'")
        if self.compile not in COMPILE:
            raise RuntimeOptionError(f"Runtime.compile={self.compile!r} is not one of {COMPILE}")
        if self.cuda_graphs not in (True, False, "auto"):
            raise RuntimeOptionError(f"Runtime.cuda_graphs={self.cuda_graphs!r}: use True, False or 'auto'")
        if self.attention not in ATTENTION:
            raise RuntimeOptionError(f"Runtime.attention={self.attention!r} is not one of {ATTENTION}")
        if self.compile_levels is not None and (not isinstance(self.compile_levels, int) or self.compile_levels < 1):
            raise RuntimeOptionError(f"Runtime.compile_levels={self.compile_levels!r} must be a positive integer "
                                     f"or None")
        if self.decode_chunk is not None and (not isinstance(self.decode_chunk, int) or self.decode_chunk < 1):
            raise RuntimeOptionError(f"Runtime.decode_chunk={self.decode_chunk!r} must be a positive integer or None")
        if not isinstance(self.compile_cache, (bool, str)) or self.compile_cache == "":
            raise RuntimeOptionError(f"Runtime.compile_cache={self.compile_cache!r}: use True (the user's cache "
                                     f"folder), False or a folder path")
        if self.low_memory and self.compile == "regional":
            raise RuntimeOptionError("Runtime(low_memory=True, compile='regional'): checkpointed optimisation passes "
                                "run eager; use compile='sampling' or False with low_memory")

    # ------------------------------------------------------------ presets
    @classmethod
    def baseline(cls) -> "Runtime":
        """The reference's choices: optimisation forwards stopped after ``up_blocks[2]`` (its
        ``last_recorded_layer``), eager, no graphs, no autotuning, diffusers' 16-frame decode."""
        return cls(truncate=REFERENCE_STOP, cuda_graphs=False, compile=False, channels_last=False, overlap_pca=False,
                   attention="auto", decode_chunk=16)

    @classmethod
    def fast(cls, **changes) -> "Runtime":
        """Everything that pays on an H100 once warmed up (``benchmarks/README.md``): truncation, inversion
        graphs of compiled blocks, optimisation passes and hook-free sampling steps replayed from CUDA
        graphs, every level's blocks compiled, cuDNN autotuning and attention."""
        return cls(**{"compile": "regional", "compile_inversion": True, "graph_sampling": True,
                      "cudnn_benchmark": True, "attention": "auto", **changes})

    @classmethod
    def low_mem(cls, **changes) -> "Runtime":
        """For 12 GB GPUs: checkpointed optimisation passes, frame-by-frame decode."""
        return cls(**{"low_memory": True, **changes})

    def bind(self, pipe) -> BoundRuntime:
        """The calls one generation on ``pipe`` makes under these settings (what
        :func:`~anyi2v_lab.method.generate` runs with); raises first if a setting cannot run on its device."""
        return BoundRuntime(pipe, self)

    def replace(self, **changes) -> "Runtime":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    # ------------------------------------------------------------ resolution
    def check_device(self, device, unet=None) -> None:
        """Raise before any work when a setting cannot run on ``device`` (or on ``unet``, when given)."""
        if isinstance(self.truncate, str) and unet is not None:
            try:
                check_block(unet, self.truncate)
            except ValueError as e:
                raise RuntimeOptionError(str(e)) from None
        if self.cuda_graphs is True and torch.device(device).type != "cuda":
            raise RuntimeOptionError(f"Runtime.cuda_graphs=True needs a CUDA device, the model is on {device}; "
                                f"use cuda_graphs='auto' or False")

    def graphs_on(self, device) -> bool:
        return self.cuda_graphs is True or (self.cuda_graphs == "auto" and torch.device(device).type == "cuda")

    def graphs_optimisation(self, device) -> bool:
        return self.graph_optimisation and not self.low_memory and self.graphs_on(device)

    def graphs_sampling(self, device) -> bool:
        return self.graph_sampling and self.graphs_on(device)

    def overlaps_pca(self, device) -> bool:
        return self.overlap_pca and not self.low_memory and torch.device(device).type == "cuda"

    def compiles(self, phase: str) -> bool:
        """Whether ``phase`` (``"sampling"``, ``"optimisation"`` or ``"inversion"``) runs compiled blocks."""
        if phase == "inversion":
            return self.compile_inversion
        return self.compile == "regional" or (self.compile == "sampling" and phase == "sampling")

    def compile_cache_folder(self):
        """The folder of saved compiled code this runtime loads and adds to, or ``None`` (it compiles
        nothing with Inductor, or ``compile_cache=False``)."""
        from .compile_cache import cache_folder

        compiles = self.compile is not False or self.compile_inversion
        return cache_folder(self.compile_cache) if compiles and self.compile_backend == "inductor" else None

    def decode_chunk_size(self, num_frames: int) -> int:
        if self.decode_chunk is not None:
            return self.decode_chunk
        return 1 if self.low_memory else min(4, num_frames)
