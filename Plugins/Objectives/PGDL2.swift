import PAGPluginKit

/// Adversarial training with L2 projected gradient descent: CE(f(x_adv), y), with the model in
/// training mode for the loss and in evaluation mode during the attack.
///
/// The attack: delta starts in a random direction (Gaussian) with L2 norm eps/2; then `steps`
/// times, delta += alpha * g / ||g|| with g = dCE(f(x + delta), y)/d delta, and delta is projected
/// back onto the eps-ball (scaled by min(1, eps / ||delta||)). Norms are per sample by default
/// (norm=sample); norm=batch takes them over the whole batch as the reference does. No clamping
/// to a pixel range (inputs may be normalized). alpha defaults to 2 eps / steps.
///
/// Metrics: attack_success (fraction of samples misclassified at x_adv, model in eval mode),
/// perturbation_norm (mean per-sample L2 norm of x_adv - x).
struct PGDL2: ObjectivePlugin {
    static let name = "pgd-l2"
    static let summary = "adversarial training, CE(f(x_adv), y) with an L2 PGD attack (eval mode, random start)"
    static let hyperparameters: [Hyperparameter] = [
        .float("eps", default: 0.5, range: 0...1e4, help: "radius of the L2 ball around each input"),
        .int("steps", default: 15, range: 1...10_000, help: "attack steps"),
        .float("alpha", default: 0, range: 0...1e4, help: "step size; 0 means 2 * eps / steps (the reference)"),
        .choice("norm", default: "sample", choices: ["sample", "batch"],
                help: "L2 norms per sample, or over the whole batch (the reference)"),
    ]

    let eps: Float, steps: Int, alpha: Float, perSample: Bool

    init(context: Context) throws {
        eps = Float(try context.float("eps"))
        steps = try context.int("steps")
        let a = Float(try context.float("alpha"))
        alpha = a > 0 ? a : 2 * eps / Float(steps)
        perSample = try context.string("norm") == "sample"
    }

    /// The L2 norm of t per sample, shaped [B, 1, 1, ...] to broadcast against t, or the norm of
    /// the whole batch (a scalar).
    func norm(_ t: Tensor) throws -> Tensor {
        if perSample { return try t.normPerSample(p: 2).reshaped([t.shape[0]] + Array(repeating: 1, count: t.rank - 1)) }
        return try t.squared().sum().sqrt()
    }

    /// delta scaled into the eps-ball: delta * min(1, eps / ||delta||).
    func project(_ delta: Tensor) throws -> Tensor {
        try delta * (eps / (norm(delta) + 1e-12)).clamped(max: 1)
    }

    func loss(model: Model, x: Tensor, labels: [Int32]) throws -> Tensor {
        let c = x.context
        let clean = try x.detached()
        // Random start: a Gaussian direction scaled to norm eps / 2.
        var delta = try c.withGradient(enabled: false) {
            let u = try c.randn(x.shape)
            return try u * ((eps / 2) / (norm(u) + 1e-12))
        }
        for _ in 0..<steps {
            let start = try clean + delta
            let input = try start.requiringGrad()
            let logits = try model(input, train: false)
            let attackLoss = try logits.crossEntropy(labels: labels)
            let g = try grad(of: attackLoss, wrt: input)
            let next = try c.withGradient(enabled: false) {
                try project(delta + g * (alpha / (norm(g) + 1e-12)))
            }
            // This step's graph and tensors go with its last references (the Kit releases them),
            // so 15 steps of activations do not add up.
            delta = next
        }
        let adversarial = try (clean + delta).detached()
        try c.withGradient(enabled: false) {
            let evalLogits = try model(adversarial, train: false)
            try c.reportMetric("attack_success", 1 - accuracy(evalLogits, labels))
            try c.reportMetric("perturbation_norm", Double(delta.normPerSample(p: 2).mean().item()))
        }
        let logits = try model(adversarial, train: true)
        return try logits.crossEntropy(labels: labels)
    }
}
