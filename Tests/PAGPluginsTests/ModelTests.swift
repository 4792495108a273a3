// The model plugins (libPAGModels.so) through pag's loader: PyTorch's state_dict names and shapes
// (lists hard-coded from PyTorch itself), output shapes, PyTorch's initialization, train/eval
// behaviour, and (when a PyTorch venv exists) the same logits as the PyTorch modules.
import Foundation
import PAGLab
import PAGTensor
import PAGTestSupport
import XCTest

final class ModelTests: XCTestCase {
    /// "name [shape]" for each entry.
    func describe(_ entries: [(name: String, tensor: Tensor)]) -> [String] {
        entries.map { "\($0.name) \($0.tensor.shape)" }
    }

    static let bufferSuffixes = [".running_mean", ".running_var", ".num_batches_tracked"]
    static func isBuffer(_ entry: String) -> Bool {
        let name = entry.split(separator: " ")[0]
        return bufferSuffixes.contains { name.hasSuffix($0) }
    }

    // MARK: names and shapes

    func testLeNetStateDictFor28x28And56x28() throws {
        // PyTorch: LeNet(fc1_in).state_dict() for 1x28x28 (9216) and 1x56x28 (64 * 26 * 12 = 19968).
        for (height, fc1In) in [(28, 9216), (56, 19968)] {
            let m = try Libraries.instance("lenet", data: dataOf([1, height, 28]))
            XCTAssertEqual(describe(m.parameters), [
                "conv1.weight [32, 1, 3, 3]", "conv1.bias [32]", "conv2.weight [64, 32, 3, 3]", "conv2.bias [64]",
                "fc1.weight [128, \(fc1In)]", "fc1.bias [128]", "fc2.weight [10, 128]", "fc2.bias [10]",
            ])
            XCTAssertTrue(m.buffers.isEmpty)
            XCTAssertEqual(m.inputShape, [1, height, 28])
            var rng = RandomGenerator(seed: 3, stream: "lenet-input")
            let x = Tensor.randn([3, 1, height, 28], rng: &rng)
            XCTAssertEqual(try m.forward(x, train: false).shape, [3, 10])
            XCTAssertEqual(try m.forward(x, train: true).shape, [3, 10])
        }
        // Input channels and classes follow the data (pag_host.data_info).
        let rgb = try Libraries.instance("lenet", data: dataOf([3, 32, 32], classes: 100))
        XCTAssertEqual(describe(rgb.parameters)[0], "conv1.weight [32, 3, 3, 3]")
        XCTAssertEqual(describe(rgb.parameters)[4], "fc1.weight [128, 12544]")
        XCTAssertEqual(rgb.outputs, 100)
    }

    func testResNet18StateDictIsKuangliusExactly() throws {
        for activation in ["relu", "softplus"] {
            let m = try Libraries.instance("resnet18", ["activation=\(activation)"])
            XCTAssertEqual(m.parameters.count, 62)
            XCTAssertEqual(m.buffers.count, 60)
            // Parameters and buffers each keep PyTorch's state_dict order.
            XCTAssertEqual(describe(m.parameters), Self.resnet18StateDict.filter { !Self.isBuffer($0) })
            XCTAssertEqual(describe(m.buffers), Self.resnet18StateDict.filter(Self.isBuffer))
            XCTAssertEqual(m.inputShape, [3, 32, 32])
            XCTAssertEqual(m.outputs, 10)
        }
    }

    func testMLPLayersFollowWidths() throws {
        let m = try Libraries.instance("mlp")
        XCTAssertEqual(describe(m.parameters), [
            "fc1.weight [256, 784]", "fc1.bias [256]", "fc2.weight [256, 256]", "fc2.bias [256]",
            "fc3.weight [10, 256]", "fc3.bias [10]",
        ])
        let small = try Libraries.instance("mlp", ["widths=5", "activation=softplus", "beta=2"], data: dataOf([2, 3, 1], classes: 4))
        XCTAssertEqual(describe(small.parameters), ["fc1.weight [5, 6]", "fc1.bias [5]", "fc2.weight [4, 5]", "fc2.bias [4]"])
        // The forward pass is fc2(softplus_beta(fc1(flatten(x)))).
        var rng = RandomGenerator(seed: 5, stream: "mlp-input")
        let x = Tensor.randn([3, 2, 3, 1], rng: &rng)
        let p = small.parameters.map(\.tensor)
        let expected = Tensor.linear(Tensor.linear(x.flatten(), weight: p[0], bias: p[1]).softplus(beta: 2),
                                     weight: p[2], bias: p[3])
        assertClose(try small.forward(x, train: true).values, expected.values, "mlp forward")
        let regression = try Libraries.instance("mlp", ["widths="])
        XCTAssertEqual(describe(regression.parameters), ["fc1.weight [10, 784]", "fc1.bias [10]"])
        XCTAssertThrowsError(try Libraries.instance("mlp", ["widths=256,x"])) { e in
            XCTAssertTrue("\(e)".contains("'x' is not a positive integer"), "\(e)")
        }
    }

    func testTooSmallLeNetInputFailsClearly() {
        XCTAssertThrowsError(try Libraries.instance("lenet", data: dataOf([1, 5, 28]))) { e in
            XCTAssertTrue("\(e)".contains("plugin 'lenet'") && "\(e)".contains("at least 6x6"), "\(e)")
        }
    }

    // MARK: initialization

    func testInitializationIsPyTorchsAndSeeded() throws {
        let a = try Libraries.instance("lenet", seed: 1), b = try Libraries.instance("lenet", seed: 1)
        let c = try Libraries.instance("lenet", seed: 2)
        // kaiming_uniform(a = sqrt(5)) and the bias rule both give U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
        let fanIns = [9, 9, 288, 288, 9216, 9216, 128, 128]
        for ((name, t), fanIn) in zip(a.parameters, fanIns) {
            let bound = 1 / Float(fanIn).squareRoot()
            let v = t.values
            XCTAssertLessThanOrEqual(v.map(abs).max()!, bound, name)
            XCTAssertGreaterThan(v.map(abs).max()!, 0.8 * bound, "\(name) spreads over its range")
        }
        // A uniform variable on [-k, k] has variance k^2 / 3.
        let fc1 = a.parameters[4].tensor.values
        let variance = fc1.reduce(0) { $0 + Double($1 * $1) } / Double(fc1.count)
        XCTAssertEqual(variance, 1.0 / 9216 / 3, accuracy: 0.01 / 9216 / 3)
        XCTAssertEqual(a.parameters.map(\.tensor.values), b.parameters.map(\.tensor.values), "same seed, same weights")
        XCTAssertNotEqual(a.parameters[0].tensor.values, c.parameters[0].tensor.values, "another seed, other weights")

        let r = try Libraries.instance("resnet18")
        for (name, t) in r.parameters {
            let v = t.values
            if name.hasSuffix("bn1.weight") || name.hasSuffix("bn2.weight") || name.hasSuffix("shortcut.1.weight") {
                XCTAssertTrue(v.allSatisfy { $0 == 1 }, name)
            } else if name.contains("bn") || name.hasSuffix("shortcut.1.bias") {
                XCTAssertTrue(v.allSatisfy { $0 == 0 }, name)
            } else {
                let fanIn = t.shape.dropFirst().reduce(1, *)
                XCTAssertLessThanOrEqual(v.map(abs).max()!, 1 / Float(fanIn).squareRoot(), name)
            }
        }
        for (name, t) in r.buffers {
            let expected: Float = name.hasSuffix("running_var") ? 1 : 0
            XCTAssertTrue(t.values.allSatisfy { $0 == expected }, name)
        }
    }

    // MARK: train and eval

    func testResNetBatchNormBuffersFollowTheMode() throws {
        let m = try Libraries.instance("resnet18", data: dataOf([3, 8, 8]))
        var rng = RandomGenerator(seed: 9, stream: "resnet-input")
        let x = Tensor.randn([4, 3, 8, 8], rng: &rng)
        let buffer = { (name: String) in m.buffers.first { $0.name == name }!.tensor.values }
        let eval1 = try m.forward(x, train: false).values
        XCTAssertEqual(try m.forward(x, train: false).values, eval1, "evaluation is deterministic")
        XCTAssertEqual(buffer("bn1.running_mean"), [Float](repeating: 0, count: 64), "evaluation leaves the buffers")
        XCTAssertEqual(buffer("layer4.1.bn2.num_batches_tracked"), [0])
        _ = try m.forward(x, train: true)
        _ = try m.forward(x, train: true)
        XCTAssertNotEqual(buffer("bn1.running_mean"), [Float](repeating: 0, count: 64), "training updates running_mean")
        XCTAssertEqual(buffer("bn1.num_batches_tracked"), [2])
        XCTAssertEqual(buffer("layer2.0.shortcut.1.num_batches_tracked"), [2])
        XCTAssertNotEqual(try m.forward(x, train: false).values, eval1, "evaluation uses the running statistics")
    }

    func testLeNetDropoutOnlyInTraining() throws {
        var rng = RandomGenerator(seed: 4, stream: "lenet-dropout")
        let x = Tensor.randn([2, 1, 28, 28], rng: &rng)
        let m = try Libraries.instance("lenet")
        let eval = try m.forward(x, train: false).values
        XCTAssertNotEqual(try m.forward(x, train: true).values, eval, "dropout is active in training")
        let noDropout = try Libraries.instance("lenet", ["dropout1=0", "dropout2=0"])
        assertClose(try noDropout.forward(x, train: true).values, try noDropout.forward(x, train: false).values,
                    "without dropout, training and evaluation agree")
    }

    // MARK: PyTorch

    /// The models give PyTorch's logits (eval and train mode) and running statistics for the same
    /// weights. Needs a Python with torch: $PAG_TORCH_PYTHON or /work/venv-torch/bin/python.
    func testSameLogitsAsPyTorch() throws {
        guard let python = torchPython() else {
            throw XCTSkip("no torch python: set PAG_TORCH_PYTHON or create /work/venv-torch")
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pag-models-torch-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }

        var cases: [[String: Any]] = []
        let configs: [(String, [String], [Int])] = [
            ("lenet", [], [3, 1, 28, 28]),
            ("lenet", ["dropout1=0", "dropout2=0"], [3, 1, 56, 28]),
            ("resnet18", [], [4, 3, 32, 32]),
            ("resnet18", ["activation=softplus"], [4, 3, 32, 32]),
            ("mlp", ["widths=32,16", "activation=softplus", "beta=3"], [3, 1, 28, 28]),
        ]
        for (i, (name, settings, shape)) in configs.enumerated() {
            let m = try Libraries.instance(name, settings, seed: UInt64(10 + i), data: dataOf(Array(shape.dropFirst())))
            var rng = RandomGenerator(seed: UInt64(i), stream: "torch-input")
            let x = Tensor.randn(shape, rng: &rng)
            var files: [[String: Any]] = []
            func save(_ key: String, _ t: Tensor) throws {
                let file = "\(i)-\(key).f32"
                try t.values.withUnsafeBufferPointer { Data(buffer: $0) }.write(to: dir.appendingPathComponent(file))
                files.append(["key": key, "file": file, "shape": t.shape])
            }
            for (n, t) in m.parameters + m.buffers { try save(n, t) }
            var c: [String: Any] = ["model": name, "settings": settings, "state": files]
            files = []
            try save("x", x)
            try save("eval", m.forward(x, train: false))
            // Training mode is deterministic only without dropout; resnet18 checks batch statistics.
            if name == "resnet18" || settings.contains("dropout1=0") || name == "mlp" {
                try save("train", m.forward(x, train: true))
                for (n, t) in m.buffers where n.hasPrefix("layer3.0.") { try save("after." + n, t) }
            }
            c["io"] = files
            cases.append(c)
        }
        try JSONSerialization.data(withJSONObject: cases).write(to: dir.appendingPathComponent("cases.json"))
        let script = dir.appendingPathComponent("check.py")
        try Self.torchScript.write(to: script, atomically: true, encoding: .utf8)
        let r = try runProgram(python, [script.path, dir.path])
        XCTAssertEqual(r.status, 0, r.output)
        // One line per compared output: "CASE KEY max_abs_diff scale".
        let lines = r.output.split(separator: "\n").filter { $0.hasPrefix("diff ") }
        XCTAssertGreaterThanOrEqual(lines.count, 5 + 4, r.output)
        for line in lines {
            let f = line.split(separator: " ")
            let diff = Double(f[3])!, scale = Double(f[4])!
            XCTAssertLessThanOrEqual(diff, 1e-4 * max(scale, 1), "\(line)")
        }
    }

    /// Rebuilds each model in PyTorch (LeNet as in the paper's code, ResNet18 as kuangliu's, the
    /// MLP as fc1..fcK), loads pag's weights with strict=True and compares.
    static let torchScript = #"""
import json, os, sys
import numpy as np
import torch, torch.nn as nn, torch.nn.functional as F

class LeNet(nn.Module):
    def __init__(self, channels, fc1_in, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 32, 3, 1); self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25); self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(fc1_in, 128); self.fc2 = nn.Linear(128, classes)
    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv2(F.relu(self.conv1(x)))), 2)
        x = F.relu(self.fc1(torch.flatten(self.dropout1(x), 1)))
        return self.fc2(self.dropout2(x))

class BasicBlock(nn.Module):
    def __init__(self, i, p, act, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(i, p, 3, stride, 1, bias=False); self.bn1 = nn.BatchNorm2d(p)
        self.conv2 = nn.Conv2d(p, p, 3, 1, 1, bias=False); self.bn2 = nn.BatchNorm2d(p)
        self.shortcut = nn.Sequential(); self.act = act
        if stride != 1 or i != p:
            self.shortcut = nn.Sequential(nn.Conv2d(i, p, 1, stride, bias=False), nn.BatchNorm2d(p))
    def forward(self, x):
        out = self.act(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out)) + self.shortcut(x)
        return self.act(out)

class ResNet18(nn.Module):
    def __init__(self, act, classes=10):
        super().__init__()
        self.act = act
        self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False); self.bn1 = nn.BatchNorm2d(64)
        inp = 64
        for s, (p, st) in enumerate([(64, 1), (128, 2), (256, 2), (512, 2)]):
            blocks = []
            for st2 in [st, 1]:
                blocks.append(BasicBlock(inp, p, act, st2)); inp = p
            setattr(self, "layer%d" % (s + 1), nn.Sequential(*blocks))
        self.linear = nn.Linear(512, classes)
    def forward(self, x):
        out = self.act(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return self.linear(F.avg_pool2d(out, 4).flatten(1))

class MLP(nn.Module):
    def __init__(self, sizes, act):
        super().__init__()
        self.n = len(sizes) - 1; self.act = act
        for k in range(self.n):
            setattr(self, "fc%d" % (k + 1), nn.Linear(sizes[k], sizes[k + 1]))
    def forward(self, x):
        x = x.flatten(1)
        for k in range(self.n):
            x = getattr(self, "fc%d" % (k + 1))(x)
            if k < self.n - 1: x = self.act(x)
        return x

d = sys.argv[1]
def load(f):
    a = np.fromfile(os.path.join(d, f["file"]), dtype=np.float32).reshape(f["shape"])
    return torch.from_numpy(a.copy())
for i, c in enumerate(json.load(open(os.path.join(d, "cases.json")))):
    state = {f["key"]: load(f) for f in c["state"]}
    io = {f["key"]: load(f) for f in c["io"]}
    s = c["settings"]
    if c["model"] == "lenet":
        x = io["x"]
        m = LeNet(x.shape[1], 64 * ((x.shape[2] - 4) // 2) * ((x.shape[3] - 4) // 2))
        if "dropout1=0" in s: m.dropout1.p = 0.0
        if "dropout2=0" in s: m.dropout2.p = 0.0
    elif c["model"] == "resnet18":
        m = ResNet18(nn.Softplus(beta=20) if "activation=softplus" in s else nn.ReLU())
    else:
        m = MLP([784, 32, 16, 10], nn.Softplus(beta=3))
    for k, v in list(state.items()):
        if k.endswith("num_batches_tracked"): state[k] = v.long()
    m.load_state_dict(state, strict=True)
    with torch.no_grad():
        m.eval(); out = {"eval": m(io["x"])}
        if "train" in io:
            m.train(); out["train"] = m(io["x"])
            sd = m.state_dict()
            for k in io:
                if k.startswith("after."): out[k] = sd[k[6:]].float()
    for k, v in out.items():
        ref = io[k]
        print("diff %d %s %.3g %.3g" % (i, c["model"] + ":" + k, (v - ref).abs().max().item(), ref.abs().max().item()))
"""#
}

extension ModelTests {
    /// resnet18's state_dict as PyTorch lists it for kuangliu's CIFAR ResNet18 (torch 2.15):
    /// `for k, v in ResNet18().state_dict().items(): print(k, list(v.shape))`.
    static let resnet18StateDict: [String] = [
        "conv1.weight [64, 3, 3, 3]",
        "bn1.weight [64]",
        "bn1.bias [64]",
        "bn1.running_mean [64]",
        "bn1.running_var [64]",
        "bn1.num_batches_tracked []",
        "layer1.0.conv1.weight [64, 64, 3, 3]",
        "layer1.0.bn1.weight [64]",
        "layer1.0.bn1.bias [64]",
        "layer1.0.bn1.running_mean [64]",
        "layer1.0.bn1.running_var [64]",
        "layer1.0.bn1.num_batches_tracked []",
        "layer1.0.conv2.weight [64, 64, 3, 3]",
        "layer1.0.bn2.weight [64]",
        "layer1.0.bn2.bias [64]",
        "layer1.0.bn2.running_mean [64]",
        "layer1.0.bn2.running_var [64]",
        "layer1.0.bn2.num_batches_tracked []",
        "layer1.1.conv1.weight [64, 64, 3, 3]",
        "layer1.1.bn1.weight [64]",
        "layer1.1.bn1.bias [64]",
        "layer1.1.bn1.running_mean [64]",
        "layer1.1.bn1.running_var [64]",
        "layer1.1.bn1.num_batches_tracked []",
        "layer1.1.conv2.weight [64, 64, 3, 3]",
        "layer1.1.bn2.weight [64]",
        "layer1.1.bn2.bias [64]",
        "layer1.1.bn2.running_mean [64]",
        "layer1.1.bn2.running_var [64]",
        "layer1.1.bn2.num_batches_tracked []",
        "layer2.0.conv1.weight [128, 64, 3, 3]",
        "layer2.0.bn1.weight [128]",
        "layer2.0.bn1.bias [128]",
        "layer2.0.bn1.running_mean [128]",
        "layer2.0.bn1.running_var [128]",
        "layer2.0.bn1.num_batches_tracked []",
        "layer2.0.conv2.weight [128, 128, 3, 3]",
        "layer2.0.bn2.weight [128]",
        "layer2.0.bn2.bias [128]",
        "layer2.0.bn2.running_mean [128]",
        "layer2.0.bn2.running_var [128]",
        "layer2.0.bn2.num_batches_tracked []",
        "layer2.0.shortcut.0.weight [128, 64, 1, 1]",
        "layer2.0.shortcut.1.weight [128]",
        "layer2.0.shortcut.1.bias [128]",
        "layer2.0.shortcut.1.running_mean [128]",
        "layer2.0.shortcut.1.running_var [128]",
        "layer2.0.shortcut.1.num_batches_tracked []",
        "layer2.1.conv1.weight [128, 128, 3, 3]",
        "layer2.1.bn1.weight [128]",
        "layer2.1.bn1.bias [128]",
        "layer2.1.bn1.running_mean [128]",
        "layer2.1.bn1.running_var [128]",
        "layer2.1.bn1.num_batches_tracked []",
        "layer2.1.conv2.weight [128, 128, 3, 3]",
        "layer2.1.bn2.weight [128]",
        "layer2.1.bn2.bias [128]",
        "layer2.1.bn2.running_mean [128]",
        "layer2.1.bn2.running_var [128]",
        "layer2.1.bn2.num_batches_tracked []",
        "layer3.0.conv1.weight [256, 128, 3, 3]",
        "layer3.0.bn1.weight [256]",
        "layer3.0.bn1.bias [256]",
        "layer3.0.bn1.running_mean [256]",
        "layer3.0.bn1.running_var [256]",
        "layer3.0.bn1.num_batches_tracked []",
        "layer3.0.conv2.weight [256, 256, 3, 3]",
        "layer3.0.bn2.weight [256]",
        "layer3.0.bn2.bias [256]",
        "layer3.0.bn2.running_mean [256]",
        "layer3.0.bn2.running_var [256]",
        "layer3.0.bn2.num_batches_tracked []",
        "layer3.0.shortcut.0.weight [256, 128, 1, 1]",
        "layer3.0.shortcut.1.weight [256]",
        "layer3.0.shortcut.1.bias [256]",
        "layer3.0.shortcut.1.running_mean [256]",
        "layer3.0.shortcut.1.running_var [256]",
        "layer3.0.shortcut.1.num_batches_tracked []",
        "layer3.1.conv1.weight [256, 256, 3, 3]",
        "layer3.1.bn1.weight [256]",
        "layer3.1.bn1.bias [256]",
        "layer3.1.bn1.running_mean [256]",
        "layer3.1.bn1.running_var [256]",
        "layer3.1.bn1.num_batches_tracked []",
        "layer3.1.conv2.weight [256, 256, 3, 3]",
        "layer3.1.bn2.weight [256]",
        "layer3.1.bn2.bias [256]",
        "layer3.1.bn2.running_mean [256]",
        "layer3.1.bn2.running_var [256]",
        "layer3.1.bn2.num_batches_tracked []",
        "layer4.0.conv1.weight [512, 256, 3, 3]",
        "layer4.0.bn1.weight [512]",
        "layer4.0.bn1.bias [512]",
        "layer4.0.bn1.running_mean [512]",
        "layer4.0.bn1.running_var [512]",
        "layer4.0.bn1.num_batches_tracked []",
        "layer4.0.conv2.weight [512, 512, 3, 3]",
        "layer4.0.bn2.weight [512]",
        "layer4.0.bn2.bias [512]",
        "layer4.0.bn2.running_mean [512]",
        "layer4.0.bn2.running_var [512]",
        "layer4.0.bn2.num_batches_tracked []",
        "layer4.0.shortcut.0.weight [512, 256, 1, 1]",
        "layer4.0.shortcut.1.weight [512]",
        "layer4.0.shortcut.1.bias [512]",
        "layer4.0.shortcut.1.running_mean [512]",
        "layer4.0.shortcut.1.running_var [512]",
        "layer4.0.shortcut.1.num_batches_tracked []",
        "layer4.1.conv1.weight [512, 512, 3, 3]",
        "layer4.1.bn1.weight [512]",
        "layer4.1.bn1.bias [512]",
        "layer4.1.bn1.running_mean [512]",
        "layer4.1.bn1.running_var [512]",
        "layer4.1.bn1.num_batches_tracked []",
        "layer4.1.conv2.weight [512, 512, 3, 3]",
        "layer4.1.bn2.weight [512]",
        "layer4.1.bn2.bias [512]",
        "layer4.1.bn2.running_mean [512]",
        "layer4.1.bn2.running_var [512]",
        "layer4.1.bn2.num_batches_tracked []",
        "linear.weight [10, 512]",
        "linear.bias [10]",
    ]
}
