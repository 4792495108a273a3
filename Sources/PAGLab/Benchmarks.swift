import Foundation
import PAGData
import PAGTensor

/// The benchmark workloads of `pag bench`. The first six are written with the engine directly so
/// they measure the engine and nothing else; the plugin workloads (`pluginWorkloads`) train the
/// model plugins with the objective plugins, the way `pag train` does, so they include the plugin
/// boundary. Shapes and hyperparameters match bench/pytorch_peer.py.
public enum Benchmarks {
    public static let names = ["mlp-ce", "mlp-gradnorm", "lenet-ce", "lenet-gradnorm", "conv2d-fwd", "sgemm"]
        + pluginWorkloads.map(\.name) + autoencoderWorkloads + ["denoiser-train", "lpips-alex", "edm-score-32", "wrn-input-grad"]

    /// The ONNX file of the wrn-input-grad workload (bench/compare has PyTorch export its
    /// WideResNet-16-4 and passes it as `pag bench --onnx-wrn`): nil skips the workload.
    nonisolated(unsafe) public static var wrnFile: String?

    /// The autoencoder manifold plugin's tangent basis on 28x28 Fashion-MNIST test images (random
    /// images when the data set is missing), latent 16, batch 8, reported in ms per image: with
    /// k = 16 Jacobian-vector products in one batched pass (pag's method), and with one backward
    /// pass per output pixel, 784 per batch (the reference's method).
    public static let autoencoderWorkloads = ["autoencoder-tangent", "autoencoder-tangent-per-pixel"]

    /// A workload run through plugins: a model plugin with its settings, an objective plugin with
    /// its default hyperparameters, a random batch of the given shape with labels in 0..<10.
    public struct PluginWorkload: Sendable {
        public var name: String
        public var model: String
        public var modelSettings: [String]
        public var objective: String
        public var batch: [Int]
    }

    /// LeNet (1x28x28, batch 128, dropout 0.25 / 0.5 as the plugin's defaults) with the three
    /// objectives the engine-only workloads lack, and ResNet18 (3x32x32, batch 32, ReLU).
    public static let pluginWorkloads: [PluginWorkload] = [
        PluginWorkload(name: "lenet-smoothness", model: "lenet", modelSettings: [], objective: "smoothness", batch: [128, 1, 28, 28]),
        PluginWorkload(name: "lenet-randomized-smoothing", model: "lenet", modelSettings: [], objective: "randomized-smoothing",
                       batch: [128, 1, 28, 28]),
        PluginWorkload(name: "lenet-pgd-l2", model: "lenet", modelSettings: [], objective: "pgd-l2", batch: [128, 1, 28, 28]),
        PluginWorkload(name: "resnet18-ce", model: "resnet18", modelSettings: [], objective: "ce", batch: [32, 3, 32, 32]),
        PluginWorkload(name: "resnet18-gradnorm", model: "resnet18", modelSettings: [], objective: "gradnorm", batch: [32, 3, 32, 32]),
    ]

    /// True when `name` runs through the model and objective plugins.
    public static func needsPlugins(_ name: String) -> Bool {
        pluginWorkloads.contains { $0.name == name } || autoencoderWorkloads.contains(name) || name == "denoiser-train"
            || name == "edm-score-32" || name == "wrn-input-grad"
    }

    /// One workload's timings.
    public struct Result: Codable, Sendable {
        public var name: String
        public var ms_median: Double
        public var ms_min: Double
        public var gflops: Double?
    }

    /// A small network: its parameters and forward pass.
    struct Net {
        var params: [Tensor]
        var forward: (Tensor) -> Tensor
    }

    /// PyTorch's default Linear/Conv init: uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias.
    static func param(_ shape: [Int], fanIn: Int, rng: inout RandomGenerator) -> Tensor {
        let bound = 1 / Float(fanIn).squareRoot()
        return Tensor.rand(shape, low: -bound, high: bound, rng: &rng, requiresGrad: true)
    }

    static func mlp(rng: inout RandomGenerator) -> Net {
        let w1 = param([256, 784], fanIn: 784, rng: &rng), b1 = param([256], fanIn: 784, rng: &rng)
        let w2 = param([256, 256], fanIn: 256, rng: &rng), b2 = param([256], fanIn: 256, rng: &rng)
        let w3 = param([10, 256], fanIn: 256, rng: &rng), b3 = param([10], fanIn: 256, rng: &rng)
        return Net(params: [w1, b1, w2, b2, w3, b3]) { x in
            let h = Tensor.linear(x.flatten(), weight: w1, bias: b1).relu()
            let h2 = Tensor.linear(h, weight: w2, bias: b2).relu()
            return Tensor.linear(h2, weight: w3, bias: b3)
        }
    }

    static func lenet(rng: inout RandomGenerator) -> Net {
        let c1 = param([32, 1, 3, 3], fanIn: 9, rng: &rng), c1b = param([32], fanIn: 9, rng: &rng)
        let c2 = param([64, 32, 3, 3], fanIn: 288, rng: &rng), c2b = param([64], fanIn: 288, rng: &rng)
        let f1 = param([128, 9216], fanIn: 9216, rng: &rng), f1b = param([128], fanIn: 9216, rng: &rng)
        let f2 = param([10, 128], fanIn: 128, rng: &rng), f2b = param([10], fanIn: 128, rng: &rng)
        return Net(params: [c1, c1b, c2, c2b, f1, f1b, f2, f2b]) { x in
            var h = Tensor.conv2d(x, weight: c1, bias: c1b).relu()
            // As the lenet plugin: pool (fused into the convolution where pag's Winograd runs), then ReLU.
            h = Tensor.conv2dMaxPool2x2(h, weight: c2, bias: c2b, stride: (1, 1), padding: (0, 0)).relu().flatten()
            h = Tensor.linear(h, weight: f1, bias: f1b).relu()
            return Tensor.linear(h, weight: f2, bias: f2b)
        }
    }

    /// One training step: forward, loss (optionally gradient-norm regularized), backward, SGD.
    static func trainingStep(_ net: Net, _ opt: SGD, x: Tensor, labels: [Int], gradNormLambda: Float?) throws {
        opt.zeroGrad()
        let loss: Tensor
        if let lambda = gradNormLambda {
            let xi = x.detached(); xi.requiresGrad = true
            let ce = Tensor.crossEntropy(net.forward(xi), labels: labels)
            let g = try grad(of: [ce], wrt: [xi], createGraph: true)[0]
            loss = ce + g.square().sum() * (lambda * 1e5 / Float(x.shape[0]))
        } else {
            loss = Tensor.crossEntropy(net.forward(x), labels: labels)
        }
        try loss.backward()
        opt.step()
    }

    /// Times `body` `steps` times after `warmup` untimed runs; milliseconds per run.
    static func time(steps: Int, warmup: Int, _ body: () throws -> Void) rethrows -> [Double] {
        for _ in 0..<warmup { try body() }
        return try (0..<steps).map { _ in
            let t0 = DispatchTime.now().uptimeNanoseconds
            try body()
            return Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6
        }
    }

    static func summarize(_ name: String, _ ms: [Double], flops: Double? = nil) -> Result {
        let sorted = ms.sorted()
        let median = sorted.count % 2 == 1 ? sorted[sorted.count / 2]
                                           : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
        return Result(name: name, ms_median: median, ms_min: sorted[0],
                      gflops: flops.map { $0 / (median * 1e-3) / 1e9 })
    }

    /// One training step through plugins: the objective's loss of the model, backward, SGD.
    static func pluginStep(model: PluginInstance, objective: PluginInstance, _ opt: SGD, x: Tensor, labels: [Int32]) throws {
        opt.zeroGrad()
        let loss = try objective.loss(model: model, x: x, labels: labels, metrics: MetricSink())
        try loss.backward()
        opt.step()
    }

    /// Runs the named workload. Plugin workloads take their plugins from `plugins`.
    public static func run(_ name: String, steps: Int, warmup: Int = 3, plugins: PluginRegistry? = nil) throws -> Result {
        var rng = RandomGenerator(seed: 0, stream: name)
        if let w = pluginWorkloads.first(where: { $0.name == name }) {
            guard let plugins, let m = try? plugins.plugin(named: w.model), let o = try? plugins.plugin(named: w.objective) else {
                throw BenchmarkError.missingPlugins(name, [w.model, w.objective])
            }
            let model = try PluginInstance(plugin: m, settings: try Setting.parse(w.modelSettings), seed: 0,
                                           data: DataDescription(name: "benchmark", sampleShape: Array(w.batch.dropFirst()), classes: 10))
            let objective = try PluginInstance(plugin: o, seed: 0)
            let x = Tensor.randn(w.batch, rng: &rng)
            let labels = (0..<w.batch[0]).map { _ in Int32(rng.nextInt(below: 10)) }
            let opt = SGD(params: model.parameters.map(\.tensor), learningRate: 0.01, momentum: 0.9)
            let ms = try time(steps: steps, warmup: warmup) {
                try pluginStep(model: model, objective: objective, opt, x: x, labels: labels)
            }
            return summarize(name, ms)
        }
        if autoencoderWorkloads.contains(name) {
            return try autoencoderTangent(perPixel: name.hasSuffix("per-pixel"), steps: steps, warmup: warmup, plugins: plugins)
        }
        if name == "denoiser-train" { return try denoiserTrain(steps: steps, warmup: warmup, plugins: plugins, rng: &rng) }
        if name == "edm-score-32" { return try edmScore(steps: steps, warmup: warmup, plugins: plugins, rng: &rng) }
        if name == "wrn-input-grad" { return try wrnInputGradient(steps: steps, warmup: warmup, plugins: plugins, rng: &rng) }
        switch name {
        case "mlp-ce", "mlp-gradnorm", "lenet-ce", "lenet-gradnorm":
            let net = name.hasPrefix("mlp") ? mlp(rng: &rng) : lenet(rng: &rng)
            let x = Tensor.randn([128, 1, 28, 28], rng: &rng)
            let labels = (0..<128).map { _ in rng.nextInt(below: 10) }
            let opt = SGD(params: net.params, learningRate: 0.01, momentum: 0.9)
            let lambda: Float? = name.hasSuffix("gradnorm") ? 1e-3 : nil
            let ms = try time(steps: steps, warmup: warmup) {
                try trainingStep(net, opt, x: x, labels: labels, gradNormLambda: lambda)
            }
            return summarize(name, ms)
        case "conv2d-fwd":
            let x = Tensor.randn([32, 64, 32, 32], rng: &rng)
            let w = Tensor.randn([64, 64, 3, 3], std: 0.05, rng: &rng), b = Tensor.randn([64], rng: &rng)
            let flops = 2.0 * 32 * 64 * 32 * 32 * 64 * 9
            let ms = time(steps: steps, warmup: warmup) { _ = noGrad { Tensor.conv2d(x, weight: w, bias: b, padding: 1) } }
            return summarize(name, ms, flops: flops)
        case "lpips-alex":
            return summarize(name, try lpipsAlex(steps: steps, warmup: warmup, rng: &rng))
        case "sgemm":
            let a = Tensor.randn([1024, 1024], rng: &rng), b = Tensor.randn([1024, 1024], rng: &rng)
            let ms = time(steps: steps, warmup: warmup) { _ = noGrad { Tensor.matmul(a, b) } }
            return summarize(name, ms, flops: 2.0 * 1024 * 1024 * 1024)
        default:
            throw BenchmarkError.unknownWorkload(name)
        }
    }

    /// Input gradients of 32 images (3x32x32) through an imported WideResNet (the onnx plugin,
    /// input_range 0,1): d logit[label] / dx, as `pag predict --input-gradients` and the
    /// measurements take them.
    static func wrnInputGradient(steps: Int, warmup: Int, plugins: PluginRegistry?, rng: inout RandomGenerator) throws -> Result {
        guard let file = wrnFile else { throw BenchmarkError.missingInput("wrn-input-grad", "--onnx-wrn FILE (bench/compare exports it)") }
        guard let plugins, let p = try? plugins.plugin(named: "onnx") else { throw BenchmarkError.missingPlugins("wrn-input-grad", ["onnx"]) }
        let model = try PluginInstance(plugin: p, settings: try Setting.parse(["file=" + file, "input_range=0,1"]), seed: 0,
                                       data: DataDescription(name: "benchmark", sampleShape: [3, 32, 32], classes: 10))
        let x = Tensor.rand([32, 3, 32, 32], low: -1, high: 1, rng: &rng)
        let labels = (0..<32).map { _ in rng.nextInt(below: 10) }
        let ms = try time(steps: steps, warmup: warmup) { _ = try Measures.inputGradient(model: model, x: x, labels: labels) }
        return summarize("wrn-input-grad", ms)
    }

    /// ms per image of the autoencoder plugin's tangent basis (see `autoencoderWorkloads`). The
    /// per-pixel method runs at most 3 timed steps after 1 warm-up: it is ~17-25x slower here (784 backward passes per batch against one batched JVP pass).
    static func autoencoderTangent(perPixel: Bool, steps: Int, warmup: Int, plugins: PluginRegistry?) throws -> Result {
        let name = perPixel ? "autoencoder-tangent-per-pixel" : "autoencoder-tangent"
        guard let plugins, let p = try? plugins.plugin(named: "autoencoder") else {
            throw BenchmarkError.missingPlugins(name, ["autoencoder"])
        }
        let batch = 8
        let e = try PluginInstance(plugin: p, settings: try Setting.parse(["latent=16", "jacobian=\(perPixel ? "per-pixel" : "jvp")"]), seed: 0,
                                   data: DataDescription(name: "fashion-mnist", sampleShape: [1, 28, 28], classes: 10))
        let x: Tensor
        if let data = try? DatasetRegistry.standard.load("fashion-mnist", split: .test) {
            x = data.batch(Array(0..<batch)).images
        } else {
            var rng = RandomGenerator(seed: 0, stream: name)
            x = Tensor.rand([batch, 1, 28, 28], low: -1, high: 1, rng: &rng)
        }
        let ms = try time(steps: perPixel ? min(steps, 3) : steps, warmup: perPixel ? min(warmup, 1) : warmup) {
            _ = try e.tangentBasis(x)
        }
        return summarize(name, ms.map { $0 / Double(batch) })
    }

    /// ms per training step of the `denoiser` score plugin as the default experiment trains it:
    /// width 32 (its default; ExperimentTests checks the experiment's one has it),
    /// class-conditional (10 classes), batch 64 of 1x56x28, EDM loss, backward, Adam.
    static func denoiserTrain(steps: Int, warmup: Int, plugins: PluginRegistry?, rng: inout RandomGenerator) throws -> Result {
        guard let plugins, let p = try? plugins.plugin(named: "denoiser") else {
            throw BenchmarkError.missingPlugins("denoiser-train", ["denoiser"])
        }
        let e = try PluginInstance(plugin: p, settings: [], seed: 0,
                                   data: DataDescription(name: "fashion-mnist-distractor", sampleShape: [1, 56, 28], classes: 10))
        let x = Tensor.rand([64, 1, 56, 28], low: -1, high: 1, rng: &rng)
        let labels = (0..<64).map { _ in Int32(rng.nextInt(below: 10)) }
        let opt = Adam(params: e.parameters.map(\.tensor), learningRate: 2e-3)
        let ms = try time(steps: steps, warmup: warmup) {
            opt.zeroGrad()
            try e.trainLoss(x, labels: labels).backward()
            opt.step()
        }
        return summarize("denoiser-train", ms)
    }

    /// ms per image of one score evaluation of the `edm` plugin on the CIFAR-10 DDPM++ network
    /// (56M parameters, random weights: the cost does not depend on them), batch 16 of 3x32x32,
    /// sigma 0.5, unconditional. At most 5 timed steps after 1 warm-up (a step takes seconds).
    static func edmScore(steps: Int, warmup: Int, plugins: PluginRegistry?, rng: inout RandomGenerator) throws -> Result {
        guard let plugins, let p = try? plugins.plugin(named: "edm") else {
            throw BenchmarkError.missingPlugins("edm-score-32", ["edm"])
        }
        let e = try PluginInstance(plugin: p, settings: ["random_preset=ddpmpp-cifar10"], seed: 0)
        let x = Tensor.rand([16, 3, 32, 32], low: -1, high: 1, rng: &rng)
        let ms = try time(steps: min(steps, 5), warmup: min(warmup, 1)) { _ = try e.score(x, sigma: 0.5, labels: nil) }
        return summarize("edm-score-32", ms.map { $0 / 16 })
    }

    /// ms per image pair of LPIPS (alex) on 64 pairs of 1x56x28 images (resized to 128x64, as
    /// `pag measure alignment --lpips` does for the distractor sets), random He-scaled weights
    /// (the cost does not depend on them).
    static func lpipsAlex(steps: Int, warmup: Int, rng: inout RandomGenerator) throws -> [Double] {
        var w: [String: Tensor] = [:]
        for (name, shape) in LPIPS.expectedTensors(backbone: "alex") {
            let fanIn = shape.dropFirst().reduce(1, *)
            w[name] = name.hasPrefix("lin") ? Tensor.rand(shape, rng: &rng)
                : name.hasSuffix(".bias") ? Tensor.zeros(shape) : Tensor.randn(shape, std: (2 / Float(fanIn)).squareRoot(), rng: &rng)
        }
        let lpips = try LPIPS(tensors: w)
        let a = Tensor.rand([64, 1, 56, 28], low: -1, high: 1, rng: &rng), b = Tensor.rand([64, 1, 56, 28], low: -1, high: 1, rng: &rng)
        return try time(steps: steps, warmup: warmup) { _ = try lpips.distance(a, b) }.map { $0 / 64 }
    }

    /// Threads of the team that runs the engine's loops and oneDNN's kernels.
    public static var threads: Int { engineThreads }

    /// Peak resident memory of this process in MiB (getrusage's ru_maxrss).
    public static func peakResidentMB() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_maxrss) / 1024
    }
}

public enum BenchmarkError: Error, CustomStringConvertible {
    case unknownWorkload(String)
    case missingPlugins(String, [String])
    case missingInput(String, String)
    public var description: String {
        switch self {
        case .unknownWorkload(let n):
            return "unknown benchmark workload '\(n)'; valid names: \(Benchmarks.names.joined(separator: ", "))"
        case .missingPlugins(let n, let plugins):
            return "workload '\(n)' needs the plugin\(plugins.count == 1 ? "" : "s") \(plugins.joined(separator: " and ")): "
                + "build them with `swift build -c release` (they go next to pag), or point --plugin-path or $PAG_PLUGIN_PATH at them"
        case .missingInput(let n, let what):
            return "workload '\(n)' needs \(what)"
        }
    }
}
