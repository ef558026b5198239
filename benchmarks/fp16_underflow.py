"""How many fp16 gradient elements underflow in the optimisation passes, and does loss scaling matter?

The reference runs its backward under fp16 autocast with a ``GradScaler`` (scale 65536), as ours does
(``config.loss_scale``). This script runs the whole job (inversion, sampling, the paper's 6 x 5
optimisation) on an fp16 model and, inside every optimisation pass, computes three backwards of the
same loss from the same latent:

* **fp16**: the pass unscaled (``loss_scale=None``);
* **fp16 x 65536**: the loss scaled as the reference's GradScaler scales it;
* **fp32**: the same pass on an fp32 copy of the weights (feature bank and embeddings upcast), the
  reference for what the gradient should be.

For the UNet's input (the latent's gradient, what the sign step reads) and every block's output (ResNets,
transformers, motion modules, samplers: the backward's intermediate gradients) it counts elements whose
fp32 gradient is normal in fp16 (|g| >= 2^-14) but whose fp16 gradient is zero or subnormal
(**underflow**), fp32-nonzero elements that fp16 makes exactly zero (**lost**), and for the scaled
backward the same counts against 65536 x the fp32 gradient plus non-finite elements (**overflow**, where
a GradScaler would skip the step). On the latent it also counts sign disagreements with fp32, which is
what changes the sign step's update.

    python benchmarks/fp16_underflow.py --out benchmarks/results/fp16_underflow_h100.json   # GPU, random fp16 SD1.5
    python benchmarks/fp16_underflow.py --tiny --out benchmarks/results/fp16_underflow_tiny_cpu.json
    python benchmarks/fp16_underflow.py --toy --out benchmarks/results/fp16_underflow_toy_cpu.json
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import sys
import time
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from benchmarks.gpu_parts import env_info, make_inputs, paper_config, write_json  # noqa: E402

SCALE = 65536.0  # torch.cuda.amp.GradScaler's initial scale, which the reference creates every iteration
NORMAL = 2.0 ** -14  # the smallest normal fp16 magnitude
COUNTS = ("elements", "fp32_nonzero", "fp32_normal", "fp32_below_normal", "underflow", "lost",
          "scaled_underflow", "scaled_lost", "scaled_overflow")


def counts(g16: torch.Tensor | None, g16s: torch.Tensor | None, g32: torch.Tensor | None) -> dict:
    """Element counts of one tensor's gradients (``None``: the tensor got no gradient)."""
    if g32 is None:
        return {k: 0 for k in COUNTS}
    g32 = g32.float()
    g16 = torch.zeros_like(g32) if g16 is None else g16.float()
    g16s = torch.zeros_like(g32) if g16s is None else g16s.float()
    a32, a32s = g32.abs(), (g32 * SCALE).abs()
    nz = g32 != 0
    finite = torch.isfinite(g16s)
    out = {"elements": g32.numel(), "fp32_nonzero": nz.sum(), "fp32_normal": (a32 >= NORMAL).sum(),
           "fp32_below_normal": (nz & (a32 < NORMAL)).sum(),
           "underflow": ((g16.abs() < NORMAL) & (a32 >= NORMAL)).sum(), "lost": ((g16 == 0) & nz).sum(),
           "scaled_underflow": (finite & (g16s.abs() < NORMAL) & (a32s >= NORMAL)).sum(),
           "scaled_lost": ((g16s == 0) & nz).sum(), "scaled_overflow": (~finite).sum()}
    return {k: int(v) for k, v in out.items()}


def sign_counts(g16: torch.Tensor, g16s: torch.Tensor, g32: torch.Tensor) -> dict:
    """On the latent: where the sign step's direction differs from fp32's (zero counts as a sign)."""
    s32 = torch.sign(g32.float())
    return {"latent_elements": g32.numel(),
            "sign_differs": int((torch.sign(g16.float()) != s32).sum()),
            "scaled_sign_differs": int((torch.sign(g16s.float()) != s32).sum()),
            "fp32_zero": int((s32 == 0).sum())}


@contextmanager
def recorded_blocks(unet):
    """Records, while gradients are on, the UNet's input sample and every block's output, in order."""
    from anyi2v_lab.accel import compile_units

    seen: list[tuple[str, torch.Tensor]] = []

    def pre(module, args, kwargs):
        x = args[0] if args else kwargs["sample"]
        if torch.is_grad_enabled() and x.requires_grad:
            seen.append(("sample", x))

    def post(path):
        def hook(module, args, output):
            y = output[0] if isinstance(output, (tuple, list)) else getattr(output, "sample", output)
            if torch.is_grad_enabled() and isinstance(y, torch.Tensor) and y.requires_grad:
                seen.append((path, y))
        return hook
    handles = [unet.register_forward_pre_hook(pre, with_kwargs=True)]
    handles += [m.register_forward_hook(post(p)) for p, m in compile_units(unet)]
    try:
        yield seen
    finally:
        for h in handles:
            h.remove()


def grads(loss: torch.Tensor, tensors: list[torch.Tensor], retain: bool) -> list[torch.Tensor | None]:
    return list(torch.autograd.grad(loss, tensors, retain_graph=retain, allow_unused=True))


class ProbeCalls:
    """Eager calls whose optimisation passes also measure the three backwards (module docstring)."""

    def __init__(self, pipe, unet32, log):
        from anyi2v_lab.method.calls import EagerCalls

        self.eager, self.unet32, self.log, self.passes = EagerCalls(pipe), unet32, log, []
        self.partial = None

    def bind(self, pipe):
        return self

    def __getattr__(self, name):  # everything but the optimisation passes is the plain eager call
        return getattr(self.eager, name)

    @contextmanager
    def optimisation_passes(self, inputs):
        from anyi2v_lab.method.feature_bank import FeatureBank
        from anyi2v_lab.method.optimize import Passes, eager_passes

        bank = inputs.features
        bank32 = None if bank is None else FeatureBank(
            {k: v.float() for k, v in bank.residuals.items()},
            {k: v.float() for k, v in bank.queries.items()}, bank.timestep, dict(bank.meta))
        inputs32 = dataclasses.replace(inputs, unet=self.unet32, features=bank32, embeds=inputs.embeds.float())
        state: dict = {}
        with recorded_blocks(inputs.unet) as seen16, eager_passes(inputs) as passes, \
                recorded_blocks(self.unet32) as seen32, eager_passes(inputs32) as passes32:
            def forward(leaf):
                seen16.clear()
                state["leaf"] = leaf
                return passes.forward(leaf)

            def loss(captured, fits):
                parts, previews = passes.loss(captured, fits)
                names, t16 = zip(*seen16)
                g16 = grads(parts.loss, list(t16), True)
                g16s = grads(parts.loss * SCALE, list(t16), True)
                seen32.clear()
                captured32 = passes32.forward(state["leaf"].detach().clone().requires_grad_(True))
                parts32, _ = passes32.loss(captured32, passes32.fit(captured32))
                names32, t32 = zip(*seen32)
                assert names32 == names, "the fp32 copy ran other blocks"
                g32 = grads(parts32.loss, list(t32), False)
                blocks = {n: counts(a, b, c) for n, a, b, c in zip(names, g16, g16s, g32)}
                row = {"step_index": inputs.step_index, "timestep": int(inputs.timestep),
                       "loss_fp16": float(parts.loss.detach()), "loss_fp32": float(parts32.loss.detach()),
                       "latent": {**counts(g16[0], g16s[0], g32[0]), **sign_counts(g16[0], g16s[0], g32[0])},
                       "blocks": total(blocks.values()),
                       "worst_block": max(blocks,
                                          key=lambda n: blocks[n]["underflow"] / max(1, blocks[n]["fp32_normal"]))}
                self.passes.append(row)
                if self.partial:  # a run cut short still leaves its passes
                    write_json(self.partial, {"partial": True, "per_pass": self.passes})
                lat = row["latent"]
                self.log(f"step {inputs.step_index} pass {len(self.passes)}: loss {row['loss_fp16']:.4g} (fp32 "
                         f"{row['loss_fp32']:.4g}); latent underflow {lat['underflow']}/{lat['fp32_normal']}, sign "
                         f"differs {lat['sign_differs']} (scaled {lat['scaled_sign_differs']}) of "
                         f"{lat['latent_elements']}; "
                         f"blocks underflow {row['blocks']['underflow']}/{row['blocks']['fp32_normal']}, scaled "
                         f"{row['blocks']['scaled_underflow']}, overflow {row['blocks']['scaled_overflow']}")
                del g16, g16s, g32, captured32, parts32
                return parts, previews
            yield Passes(forward, passes.fit, loss)


def total(rows) -> dict:
    rows = list(rows)
    out = {k: sum(r.get(k, 0) for r in rows) for k in rows[0]} if rows else {}
    return out


def fractions(t: dict) -> dict:
    f = lambda a, b: t[a] / t[b] if t.get(b) else None  # noqa: E731
    out = {"underflow_of_fp32_normal": f("underflow", "fp32_normal"), "lost_of_fp32_nonzero": f("lost", "fp32_nonzero"),
           # a scaled element counts where 65536 x its fp32 gradient is normal: the fp32-nonzero ones, nearly
           "scaled_underflow_of_fp32_nonzero": f("scaled_underflow", "fp32_nonzero"),
           "scaled_lost_of_fp32_nonzero": f("scaled_lost", "fp32_nonzero"),
           "scaled_overflow_of_elements": f("scaled_overflow", "elements"),
           "fp32_below_fp16_normal_of_nonzero": f("fp32_below_normal", "fp32_nonzero")}
    if "sign_differs" in t:
        out.update(sign_differs_of_latent=f("sign_differs", "latent_elements"),
                   scaled_sign_differs_of_latent=f("scaled_sign_differs", "latent_elements"))
    return out


def build(args):
    """``(pipe, config, label)``: the fp16 model and its settings."""
    if args.tiny:
        from anyi2v_lab.models.tiny import tiny_pipeline
        return tiny_pipeline(seed=0).to(args.device, torch.float16), paper_config(quick=args.quick), "tiny random"
    if args.toy:
        from anyi2v_lab.models.loading import load_pipeline
        pipe = load_pipeline(None, device=args.device, dtype=torch.float16, allow_half_on_cpu=True, progress=False)
        return pipe, paper_config(quick=args.quick), "committed toy model"
    from benchmarks.gpu_parts import random_sd15_pipeline
    return random_sd15_pipeline(args.device), paper_config(quick=args.quick), "random fp16 SD1.5 + AnimateDiff v3"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--tiny", action="store_true", help="the tiny random model (CPU)")
    g.add_argument("--toy", action="store_true", help="the committed toy model")
    p.add_argument("--quick", action="store_true", help="4 frames, 3 steps, 2 x 2 optimisation (a check of the script)")
    args = p.parse_args(argv)
    T0 = time.time()
    log = lambda m: print(f"[{time.time() - T0:7.1f}s] {m}", flush=True)  # noqa: E731

    from anyi2v_lab.method import generate

    pipe, config, label = build(args)
    config = config.replace(loss_scale=None)  # the probe scales its second backward itself
    inputs = make_inputs(pipe)
    unet32 = copy.deepcopy(pipe.unet).float().eval()
    log(f"{label} on {args.device}: fp16 model and an fp32 copy built")
    probe = ProbeCalls(pipe, unet32, log)
    probe.partial = args.out
    res = generate(pipe, inputs["condition"], inputs["prompt"], inputs["trajectory"], config, seed=0, progress=False,
                   runtime=probe)
    lat, blocks = total(r["latent"] for r in probe.passes), total(r["blocks"] for r in probe.passes)
    worst = max(probe.passes, key=lambda r: r["latent"]["underflow"] / max(1, r["latent"]["fp32_normal"]))
    result = {"env": env_info(args.device), "model": label, "config": config.to_dict(),
              "scale": SCALE, "fp16_smallest_normal": NORMAL, "passes": len(probe.passes),
              "latent": {**lat, **fractions(lat)}, "blocks": {**blocks, **fractions(blocks)},
              "worst_pass_latent": {"step_index": worst["step_index"], **fractions(worst["latent"])},
              "video_finite": bool(torch.isfinite(torch.as_tensor(res.video)).all()),
              "per_pass": probe.passes, "seconds": time.time() - T0}
    write_json(args.out, result)
    log(f"latent: {fractions(lat)}")
    log(f"blocks: {fractions(blocks)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
