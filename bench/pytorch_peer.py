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
        x = F.relu(self.conv2(x))
        x = F.max_pool2d(x, 2)
        x = x.flatten(1)
        x = F.relu(self.fc1(x))
        return self.fc2(x)


# --------------------------------------------------------------------------
# Workloads: each factory returns (step_fn, flops_per_step or None)


def make_train(model_cls, gradnorm):
    torch.manual_seed(0)
    model = model_cls()
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    data = torch.randn(BATCH, 1, 28, 28)
    labels = torch.randint(0, 10, (BATCH,))

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


def make_conv2d_fwd():
    torch.manual_seed(0)
    n, c, h, w = 32, 64, 32, 32
    o, kh, kw = 64, 3, 3
    x = torch.randn(n, c, h, w)
    weight = torch.randn(o, c, kh, kw) * 0.05
    bias = torch.randn(o)
    oh, ow = h, w  # padding 1, stride 1
    flops = 2 * n * o * oh * ow * c * kh * kw

    def step():
        with torch.no_grad():
            F.conv2d(x, weight, bias, padding=1)

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


WORKLOADS = {
    "mlp-ce": lambda: make_train(MLP, gradnorm=False),
    "mlp-gradnorm": lambda: make_train(MLP, gradnorm=True),
    "lenet-ce": lambda: make_train(LeNet, gradnorm=False),
    "lenet-gradnorm": lambda: make_train(LeNet, gradnorm=True),
    "conv2d-fwd": make_conv2d_fwd,
    "sgemm": make_sgemm,
}


# --------------------------------------------------------------------------


def run_workload(name, steps):
    step, flops = WORKLOADS[name]()
    for _ in range(WARMUP):
        step()
    times_ms = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times_ms.append((time.perf_counter() - t0) * 1e3)
    med = statistics.median(times_ms)
    res = {"name": name, "ms_median": med, "ms_min": min(times_ms)}
    if flops is not None:
        res["gflops"] = flops / (med * 1e-3) / 1e9
    return res


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
    args = p.parse_args(argv)
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
        r = run_workload(name, args.steps)
        results.append(r)
    results.append({"name": "peak-rss", "peak_rss_mb": peak_rss_mb()})

    if args.json:
        json.dump(results, sys.stdout, indent=1)
        sys.stdout.write("\n")
        return

    print("torch %s, %d threads, %d steps (+%d warmup)"
          % (torch.__version__, torch.get_num_threads(), args.steps, WARMUP))
    print("%-16s %12s %12s %10s" % ("workload", "ms_median", "ms_min", "gflops"))
    for r in results:
        if r["name"] == "peak-rss":
            continue
        gf = "%10.1f" % r["gflops"] if "gflops" in r else "%10s" % "-"
        print("%-16s %12.3f %12.3f %s" % (r["name"], r["ms_median"], r["ms_min"], gf))
    print("peak RSS: %.1f MB" % results[-1]["peak_rss_mb"])


if __name__ == "__main__":
    main()
