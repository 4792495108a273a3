#!/usr/bin/env python3
"""Writes the fixture of the `edm` score plugin's test (Tests/PAGScoreTests/Fixtures/):

    edm-song-cond.safetensors    DDPM++ (SongUNet), class-conditional, random weights
    edm-song-uncond.safetensors  DDPM++ (SongUNet), unconditional
    edm-adm-cond.safetensors     ADM (DhariwalUNet), class-conditional
    edm-cases.safetensors        inputs and the expected D(x; sigma), per network and case

Usage (torch, numpy, safetensors; no download, no edm checkout):
    /work/venv-torch/bin/python scripts/edm_fixture.py

The networks are scripts/edm_reference.py with the real structure (every block type, attention
with several heads for ADM, the augmentation mapping of the CIFAR-10 checkpoints) and reduced
sizes: 16x16 images, 8 base channels, multipliers 1,2,2, one block per level (two in the decoder). The weight files
are written exactly as scripts/edm_to_safetensors.py writes a converted checkpoint (float32,
the same metadata). D is computed in float64 from the float32 weights and inputs: the exact
answer pag's float32 result is compared with.

Cases: for each network, sigma in {0.02, 0.5, 3, 40}; x = u + sigma n (u uniform in [-1, 1],
n standard normal; 2 images); labels [3, 4] and, for conditional networks, also none
(EDM's zero class vector). Tensor names in edm-cases: NET.CASE.x [2,3,16,16] F32,
NET.CASE.sigma [1] F64, NET.CASE.labels [2] I32 (absent: unconditional), NET.CASE.d F64.
"""
import os
import sys

import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from edm_reference import EDMPrecond, metadata_from_config, randomize_  # noqa: E402
from edm_to_safetensors import state_dict_for_pag  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "PAGScoreTests", "Fixtures")

SMALL = dict(img_resolution=16, img_channels=3, model_channels=8, channel_mult=[1, 2, 2], channel_mult_emb=4,
             num_blocks=1, sigma_data=0.5)
NETS = {
    "song-cond": dict(SMALL, model_type="SongUNet", label_dim=10, augment_dim=9, attn_resolutions=[8]),
    "song-uncond": dict(SMALL, model_type="SongUNet", label_dim=0, augment_dim=9, attn_resolutions=[8]),
    "adm-cond": dict(SMALL, model_type="DhariwalUNet", label_dim=5, augment_dim=0, attn_resolutions=[8, 4],
                     channels_per_head=8),
}
SIGMAS = [0.02, 0.5, 3.0, 40.0]


def main():
    os.makedirs(OUT, exist_ok=True)
    cases = {}
    g = torch.Generator().manual_seed(1)
    for seed, (name, cfg) in enumerate(NETS.items()):
        net = randomize_(EDMPrecond(cfg), seed=seed + 10)
        tensors = state_dict_for_pag(net)
        tensors = {k: v.to(torch.float32).contiguous() for k, v in tensors.items()}
        save_file(tensors, os.path.join(OUT, f"edm-{name}.safetensors"), metadata=metadata_from_config(cfg))
        # The reference runs in float64 on the float32-rounded weights.
        net.load_state_dict({k: v.to(torch.float64) for k, v in tensors.items()}, strict=True)
        net = net.double().eval()
        for si, sigma in enumerate(SIGMAS):
            label_sets = [[3, 4], None] if cfg["label_dim"] else [None]
            for li, labels in enumerate(label_sets):
                key = f"{name}.s{si}l{li}"
                u = torch.rand(2, 3, 16, 16, generator=g, dtype=torch.float64) * 2 - 1
                x = (u + sigma * torch.randn(2, 3, 16, 16, generator=g, dtype=torch.float64)).to(torch.float32)
                onehot = None
                if labels is not None:
                    onehot = torch.nn.functional.one_hot(torch.tensor(labels), cfg["label_dim"]).to(torch.float64)
                    cases[f"{key}.labels"] = torch.tensor(labels, dtype=torch.int32)
                with torch.no_grad():
                    d = net(x.to(torch.float64), torch.full([2], sigma, dtype=torch.float64), onehot)
                cases[f"{key}.x"] = x
                cases[f"{key}.sigma"] = torch.tensor([sigma], dtype=torch.float64)
                cases[f"{key}.d"] = d.contiguous()
        print(f"{name}: {sum(t.numel() for t in tensors.values())} weights in {len(tensors)} tensors")
    save_file(cases, os.path.join(OUT, "edm-cases.safetensors"))
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print(f"wrote {OUT} ({total / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
