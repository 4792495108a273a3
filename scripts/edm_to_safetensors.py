#!/usr/bin/env python3
"""Converts a published EDM checkpoint (.pkl) to the safetensors file pag's `edm` score plugin reads.

    PYTHONPATH=/path/to/edm python scripts/edm_to_safetensors.py edm-cifar10-32x32-uncond-vp.pkl \\
        --out edm-cifar10-32x32-uncond-vp.safetensors

Unpickling needs the modules of the edm repository (https://github.com/NVlabs/edm: `dnnlib`,
`torch_utils`, `training`) on PYTHONPATH, and torch; writing needs the safetensors package.
pag downloads nothing: fetch the .pkl yourself (the EDM README lists them), e.g.
edm-cifar10-32x32-cond-vp.pkl, edm-cifar10-32x32-uncond-vp.pkl (DDPM++, EDM preconditioning)
and edm-imagenet-64x64-cond-adm.pkl (ADM).

What is written (docs/file-formats.md, "EDM networks"):
  - every parameter of the pickle's 'ema' network (an EDMPrecond) under its PyTorch state_dict
    name, e.g. model.map_layer0.weight, model.enc.32x32_block0.conv0.weight,
    model.dec.32x32_aux_conv.bias (ADM: model.out_conv.weight), as float32;
  - not the constant `resample_filter` buffers (checked to be the [1, 1] filter pag implements);
  - the architecture as safetensors metadata (str -> str): format=pag-edm-1, model_type
    (SongUNet | DhariwalUNet), img_resolution, img_channels, label_dim, augment_dim,
    model_channels, channel_mult (comma-separated), channel_mult_emb, num_blocks,
    attn_resolutions, channel_mult_noise, channels_per_head, sigma_data, embedding_type,
    encoder_type, decoder_type, resample_filter, precond=edm.
Supported: EDMPrecond around SongUNet with the DDPM++ settings (positional embedding, standard
encoder and decoder, resample filter [1, 1]) or around DhariwalUNet. Anything else (VP / VE /
iDDPM preconditioning, NCSN++) is refused with a message saying what differs.
"""
import argparse
import inspect
import os
import pickle
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from edm_reference import metadata_from_config  # noqa: E402

UNIT_FILTER = torch.tensor([[[[0.25, 0.25], [0.25, 0.25]]]])


def state_dict_for_pag(net):
    """The tensors pag reads: the state_dict without the [1, 1] resample filters (refused if
    another filter or another buffer is present)."""
    out = {}
    for name, t in net.state_dict().items():
        if name.endswith(".resample_filter"):
            if t.shape != UNIT_FILTER.shape or not torch.allclose(t.float().cpu(), UNIT_FILTER):
                raise SystemExit(f"{name}: resample filter {t.flatten().tolist()} is not [1, 1]; pag supports only DDPM++ / ADM resampling")
            continue
        if name.endswith(".freqs"):
            raise SystemExit(f"{name}: Fourier noise embedding (NCSN++) is not supported")
        out[name] = t.detach().to(torch.float32).cpu().contiguous()
    return out


def _bound_kwargs(module):
    """The constructor arguments of a persistent (edm torch_utils.persistence) module, defaults filled in."""
    # A persistent class wraps the original one in a subclass whose __init__ takes (*args, **kwargs):
    # the first constructor in the MRO with named parameters is the real one.
    sig = None
    for cls in type(module).__mro__:
        s = inspect.signature(cls.__init__)
        if any(p.kind == p.POSITIONAL_OR_KEYWORD and p.name != "self" for p in s.parameters.values()):
            sig = s
            break
    if sig is None:
        raise SystemExit(f"cannot read the constructor arguments of {type(module).__name__}")
    args = getattr(module, "init_args", ())
    kwargs = dict(getattr(module, "init_kwargs", {}))
    bound = sig.bind_partial(None, *args, **kwargs)
    bound.apply_defaults()
    values = dict(bound.arguments)
    values.pop("self", None)
    extra = values.pop("model_kwargs", None) or values.pop("kwargs", None) or {}
    values.update(extra)
    return values


def config_of(net):
    """The pag configuration of a published EDMPrecond, or SystemExit naming what is unsupported."""
    if type(net).__name__ != "EDMPrecond":
        raise SystemExit(f"network is a {type(net).__name__}; pag's edm plugin implements the EDM preconditioning (EDMPrecond) only")
    model = net.model
    kind = type(model).__name__
    if kind not in ("SongUNet", "DhariwalUNet"):
        raise SystemExit(f"model type {kind} is not supported (SongUNet with DDPM++ settings, or DhariwalUNet)")
    kw = _bound_kwargs(model)
    if kind == "SongUNet":
        for key, want in [("embedding_type", "positional"), ("encoder_type", "standard"), ("decoder_type", "standard")]:
            if kw.get(key, want) != want:
                raise SystemExit(f"SongUNet {key}={kw.get(key)!r} is not supported (DDPM++ uses {want!r})")
        if list(kw.get("resample_filter", [1, 1])) != [1, 1]:
            raise SystemExit(f"resample_filter {kw.get('resample_filter')} is not supported (DDPM++ uses [1, 1])")
    return dict(
        model_type=kind, img_resolution=int(net.img_resolution), img_channels=int(net.img_channels),
        label_dim=int(net.label_dim), augment_dim=int(kw.get("augment_dim", 0)),
        model_channels=int(kw["model_channels"]), channel_mult=[int(v) for v in kw["channel_mult"]],
        channel_mult_emb=int(kw["channel_mult_emb"]), num_blocks=int(kw["num_blocks"]),
        attn_resolutions=[int(v) for v in kw["attn_resolutions"]],
        channel_mult_noise=int(kw.get("channel_mult_noise", 1)), channels_per_head=64,
        sigma_data=float(net.sigma_data),
    )


def main():
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Unpickling needs the edm repository's modules (dnnlib, torch_utils, training) on PYTHONPATH: "
               "PYTHONPATH=/path/to/edm python scripts/edm_to_safetensors.py NET.pkl --out NET.safetensors. "
               "Tensor names and metadata: docs/file-formats.md (EDM networks).")
    ap.add_argument("pkl", help="a published EDM network pickle, e.g. edm-cifar10-32x32-uncond-vp.pkl")
    ap.add_argument("--out", required=True, help="the safetensors file to write")
    ap.add_argument("--key", default="ema", help="which network of the pickle (default: ema)")
    a = ap.parse_args()
    try:
        with open(a.pkl, "rb") as f:
            data = pickle.load(f)
    except ModuleNotFoundError as e:
        raise SystemExit(f"{a.pkl}: unpickling needs the edm repository on PYTHONPATH ({e}); "
                         f"e.g. git clone https://github.com/NVlabs/edm and PYTHONPATH=edm")
    net = data[a.key] if isinstance(data, dict) else data
    cfg = config_of(net)
    tensors = state_dict_for_pag(net)
    from safetensors.torch import save_file
    tmp = a.out + ".tmp"
    save_file(tensors, tmp, metadata=metadata_from_config(cfg))
    os.replace(tmp, a.out)
    n = sum(t.numel() for t in tensors.values())
    print(f"wrote {a.out}: {cfg['model_type']} {cfg['img_resolution']}x{cfg['img_resolution']}, "
          f"label_dim {cfg['label_dim']}, {len(tensors)} tensors, {n} parameters")


if __name__ == "__main__":
    main()
