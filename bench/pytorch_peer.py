#!/usr/bin/env python3
"""PyTorch CPU peer for `pag bench`.

Runs the same workloads as `pag bench` with PyTorch on 2 CPU threads and
reports per-step timings. With --json, prints a JSON list:

    [{"name": "mlp-ce", "ms_median": ..., "ms_min": ...},
     ...
     {"name": "sgemm", "ms_median": ..., "ms_min": ..., "gflops": ...},
     {"name": "peak-rss", "peak_rss_mb": ...}]

`gflops` is present only for the throughput workloads (conv2d-fwd, sgemm)
and is computed from ms_median. See bench/README.md.

--mode picks how PyTorch runs: eager (the default), channels_last (models and
4-D inputs in NHWC memory format), compile (torch.compile, inductor; the
compile time is excluded from the timings and reported as compile_s), or best
(every mode per workload, the fastest kept, as "mode", with each mode's
median in "modes"). torch.compile does not support double backward
(gradnorm's penalty): such a workload runs eager under compile and says so in
"note".
"""

import argparse
import json
import resource
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

NUM_THREADS = 2
WARMUP = 3
MODES = ("eager", "channels_last", "compile")
MODE = "eager"  # the mode the workload factories build for (set by run_workload)
BATCH = 128
LR = 0.01
MOMENTUM = 0.9
GRADNORM_LAMBDA = 1e-3
GRADNORM_SCALE = 1e5


# --------------------------------------------------------------------------
# Models


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 256)
        self.fc2 = nn.Linear(256, 256)
        self.fc3 = nn.Linear(256, 10)

    def forward(self, x):
        x = x.flatten(1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


class LeNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3)
        self.conv2 = nn.Conv2d(32, 64, 3)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(F.max_pool2d(self.conv2(x), 2))  # pool then ReLU, as pag's lenet
        x = x.flatten(1)
        x = F.relu(self.fc1(x))
        return self.fc2(x)


class LeNetDropout(nn.Module):
    """The lenet plugin: the paper's LeNet with dropout 0.25 and 0.5 (plugin workloads)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3)
        self.conv2 = nn.Conv2d(32, 64, 3)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.relu(F.max_pool2d(self.conv2(F.relu(self.conv1(x))), 2))  # pool then ReLU, as pag's lenet
        x = F.relu(self.fc1(torch.flatten(self.dropout1(x), 1)))
        return self.fc2(self.dropout2(x))


class BasicBlock(nn.Module):
    def __init__(self, inp, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(inp, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or inp != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(inp, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out)) + self.shortcut(x)
        return F.relu(out)


class ResNet18(nn.Module):
    """The resnet18 plugin: kuangliu's CIFAR ResNet18 (3x3 stem, no max-pool), ReLU."""

    def __init__(self, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        layers, inp = [], 64
        for planes, stride in [(64, 1), (128, 2), (256, 2), (512, 2)]:
            blocks = []
            for s in [stride, 1]:
                blocks.append(BasicBlock(inp, planes, s))
                inp = planes
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.linear = nn.Linear(512, num_classes)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return self.linear(F.avg_pool2d(out, 4).flatten(1))


class DenoiserNet(nn.Module):
    """The denoiser score plugin's F (Plugins/Scores/Denoisers.swift), class-conditional: a
    two-resolution U-Net (3x3 convs, avg-pool 2, nearest 2x upsampling, skip additions) with
    per-channel biases from an MLP of the one-hot class (classes + 1 entries, the last "no
    class"). out_conv starts at zero. Odd H/W are zero-padded by one and cropped back."""

    def __init__(self, channels=1, width=32, classes=10):
        super().__init__()
        w = width
        self.classes = classes
        self.in_conv = nn.Conv2d(channels, w, 3, padding=1)
        self.conv1 = nn.Conv2d(w, w, 3, padding=1)
        self.down1 = nn.Conv2d(w, 2 * w, 3, padding=1)
        self.down2 = nn.Conv2d(2 * w, 2 * w, 3, padding=1)
        self.up1 = nn.Conv2d(2 * w, w, 3, padding=1)
        self.conv2 = nn.Conv2d(w, w, 3, padding=1)
        self.out_conv = nn.Conv2d(w, channels, 3, padding=1)
        self.embed = nn.ModuleList([nn.Linear(classes + 1, w), nn.Linear(w, w),
                                    nn.Linear(w, 2 * w), nn.Linear(w, w)])
        nn.init.zeros_(self.out_conv.weight)
        nn.init.zeros_(self.out_conv.bias)

    def forward(self, x, labels):
        h, w = x.shape[2:]
        x = F.pad(x, (0, w % 2, 0, h % 2))
        cond = F.one_hot(labels, self.classes + 1).float()
        t = F.relu(self.embed[0](cond))
        b1, b2, b3 = (self.embed[i](t)[:, :, None, None] for i in (1, 2, 3))
        h0 = F.relu(self.in_conv(x) + b1)
        h1 = F.relu(self.conv1(h0))
        d = self.down1(F.avg_pool2d(h1, 2)) + b2
        d = F.relu(self.down2(F.relu(d)))
        u = F.relu(self.up1(F.interpolate(d, scale_factor=2, mode="nearest")) + b3)
        v = F.relu(self.conv2(u + h1))
        return self.out_conv(v + h0)[:, :, :h, :w]


# --------------------------------------------------------------------------
# Objectives of the plugin workloads: the same computations as Plugins/Objectives, including
# the metrics each reports (read with .item(), as the plugins read them). Each returns
# (loss, metrics).

SMOOTH_LAMBDA = 1e-3
NOISE_SIGMA = 1e-2
PGD_EPS = 0.5
PGD_STEPS = 15


def accuracy(logits, y):
    return (logits.argmax(1) == y).float().mean().item()


def obj_ce(model, x, y):
    logits = model(x)
    return F.cross_entropy(logits, y), {"accuracy": accuracy(logits, y)}


def obj_gradnorm(model, x, y):
    x = x.detach().requires_grad_()
    logits = model(x)
    ce = F.cross_entropy(logits, y)
    (g,) = torch.autograd.grad(ce, x, create_graph=True)
    sum_sq = g.pow(2).sum()
    penalty = sum_sq * (GRADNORM_LAMBDA * GRADNORM_SCALE / x.shape[0])
    metrics = {"ce": ce.item(), "penalty": penalty.item(), "grad_norm": sum_sq.item() ** 0.5,
               "accuracy": accuracy(logits, y)}
    return ce + penalty, metrics


def obj_smoothness(model, x, y):
    logits = model(x)
    ce = F.cross_entropy(logits, y)
    noisy = model(x + torch.randn_like(x) * NOISE_SIGMA)
    penalty = (logits - noisy).pow(2).sum() * (SMOOTH_LAMBDA / x.shape[0])
    metrics = {"ce": ce.item(), "penalty": penalty.item(), "accuracy": accuracy(logits, y)}
    return ce + penalty, metrics


def obj_randomized_smoothing(model, x, y):
    logits = model(x + torch.randn_like(x) * NOISE_SIGMA)
    return F.cross_entropy(logits, y), {"accuracy": accuracy(logits, y)}


def per_sample_norm(t):
    return t.flatten(1).norm(dim=1).view(-1, *([1] * (t.dim() - 1)))


def obj_pgd_l2(model, x, y):
    """L2 PGD in eval mode: random start of norm eps/2, 15 steps of 2 eps / 15 along the
    normalized gradient, projection after each step (per-sample norms); loss in train mode."""
    eps, alpha = PGD_EPS, 2 * PGD_EPS / PGD_STEPS
    model.eval()
    with torch.no_grad():
        u = torch.randn_like(x)
        delta = u * ((eps / 2) / (per_sample_norm(u) + 1e-12))
    for _ in range(PGD_STEPS):
        xa = (x + delta).requires_grad_()
        (g,) = torch.autograd.grad(F.cross_entropy(model(xa), y), xa)
        with torch.no_grad():
            delta = delta + g * (alpha / (per_sample_norm(g) + 1e-12))
            delta = delta * (eps / (per_sample_norm(delta) + 1e-12)).clamp(max=1)
    x_adv = (x + delta).detach()
    with torch.no_grad():
        metrics = {"attack_success": 1 - accuracy(model(x_adv), y),
                   "perturbation_norm": delta.flatten(1).norm(dim=1).mean().item()}
    model.train()
    return F.cross_entropy(model(x_adv), y), metrics


def edm_loss(net, x, sigma, sigma_data, labels):
    """edmLoss of Plugins/Scores/Denoisers.swift: mean (F(c_in x~) - (x - c_skip x~) / c_out)^2
    for x~ = x + sigma eps, sigma [N, 1, 1, 1]; plus its no-grad "mse" metric, mean (D - x)^2."""
    sd2 = sigma_data * sigma_data
    variance = sigma.pow(2) + sd2
    root_inv = variance.pow(-0.5)              # c_in
    skip = variance.pow(-1) * sd2              # c_skip
    out = sigma * root_inv * sigma_data        # c_out
    noisy = x + torch.randn_like(x) * sigma
    f = net(noisy * root_inv, labels)
    loss = F.mse_loss(f, (x - skip * noisy) / out)
    with torch.no_grad():
        metrics = {"mse": F.mse_loss(skip * noisy + out * f.detach(), x).item()}
    return loss, metrics


# --------------------------------------------------------------------------
# Modes: each factory passes its model and inputs through `adapt`


def adapt(model, *tensors):
    """The model (a callable sharing the model's parameters) and inputs as MODE runs them."""
    if MODE == "channels_last":
        model = model.to(memory_format=torch.channels_last)
        tensors = tuple(t.contiguous(memory_format=torch.channels_last) if t.dim() == 4 else t for t in tensors)
    elif MODE == "compile":
        model = torch.compile(model)
    return (model,) + tensors


def has_conv(model):
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


# --------------------------------------------------------------------------
# Workloads: each factory returns (step_fn, flops_per_step or None)


def make_train(model_cls, gradnorm):
    torch.manual_seed(0)
    model = model_cls()
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    data = torch.randn(BATCH, 1, 28, 28)
    labels = torch.randint(0, 10, (BATCH,))
    model, data = adapt(model, data)

    if not gradnorm:

        def step():
            opt.zero_grad()
            loss = F.cross_entropy(model(data), labels)
            loss.backward()
            opt.step()

    else:

        def step():
            opt.zero_grad()
            x = data.detach().requires_grad_()
            ce = F.cross_entropy(model(x), labels)  # mean-reduced
            (g,) = torch.autograd.grad(ce, x, create_graph=True)
            penalty = g.pow(2).sum() / BATCH
            loss = ce + GRADNORM_LAMBDA * GRADNORM_SCALE * penalty
            loss.backward()
            opt.step()

    return step, None


def make_plugin_train(model_cls, objective, shape):
    """A plugin workload: model_cls trained with `objective` on a random batch of `shape`."""
    torch.manual_seed(0)
    model = model_cls()
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    data = torch.randn(*shape)
    labels = torch.randint(0, 10, (shape[0],))
    model, data = adapt(model, data)

    def step():
        opt.zero_grad()
        loss, _ = objective(model, data, labels)
        loss.backward()
        opt.step()

    return step, None


DENOISER_SIGMA = 0.5
DENOISER_SIGMA_DATA = 0.5
DENOISER_LABEL_DROPOUT = 0.2


def make_denoiser_train():
    """One training step of the denoiser score plugin as the default experiment trains it:
    width 32, 10 classes, batch 64 of 1x56x28 in [-1, 1], label dropout, EDM loss, Adam 2e-3."""
    torch.manual_seed(0)
    net = DenoiserNet(channels=1, width=32, classes=10)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    data = torch.rand(64, 1, 56, 28) * 2 - 1
    labels = torch.randint(0, 10, (64,))
    classes = net.classes
    net, data = adapt(net, data)

    def step():
        opt.zero_grad()
        sigma = torch.full((64, 1, 1, 1), DENOISER_SIGMA)
        dropped = torch.where(torch.rand(64) < DENOISER_LABEL_DROPOUT, classes, labels)
        loss, _ = edm_loss(net, data, sigma, DENOISER_SIGMA_DATA, dropped)
        loss.backward()
        opt.step()

    return step, None


def make_conv2d_fwd():
    torch.manual_seed(0)
    n, c, h, w = 32, 64, 32, 32
    o, kh, kw = 64, 3, 3
    x = torch.randn(n, c, h, w)
    weight = torch.randn(o, c, kh, kw) * 0.05
    bias = torch.randn(o)
    oh, ow = h, w  # padding 1, stride 1
    flops = 2 * n * o * oh * ow * c * kh * kw
    if MODE == "channels_last":
        x, weight = x.contiguous(memory_format=torch.channels_last), weight.contiguous(memory_format=torch.channels_last)
    conv = torch.compile(F.conv2d) if MODE == "compile" else F.conv2d

    def step():
        with torch.no_grad():
            conv(x, weight, bias, padding=1)

    return step, flops


def make_sgemm():
    torch.manual_seed(0)
    n = 1024
    a = torch.randn(n, n)
    b = torch.randn(n, n)
    out = torch.empty(n, n)
    flops = 2 * n**3

    def step():
        with torch.no_grad():
            torch.mm(a, b, out=out)

    return step, flops


def make_edm_score():
    """`pag bench edm-score-32`: one score evaluation of the CIFAR-10 DDPM++ network with EDM
    preconditioning (scripts/edm_reference.py, the structure the `edm` plugin runs; random
    weights), batch 16 of 3x32x32, sigma 0.5, no autograd. Reported per image; at most 5 timed
    steps after 1 warm-up, as pag does."""
    import os
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts"))
    from edm_reference import EDMPrecond, randomize_
    cfg = dict(model_type="SongUNet", img_resolution=32, img_channels=3, label_dim=0, augment_dim=9,
               model_channels=128, channel_mult=[2, 2, 2], channel_mult_emb=4, num_blocks=4,
               attn_resolutions=[16], channel_mult_noise=1, sigma_data=0.5)
    net = randomize_(EDMPrecond(cfg)).eval()
    x = torch.rand(16, 3, 32, 32) * 2 - 1
    sigma = torch.full([16], 0.5)
    net, x = adapt(net, x)

    def step():
        with torch.no_grad():
            d = net(x, sigma)
            (d - x) / 0.25

    return step, None, {"per": 16, "max_steps": 5, "warmup": 1}


class WideBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.equal = cin == cout and stride == 1
        self.shortcut = None if self.equal else nn.Conv2d(cin, cout, 1, stride, 0, bias=False)

    def forward(self, x):
        o = F.relu(self.bn1(x))
        y = self.conv2(F.relu(self.bn2(self.conv1(o))))
        return y + (x if self.equal else self.shortcut(o))


class WideResNet(nn.Module):
    """RobustBench's WideResNet layout (pre-activation blocks, input normalization by mu/sigma
    buffers), depth 16, widen factor 4: 2.7M parameters."""

    def __init__(self, depth=16, widen=4):
        super().__init__()
        n = (depth - 4) // 6
        w = [16, 16 * widen, 32 * widen, 64 * widen]
        self.register_buffer("mu", torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1))
        self.register_buffer("sigma", torch.tensor([0.2471, 0.2435, 0.2616]).view(1, 3, 1, 1))
        self.conv1 = nn.Conv2d(3, w[0], 3, 1, 1, bias=False)
        blocks = []
        for g, stride in zip(range(3), (1, 2, 2)):
            for i in range(n):
                blocks.append(WideBlock(w[g] if i == 0 else w[g + 1], w[g + 1], stride if i == 0 else 1))
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(w[3])
        self.fc = nn.Linear(w[3], 10)

    def forward(self, x):
        out = self.blocks(self.conv1((x - self.mu) / self.sigma))
        out = F.adaptive_avg_pool2d(F.relu(self.bn(out)), 1)
        return self.fc(torch.flatten(out, 1))


def build_wrn():
    torch.manual_seed(17)
    return WideResNet().eval()


def export_wrn(path):
    """The imported network of the wrn-input-grad workload, as pag reads it (legacy exporter)."""
    model = build_wrn()
    torch.onnx.export(model, torch.rand(2, 3, 32, 32), path, dynamo=False, opset_version=17,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})


def make_wrn_input_grad():
    """Input gradients of 32 images through the WideResNet: d logit[label] / dx, inputs in
    pag's scale [-1, 1] mapped to the model's [0, 1] (pag: onnx.input_range=0,1)."""
    model = build_wrn()
    for p in model.parameters():
        p.requires_grad_(False)
    x = torch.rand(32, 3, 32, 32) * 2 - 1
    labels = torch.randint(0, 10, (32,))
    model, x = adapt(model, x)

    def step():
        xi = x.detach().clone().requires_grad_(True)
        out = model((xi + 1) / 2)
        torch.autograd.grad(out.gather(1, labels[:, None]).sum(), xi)

    return step, None


WORKLOADS = {
    "mlp-ce": lambda: make_train(MLP, gradnorm=False),
    "mlp-gradnorm": lambda: make_train(MLP, gradnorm=True),
    "lenet-ce": lambda: make_train(LeNet, gradnorm=False),
    "lenet-gradnorm": lambda: make_train(LeNet, gradnorm=True),
    "conv2d-fwd": make_conv2d_fwd,
    "sgemm": make_sgemm,
    # The plugin workloads of `pag bench` (same names).
    "lenet-smoothness": lambda: make_plugin_train(LeNetDropout, obj_smoothness, (BATCH, 1, 28, 28)),
    "lenet-randomized-smoothing": lambda: make_plugin_train(
        LeNetDropout, obj_randomized_smoothing, (BATCH, 1, 28, 28)),
    "lenet-pgd-l2": lambda: make_plugin_train(LeNetDropout, obj_pgd_l2, (BATCH, 1, 28, 28)),
    "resnet18-ce": lambda: make_plugin_train(ResNet18, obj_ce, (32, 3, 32, 32)),
    "resnet18-gradnorm": lambda: make_plugin_train(ResNet18, obj_gradnorm, (32, 3, 32, 32)),
    "denoiser-train": make_denoiser_train,
    "edm-score-32": make_edm_score,
    "wrn-input-grad": make_wrn_input_grad,
}


# --------------------------------------------------------------------------


# Workloads without convolutions: channels_last is eager for them (not run twice).
NO_CONV = {"mlp-ce", "mlp-gradnorm", "sgemm"}
# Double backward, which torch.compile does not support: eager under compile.
DOUBLE_BACKWARD = {"mlp-gradnorm", "lenet-gradnorm", "resnet18-gradnorm"}


def effective(name, mode):
    """The mode a workload really runs in under `mode`, and why when it differs."""
    if mode == "compile" and name in DOUBLE_BACKWARD:
        return "eager", "torch.compile does not support double backward; ran eager"
    if mode == "channels_last" and name in NO_CONV:
        return "eager", "no convolutions: channels_last is eager"
    return mode, None


def run_mode(name, steps, mode):
    """One workload in one mode: its timings, plus compile_s (the warm-up, where compiling
    happens) under compile, and a note where the mode cannot run the workload."""
    global MODE
    mode, note = effective(name, mode)
    MODE = mode
    if mode == "compile":
        torch._dynamo.reset()
    made = WORKLOADS[name]()
    step, flops = made[0], made[1]
    opts = made[2] if len(made) > 2 else {}
    t0 = time.perf_counter()
    for _ in range(max(opts.get("warmup", WARMUP), 1)):
        step()
    warmup_s = time.perf_counter() - t0
    times_ms = []
    for _ in range(min(steps, opts.get("max_steps", steps))):
        t0 = time.perf_counter()
        step()
        times_ms.append((time.perf_counter() - t0) * 1e3 / opts.get("per", 1))
    med = statistics.median(times_ms)
    res = {"name": name, "ms_median": med, "ms_min": min(times_ms), "mode": mode}
    if flops is not None:
        res["gflops"] = flops / (med * 1e-3) / 1e9
    if mode == "compile":
        res["compile_s"] = warmup_s
    if note:
        res["note"] = note
    return res


def run_workload(name, steps, mode="eager"):
    """`mode` best: every mode, the fastest median kept, each mode's median in "modes"."""
    if mode != "best":
        return run_mode(name, steps, mode)
    tried = {}
    for m in MODES:
        real, note = effective(name, m)
        if real in tried:  # the same run as a mode already timed
            tried[m] = dict(tried[real], note=note)
            continue
        try:
            tried[m] = run_mode(name, steps, m)
        except Exception as e:  # a mode that fails on this workload is reported, not fatal
            tried[m] = {"error": "%s: %s" % (type(e).__name__, str(e).splitlines()[0][:200] if str(e) else "")}
    ok = {m: r for m, r in tried.items() if "ms_median" in r}
    if not ok:
        raise RuntimeError("%s: no mode ran: %s" % (name, tried))
    best = dict(min(ok.values(), key=lambda r: r["ms_median"]))
    best["modes"] = {m: r.get("ms_median") for m, r in tried.items()}
    notes = ["%s: %s" % (m, r["note"]) for m, r in tried.items() if r.get("note")]
    notes += ["%s failed: %s" % (m, r["error"]) for m, r in tried.items() if "error" in r]
    if "compile" in ok and "compile_s" in ok["compile"]:
        best["compile_s"] = ok["compile"]["compile_s"]
    if notes:
        best["note"] = "; ".join(notes)
    else:
        best.pop("note", None)
    return best


def peak_rss_mb():
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS reports bytes.
    if sys.platform == "darwin":
        return rss / (1024 * 1024)
    return rss / 1024


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=20,
                   help="timed steps per workload (after %d warmup)" % WARMUP)
    p.add_argument("--only", default=None,
                   help="comma-separated workload names (default: all): "
                   + ",".join(WORKLOADS))
    p.add_argument("--json", action="store_true", help="print JSON list")
    p.add_argument("--mode", default="eager", choices=MODES + ("best",),
                   help="how PyTorch runs: eager, channels_last, compile (torch.compile), or best "
                   "(the fastest of the three per workload)")
    p.add_argument("--export-wrn", metavar="PATH", default=None,
                   help="write the wrn-input-grad workload's network to PATH as ONNX and exit")
    args = p.parse_args(argv)
    if args.export_wrn:
        export_wrn(args.export_wrn)
        return
    if args.steps < 1:
        p.error("--steps must be >= 1")

    names = list(WORKLOADS)
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in WORKLOADS]
        if unknown:
            p.error("unknown workload(s): %s (known: %s)"
                    % (",".join(unknown), ",".join(WORKLOADS)))

    torch.set_num_threads(NUM_THREADS)

    results = []
    for name in names:
        r = run_workload(name, args.steps, args.mode)
        results.append(r)
    results.append({"name": "peak-rss", "peak_rss_mb": peak_rss_mb()})

    if args.json:
        json.dump(results, sys.stdout, indent=1)
        sys.stdout.write("\n")
        return

    print("torch %s, %d threads, %d steps (+%d warmup)"
          % (torch.__version__, torch.get_num_threads(), args.steps, WARMUP))
    width = max(16, max(len(r["name"]) for r in results))
    print("%-*s %12s %12s %10s %14s" % (width, "workload", "ms_median", "ms_min", "gflops", "mode"))
    for r in results:
        if r["name"] == "peak-rss":
            continue
        gf = "%10.1f" % r["gflops"] if "gflops" in r else "%10s" % "-"
        print("%-*s %12.3f %12.3f %s %14s" % (width, r["name"], r["ms_median"], r["ms_min"], gf, r["mode"]))
        if r.get("note"):
            print("    note: %s" % r["note"])
    print("peak RSS: %.1f MB" % results[-1]["peak_rss_mb"])


if __name__ == "__main__":
    main()
