"""Non-finite numbers are failures: a NaN or an infinity stops the run, named where it first appeared.

Left alone, one NaN in a weight, a latent or the alignment loss spreads through every later call and
ends as a black video written with success. The checks read the device once per phase, never inside a
loop: :class:`FiniteTrail` notes a device-side flag per tensor as the loop produces it (one reduction,
no wait for the device) and reads them all at the end of the phase; :func:`check_weights` reduces a
model's parameters to one max-abs each, fused per dtype and device.
"""
from __future__ import annotations

import torch
import torch.nn as nn


class NonFiniteError(RuntimeError):
    """Numbers became NaN or infinite while running: a failure while running (exit 1 on the command
    line), not bad input. The message names the first tensor that held them."""


def _counts(tensor: torch.Tensor) -> str:
    nan = int(torch.isnan(tensor).sum())
    inf = int(torch.isinf(tensor).sum())
    return f"{nan} NaN and {inf} infinite of {tensor.numel()} values"


def check_finite(tensor: torch.Tensor, where: str, hint: str = "") -> None:
    """Raise :class:`NonFiniteError` naming ``where`` unless every value of ``tensor`` is finite (one host read)."""
    if not bool(torch.isfinite(tensor).all()):
        raise NonFiniteError(f"non-finite values in {where} ({_counts(tensor)})" + (f"; {hint}" if hint else ""))


class FiniteTrail:
    """Device-side finiteness flags of a phase's tensors, in the order they were made; :meth:`check`
    reads them once and names the first non-finite one. :meth:`add` launches one reduction and never
    waits for the device, so a loop may note every step."""

    def __init__(self):
        self.flags: list[torch.Tensor] = []
        self.places: list[str] = []

    def add(self, tensor: torch.Tensor, where: str) -> None:
        self.flags.append(torch.isfinite(tensor.detach()).all())
        self.places.append(where)

    def check(self, hint: str = "") -> None:
        """Raise :class:`NonFiniteError` naming the first non-finite tensor noted; forget them all."""
        flags, places = self.flags, self.places
        self.flags, self.places = [], []
        if not flags:
            return
        ok = torch.stack([f.to(flags[0].device) for f in flags]).cpu()
        if bool(ok.all()):
            return
        first = places[int((~ok).nonzero()[0])]
        raise NonFiniteError(f"non-finite values (NaN or infinity) first appeared in {first}"
                             + (f"; {hint}" if hint else ""))


def first_non_finite(named: list[tuple[str, torch.Tensor]]) -> str | None:
    """The name of the first tensor holding a NaN or an infinity, or ``None``: one fused max-abs per
    tensor (``torch._foreach_norm``, grouped by device and dtype) and one host read."""
    groups: dict[tuple, list[int]] = {}
    for i, (_, t) in enumerate(named):
        if t.is_floating_point() and t.numel():
            groups.setdefault((t.device, t.dtype), []).append(i)
    bad: list[int] = []
    for indices in groups.values():
        norms = torch._foreach_norm([named[i][1].detach() for i in indices], float("inf"))
        ok = torch.isfinite(torch.stack(norms)).cpu()
        bad += [indices[j] for j in (~ok).nonzero().flatten().tolist()]
    return named[min(bad)][0] if bad else None


def check_weights(models: dict[str, nn.Module], source: str = "") -> None:
    """Raise :class:`NonFiniteError` naming the first parameter or buffer of ``models`` (``{label: module}``,
    e.g. ``{"the UNet": pipe.unet}``) that holds a NaN or an infinity; ``source`` says where the weights came from."""
    named = [(f"{label}'s weights ({name})", t) for label, module in models.items()
             for name, t in (*module.named_parameters(), *module.named_buffers())]
    where = first_non_finite(named)
    if where is not None:
        raise NonFiniteError(f"non-finite values (NaN or infinity) in {where}" + (f" {source}" if source else "")
                             + "; the model cannot run with them: use other weights (re-download a damaged file)")


def pipeline_parts(pipe) -> dict[str, nn.Module]:
    """The weighted parts of a pipeline under the names a message gives them."""
    parts = {"the UNet": getattr(pipe, "unet", None), "the VAE": getattr(pipe, "vae", None),
             "the text encoder": getattr(pipe, "text_encoder", None)}
    return {label: m for label, m in parts.items() if isinstance(m, nn.Module)}
