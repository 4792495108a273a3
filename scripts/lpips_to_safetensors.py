#!/usr/bin/env python3
"""Converts LPIPS weights (the `lpips` package, v0.1) to the safetensors file that
`pag measure alignment --lpips FILE` reads. pag itself never downloads anything.

Usage (torch and safetensors from PyPI; `lpips` only for the first form):

    # The lpips package's network (lpips/torchvision fetch the backbone into their cache once):
    python scripts/lpips_to_safetensors.py --net alex --out lpips-alex.safetensors
    python scripts/lpips_to_safetensors.py --net vgg --out lpips-vgg.safetensors

    # A .pth holding a whole LPIPS state_dict, e.g. torch.save(lpips.LPIPS(net='alex').state_dict(), 'lpips.pth'):
    python scripts/lpips_to_safetensors.py --pth lpips.pth --out lpips-alex.safetensors

    # The lin layers as the lpips repository ships them (lpips/weights/v0.1/alex.pth) plus
    # torchvision's backbone state_dict (e.g. ~/.cache/torch/hub/checkpoints/alexnet-owt-7be5be79.pth):
    python scripts/lpips_to_safetensors.py --pth alex.pth --backbone alexnet-owt-7be5be79.pth --out lpips-alex.safetensors

The output holds exactly the names of `lpips.LPIPS(net=NET).state_dict()`:
`net.sliceS.I.weight` / `.bias` (I the torchvision `features` index), `linK.model.1.weight`
[1, C, 1, 1] and `scaling_layer.shift` / `.scale`. The copies `lins.K.model.1.weight` that
lpips >= 0.1.4 adds are dropped (they share memory with `linK`, which safetensors refuses), and
`linK.model.0.weight` (lpips built with use_dropout=False) is renamed to `linK.model.1.weight`.
Names and shapes are checked before anything is written.
"""
import argparse, sys
try:
    import torch
    from safetensors.torch import save_file
except ImportError as e:
    sys.exit("lpips_to_safetensors.py needs PyTorch and safetensors (pip install torch safetensors): %s" % e)

# torchvision features index -> lpips slice, and each convolution's shape (lpips/pretrained_networks.py).
SLICES = {
    "alex": {0: 1, 3: 2, 6: 3, 8: 4, 10: 5},
    "vgg": {0: 1, 2: 1, 5: 2, 7: 2, 10: 3, 12: 3, 14: 3, 17: 4, 19: 4, 21: 4, 24: 5, 26: 5, 28: 5},
}
CONVS = {
    "alex": [(64, 3, 11), (192, 64, 5), (384, 192, 3), (256, 384, 3), (256, 256, 3)],
    "vgg": [(64, 3, 3), (64, 64, 3), (128, 64, 3), (128, 128, 3), (256, 128, 3), (256, 256, 3), (256, 256, 3),
            (512, 256, 3), (512, 512, 3), (512, 512, 3), (512, 512, 3), (512, 512, 3), (512, 512, 3)],
}
LINS = {"alex": [64, 192, 384, 256, 256], "vgg": [64, 128, 256, 512, 512]}


def expected(net):
    shapes = {}
    for (index, s), (o, c, k) in zip(SLICES[net].items(), CONVS[net]):
        shapes[f"net.slice{s}.{index}.weight"] = (o, c, k, k)
        shapes[f"net.slice{s}.{index}.bias"] = (o,)
    for k, c in enumerate(LINS[net]):
        shapes[f"lin{k}.model.1.weight"] = (1, c, 1, 1)
    return shapes


def load(path):
    sd = torch.load(path, map_location="cpu", weights_only=True)
    return sd.get("state_dict", sd)


def convert(sd, net=None, backbone=None):
    sd = {k: v for k, v in sd.items()}
    for k in range(5):
        if f"lin{k}.model.0.weight" in sd:
            sd[f"lin{k}.model.1.weight"] = sd.pop(f"lin{k}.model.0.weight")
        dup = sd.pop(f"lins.{k}.model.1.weight", None)
        if dup is not None and f"lin{k}.model.1.weight" not in sd:
            sd[f"lin{k}.model.1.weight"] = dup
    if net is None:
        net = "vgg" if "net.slice1.2.weight" in sd or (backbone and "features.2.weight" in backbone) else "alex"
    if backbone is not None:
        for index, s in SLICES[net].items():
            for p in ("weight", "bias"):
                sd[f"net.slice{s}.{index}.{p}"] = backbone[f"features.{index}.{p}"]
    want = expected(net)
    missing = [k for k in want if k not in sd]
    if missing:
        hint = " (the file holds only the lin layers: add --backbone)" if all(k.startswith("net.") for k in missing) else ""
        sys.exit(f"missing {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}{hint}")
    for k, shape in want.items():
        if tuple(sd[k].shape) != shape:
            sys.exit(f"{k} has shape {tuple(sd[k].shape)}, LPIPS {net} expects {shape}")
    extra = [k for k in sd if k not in want and not k.startswith("scaling_layer.")]
    if extra:
        sys.exit(f"unexpected tensors for LPIPS {net}: {', '.join(extra[:4])}")
    return net, {k: v.detach().float().contiguous().clone() for k, v in sd.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--net", choices=["alex", "vgg"], help="backbone (default: alex, or what --pth holds)")
    ap.add_argument("--pth", help="LPIPS state_dict (.pth); without it the lpips package builds the network")
    ap.add_argument("--backbone", help="torchvision alexnet / vgg16 state_dict (.pth) for a --pth of lin layers only")
    ap.add_argument("--out", required=True, help="output .safetensors")
    args = ap.parse_args()
    if args.pth:
        sd = load(args.pth)
    else:
        try:
            import lpips
        except ImportError:
            sys.exit("the lpips package is not installed (pip install lpips), or pass --pth")
        sd = lpips.LPIPS(net=args.net or "alex", verbose=False).state_dict()
    net, tensors = convert(sd, args.net, load(args.backbone) if args.backbone else None)
    save_file(tensors, args.out, metadata={"format": "pt", "lpips.net": net})
    print(f"wrote {args.out}: LPIPS {net}, {len(tensors)} tensors")


if __name__ == "__main__":
    main()
