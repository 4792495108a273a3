#!/usr/bin/env python3
"""Writes Tests/PAGMeasureTests/Fixtures/lpips_expected.json: LPIPS distances computed in
PyTorch for deterministic weights and inputs, which LPIPSTests.swift regenerates and compares.

Usage (torch and numpy; no torchvision, no lpips package, no download):
    /work/venv-torch/bin/python scripts/lpips_fixture.py

The forward pass is written here in plain torch following the lpips package v0.1
(lpips/lpips.py, lpips/pretrained_networks.py): ScalingLayer, the torchvision AlexNet / VGG16
feature slices, unit-normalization over channels (eps 1e-10), squared difference, 1x1 lin
layer without bias, spatial mean, sum over the five layers. It runs in float64 (the exact
answer for float32 weights and inputs); pag computes in float32.

Weights (tensor number k in the order of `layers` below, weight then bias per conv, then
lin0..lin4; element i in C order):
    conv weight  2 / sqrt(fan_in) * s(i, k)      (fan_in = in_channels * kh * kw)
    conv bias    0.1 * s(i, k)
    lin weight   |s(i, k)|
    s(i, k) = sin(1.7 i + 0.013 i^2 + k)         (in float64; the chirp keeps filters independent)
each rounded to float32. Inputs, element (n, c, h, w) at flat index j of the [N, C, H, W]
tensor, with (fh, fw, p) given per input in the JSON:
    0.6 sin(fh h + fw w + 1.3 c + 2.1 n + p) + 0.3 sin(0.7 j + p)
rounded to float32. Images whose shorter side is below min_side are first brought to 3
channels (1-channel images repeated) and resized bilinearly (align_corners=False) so that the
shorter side is min_side and the other is floor(side * min_side / shorter + 0.5).
"""
import json, math, os
import numpy as np
import torch
import torch.nn.functional as F

torch.set_grad_enabled(False)

# (state_dict prefix, out, in, kernel, stride, padding, max-pool before it (kernel, stride) or None, tap after it)
ALEX = [
    ("net.slice1.0", 64, 3, 11, 4, 2, None, True),
    ("net.slice2.3", 192, 64, 5, 1, 2, (3, 2), True),
    ("net.slice3.6", 384, 192, 3, 1, 1, (3, 2), True),
    ("net.slice4.8", 256, 384, 3, 1, 1, None, True),
    ("net.slice5.10", 256, 256, 3, 1, 1, None, True),
]
VGG = [
    ("net.slice1.0", 64, 3, 3, 1, 1, None, False), ("net.slice1.2", 64, 64, 3, 1, 1, None, True),
    ("net.slice2.5", 128, 64, 3, 1, 1, (2, 2), False), ("net.slice2.7", 128, 128, 3, 1, 1, None, True),
    ("net.slice3.10", 256, 128, 3, 1, 1, (2, 2), False), ("net.slice3.12", 256, 256, 3, 1, 1, None, False),
    ("net.slice3.14", 256, 256, 3, 1, 1, None, True),
    ("net.slice4.17", 512, 256, 3, 1, 1, (2, 2), False), ("net.slice4.19", 512, 512, 3, 1, 1, None, False),
    ("net.slice4.21", 512, 512, 3, 1, 1, None, True),
    ("net.slice5.24", 512, 512, 3, 1, 1, (2, 2), False), ("net.slice5.26", 512, 512, 3, 1, 1, None, False),
    ("net.slice5.28", 512, 512, 3, 1, 1, None, True),
]
LAYERS = {"alex": ALEX, "vgg": VGG}
SHIFT = [-.030, -.088, -.188]
SCALE = [.458, .448, .450]


def wave(count, k, amplitude=1.0, absolute=False):
    i = np.arange(count, dtype=np.float64)
    v = np.sin(1.7 * i + 0.013 * (i * i) + k)
    if absolute:
        v = np.abs(v)
    return (amplitude * v).astype(np.float32)


def make_weights(backbone):
    """The test weights as an lpips state_dict (float32, scaling-layer buffers included)."""
    sd, k = {}, 0
    for name, o, c, ks, *_ in LAYERS[backbone]:
        sd[name + ".weight"] = torch.from_numpy(wave(o * c * ks * ks, k, 2 / math.sqrt(c * ks * ks))).reshape(o, c, ks, ks)
        sd[name + ".bias"] = torch.from_numpy(wave(o, k + 1, 0.1))
        k += 2
    taps = [o for _, o, _, _, _, _, _, tap in LAYERS[backbone] if tap]
    for l, ch in enumerate(taps):
        sd[f"lin{l}.model.1.weight"] = torch.from_numpy(wave(ch, k, absolute=True)).reshape(1, ch, 1, 1)
        k += 1
    sd["scaling_layer.shift"] = torch.tensor(SHIFT, dtype=torch.float32).reshape(1, 3, 1, 1)
    sd["scaling_layer.scale"] = torch.tensor(SCALE, dtype=torch.float32).reshape(1, 3, 1, 1)
    return sd


def make_input(shape, fh, fw, p):
    n, c, h, w = shape
    nn_, cc, hh, ww = np.meshgrid(np.arange(n), np.arange(c), np.arange(h), np.arange(w), indexing="ij")
    j = np.arange(n * c * h * w, dtype=np.float64).reshape(shape)
    v = 0.6 * np.sin(fh * hh + fw * ww + 1.3 * cc + 2.1 * nn_ + p) + 0.3 * np.sin(0.7 * j + p)
    return torch.from_numpy(v.astype(np.float32))


def resized_size(h, w, min_side):
    s = min(h, w)
    if s >= min_side:
        return h, w
    return int(math.floor(h * min_side / s + 0.5)), int(math.floor(w * min_side / s + 0.5))


def prepare(x, min_side):
    if x.shape[1] == 1:
        x = x.repeat(1, 3, 1, 1)
    oh, ow = resized_size(x.shape[2], x.shape[3], min_side)
    if (oh, ow) != tuple(x.shape[2:]):
        x = F.interpolate(x, size=(oh, ow), mode="bilinear", align_corners=False)
    shift = torch.tensor(SHIFT, dtype=x.dtype).reshape(1, 3, 1, 1)
    scale = torch.tensor(SCALE, dtype=x.dtype).reshape(1, 3, 1, 1)
    return (x - shift) / scale


def features(x, sd, backbone):
    taps = []
    for name, _, _, _, stride, pad, pool, tap in LAYERS[backbone]:
        if pool:
            x = F.max_pool2d(x, pool[0], pool[1])
        x = F.relu(F.conv2d(x, sd[name + ".weight"], sd[name + ".bias"], stride=stride, padding=pad))
        if tap:
            taps.append(x)
    return taps


def lpips(a, b, sd, backbone, min_side, per_layer=False):
    fa = features(prepare(a, min_side), sd, backbone)
    fb = features(prepare(b, min_side), sd, backbone)
    layers = []
    for l, (u, v) in enumerate(zip(fa, fb)):
        u = u / (torch.sqrt((u ** 2).sum(1, keepdim=True)) + 1e-10)
        v = v / (torch.sqrt((v ** 2).sum(1, keepdim=True)) + 1e-10)
        layers.append(F.conv2d((u - v) ** 2, sd[f"lin{l}.model.1.weight"]).mean([2, 3]).flatten())
    return torch.stack(layers, 1) if per_layer else sum(layers)


CASES = [
    {"backbone": "alex", "min_side": 64, "shape": [2, 1, 28, 28], "a": [0.37, 0.61, 0.5], "b": [0.23, 0.41, 1.1]},
    {"backbone": "alex", "min_side": 64, "shape": [2, 3, 64, 64], "a": [0.11, 0.19, 0.2], "b": [0.13, 0.17, 0.9]},
    {"backbone": "alex", "min_side": 64, "shape": [2, 1, 56, 28], "a": [0.29, 0.53, 0.4], "b": [0.31, 0.47, 1.7]},
    {"backbone": "alex", "min_side": 32, "shape": [1, 3, 40, 48], "a": [0.21, 0.33, 0.3], "b": [0.5, 0.1, 2.3]},
    {"backbone": "vgg", "min_side": 64, "shape": [2, 1, 28, 28], "a": [0.37, 0.61, 0.5], "b": [0.23, 0.41, 1.1]},
    {"backbone": "vgg", "min_side": 64, "shape": [1, 3, 20, 36], "a": [0.43, 0.27, 0.8], "b": [0.19, 0.59, 0.6]},
]
RESIZE = {"shape": [1, 2, 3, 5], "size": [7, 11], "x": [0.9, 0.3, 0.1]}


def main():
    out = {"cases": [], "resize": dict(RESIZE)}
    for case in CASES:
        sd = {k: v.double() for k, v in make_weights(case["backbone"]).items()}
        a = make_input(case["shape"], *case["a"]).double()
        b = make_input(case["shape"], *case["b"]).double()
        d = lpips(a, b, sd, case["backbone"], case["min_side"])
        per = lpips(a, b, sd, case["backbone"], case["min_side"], per_layer=True)
        sd32 = make_weights(case["backbone"])
        d32 = lpips(a.float(), b.float(), sd32, case["backbone"], case["min_side"])
        rel = ((d32.double() - d).abs() / d).max().item()
        print(f"{case['backbone']} {case['shape']} min_side {case['min_side']}: {d.tolist()} "
              f"(float32 torch rel. diff {rel:.1e}); per layer {per.tolist()}")
        out["cases"].append(dict(case, expected=d.tolist(), expected_layers=per.tolist()))
    x = make_input(RESIZE["shape"], *RESIZE["x"])
    out["resize"]["expected"] = F.interpolate(x.double(), size=tuple(RESIZE["size"]), mode="bilinear",
                                              align_corners=False).flatten().tolist()
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "PAGMeasureTests", "Fixtures",
                        "lpips_expected.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:  # one case per line
        f.write('{"cases": [\n' + ",\n".join(json.dumps(c) for c in out["cases"]) + '],\n"resize": '
                + json.dumps(out["resize"]) + "}\n")
    print("wrote", os.path.normpath(path))


if __name__ == "__main__":
    main()
