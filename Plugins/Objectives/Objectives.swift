// The training objectives of pag, as one dynamic library (libPAGObjectives.so): ce, gradnorm,
// smoothness, randomized-smoothing and pgd-l2. Formulas and defaults follow
// paper/methods.md and the paper's reference code (utils/regularized_loss.py). Notation: f the
// model's logits, x a batch of size B, y the labels, CE the batch mean of the cross-entropy,
// N(0, s^2) Gaussian noise of x's shape drawn from the call's seeded generator.
import PAGPluginKit

/// The fraction of rows of `logits` [N, C] whose largest entry is at the label.
func accuracy(_ logits: Tensor, _ labels: [Int32]) throws -> Double {
    let values = try logits.scalars()
    guard !labels.isEmpty else { return 0 }
    let classes = values.count / labels.count
    var hits = 0
    for (i, y) in labels.enumerated() {
        var best = 0
        for k in 1..<max(classes, 1) where values[i * classes + k] > values[i * classes + best] { best = k }
        if best == Int(y) { hits += 1 }
    }
    return Double(hits) / Double(labels.count)
}

/// The library's entry point: registers the five objectives with pag.
@_cdecl("pag_plugin_init")
public func pagPluginInit(_ host: UnsafePointer<pag_host>?, _ registry: OpaquePointer?) -> pag_status {
    PluginRegistration.register(CrossEntropy.self, GradNorm.self, Smoothness.self, RandomizedSmoothing.self,
                                PGDL2.self, host: host, registry: registry)
}

/// Standard training: CE(f(x), y). Metric: accuracy.
struct CrossEntropy: ObjectivePlugin {
    static let name = "ce"
    static let summary = "cross-entropy CE(f(x), y), standard training"

    init(context: Context) throws {}

    func loss(model: Model, x: Tensor, labels: [Int32]) throws -> Tensor {
        let logits = try model(x, train: true)
        try x.context.reportMetric("accuracy", accuracy(logits, labels))
        return try logits.crossEntropy(labels: labels)
    }
}

/// Gradient-norm regularization (double backpropagation):
/// CE + lambda * 1e5 * sum(g^2) / B with g = dCE/dx, computed with its own graph kept so that the
/// parameter update differentiates through g. Metrics: ce, penalty (the added term), grad_norm
/// (the L2 norm of g over the whole batch), accuracy.
struct GradNorm: ObjectivePlugin {
    static let name = "gradnorm"
    static let summary = "CE + lambda * 1e5 * sum((dCE/dx)^2) / B, exact double backpropagation"
    static let hyperparameters: [Hyperparameter] = [
        .float("lambda", default: 1e-3, range: 0...1e3, help: "weight of the gradient penalty (the paper sweeps 1e-5 ... 10)"),
    ]

    let lambda: Float

    init(context: Context) throws { lambda = Float(try context.float("lambda")) }

    func loss(model: Model, x: Tensor, labels: [Int32]) throws -> Tensor {
        let c = x.context
        let input = try x.requiringGrad()
        let logits = try model(input, train: true)
        let ce = try logits.crossEntropy(labels: labels)
        let g = try grad(of: ce, wrt: input, createGraph: true)
        let sumSquares = try g.squared().sum()
        let penalty = try sumSquares * (lambda * 1e5 / Float(labels.count))
        try c.reportMetric("ce", Double(ce.item()))
        try c.reportMetric("penalty", Double(penalty.item()))
        try c.reportMetric("grad_norm", Double(sumSquares.item()).squareRoot())
        try c.reportMetric("accuracy", accuracy(logits, labels))
        return try ce + penalty
    }
}

/// Smoothness penalty: CE(f(x), y) + lambda * sum((f(x) - f(x + N(0, s^2)))^2) / B (squared L2
/// of the logits' change, summed over classes). Both forward passes run in training mode, as in
/// the reference (with dropout active they draw different masks). Metrics: ce, penalty,
/// accuracy.
struct Smoothness: ObjectivePlugin {
    static let name = "smoothness"
    static let summary = "CE + lambda * sum((f(x) - f(x + N(0, sigma^2)))^2) / B"
    static let hyperparameters: [Hyperparameter] = [
        .float("lambda", default: 1e-3, range: 0...1e6, help: "weight of the smoothness penalty"),
        .float("sigma", default: 1e-2, range: 0...1e3, help: "standard deviation of the input noise"),
    ]

    let lambda: Float, sigma: Float

    init(context: Context) throws {
        lambda = Float(try context.float("lambda"))
        sigma = Float(try context.float("sigma"))
    }

    func loss(model: Model, x: Tensor, labels: [Int32]) throws -> Tensor {
        let c = x.context
        let logits = try model(x, train: true)
        let ce = try logits.crossEntropy(labels: labels)
        let noisy = try model(x + c.randn(x.shape, std: sigma), train: true)
        let penalty = try (logits - noisy).squared().sum() * (lambda / Float(labels.count))
        try c.reportMetric("ce", Double(ce.item()))
        try c.reportMetric("penalty", Double(penalty.item()))
        try c.reportMetric("accuracy", accuracy(logits, labels))
        return try ce + penalty
    }
}

/// Randomized smoothing (Gaussian noise augmentation): CE(f(x + N(0, s^2)), y). Metric:
/// accuracy on the noisy inputs.
struct RandomizedSmoothing: ObjectivePlugin {
    static let name = "randomized-smoothing"
    static let summary = "CE(f(x + N(0, sigma^2)), y), Gaussian noise augmentation"
    static let hyperparameters: [Hyperparameter] = [
        .float("sigma", default: 1e-2, range: 0...1e3,
               help: "standard deviation of the input noise (reference default; the paper sweeps 0.01 ... 1)"),
    ]

    let sigma: Float

    init(context: Context) throws { sigma = Float(try context.float("sigma")) }

    func loss(model: Model, x: Tensor, labels: [Int32]) throws -> Tensor {
        let logits = try model(x + x.context.randn(x.shape, std: sigma), train: true)
        try x.context.reportMetric("accuracy", accuracy(logits, labels))
        return try logits.crossEntropy(labels: labels)
    }
}
