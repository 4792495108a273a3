#!/usr/bin/env python3
"""Loads a pag checkpoint in PyTorch with strict names and compares logits with pag's.

Usage (PyTorch and safetensors from PyPI in a virtual environment):
    pag predict --checkpoint RUN --samples 64 --out /tmp/pag_logits.npy
    python scripts/torch_check.py RUN /tmp/pag_logits.npy
It rebuilds the run's model (lenet or mlp) as a plain nn.Module, calls
load_state_dict(strict=True) on RUN/checkpoint.safetensors, runs the inputs pag wrote next to
the logits (pag_logits.inputs.npy) in eval mode and prints the largest absolute difference.
"""
import json, sys
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file


class LeNet(nn.Module):
    def __init__(self, c, h, w, classes, p1, p2):
        super().__init__()
        self.conv1 = nn.Conv2d(c, 32, 3)
        self.conv2 = nn.Conv2d(32, 64, 3)
        self.fc1 = nn.Linear(64 * ((h - 4) // 2) * ((w - 4) // 2), 128)
        self.fc2 = nn.Linear(128, classes)
        self.p1, self.p2 = p1, p2

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.dropout(x, self.p1, self.training).flatten(1)
        x = F.dropout(F.relu(self.fc1(x)), self.p2, self.training)
        return self.fc2(x)


def load_lenet(run, who):
    """The run's LeNet in eval mode, its checkpoint loaded strictly; and the state's tensor count."""
    metrics = json.load(open(f"{run}/metrics.json"))
    cfg, hp = metrics["config"], metrics["model_hyperparameters"]
    c, h, w = (int(v) for v in metrics["data"]["sample_shape"].split("x"))
    if cfg["model"] != "lenet":
        sys.exit(f"{who}: model {cfg['model']} is not rebuilt here (lenet only)")
    model = LeNet(c, h, w, int(hp.get("classes", 10)), float(hp["dropout1"]), float(hp["dropout2"]))
    state = load_file(f"{run}/checkpoint.safetensors")
    model.load_state_dict(state, strict=True)
    return model.eval(), len(state)


def main():
    run, logits_path = sys.argv[1], sys.argv[2]
    model, tensors = load_lenet(run, "torch_check")
    x = torch.from_numpy(np.load(logits_path.replace(".npy", "") + ".inputs.npy"))
    with torch.no_grad():
        ours = model(x).numpy()
    theirs = np.load(logits_path)
    diff = np.abs(ours - theirs).max()
    agree = (ours.argmax(1) == theirs.argmax(1)).mean()
    print(f"strict load OK ({tensors} tensors); {x.shape[0]} inputs; max |logit difference| = {diff:.3g}; "
          f"max |logit| = {np.abs(theirs).max():.3g}; argmax agreement {agree:.3f}")
    sys.exit(0 if diff < 1e-3 else 1)


if __name__ == "__main__":
    main()
