// Cross-entropy with label smoothing, written with PAGPluginKit: the Swift twin of
// Plugins/Examples/label_smoothing_ce.c. Built as the dynamic library libPAGExampleSwiftCE.so.
//
// With smoothing ε and C classes the target of a sample with label y is
//     q = (1 - ε) · onehot(y) + ε / C,
// and the loss is the batch mean of -Σ_c q_c · log softmax(logits)_c.
import PAGPluginKit

/// The objective: one instance per training run, holding its hyperparameter.
struct LabelSmoothingCE: ObjectivePlugin {
    static let name = "example-swift-label-smoothing-ce"
    static let summary = "cross-entropy with label smoothing (Swift example, PAGPluginKit)"
    static let version = "1.0.0"
    static let hyperparameters: [Hyperparameter] = [
        .float("smoothing", default: 0.1, range: 0...1, help: "probability mass spread evenly over all classes"),
    ]
    static let functions = [
        ExtraFunction("min_loss", signature: "f64 (f64, i32)",
                      help: "lowest reachable loss for (smoothing, classes): the entropy of the smoothed target",
                      function: minLoss),
    ]

    let smoothing: Float

    init(context: Context) throws {
        smoothing = Float(try context.float("smoothing"))
    }

    func loss(model: Model, x: Tensor, labels: [Int32]) throws -> Tensor {
        let logits = try model(x, train: true)
        guard logits.rank == 2 else { throw PluginKitError("expected logits [N, classes], got \(logits.shape)") }
        let classes = logits.shape[1]
        let target = try x.context.oneHot(labels, classes: classes) * (1 - smoothing) + smoothing / Float(classes)
        let loss = try -(target * logits.logSoftmax(axis: 1)).sum(axes: [1]).mean()
        try x.context.reportMetric("accuracy", accuracy(try logits.scalars(), labels, classes))
        return loss
    }
}

/// The fraction of rows of `logits` [N, classes] whose largest entry is at the label.
func accuracy(_ logits: [Float], _ labels: [Int32], _ classes: Int) -> Double {
    guard !labels.isEmpty else { return 0 }
    var hits = 0
    for (i, y) in labels.enumerated() {
        let row = logits[i * classes ..< (i + 1) * classes]
        if row.firstIndex(of: row.max()!)! - i * classes == Int(y) { hits += 1 }
    }
    return Double(hits) / Double(labels.count)
}

/// The smallest loss reachable with smoothing eps and C classes: the entropy of the smoothed
/// target. For `pag plugins call example-swift-label-smoothing-ce min_loss 0.1 10`.
let minLoss: @convention(c) (Double, Int32) -> Double = { eps, classes in
    guard classes >= 1, eps >= 0, eps <= 1 else { return .nan }
    let on = 1 - eps + eps / Double(classes), off = eps / Double(classes)
    var h = on > 0 ? -on * log(on) : 0
    if off > 0 { h -= Double(classes - 1) * off * log(off) }
    return h
}

/// The library's entry point: registers the plugin with pag.
@_cdecl("pag_plugin_init")
public func pagPluginInit(_ host: UnsafePointer<pag_host>?, _ registry: OpaquePointer?) -> pag_status {
    PluginRegistration.register(LabelSmoothingCE.self, host: host, registry: registry)
}
