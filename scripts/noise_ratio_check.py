#!/usr/bin/env python3
"""Recomputes pag's noise ratio in PyTorch, from the definitions alone, on the same model and images.

Usage (PyTorch, safetensors and numpy from PyPI in a virtual environment outside the repo):
    pag predict --checkpoint RUN --samples 500 --out /tmp/nr.npy        # writes inputs and masks
    pag measure noise-ratio --checkpoint RUN --samples 500 --out /tmp/nr-pag
    python scripts/noise_ratio_check.py RUN /tmp/nr.npy /tmp/nr-pag/noise-ratio.json

The definitions (docs/experiments.md, "pag measure noise-ratio"), written here without pag's code:
for each image x with oracle mask m (1 on the object's half) and one draw u ~ N(0, I), for s in
logspace(-2, 1, 30):
    signal(s)     = mean_x || softmax(f(x + s m u))       - softmax(f(x)) ||_1
    distractor(s) = mean_x || softmax(f(x + s (1 - m) u)) - softmax(f(x)) ||_1
    ratio(s)      = signal(s) / max(distractor(s), 1e-12)
and the noise ratio is the maximum of ratio(s) over the scales where both changes are at least
1e-5 (the last scale when none is). The model runs in evaluation mode. The noise here is drawn by
numpy, not by pag's generator, so the two agree within the sampling error of the draws: the
script prints both curves' relative difference and exits 1 when the noise ratios differ by more
than --tolerance (default 10%).
"""
import argparse
import json
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from torch_check import load_lenet  # the same strict rebuild of pag's LeNet


def curves(model, x, m, scales, seed):
    u = torch.from_numpy(np.random.default_rng(seed).standard_normal(x.shape).astype(np.float32))
    with torch.no_grad():
        p0 = F.softmax(model(x), dim=1)
        sig, dis = [], []
        for s in scales:
            ps = F.softmax(model(x + float(s) * m * u), dim=1)
            pd = F.softmax(model(x + float(s) * (1 - m) * u), dim=1)
            sig.append((ps - p0).abs().sum(1).double().mean().item())
            dis.append((pd - p0).abs().sum(1).double().mean().item())
    return np.array(sig), np.array(dis)


def noise_ratio(sig, dis, measurable=1e-5):
    """The maximum of ratio(s) over the measurable scales, and its index."""
    ratio = sig / np.maximum(dis, 1e-12)
    ok = [i for i in range(len(ratio)) if sig[i] >= measurable and dis[i] >= measurable]
    i = max(ok, key=lambda k: ratio[k]) if ok else len(ratio) - 1
    return ratio[i], i


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", help="a folder written by pag train (LeNet)")
    ap.add_argument("predicted", help="the --out of `pag predict --samples N` (its .inputs.npy and .masks.npy are read)")
    ap.add_argument("pag_json", help="noise-ratio.json of `pag measure noise-ratio` on the same run and samples")
    ap.add_argument("--seeds", type=int, default=3, help="noise draws averaged (each its own seed; default 3)")
    ap.add_argument("--tolerance", type=float, default=0.10, help="largest relative difference of the noise ratios")
    args = ap.parse_args()

    torch.set_num_threads(2)
    model, _ = load_lenet(args.run, "noise_ratio_check")
    stem = args.predicted.replace(".npy", "")
    x = torch.from_numpy(np.load(stem + ".inputs.npy"))
    m = torch.from_numpy(np.load(stem + ".masks.npy"))
    ours = json.load(open(args.pag_json))
    if ours["samples"] != x.shape[0]:
        sys.exit(f"noise_ratio_check: pag measured {ours['samples']} images, the predicted inputs are {x.shape[0]}")
    scales = np.array(ours["stds"], dtype=np.float64)
    expected = np.logspace(-2, 1, 30)
    if len(scales) != 30 or np.abs(scales / expected - 1).max() > 1e-6:
        sys.exit("noise_ratio_check: pag's grid is not logspace(-2, 1, 30)")

    runs = [curves(model, x, m, scales, seed) for seed in range(args.seeds)]
    sig = np.mean([r[0] for r in runs], axis=0)
    dis = np.mean([r[1] for r in runs], axis=0)
    theirs, at = noise_ratio(sig, dis)
    per_draw = [noise_ratio(s, d)[0] for s, d in runs]
    pag_sig, pag_dis = np.array(ours["signal"]), np.array(ours["distractor"])
    rel = lambda a, b: np.abs(a - b) / np.maximum(np.abs(b), 1e-12)
    print(f"{x.shape[0]} images, {args.seeds} numpy draws: noise ratio {theirs:.3f} at s = {scales[at]:.3g} "
          f"(per draw {', '.join(f'{v:.3f}' for v in per_draw)}); pag {ours['max_ratio']:.3f} at s = {ours['max_ratio_std']:.3g}")
    print(f"median relative difference of the curves: signal {np.median(rel(pag_sig, sig)):.3f}, "
          f"distractor {np.median(rel(pag_dis, dis)):.3f}")
    d = abs(ours["max_ratio"] - theirs) / theirs
    print(f"noise ratio: relative difference {d:.3f} (tolerance {args.tolerance})")
    sys.exit(0 if d <= args.tolerance else 1)


if __name__ == "__main__":
    main()
