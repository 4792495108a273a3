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

    /// The sample shapes the checks try, in this order (MNIST-like, the distractor sets, CIFAR).
    public static let usualShapes: [[Int]] = [[1, 28, 28], [1, 56, 28], [3, 32, 32]]

    /// Runs the checks for `plugin`'s kind with hyperparameters from `settings`. Every call of
    /// the kind is made twice (a handle kept from the first call fails the second). Models and
    /// estimators are created for each of `usualShapes` through data_info (ABI 1.2); they pass
    /// when at least one shape works, and the details say which shapes did. A model built for
    /// ABI 1.0 / 1.1 is checked once, with the sample shape it declares.
    public static func run(_ plugin: Plugin, settings: [String] = []) -> Result {
        let parsed: [Setting]
        do { parsed = try Setting.parse(settings) } catch {
            return Result(plugin: plugin.name, ok: false, message: "\(error)", details: [])
        }
        if plugin.kind == .objective || (plugin.kind == .model && plugin.abiMinor < 2 && plugin.abiMajor == 1) {
            var details: [String] = []
            let failure = runOnce(plugin, parsed, data: nil, &details)
            return Result(plugin: plugin.name, ok: failure == nil, message: failure ?? "", details: details)
        }
        var details: [String] = [], passed: [String] = [], failed: [String] = []
        var firstFailure: String?
        for shape in usualShapes {
            let name = shape.map(String.init).joined(separator: "x")
            var d: [String] = []
            let info = DatasetInfo(name: "check-\(name)", sampleShape: shape, classCount: plugin.kind == .model ? 10 : 2, normalization: .identity)
            if let why = runOnce(plugin, parsed, data: info, &d) {
                failed.append("\(name): \(why)")
                firstFailure = firstFailure ?? why
            } else {
                passed.append(name)
                if details.isEmpty { details = d }
            }
        }
        if passed.isEmpty {
            return Result(plugin: plugin.name, ok: false, message: firstFailure ?? "no shape tried",
                          details: ["sample shapes tried (data_info): " + usualShapes.map { $0.map(String.init).joined(separator: "x") }.joined(separator: ", ")]
                            + failed.map { "failed with \($0)" })
        }
        details.insert("sample shapes (data_info): passed with \(passed.joined(separator: ", "))"
                       + (failed.isEmpty ? "" : "; not usable with " + failed.map { String($0.prefix(while: { $0 != ":" })) }.joined(separator: ", ")), at: 0)
        details += failed.map { "not usable with \($0)" }
        return Result(plugin: plugin.name, ok: true, message: "", details: details)
    }

    /// One instance for `data` (nil: none): nil when every check passed, else why not.
    static func runOnce(_ plugin: Plugin, _ settings: [Setting], data: DatasetInfo?, _ details: inout [String]) -> String? {
        do {
            let inst = try PluginData.instance(plugin, settings: settings, data: data, seed: 1)
            details.append("create: ok")
            switch plugin.kind {
            case .model: try model(inst, &details)
            case .objective: try objective(inst, &details)
            case .manifold: try manifold(inst, data!.sampleShape, &details)
            case .score: try score(inst, data!.sampleShape, &details)
            }
            inst.destroy()
            details.append("destroy: ok")
            return nil
        } catch let e as PluginError {
            return e.description
        } catch let e as Failed {
            return "plugin '\(plugin.name)': \(e.message)"
        } catch {
            return "plugin '\(plugin.name)': \(error)"
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
        var y = x
        for call in 1...2 {
            y = try m.forward(x, train: true)
            try finite(y, "forward (train) output, call \(call)")
            try finite(try m.forward(x, train: false), "forward (eval) output, call \(call)")
        }
        details.append("forward: input \(x.shape) -> logits \(y.shape), finite in train and eval mode, twice each")
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
        try finite(try o.loss(model: model, x: x, labels: labels, metrics: MetricSink()), "loss")
        let loss = try o.loss(model: model, x: x, labels: labels, metrics: sink)
        try finite(loss, "loss (second call)")
        details.append("loss: finite scalar \(loss.item) on a linear model, batch \(x.shape), in two calls")
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

    /// 32 samples of `shape` near a 2-D plane through the origin, two classes.
    static func planeData(_ shape: [Int]) -> HostDataset {
        let d = shape.reduce(1, *)
        var rng = RandomGenerator(seed: 11, stream: "check.plane")
        let basis = Tensor.randn([2, d], rng: &rng)
        let coeffs = Tensor.randn([32, 2], rng: &rng)
        // Plus a little noise off the plane (1e-3), as real data has: estimators that look at
        // the local spread in more than 2 directions (pca with its default dimension) work.
        let noise = Tensor.randn([32, d], std: 1e-3, rng: &rng)
        let x = noGrad { (Tensor.matmul(coeffs, basis) + noise).reshape([32] + shape) }
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

    /// The plane of `planeData` as orthonormal columns [D, 2]: the data set's exact subspace,
    /// handed to fit as oracle facts (pag_host.dataset_signal_basis).
    static func planeBasis(_ shape: [Int]) -> Tensor {
        let n = shape.reduce(1, *)
        var rng = RandomGenerator(seed: 11, stream: "check.plane")
        let b = Tensor.randn([2, n], rng: &rng).values.map(Double.init)
        var u = Array(b[0..<n]), v = Array(b[n..<(2 * n)])
        let nu = u.reduce(0) { $0 + $1 * $1 }.squareRoot()
        u = u.map { $0 / nu }
        let d = zip(u, v).reduce(0) { $0 + $1.0 * $1.1 }
        v = zip(v, u).map { $0 - d * $1 }
        let nv = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
        v = v.map { $0 / nv }
        return Tensor((0..<n).flatMap { [Float(u[$0]), Float(v[$0])] }, shape: [n, 2])
    }

    /// The projection of each row of `v` [N, D] onto the span of `basis[i]` [k, D] (rows
    /// orthonormalized here by Gram-Schmidt, so a basis that is not orthonormal still counts).
    static func projectOntoSpan(_ basis: Tensor, _ v: [Float], n: Int, d: Int) -> [Double] {
        let k = basis.shape[1], b = basis.values
        var out = [Double](repeating: 0, count: n * d)
        for i in 0..<n {
            var rows: [[Double]] = []
            for r in 0..<k {
                var w = (0..<d).map { Double(b[(i * k + r) * d + $0]) }
                for q in rows { let c = zip(w, q).reduce(0) { $0 + $1.0 * $1.1 }; for j in 0..<d { w[j] -= c * q[j] } }
                let norm = w.reduce(0) { $0 + $1 * $1 }.squareRoot()
                if norm > 1e-6 { rows.append(w.map { $0 / norm }) }
            }
            let vi = (0..<d).map { Double(v[i * d + $0]) }
            for q in rows {
                let c = zip(vi, q).reduce(0) { $0 + $1.0 * $1.1 }
                for j in 0..<d { out[i * d + j] += c * q[j] }
            }
        }
        return out
    }

    /// Tolerance of the tangent_basis / project agreement, relative to the largest element of v.
    static let agreementTolerance = 1e-3

    static func manifold(_ e: PluginInstance, _ shape: [Int], _ details: inout [String]) throws {
        let data = planeData(shape)
        let label = shape.map(String.init).joined(separator: "x")
        try e.fit(data, signalBasis: planeBasis(shape))
        details.append("fit: ok on \(data.count) samples of \(label) near a plane")
        let x = noGrad { data.images.slice(axis: 0, 0..<2) }
        var rng = RandomGenerator(seed: 5, stream: "check.v")
        let v = Tensor.randn(x.shape, rng: &rng)
        var basis: Tensor?
        if e.hasTangentBasis {
            for call in 1...2 {
                let b = try e.tangentBasis(x)
                try finite(b, "tangent basis (call \(call))")
                basis = b
            }
            details.append("tangent_basis: \(basis!.shape), finite, in two calls")
        }
        if e.hasProject {
            var tangent = v
            for call in 1...2 {
                tangent = try e.project(x, v, normal: false)
                try finite(tangent, "tangent projection (call \(call))")
                try finite(try e.project(x, v, normal: true), "normal projection (call \(call))")
            }
            details.append("project: tangent and normal components finite, shape \(v.shape), in two calls")
            if let basis {
                let n = x.shape[0], d = shape.reduce(1, *)
                guard basis.shape.count == 3, basis.shape[0] == n, basis.shape[2] == d else {
                    throw Failed(message: "tangent_basis has shape \(basis.shape), expected [\(n), k, \(d)]")
                }
                let expected = projectOntoSpan(basis, v.values, n: n, d: d)
                let scale = max(1, v.values.map { Double(abs($0)) }.max() ?? 1)
                let got = tangent.values.map(Double.init)
                let worst = zip(expected, got).map { abs($0 - $1) }.max() ?? 0
                if worst > agreementTolerance * scale {
                    throw Failed(message: "project and tangent_basis disagree: project(v) differs from the projection of v onto the (orthonormalized) tangent_basis by up to \(worst) (tolerance \(agreementTolerance * scale)); the host uses project")
                }
                details.append("project agrees with tangent_basis (max difference \(String(format: "%.2g", worst))); the host uses project")
            }
        }
        try trainLoss(e, data, &details)
    }

    static func score(_ e: PluginInstance, _ shape: [Int], _ details: inout [String]) throws {
        var rng = RandomGenerator(seed: 13, stream: "check.gauss")
        let images = Tensor.randn([32] + shape, rng: &rng)
        let data = HostDataset(images: images, labels: (0..<32).map { Int32($0 % 2) }, classes: 2)
        try e.fit(data)
        details.append("fit: ok on \(data.count) Gaussian samples of \(shape.map(String.init).joined(separator: "x"))")
        let x = noGrad { images.slice(axis: 0, 0..<2) }
        for call in 1...2 {
            try finite(try e.score(x, sigma: 0.5, labels: nil), "unconditional score (call \(call))")
            try finite(try e.score(x, sigma: 0.5, labels: [0, 1]), "class-conditional score (call \(call))")
        }
        details.append("score: finite, shape \(x.shape), with and without labels, in two calls")
        try trainLoss(e, data, &details)
    }
}
