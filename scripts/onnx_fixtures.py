"""Writes the ONNX fixtures the importer's tests read (Tests/PAGONNXTests/Fixtures) and PyTorch's
reference numbers for them.

Run by hand, never in CI:  /work/venv-torch/bin/python scripts/onnx_fixtures.py
Made with torch 2.15.0, onnx 1.23.2, onnxscript 0.7.2 (the versions go into manifest.json).

Each network is defined below with small widths and seeded random weights, in evaluation mode,
and exported with both of PyTorch's exporters: the legacy TorchScript one (dynamo=False,
opset 17) and the dynamo one (opset 18). For each network NAME it writes, for a batch of 4:
  NAME.x.npy       inputs in pag's scale [-1, 1]
  NAME.labels.npy  int64 labels
  NAME.logits.npy  the outputs on the model-scale input m = (x + 1) / 2 (input_range 0,1), or on
                   x itself for input_range -1,1 models (lenet_softmax)
  NAME.grad.npy    d out[i, labels[i]] / d x in pag's scale (0.5 d/dm for 0,1 models)
lenet_softmax ends in Softmax: its .logits/.softmax_grad are of the probabilities, .prelogits
and .grad of the Softmax's input (what strip_softmax measures).
"""
import json, os, sys
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import onnx

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "PAGONNXTests", "Fixtures")


# -- Networks ---------------------------------------------------------------------------------

class BasicBlock(nn.Module):  # torchvision's, with its `downsample`
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        idt = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + idt)


class ResNet(nn.Module):  # torchvision-style: 7x7 stride-2 stem, 3x3 max pool, two stages
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = BasicBlock(8, 8, 1)
        self.layer2 = BasicBlock(8, 16, 2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer2(self.layer1(x))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class PreActBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False))

    def forward(self, x):
        out = F.relu(self.bn1(x))
        sc = self.shortcut(out) if hasattr(self, "shortcut") else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + sc


class PreActResNet(nn.Module):  # RobustBench's PreActResNet-18 layout, two small stages
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, 1, 1, bias=False)
        self.layer1 = PreActBlock(8, 8, 1)
        self.layer2 = PreActBlock(8, 16, 2)
        self.bn = nn.BatchNorm2d(16)
        self.linear = nn.Linear(16, 10)

    def forward(self, x):
        out = self.layer2(self.layer1(self.conv1(x)))
        out = F.relu(self.bn(out))
        out = F.avg_pool2d(out, 4)
        out = F.adaptive_avg_pool2d(out, 1)
        return self.linear(out.view(out.size(0), -1))


class WideBlock(nn.Module):
    def __init__(self, cin, cout, stride, drop):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.drop = drop
        self.equal = cin == cout
        self.convShortcut = None if self.equal else nn.Conv2d(cin, cout, 1, stride, 0, bias=False)

    def forward(self, x):
        o = self.relu1(self.bn1(x))
        y = self.relu2(self.bn2(self.conv1(o)))
        y = F.dropout(y, p=self.drop, training=self.training)
        y = self.conv2(y)
        return y + (x if self.equal else self.convShortcut(o))


class WideResNet(nn.Module):  # RobustBench's WideResNet, depth 10 (one block a group), with mu/sigma
    def __init__(self, widths=(8, 8, 16, 32)):
        super().__init__()
        self.register_buffer("mu", torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1))
        self.register_buffer("sigma", torch.tensor([0.2471, 0.2435, 0.2616]).view(1, 3, 1, 1))
        self.conv1 = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
        self.block1 = WideBlock(widths[0], widths[1], 1, 0.3)
        self.block2 = WideBlock(widths[1], widths[2], 2, 0.3)
        self.block3 = WideBlock(widths[2], widths[3], 2, 0.3)
        self.bn1 = nn.BatchNorm2d(widths[3])
        self.relu = nn.ReLU(inplace=True)
        self.fc = nn.Linear(widths[3], 10)
        self.nc = widths[3]

    def forward(self, x):
        x = (x - self.mu) / self.sigma
        out = self.block3(self.block2(self.block1(self.conv1(x))))
        out = self.relu(self.bn1(out))
        out = F.avg_pool2d(out, 8)
        return self.fc(out.view(-1, self.nc))


class Mobile(nn.Module):  # depthwise-separable with Hardswish, squeeze-excitation and a dilated conv
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.Hardswish())
        self.dw = nn.Sequential(nn.Conv2d(16, 16, 3, 1, 1, groups=16, bias=False), nn.BatchNorm2d(16), nn.Hardswish())
        self.se = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(16, 4, 1), nn.ReLU(), nn.Conv2d(4, 16, 1), nn.Hardsigmoid())
        self.pw = nn.Sequential(nn.Conv2d(16, 24, 1, bias=False), nn.BatchNorm2d(24), nn.Hardswish())
        self.dilated = nn.Sequential(nn.Conv2d(24, 24, 3, 1, 2, dilation=2, groups=3), nn.ReLU6())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(24, 10)

    def forward(self, x):
        x = self.dw(self.stem(x))
        x = x * self.se(x)
        x = self.dilated(self.pw(x))
        return self.fc(torch.flatten(self.pool(x), 1))


class ConvNeXtBlock(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(0.5 * torch.ones(dim))

    def forward(self, x):
        y = self.dwconv(x).permute(0, 2, 3, 1)
        y = self.pwconv2(self.act(self.pwconv1(self.norm(y))))
        return x + (self.gamma * y).permute(0, 3, 1, 2)


class ConvNeXt(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 4, 4)
        self.block = ConvNeXtBlock(16)
        self.norm = nn.LayerNorm(16, eps=1e-6)
        self.head = nn.Linear(16, 10)

    def forward(self, x):
        x = self.block(self.stem(x))
        return self.head(self.norm(x.mean([-2, -1])))


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        a = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        return self.proj((a @ v).transpose(1, 2).reshape(B, N, C))


class ViTBlock(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(approximate="tanh"), nn.Linear(2 * dim, dim))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ViT(nn.Module):  # patch conv, cls token, position embedding, two pre-norm blocks
    def __init__(self, dim=32):
        super().__init__()
        self.patch_embed = nn.Conv2d(3, dim, 4, 4)
        self.cls_token = nn.Parameter(0.02 * torch.randn(1, 1, dim))
        self.pos_embed = nn.Parameter(0.02 * torch.randn(1, 65, dim))
        self.blocks = nn.Sequential(ViTBlock(dim, 2), ViTBlock(dim, 2))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 10)

    def forward(self, x):
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        x = self.norm(self.blocks(x))
        return self.head(x[:, 0])


class LeNetSoftmax(nn.Module):  # 1x28x28, ceil-mode and count_include_pad=False pools, ends in Softmax
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5)
        self.conv2 = nn.Conv2d(6, 12, 5)
        self.pool = nn.AvgPool2d(2, stride=1, padding=1, count_include_pad=False)
        self.fc = nn.Linear(12 * 5 * 5, 10)
        self.softmax = nn.Softmax(dim=1)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)                  # 24 -> 12
        x = F.max_pool2d(F.relu(self.conv2(x)), 2, ceil_mode=True)  # 8 -> 4
        x = self.pool(x)                                            # 4 -> 5
        return self.softmax(self.fc(torch.flatten(x, 1)))


class DistractorCNN(nn.Module):  # for the distractor sets' 1x56x28 images (object and letter halves)
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2))
        self.classifier = nn.Linear(16 * 14 * 7, 10)

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


def randomize_bn(model, gen):
    """Non-trivial BatchNorm statistics and affine parameters, so they matter in the numbers."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.running_mean.copy_(0.1 * torch.randn(m.num_features, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(m.num_features, generator=gen))
                m.weight.copy_(1 + 0.2 * torch.randn(m.num_features, generator=gen))
                m.bias.copy_(0.1 * torch.randn(m.num_features, generator=gen))


NETWORKS = [  # name, constructor, sample shape, input range
    ("resnet", ResNet, (3, 32, 32), (0, 1)),
    ("preact", PreActResNet, (3, 32, 32), (0, 1)),
    ("wrn", WideResNet, (3, 32, 32), (0, 1)),
    ("mobile", Mobile, (3, 32, 32), (0, 1)),
    ("convnext", ConvNeXt, (3, 32, 32), (0, 1)),
    ("vit", ViT, (3, 32, 32), (0, 1)),
    ("lenet_softmax", LeNetSoftmax, (1, 28, 28), (-1, 1)),
    ("distractor_cnn", DistractorCNN, (1, 56, 28), (0, 1)),
]
LEGACY_ONLY = {"lenet_softmax", "distractor_cnn"}  # one file each, named NAME.onnx


# -- Export and reference numbers ------------------------------------------------------------

def to_model_scale(x, rng):
    lo, hi = rng
    return (x + 1) / 2 * (hi - lo) + lo


def references(model, name, shape, rng):
    gen = np.random.default_rng(0)
    x = gen.uniform(-1, 1, size=(4,) + shape).astype(np.float32)
    labels = gen.integers(0, 10, size=4).astype(np.int64)
    xt = torch.tensor(x, requires_grad=True)
    out = model(to_model_scale(xt, rng))
    (g,) = torch.autograd.grad(out[torch.arange(4), torch.tensor(labels)].sum(), xt)
    np.save(os.path.join(OUT, f"{name}.x.npy"), x)
    np.save(os.path.join(OUT, f"{name}.labels.npy"), labels)
    np.save(os.path.join(OUT, f"{name}.logits.npy"), out.detach().numpy().astype(np.float32))
    np.save(os.path.join(OUT, f"{name}.{'softmax_grad' if name == 'lenet_softmax' else 'grad'}.npy"), g.numpy().astype(np.float32))
    if name == "lenet_softmax":  # the Softmax's input: what strip_softmax measures
        xt = torch.tensor(x, requires_grad=True)
        hook = {}
        h = model.softmax.register_forward_hook(lambda m, i, o: hook.setdefault("in", i[0]))
        model(xt)
        h.remove()
        logits = hook["in"]
        (g,) = torch.autograd.grad(logits[torch.arange(4), torch.tensor(labels)].sum(), xt)
        np.save(os.path.join(OUT, "lenet_softmax.prelogits.npy"), logits.detach().numpy().astype(np.float32))
        np.save(os.path.join(OUT, "lenet_softmax.grad.npy"), g.numpy().astype(np.float32))
    return x, out.detach().numpy()


def export(model, shape, path, dynamo, fixed_batch=None):
    batch = fixed_batch or 2
    x = torch.rand((batch,) + shape)
    kwargs = dict(input_names=["input"], output_names=["logits"])
    if dynamo:
        dyn = None if fixed_batch else ({"x": {0: torch.export.Dim("batch", min=1, max=4096)}})
        torch.onnx.export(model, (x,), path, dynamo=True, opset_version=18, external_data=False,
                          dynamic_shapes=dyn, **kwargs)
    else:
        axes = None if fixed_batch else {"input": {0: "batch"}, "logits": {0: "batch"}}
        torch.onnx.export(model, (x,), path, dynamo=False, opset_version=17, dynamic_axes=axes, **kwargs)
    m = onnx.load(path)
    onnx.checker.check_model(m)
    return m


def reference_error(path, x, rng, logits):
    from onnx.reference import ReferenceEvaluator
    sess = ReferenceEvaluator(path)
    name = sess.input_names[0]
    out = sess.run(None, {name: to_model_scale(x, rng).astype(np.float32)})[0]
    return float(np.abs(out - logits).max() / max(np.abs(logits).max(), 1e-12))


def main():
    os.makedirs(OUT, exist_ok=True)
    fixtures, skipped = [], []
    for i, (name, make, shape, rng) in enumerate(NETWORKS):
        torch.manual_seed(100 + i)
        model = make()
        randomize_bn(model, torch.Generator().manual_seed(200 + i))
        model.eval()
        params = sum(p.numel() for p in model.parameters())
        x, logits = references(model, name, shape, rng)
        exporters = [("legacy", False)] if name in LEGACY_ONLY else [("legacy", False), ("dynamo", True)]
        for exporter, dynamo in exporters:
            file = f"{name}.onnx" if name in LEGACY_ONLY else f"{name}-{exporter}.onnx"
            path = os.path.join(OUT, file)
            try:
                m = export(model, shape, path, dynamo)
            except Exception as e:  # recorded, not faked
                skipped.append({"file": file, "error": f"{type(e).__name__}: {e}"[:400]})
                continue
            batch = m.graph.input[0].type.tensor_type.shape.dim[0]
            fixtures.append({"file": file, "model": name, "exporter": exporter,
                             "opset": [o.version for o in m.opset_import if o.domain in ("", "ai.onnx")][0],
                             "input_range": list(rng), "batch": batch.dim_param or batch.dim_value,
                             "ops": sorted({n.op_type for n in m.graph.node}), "parameters": params,
                             "reference_evaluator_error": reference_error(path, x, rng, logits)})
        if name == "resnet":
            m = export(model, shape, os.path.join(OUT, "resnet-fixedbatch.onnx"), False, fixed_batch=2)
        if name == "wrn":
            m = onnx.load(os.path.join(OUT, "wrn-legacy.onnx"))
            onnx.save_model(m, os.path.join(OUT, "wrn-external.onnx"), save_as_external_data=True,
                            all_tensors_to_one_file=True, location="wrn-external.onnx.data", size_threshold=0)
    manifest = {"torch": torch.__version__, "onnx": onnx.__version__, "fixtures": fixtures, "skipped": skipped}
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    for e in fixtures:
        print(f"{e['file']:24} {e['exporter']:7} opset {e['opset']} batch {e['batch']!s:6} ref-eval err {e['reference_evaluator_error']:.1e}  {' '.join(e['ops'])}")
    for s in skipped:
        print("SKIPPED", s["file"], s["error"])


if __name__ == "__main__":
    sys.exit(main())
