import Foundation
import PAGData
import PAGTensor

/// Smoke calls for `pag plugins check`: each kind's functions on small random input, checking
/// shapes, finiteness and differentiability. Run in a child process, since a plugin may crash.
public enum SmokeCheck {
    /// The outcome for one plugin.
    public struct Result: Codable, Sendable {
        public var plugin: String
        public var ok: Bool
        /// Why it failed ("plugin 'x': ..."), empty when ok.
        public var message: String
        /// What was checked, one line each.
        public var details: [String]
    }

    struct Failed: Error { var message: String }

    /// Runs the checks for `plugin`'s kind with hyperparameters from `settings`.
    public static func run(_ plugin: Plugin, settings: [String] = []) -> Result {
        var details: [String] = []
        do {
            // Estimators are created for the check data ([1, 4, 4], two classes: data_info, or the
            // legacy filling for plugins built before ABI 1.2). Models and objectives get no data:
            // a model falls back to its default shape, and the checks use the shape it declares.
            let data = plugin.kind == .manifold || plugin.kind == .score ? checkInfo : nil
            let inst = try PluginData.instance(plugin, settings: try Setting.parse(settings), data: data, seed: 1)
            details.append("create: ok")
            switch plugin.kind {
            case .model: try model(inst, &details)
            case .objective: try objective(inst, &details)
            case .manifold: try manifold(inst, &details)
            case .score: try score(inst, &details)
            }
            inst.destroy()
            details.append("destroy: ok")
            return Result(plugin: plugin.name, ok: true, message: "", details: details)
        } catch let e as PluginError {
            return Result(plugin: plugin.name, ok: false, message: e.description, details: details)
        } catch let e as Failed {
            return Result(plugin: plugin.name, ok: false, message: "plugin '\(plugin.name)': \(e.message)", details: details)
        } catch {
            return Result(plugin: plugin.name, ok: false, message: "plugin '\(plugin.name)': \(error)", details: details)
        }
    }

    static func finite(_ t: Tensor, _ what: String) throws {
        if let bad = t.values.first(where: { !$0.isFinite }) {
            throw Failed(message: "\(what) is not finite (contains \(bad.isNaN ? "nan" : bad > 0 ? "inf" : "-inf"), shape \(t.shape))")
        }
    }

    static func model(_ m: PluginInstance, _ details: inout [String]) throws {
        var rng = RandomGenerator(seed: 7, stream: "check.model")
        let x = Tensor.randn([2] + m.inputShape, rng: &rng)
        let y = try m.forward(x, train: true)
        try finite(y, "forward (train) output")
        let yEval = try m.forward(x, train: false)
        try finite(yEval, "forward (eval) output")
        details.append("forward: input \(x.shape) -> logits \(y.shape), finite in train and eval mode")
        let params = m.parameters.map(\.tensor)
        guard !params.isEmpty else { throw Failed(message: "declares no parameters, so it cannot be trained") }
        let grads: [Tensor]
        do { grads = try grad(of: [y.sum()], wrt: params) } catch {
            throw Failed(message: "forward is not differentiable with respect to the parameters: \(error)")
        }
        for (p, g) in zip(m.parameters, grads) { try finite(g, "gradient of '\(p.name)'") }
        let n = params.reduce(0) { $0 + $1.count }
        details.append("parameters: \(params.count) tensors, \(n) values; gradients of the logits exist and are finite")
    }

    static func objective(_ o: PluginInstance, _ details: inout [String]) throws {
        let model = NativeModel.linear(inputShape: [1, 8, 8], outputs: 10, seed: 3)
        var rng = RandomGenerator(seed: 7, stream: "check.objective")
        let x = Tensor.randn([4, 1, 8, 8], rng: &rng)
        let labels: [Int32] = [0, 3, 5, 9]
        let sink = MetricSink()
        let loss = try o.loss(model: model, x: x, labels: labels, metrics: sink)
        try finite(loss, "loss")
        details.append("loss: finite scalar \(loss.item) on a linear model, batch \(x.shape)")
        let params = model.parameters.map(\.tensor)
        let grads: [Tensor]
        do { grads = try grad(of: [loss], wrt: params, allowUnused: false) } catch {
            throw Failed(message: "the loss does not depend on the model's parameters: \(error)")
        }
        for (p, g) in zip(model.parameters, grads) { try finite(g, "gradient of the loss wrt '\(p.name)'") }
        details.append("gradients wrt the model's parameters: exist and are finite")
        if !sink.values.isEmpty {
            details.append("metrics: " + sink.values.map { "\($0.name)=\($0.value)" }.joined(separator: ", "))
        }
    }

    /// 32 samples of shape [1, 4, 4] near a 2-D plane through the origin, two classes.
    static func planeData() -> HostDataset {
        var rng = RandomGenerator(seed: 11, stream: "check.plane")
        let basis = Tensor.randn([2, 16], rng: &rng)
        let coeffs = Tensor.randn([32, 2], rng: &rng)
        // Plus a little noise off the plane (1e-3), as real data has: estimators that look at
        // the local spread in more than 2 directions (pca with its default dimension) work.
        let noise = Tensor.randn([32, 16], std: 1e-3, rng: &rng)
        let x = noGrad { (Tensor.matmul(coeffs, basis) + noise).reshape([32, 1, 4, 4]) }
        return HostDataset(images: x, labels: (0..<32).map { Int32($0 % 2) }, classes: 2)
    }

    /// For estimators that learn: train_loss is a finite scalar with gradients for the parameters.
    static func trainLoss(_ e: PluginInstance, _ data: HostDataset, _ details: inout [String]) throws {
        guard e.hasTrainLoss else { return }
        let x = noGrad { data.images.slice(axis: 0, 0..<4) }
        let loss = try e.trainLoss(x, labels: Array(data.labels[0..<4]))
        try finite(loss, "train_loss")
        let params = e.parameters.map(\.tensor)
        guard !params.isEmpty else { throw Failed(message: "has train_loss but declares no parameters") }
        let grads: [Tensor]
        do { grads = try grad(of: [loss], wrt: params) } catch {
            throw Failed(message: "train_loss is not differentiable with respect to the parameters: \(error)")
        }
        for (p, g) in zip(e.parameters, grads) { try finite(g, "gradient of train_loss wrt '\(p.name)'") }
        details.append("train_loss: finite scalar \(loss.item); gradients for \(params.count) parameter tensors finite")
    }

    /// What the estimators are told about the check data (shape [1, 4, 4], two classes).
    static let checkInfo = DatasetInfo(name: "check", sampleShape: [1, 4, 4], classCount: 2, normalization: .identity)

    /// The plane of `planeData` as orthonormal columns [16, 2]: the data set's exact subspace,
    /// handed to fit as oracle facts (pag_host.dataset_signal_basis).
    static func planeBasis(_ data: HostDataset) -> Tensor {
        var rng = RandomGenerator(seed: 11, stream: "check.plane")
        let b = Tensor.randn([2, 16], rng: &rng).values.map(Double.init)
        var u = Array(b[0..<16]), v = Array(b[16..<32])
        let nu = u.reduce(0) { $0 + $1 * $1 }.squareRoot()
        u = u.map { $0 / nu }
        let d = zip(u, v).reduce(0) { $0 + $1.0 * $1.1 }
        v = zip(v, u).map { $0 - d * $1 }
        let nv = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
        v = v.map { $0 / nv }
        return Tensor((0..<16).flatMap { [Float(u[$0]), Float(v[$0])] }, shape: [16, 2])
    }

    static func manifold(_ e: PluginInstance, _ details: inout [String]) throws {
        let data = planeData()
        try e.fit(data, signalBasis: planeBasis(data))
        details.append("fit: ok on \(data.count) samples of [1, 4, 4] on a plane")
        let x = noGrad { data.images.slice(axis: 0, 0..<2) }
        if e.hasTangentBasis {
            let b = try e.tangentBasis(x)
            try finite(b, "tangent basis")
            details.append("tangent_basis: \(b.shape), finite")
        }
        if e.hasProject {
            var rng = RandomGenerator(seed: 5, stream: "check.v")
            let v = Tensor.randn(x.shape, rng: &rng)
            try finite(try e.project(x, v, normal: false), "tangent projection")
            try finite(try e.project(x, v, normal: true), "normal projection")
            details.append("project: tangent and normal components finite, shape \(v.shape)")
        }
        try trainLoss(e, data, &details)
    }

    static func score(_ e: PluginInstance, _ details: inout [String]) throws {
        var rng = RandomGenerator(seed: 13, stream: "check.gauss")
        let images = Tensor.randn([32, 1, 4, 4], rng: &rng)
        let data = HostDataset(images: images, labels: (0..<32).map { Int32($0 % 2) }, classes: 2)
        try e.fit(data)
        details.append("fit: ok on \(data.count) Gaussian samples of [1, 4, 4]")
        let x = noGrad { images.slice(axis: 0, 0..<2) }
        try finite(try e.score(x, sigma: 0.5, labels: nil), "unconditional score")
        try finite(try e.score(x, sigma: 0.5, labels: [0, 1]), "class-conditional score")
        details.append("score: finite, shape \(x.shape), with and without labels")
        try trainLoss(e, data, &details)
    }
}
