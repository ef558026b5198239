"""How far are a condition image's injected features from its RGB frame's? The measurement behind the toy
model's consistency term (``training/consistency.py``), taken where AnyI2V takes its features: each development scene's
frame 0 and its benchmark modality are inverted to ``inversion_timestep`` with the caption, and each
injected tensor (``AnyI2VConfig``'s residuals and queries) is compared between the two.

    python benchmarks/toy_feature_gap.py --scenes 8 --model committed --model other=path/to/weights

Per layer and weights: ``rel``, ``|f_mod - f_rgb|^2 / var(f_rgb)`` (1 is as far as an unrelated map of the
same spread), and ``rel_top{k}``, the same in the span of the RGB tokens' top-k principal components, where
the trajectory alignment of the method does its work. Means over scenes; runs on a CPU.
"""
from __future__ import annotations

import argparse

import numpy as np

from toy_trajectory import DEV_SEED, make_cases  # benchmarks/, beside this script

POINT = {"residuals": "residual", "queries": "query"}   # a FeatureBank field -> its hook point's suffix


def relative_gaps(rgb, mod, k: int = 8) -> tuple[float, float]:
    """``rgb``, ``mod``: (tokens, C) features of one layer -> (relative squared distance, the same after
    projecting both on the top-k principal components of ``rgb``, fitted as the method's alignment fits them)."""
    from anyi2v_lab.method.pca import pca_fit, pca_project

    rgb, mod = rgb.float(), mod.float()
    mean, components = pca_fit(rgb, k)
    pr, pm = pca_project(rgb, mean, components), pca_project(mod, mean, components)
    return (((mod - rgb) ** 2).mean() / rgb.var()).item(), (((pm - pr) ** 2).mean() / pr.var()).item()


def tokens(feature):
    """A bank tensor -> (tokens, C): residuals are (C, h, w), queries (h * w, C)."""
    from anyi2v_lab.layout import maps_to_tokens

    return maps_to_tokens(feature[None, None])[0] if feature.dim() == 3 else feature


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenes", type=int, default=8)
    p.add_argument("--model", action="append", default=[], metavar="NAME[=PATH]",
                   help="weights to compare; 'committed' (the default) is the embedded toy model")
    p.add_argument("--top", type=int, default=8, help="principal components for rel_top{k}")
    p.add_argument("--out", default="outputs/toy_feature_gap.json")
    a = p.parse_args(argv)
    from tqdm.auto import tqdm

    from anyi2v_lab.conditions import load_condition
    from anyi2v_lab.io import write_json
    from anyi2v_lab.method import AnyI2VConfig
    from anyi2v_lab.method.inversion import invert_cached
    from anyi2v_lab.toy import model as tm

    cases, config = make_cases(a.scenes, 64, seed=DEV_SEED), AnyI2VConfig()
    report = {"settings": {**vars(a), "case_seed": DEV_SEED}, "weights": {}}
    for spec in a.model or ["committed"]:
        name, _, path = spec.partition("=")
        pipe = tm.build_pipeline(tm.load_components(path or None))
        gaps = {}
        for case, modality in tqdm(cases, desc=name):
            embeds, _ = pipe.encode_prompt(case.caption, "cpu", 1, False)
            bank = {c: invert_cached(pipe, load_condition(img, size=(64, 64)).pixels, case.caption, embeds, config,
                                     cache=None, progress=False)
                    for c, img in (("rgb", case.frames[0]), ("modality", case.conditions[modality]))}
            for kind in ("residuals", "queries"):
                for layer, f in getattr(bank["rgb"], kind).items():
                    g = relative_gaps(tokens(f), tokens(getattr(bank["modality"], kind)[layer]), a.top)
                    gaps.setdefault(f"{layer}.{POINT[kind]}", []).append(g)
        report["weights"][name] = {k: {"rel": float(np.mean([g[0] for g in v])),
                                       f"rel_top{a.top}": float(np.mean([g[1] for g in v]))} for k, v in gaps.items()}
        print(name)
        for k, v in report["weights"][name].items():
            print(f"  {k:64} {v['rel']:6.3f} {v[f'rel_top{a.top}']:6.3f}")
    write_json(a.out, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
