"""Installing and removing hooks: the one place where modules are touched.

``with hooked(unet, edits={name: fn}, capture=Capture([...])) as session:`` installs a per-module
attention processor or torch hook for each named point, and removes every one of them on exit, also
when an edit raises. Nothing is patched class-wide and no flag is left on a module.

Safety nets, because a silent no-op is the classic failure of hook-based diffusion tools:

* hooking a module that another session holds is an error;
* after every complete UNet forward, a hooked point that did not fire raises
  :class:`HookPointNotFired` (a diffusers upgrade that reroutes a forward cannot go unnoticed), and so
  does a capture that stored nothing by the end of the session.
"""
from __future__ import annotations

import warnings
from contextlib import ExitStack, contextmanager
from typing import Callable, Iterable, Mapping, Sequence

import torch
import torch.nn as nn

from ..layout import infer_branches
from ..resources import available_memory, gib
from .attention import HookedAttnProcessor
from .cache import ActivationCache, Capture, Entry
from .context import CallInfo, HookContext
from .points import HookPoint, hook_points, resolve
from .wan import call_labels, is_wan, token_grid
from .wan_attention import HookedWanAttnProcessor

EditFn = Callable[[torch.Tensor, HookContext], "torch.Tensor | None"]
_OWNER = "_anyi2v_hook_owner"
# A capture without max_bytes that will hold more than this is warned about, once a session, and from then
# on each of its UNet calls is checked against the free memory of the device it stores on.
WARN_BYTES = 2 * 2**30


class HookError(RuntimeError):
    """A hook could not be installed as asked."""


class CaptureSizeWarning(UserWarning):
    """A capture without ``max_bytes`` is about to hold more than :data:`WARN_BYTES`."""


class HookPointNotFired(HookError):
    """A hooked point never ran: the model's forward no longer passes where the hook sits."""


class StopForward(Exception):
    """Raised inside the UNet after the last needed hook point (baukit's ``StopForward``); the session
    that raised it (any session, when ``session`` is ``None``) swallows it, in :meth:`HookSession.forward`
    or on leaving its ``with`` block."""

    def __init__(self, point: str, session: "HookSession | None" = None):
        super().__init__(point)
        self.session = session


def _inside_backward() -> bool:
    # Gradient checkpointing re-runs forwards during backward: edits must apply again (so the
    # recomputation matches), but nothing may be captured or counted twice.
    return torch._C._current_graph_task_id() != -1


def merge_edits(*edits: Mapping[str, EditFn | Sequence[EditFn]] | None) -> dict[str, list[EditFn]]:
    """Edit maps (a function or a list of functions per name) as one ``{name: [fn, ...]}``, each
    name's functions in the order given: later maps' edits run after earlier ones'."""
    out: dict[str, list[EditFn]] = {}
    for mapping in edits:
        for name, fns in (mapping or {}).items():
            out.setdefault(name, []).extend([fns] if callable(fns) else list(fns))
    return out


class HookSession:
    """Live hooks on one UNet. Use through :func:`hooked`."""

    def __init__(self, unet: nn.Module, edits: Mapping[str, EditFn | Sequence[EditFn]] | None = None,
                 capture: Capture | None = None, stop_after: Iterable[str] | None = None,
                 step_of: Callable[[int], int | None] | None = None, phase: str = "forward"):
        self.unet = unet
        self._wan = is_wan(unet)
        self._label: tuple[str | None, dict] = (None, {})  # a Wan pipeline's cache_context of this call
        self._registry = {p.name: p for p in hook_points(unet)}
        self.edits: dict[str, list[EditFn]] = {}
        for name, fns in merge_edits(edits).items():
            for point in resolve(self._registry, [name]):
                self.edits.setdefault(point.name, []).extend(fns)
        self.capture = capture
        self.captured = {p.name for p in resolve(self._registry, capture.names)} if capture else set()
        self.stop_names = {p.name for p in resolve(self._registry, stop_after or ())}
        self.points = resolve(self._registry, [*self.edits, *self.captured, *self.stop_names])
        self.cache = ActivationCache()
        self.step_of = step_of
        self.default_phase = phase
        self._override: dict = {}
        self._call = CallInfo(phase=phase)
        self._fired: set[str] = set()
        self._stored: set[str] = set()
        self._stack: ExitStack | None = None
        self.calls = 0
        self.stopped = 0
        self._size_warned = False
        self._validate()

    # ------------------------------------------------------------------ set-up
    def _validate(self) -> None:
        for p in self.points:
            if p.site == "probs" and not self._wan:  # the Wan processor applies the norms itself
                attn = self.unet.get_submodule(p.module)
                if attn.norm_q is not None or attn.norm_k is not None:
                    raise HookError(f"{p.name}: probabilities of a layer with q/k norms are not supported")

    def __enter__(self) -> "HookSession":
        self._stack = self._installed()
        return self

    def _installed(self) -> ExitStack:
        """Install every hook; on failure remove what was installed and re-raise."""
        stack = ExitStack()
        try:
            self._install(stack)
        except BaseException:
            stack.close()
            raise
        return stack

    def __exit__(self, exc_type, exc, tb) -> bool:
        stack, self._stack = self._stack, None
        stack.close()
        stopped = self._stops(exc)
        if exc_type is None or stopped:
            self._check_captures()
        return stopped

    @contextmanager
    def suspended(self):
        """Remove this session's hooks for the block (another session may hook the same modules,
        e.g. the optimisation passes inside a sampling loop), then reinstall them; the cache and
        counters carry on."""
        self._stack.close()
        try:
            yield self
        finally:
            self._stack = self._installed()

    def _claim(self, stack: ExitStack, module: nn.Module, label: str) -> None:
        owner = getattr(module, _OWNER, None)
        if owner is not None:
            raise HookError(f"{label} is already hooked by another session ({owner}); exit it first "
                            f"or pass all edits and captures to one session")
        setattr(module, _OWNER, f"HookSession@{id(self):x}")
        stack.callback(delattr, module, _OWNER)

    def _install(self, stack: ExitStack) -> None:
        by_module: dict[str, dict[str, HookPoint]] = {}
        for p in self.points:
            by_module.setdefault(p.module, {})[p.site] = p
        stack.enter_context(_removing(self.unet.register_forward_pre_hook(self._pre_unet, with_kwargs=True)))
        stack.enter_context(_removing(self.unet.register_forward_hook(self._post_unet)))
        if self._wan:
            stack.enter_context(call_labels(self.unet, self._set_label))
        for path, sites in by_module.items():
            if path == "":
                continue  # the UNet output is handled by _post_unet
            module = self.unet.get_submodule(path)
            self._claim(stack, module, path)
            kind = next(iter(sites.values())).kind
            if kind in ("self_attention", "cross_attention"):
                original = module.processor
                processor = HookedWanAttnProcessor if self._wan else HookedAttnProcessor
                module.set_processor(processor(sites, self._fire, original))
                stack.callback(module.set_processor, original)
            elif kind in ("feed_forward", "block"):
                stack.enter_context(_removing(module.register_forward_hook(self._out_hook(sites["output"]))))
            elif kind == "resnet":
                if "residual" in sites:
                    hook = module.conv2.register_forward_hook(self._out_hook(sites["residual"]))
                    stack.enter_context(_removing(hook))
                if "output" in sites:
                    stack.enter_context(_removing(module.register_forward_hook(self._out_hook(sites["output"]))))
            elif kind == "motion":
                if "input" in sites:
                    hook = module.register_forward_pre_hook(self._in_hook(sites["input"]), with_kwargs=True)
                    stack.enter_context(_removing(hook))
                if "output" in sites:
                    stack.enter_context(_removing(module.register_forward_hook(self._out_hook(sites["output"]))))

    def _out_hook(self, point: HookPoint):
        return lambda module, args, out: self._fire(point, out)

    def _in_hook(self, point: HookPoint):
        def hook(module, args, kwargs):
            if args:
                return (self._fire(point, args[0]), *args[1:]), kwargs
            return args, {**kwargs, "hidden_states": self._fire(point, kwargs["hidden_states"])}
        return hook

    # ------------------------------------------------------------ per call
    @contextmanager
    def calling(self, **info):
        """Set what the next UNet calls are (``timestep``, ``step_index``, ``branches``, ``phase``)
        instead of inferring it from their arguments."""
        unknown = set(info) - {"timestep", "step_index", "branches", "phase"}
        if unknown:
            raise TypeError(f"calling() got unknown fields {sorted(unknown)}")
        previous, self._override = self._override, {**self._override, **info}
        try:
            yield self
        finally:
            self._override = previous

    def _set_label(self, name: str | None, info: dict) -> None:
        self._label = (name, info)

    def _pre_unet(self, module, args, kwargs):
        if _inside_backward():
            return None
        sample = args[0] if args else kwargs["hidden_states" if self._wan else "sample"]
        grid = token_grid(self.unet, sample) if self._wan else None
        num_frames = grid[0] if grid else sample.shape[2] if sample.ndim == 5 else 1
        info = {**self._labelled(sample.shape[0]), **self._override}
        if "timestep" not in info:
            t = args[1] if len(args) > 1 else kwargs.get("timestep")
            info["timestep"] = None if t is None else _timestep(t, whole=not self._wan)
        if "step_index" not in info and self.step_of is not None and info["timestep"] is not None:
            info["step_index"] = self.step_of(info["timestep"])
        info.setdefault("branches", infer_branches(sample.shape[0]))
        info.setdefault("phase", self.default_phase)
        if len(info["branches"]) != sample.shape[0]:
            raise HookError(f"branches={info['branches']} label {len(info['branches'])} batch elements, "
                            f"but the model got a batch of {sample.shape[0]}")
        self._call = CallInfo(num_frames=num_frames, grid=grid, **info)
        self._fired = set()
        if self.capture is not None:
            ehs = args[2] if len(args) > 2 else kwargs.get("encoder_hidden_states")
            self._check_budget(sample, text_len=77 if ehs is None else ehs.shape[-2])
        return None

    def _labelled(self, batch: int) -> dict:
        """What a Wan pipeline's cache_context says of this call: its branch (batch 1) and step."""
        name, info = self._label
        out = {"branches": (name,)} if batch == 1 and name in ("cond", "uncond") else {}
        if info.get("step_index") is not None:
            out["step_index"] = info["step_index"]
        return out

    def _check_budget(self, sample: torch.Tensor, text_len: int = 77) -> None:
        from .capture_size import capture_bytes

        est = capture_bytes([self._registry[n] for n in self.captured], self.capture,
                            batch=sample.shape[0], num_frames=self._call.num_frames,
                            latent_hw=tuple(sample.shape[-2:]), default_dtype=sample.dtype, text_len=text_len)
        stores = self.capture.wants(self._call)
        self._size_warned |= check_capture_budget(
            self.capture, est, self.cache.nbytes if stores else 0, self.capture.device or sample.device,
            stores=stores, warn=not self._size_warned)

    def _post_unet(self, module, args, out):
        if "output" in self.edits or "output" in self.captured:
            point = self._registry["output"]
            if isinstance(out, tuple):
                out = (self._fire(point, out[0]), *out[1:])
            else:
                out.sample = self._fire(point, out.sample)
        if not _inside_backward():
            self.calls += 1
            missing = [p.name for p in self.points if p.name not in self._fired]
            if missing:
                raise HookPointNotFired(
                    f"{len(missing)} hooked point(s) did not run in a complete model forward: {missing[:4]}"
                    f"{' ...' if len(missing) > 4 else ''}. The model's forward no longer passes where "
                    f"these hooks sit: install the diffusers version in constraints.txt (this one is "
                    f"{_diffusers_version()}).")
        return out

    def _fire(self, point: HookPoint, tensor: torch.Tensor) -> torch.Tensor:
        ctx = HookContext(point, self._call)
        for fn in self.edits.get(point.name, ()):
            out = fn(tensor, ctx)
            if out is not None:
                if out.shape != tensor.shape:
                    raise HookError(f"edit {getattr(fn, '__name__', fn)} on {point.name} returned shape "
                                    f"{tuple(out.shape)}, expected {tuple(tensor.shape)}")
                tensor = out
        if _inside_backward():
            return tensor
        self._fired.add(point.name)
        if point.name in self.captured and self.capture.wants(self._call):
            stored, branches, frames = self.capture.reduce(ctx.frames(tensor), self._call)
            c = self._call
            self.cache.add(Entry(name=point.name, tensor=stored, timestep=c.timestep, step_index=c.step_index,
                                 phase=c.phase, branches=branches, frames=frames))
            self._stored.add(point.name)
        if self.stop_names and self.stop_names <= self._fired:
            self.stopped += 1
            raise StopForward(point.name, self)
        return tensor

    def _check_captures(self) -> None:
        empty = [n for n in sorted(self.captured) if n not in self._stored]
        if empty and self.calls + self.stopped == 0:
            raise HookPointNotFired(f"no model forward ran inside the session; nothing captured for {empty[:4]}")
        if empty:
            raise HookPointNotFired(
                f"capture stored nothing for {empty[:4]}: its filter (timesteps={_fmt(self.capture.timesteps)}, "
                f"steps={_fmt(self.capture.steps)}, phases={_fmt(self.capture.phases)}, "
                f"branch={self.capture.branch}) matched none of the {self.calls + self.stopped} model calls")

    def forward(self, *args, **kwargs):
        """Call the UNet; returns ``None`` when the forward stopped early after the last needed point."""
        try:
            return self.unet(*args, **kwargs)
        except StopForward as stop:
            if not self._stops(stop):
                raise
            return None

    def _stops(self, exc: BaseException | None) -> bool:
        return isinstance(exc, StopForward) and exc.session in (None, self)


def _diffusers_version() -> str:
    from importlib.metadata import version

    return version("diffusers")


def _timestep(t, whole: bool) -> int | float:
    """The call's timestep as a number: a UNet's is whole, a flow-matching transformer's need not be (and
    Wan 2.2 TI2V's per-token timesteps are 0 on the condition frame's tokens: the call's is their largest)."""
    if whole:
        return int(t.flatten()[0]) if torch.is_tensor(t) else int(t)
    return float(t.max()) if torch.is_tensor(t) else float(t)


def _fmt(values) -> str:
    return "all" if values is None else str(sorted(values))


@contextmanager
def _removing(handle):
    try:
        yield handle
    finally:
        handle.remove()


def hooked(unet: nn.Module, edits: Mapping[str, EditFn | Sequence[EditFn]] | None = None,
           capture: Capture | Iterable[str] | None = None, stop_after: Iterable[str] | None = None,
           step_of: Callable[[int], int | None] | None = None, phase: str = "forward") -> HookSession:
    """Context manager: hooks installed on enter, removed on exit (also on error).

    ``edits`` maps hook point names (or globs) to ``fn(tensor, ctx) -> tensor | None``; ``capture``
    is a :class:`Capture` or a list of names; ``stop_after`` names the points after which the forward
    ends: ``session.forward`` then returns ``None``, and a direct call's stop ends the ``with`` block
    quietly.
    """
    if capture is not None and not isinstance(capture, Capture):
        capture = Capture(tuple(capture))
    return HookSession(unet, edits, capture, stop_after, step_of, phase)


def check_capture_budget(capture: Capture, per_call: int, held: int, device, *, stores: bool, warn: bool) -> bool:
    """Before a UNet call that adds ~``per_call`` bytes to a cache holding ``held``: refuse (``HookError``)
    what exceeds ``capture.max_bytes``, or, without ``max_bytes`` and past :data:`WARN_BYTES`, the free
    memory of ``device``; warn (:class:`CaptureSizeWarning`, when ``warn``) the first time a capture without
    ``max_bytes`` passes :data:`WARN_BYTES`. ``stores``: whether the capture keeps this call. Returns whether
    it warned."""
    fix = "pass max_bytes= to bound it, or capture less: a narrower pattern, frames=, branch= or a smaller dtype="
    if capture.max_bytes is not None:
        if per_call > capture.max_bytes:
            raise HookError(f"this capture would store ~{gib(per_call)} for one UNet call, over "
                            f"max_bytes={capture.max_bytes}; restrict names, frames or branch, "
                            f"or store in a smaller dtype")
        return False
    total = held + per_call
    if not stores or total <= WARN_BYTES:
        return False
    room = available_memory(device)
    if room is not None and per_call > room[0]:
        raise HookError(f"this capture would store ~{gib(per_call)} in its next UNet call ({gib(total)} in all), "
                        f"over the {gib(room[0])} of {room[1]} on {device}; {fix}")
    if warn:
        warnings.warn(f"this capture will hold ~{gib(total)} ({gib(per_call)} a UNet call) and has no max_bytes; "
                      f"{fix}", CaptureSizeWarning, stacklevel=2)
    return warn
