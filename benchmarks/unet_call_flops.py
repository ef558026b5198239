"""FLOPs of the full-size UNet's calls, counted on the meta device (no GPU, no weights, seconds on a CPU).

    python benchmarks/unet_call_flops.py --out benchmarks/results/unet_call_flops_meta.json

One CFG sampling step (2 x 16 frames), one inversion call (one frame, motion modules bypassed) and one
whole-UNet forward+backward of 16 frames, at 512 px, counted by ``FlopCounterMode``; times the paper's
call counts (25 steps, 201 inversion calls, 6 x 5 passes). A check of the per-phase counts that
``phase_flops.py`` makes of a real generation on the GPU: it cannot count the truncated passes (the
truncation lives in the method's run), only bound them by the whole UNet's.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402


def counted(fn) -> int:
    from anyi2v_lab.accel.flops import _counter

    mode = _counter()
    with mode:
        fn()
    return mode.get_total_flops()


def main() -> int:
    from anyi2v_lab.hooks import bypass_motion
    from anyi2v_lab.models.tiny import sd15_motion_unet

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out")
    args = p.parse_args()
    frames, meta, half = 16, torch.device("meta"), torch.float16
    with meta:
        unet = sd15_motion_unet(meta).half().eval()
    z = torch.randn(2, 4, frames, 64, 64, device=meta, dtype=half)
    emb = torch.randn(2 * frames, 77, 768, device=meta, dtype=half)
    t = torch.full((1,), 501, device=meta)
    leaf = torch.randn(1, 4, frames, 64, 64, device=meta, dtype=half, requires_grad=True)
    with torch.no_grad():
        cfg = counted(lambda: unet(z, t, encoder_hidden_states=emb))
        with bypass_motion(unet):
            inv = counted(lambda: unet(z[:1, :, :1], t, encoder_hidden_states=emb[:1]))
    whole = counted(lambda: unet(leaf, t, encoder_hidden_states=emb[:frames]).sample.float().square().mean().backward())
    out = {"per_call_tflop": {"cfg_step": cfg / 1e12, "inversion_call": inv / 1e12, "whole_unet_fwd_bwd": whole / 1e12},
           "paper_job_tflop": {"sampling_25_steps": 25 * cfg / 1e12, "inversion_201_calls": 201 * inv / 1e12,
                               "optimisation_30_whole_passes_upper_bound": 30 * whole / 1e12}}
    print(json.dumps(out, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
