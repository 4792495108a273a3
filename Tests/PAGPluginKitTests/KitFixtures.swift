// Plugins written with PAGPluginKit for the end-to-end tests in KitThroughHostTests.swift, which
// registers them with pag's real runtime table in-process. This file sees only the Kit.
import PAGPluginKit

/// A small conv net built from every kind of Kit layer, on 8x8 images: the channels and classes
/// of the data it is created for, 1 channel and 3 classes without data.
final class SmallConvNet: ModelPlugin {
    static let name = "kit-fixture-convnet"
    static let summary = "Kit layers end to end"
    static let hyperparameters: [Hyperparameter] = [.int("width", default: 4, range: 1...64, help: "channels")]

    let net: Sequential

    init(context: Context) throws {
        let w = try context.int("width")   // a choice of the user's: a hyperparameter
        // The data's shape and classes come from the host (pag_host.data_info), never from
        // hyperparameters; nil when the host gives no data (unit tests, benchmarks).
        let data = context.data ?? DataInfo(name: "none", sampleShape: [1, 8, 8], classes: 3)
        guard let image = data.image, image.height == 8, image.width == 8 else {
            throw PluginKitError("kit-fixture-convnet takes 8x8 images; data set '\(data.name)' has samples of shape \(data.sampleShape)")
        }
        net = Sequential(
            Conv2d(image.channels, w, kernelSize: 3, padding: 1), BatchNorm2d(w), ReLU(), MaxPool2d(2),   // w x 4 x 4
            Conv2d(w, w, kernelSize: 3, padding: 1), Softplus(), AvgPool2d(2),                             // w x 2 x 2
            Flatten(), Linear(4 * w, 8), Tanh(), Dropout(0.5), Linear(8, data.classes))
        try net.declare(in: context, name: "")
        try context.declareIO(input: data.sampleShape, outputs: data.classes)
    }

    func forward(_ x: Tensor, train: Bool) throws -> Tensor { try net(x, train: train) }
}

/// A named-field model with one Linear layer under "fc": logits = x W^T + b.
struct FixtureLinear: ModelPlugin {
    static let name = "kit-fixture-linear"
    static let summary = "one Linear layer"
    let fc = Linear(4, 3)
    init(context: Context) throws {
        try fc.declare(in: context, name: "fc")
        try context.declareIO(input: [4], outputs: 3)
    }
    func forward(_ x: Tensor, train: Bool) throws -> Tensor { try fc(x.flattened(), train: train) }
}

/// Cross-entropy plus 0.5 * the squared norm of its input gradient (double backpropagation).
struct GradNormCE: ObjectivePlugin {
    static let name = "kit-fixture-gradnorm"
    static let summary = "grad(createGraph:) through the Kit"
    init(context: Context) throws {}
    func loss(model: Model, x: Tensor, labels: [Int32]) throws -> Tensor {
        let xr = try x.requiringGrad()
        let ce = try model(xr, train: true).crossEntropy(labels: labels)
        let g = try grad(of: ce, wrt: xr, createGraph: true)
        try x.context.reportMetric("ce", Double(ce.item()))
        return try ce + 0.5 * g.squared().sum()
    }
}

/// Every Tensor operator and elementwise method on the model's logits a, summed.
struct FixtureArithmetic: ObjectivePlugin {
    static let name = "kit-fixture-arithmetic"
    static let summary = "Tensor operators"
    init(context: Context) throws {}
    func loss(model: Model, x: Tensor, labels: [Int32]) throws -> Tensor {
        let a = try model(x, train: false)
        let c = x.context
        var terms: [Tensor] = []
        terms.append(try (a + 1) * 2 - a / 4)
        terms.append(try (3 - a) * (-a) + 2 / a + (a - 0.5) * a.sqrt())
        terms.append(try a.log() + a.exp() * 0.1 + a.pow(3) - a.squared() + (-a).abs())
        terms.append(try a.clamped(min: 0.5, max: 1.5) + a.sigmoid() + a.tanh() + a.softplus() + (a - 1).relu())
        terms.append(try a * c.full([1, a.shape[1]], 2) + a / c.scalar(4) - a + c.ones(a.shape))
        terms.append(try a.softmax(axis: 1) + a.logSoftmax(axis: 1))
        terms.append(try (a.mean(axes: [1], keepDims: true) - a.sum(axes: [0], keepDims: true)).broadcast(to: a.shape))
        terms.append(try a.reshaped([-1]).reshaped(a.shape).permuted([1, 0]).permuted([1, 0]))
        terms.append(try Tensor.concat([a.slice(axis: 1, 0..<1), a.slice(axis: 1, 1..<a.shape[1])], axis: 1))
        terms.append(try a.padded(axis: 1, before: 1, after: 0).slice(axis: 1, 0..<a.shape[1]))
        terms.append(try a.matmul(a, transposeOther: true).mean())
        terms.append(try a.mse(c.full(a.shape, 0.5)))
        terms.append(try a.normPerSample(p: 2))
        var total = try c.scalar(0)
        for (i, t) in terms.enumerated() {
            let s = try t.sum()
            try c.reportMetric("term\(i)", Double(s.item()))  // lets a failing test say which term is off
            total = try total + s
        }
        return total
    }
}

/// Handle lifetimes: a tensor the Kit made releases its handle when it goes away, a borrowed one
/// (the call's input) does not, and one kept past its call (a misuse) does not touch later calls.
/// Reports what the host says of each handle.
struct FixtureHandleLifetimes: ObjectivePlugin {
    static let name = "kit-fixture-lifetimes"
    static let summary = "Tensor handles released when the Swift value goes away"
    nonisolated(unsafe) static var leftOver: Tensor?
    init(context: Context) throws {}
    func loss(model: Model, x: Tensor, labels: [Int32]) throws -> Tensor {
        let c = x.context
        var made: pag_tensor?
        do {
            let t = try c.full([3], 2)
            made = t.handle
        }
        let staleCount = Tensor(handle: made!, context: c).count  // -1, with the host's error
        let message = c.lastError("no error").message
        c.clearError()
        do {
            let borrowed = Tensor(handle: x.handle, context: c)
            _ = borrowed.count
        }
        try c.reportMetric("made_count", Double(staleCount))
        try c.reportMetric("message_names_release", message.contains("not a live tensor handle (released") ? 1 : 0)
        try c.reportMetric("input_count", Double(x.count))
        // Goes away in the next call (after this call has returned): it must not release then.
        FixtureHandleLifetimes.leftOver = try c.full([1], 5)
        return try model(x, train: false).sum()
    }
}

/// Registers the fixtures: what a library's pag_plugin_init would do.
func registerKitFixtures(_ host: UnsafePointer<pag_host>?, _ registry: OpaquePointer?) -> pag_status {
    PluginRegistration.register(SmallConvNet.self, FixtureLinear.self, GradNormCE.self, FixtureArithmetic.self,
                                FixtureHandleLifetimes.self,
                                host: host, registry: registry)
}
