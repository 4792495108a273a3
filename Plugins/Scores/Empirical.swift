import PAGPluginKit

/// The exact score of the Gaussian-smoothed empirical distribution of a training subset:
///
///     p_sigma(x) = (1/N) sum_i N(x; x_i, sigma^2 I)
///     grad log p_sigma(x) = (sum_i w_i(x) x_i - x) / sigma^2,
///     w(x) = softmax_i(-||x - x_i||^2 / (2 sigma^2)).
///
/// ||x - x_i||^2 = ||x||^2 + ||x_i||^2 - 2 x.x_i comes from one matrix product per batch; the
/// ||x||^2 term is the same for every i, so it cancels in the softmax and is never formed (that
/// avoids the float32 cancellation of two large norms). With labels, only the training points of
/// each sample's class take part (the score of the smoothed class-conditional distribution):
/// a one-hot product masks the others.
///
/// It needs no training and is exact for the distribution it describes; it is a good estimate
/// of the smoothed data score only where sigma is large against the spacing of the subset
/// (otherwise it points at the nearest training point: memorization).
final class EmpiricalScore: ScorePlugin, FitsData {
    static let name = "empirical"
    static let summary = "exact score of the Gaussian-smoothed empirical distribution of a training subset (no training)"
    static let hyperparameters: [Hyperparameter] = [
        .int("subset", default: 10_000, range: 1...10_000_000,
             help: "training samples used (evenly spaced over the data set; all of them when it has fewer)"),
        .int("chunk", default: 4_194_304, range: 1...1_000_000_000,
             help: "most entries of one batch-by-subset weight matrix (rows per block = chunk / subset)"),
    ]

    let subset: Int, chunk: Int
    /// [N, D] training points, 0.5 ||x_i||^2 as [1, N], class one-hot [N, K]: kept handles.
    var points: pag_tensor?, halfSquaredNorms: pag_tensor?, oneHot: pag_tensor?
    var sampleShape: [Int] = []
    var classes = 0
    var classCounts: [Int] = []

    init(context: Context) throws {
        subset = try context.int("subset")
        chunk = try context.int("chunk")
    }

    func fit(_ data: Dataset) throws {
        let c = data.context
        let total = data.count, classes = data.classes
        guard total > 0 else { throw PluginKitError("fit: the data set is empty") }
        let n = min(subset, total)
        // Evenly spaced indices: the whole set when n == total.
        let indices = (0..<n).map { Int((Int64($0) * Int64(total)) / Int64(n)) }
        let allLabels = try data.labels(0..<total)
        var parts: [Tensor] = []
        if n == total {
            parts = [try data.images(0..<total)]
        } else {
            var group: [Tensor] = []
            for i in indices {
                group.append(try data.images(i..<(i + 1)))
                if group.count == 512 {
                    parts.append(try Tensor.concat(group, axis: 0))
                    group = []  // releases the 512 single images (the Kit frees them with their last reference)
                }
            }
            if !group.isEmpty { parts.append(try Tensor.concat(group, axis: 0)) }
        }
        let images = parts.count == 1 ? parts[0] : try Tensor.concat(parts, axis: 0)
        let shape = images.shape
        let d = shape.dropFirst().reduce(1, *)
        let x = try images.reshaped([n, d]).detached()
        let labels = indices.map { allLabels[$0] }
        if let bad = labels.first(where: { $0 < 0 || Int($0) >= max(classes, 1) }) {
            throw PluginKitError("fit: label \(bad) outside 0..<\(classes)")
        }
        let k = max(classes, 1)
        var counts = [Int](repeating: 0, count: k)
        for y in labels { counts[Int(y)] += 1 }
        let half = try (x.squared().sum(axes: [1]) * 0.5).reshaped([1, n])
        let hot = try c.oneHot(labels, classes: k)
        // Refit: drop what the previous fit kept.
        for h in [points, halfSquaredNorms, oneHot] { if let h { Tensor(handle: h, context: c).release() } }
        points = try x.keep()
        halfSquaredNorms = try half.keep()
        oneHot = try hot.keep()
        sampleShape = Array(shape.dropFirst())
        self.classes = k
        classCounts = counts
    }

    func score(at x: Tensor, sigma: Double, labels: [Int32]?) throws -> Tensor {
        try checkPositiveSigma(sigma)
        guard let points, let halfSquaredNorms, let oneHot else {
            throw PluginKitError("score called before fit: the empirical score needs a data set")
        }
        let c = x.context
        let shape = x.shape
        guard shape.count >= 1, Array(shape.dropFirst()) == sampleShape else {
            throw PluginKitError("score: input \(shape) does not match the fitted samples [N, \(sampleShape.map(String.init).joined(separator: ", "))]")
        }
        if let labels {
            for y in labels {
                guard y >= 0, Int(y) < classes else { throw PluginKitError("score: label \(y) outside 0..<\(classes)") }
                guard classCounts[Int(y)] > 0 else {
                    throw PluginKitError("score: class \(y) has no sample in the fitted subset of \(classCounts.reduce(0, +)); raise `subset`")
                }
            }
        }
        let b = shape[0], d = sampleShape.reduce(1, *)
        if b == 0 { return try c.zeros(shape) }
        let X = Tensor(handle: points, context: c)
        let half = Tensor(handle: halfSquaredNorms, context: c)
        let hot = Tensor(handle: oneHot, context: c)
        let n = X.shape[0]
        let inv = Float(1 / (sigma * sigma))
        let xf = try x.reshaped([b, d])
        let rows = max(1, chunk / n)
        var out: [Tensor] = []
        var start = 0
        while start < b {
            let end = min(b, start + rows)
            let xc = (start == 0 && end == b) ? xf : try xf.slice(axis: 0, start..<end)
            // -||x - x_i||^2 / (2 sigma^2) up to a per-row constant: (x.x_i - ||x_i||^2 / 2) / sigma^2.
            var logits = try (xc.matmul(X, transposeOther: true) - half) * inv
            if let labels {
                let mine = try c.oneHot(Array(labels[start..<end]), classes: classes)
                let same = try mine.matmul(hot, transposeOther: true)          // 1 where the classes agree
                logits = try logits + (same - 1) * 1e30
            }
            let w = try logits.softmax(axis: -1)
            out.append(try (w.matmul(X) - xc) * inv)
            start = end
        }
        let s = out.count == 1 ? out[0] : try Tensor.concat(out, axis: 0)
        return try s.reshaped(shape)
    }
}
