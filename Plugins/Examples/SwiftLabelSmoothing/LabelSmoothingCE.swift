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
        ExtraFunction("target_probability", signature: "f64 (f64, i32)",
                      help: "the target probability of the true class for (smoothing, classes)",
                      function: targetProbability),
    ]

    let smoothing: Float

    init(context: Context) throws {
        smoothing = Float(try context.float("smoothing"))
    }

    func loss(model: Model, x: Tensor, labels: [Int32]) throws -> Tensor {
        let logits = try model(x, train: true)
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

/// Extra function for `pag plugins call example-swift-label-smoothing-ce target_probability 0.1 10`.
let targetProbability: @convention(c) (Double, Int32) -> Double = { smoothing, classes in
    1 - smoothing + smoothing / Double(classes)
}

/// The library's entry point: registers the plugin with pag.
@_cdecl("pag_plugin_init")
public func pagPluginInit(_ host: UnsafePointer<pag_host>?, _ registry: OpaquePointer?) -> pag_status {
    PluginRegistration.register(LabelSmoothingCE.self, host: host, registry: registry)
}
