import Foundation
import PAGData
import PAGTensor

/// Something that estimates the score grad_x log p_sigma(x) of the data: a score plugin, or
/// one of the host's exact ones.
public protocol ScoreSource: AnyObject {
    var name: String { get }
    /// The score at x for noise level sigma, in the shape of x; labels (nil: unconditional).
    func score(_ x: Tensor, sigma: Double, labels: [Int]?) throws -> Tensor
}

/// Something that splits a vector at x into its tangent and normal parts.
public protocol TangentSource: AnyObject {
    var name: String { get }
    /// The tangent (normal false) or normal (normal true) component of v at x; `rows` says
    /// which of the measured images x holds (for oracles that know per-image facts).
    func project(_ x: Tensor, _ v: Tensor, rows: Range<Int>, normal: Bool) throws -> Tensor
}

/// A score estimator plugin, fitted on training data.
public final class PluginScore: ScoreSource {
    public let instance: PluginInstance
    public var name: String { instance.plugin.name }
    public init(_ instance: PluginInstance) { self.instance = instance }
    public func score(_ x: Tensor, sigma: Double, labels: [Int]?) throws -> Tensor {
        try instance.score(x, sigma: sigma, labels: labels.map { $0.map(Int32.init) })
    }
}

/// A manifold estimator plugin: its project, or its tangent basis (orthonormalized here). The
/// measured images' signal masks, when the data set has them, are passed to the plugin.
public final class PluginTangent: TangentSource {
    public let instance: PluginInstance
    let masks: Tensor?
    public var name: String { instance.plugin.name }
    public init(_ instance: PluginInstance, masks: Tensor? = nil) { self.instance = instance; self.masks = masks }
    public func project(_ x: Tensor, _ v: Tensor, rows: Range<Int>, normal: Bool) throws -> Tensor {
        let m = masks.map { rows.count == $0.shape[0] ? $0 : $0.slice(axis: 0, rows).copy() }
        if instance.hasProject { return try instance.project(x, v, normal: normal, signalMask: m) }
        let basis = try instance.tangentBasis(x, signalMask: m)
        return BasisTangent.project(v, basis: basis, normal: normal)
    }
}

/// Projections onto the span of per-sample bases [N, k, D] (rows orthonormalized by
/// Gram-Schmidt first; dependent rows are dropped).
public enum BasisTangent {
    public static func project(_ v: Tensor, basis: Tensor, normal: Bool) -> Tensor {
        let n = v.shape[0], d = v.count / max(n, 1), k = basis.shape[1]
        precondition(basis.shape == [n, k, d], "basis \(basis.shape) does not fit vectors \(v.shape)")
        let out = Tensor.zeros(v.shape)
        for i in 0..<n {
            var q: [[Double]] = []
            for r in 0..<k {
                var row = (0..<d).map { Double(basis.pointer[(i * k + r) * d + $0]) }
                let before = row.reduce(0) { $0 + $1 * $1 }.squareRoot()
                for e in q {
                    var dot = 0.0
                    for j in 0..<d { dot += e[j] * row[j] }
                    for j in 0..<d { row[j] -= dot * e[j] }
                }
                let norm = row.reduce(0) { $0 + $1 * $1 }.squareRoot()
                if norm > 1e-6 * max(before, 1e-30) { q.append(row.map { $0 / norm }) }
            }
            var p = [Double](repeating: 0, count: d)
            for e in q {
                var dot = 0.0
                for j in 0..<d { dot += e[j] * Double(v.pointer[i * d + j]) }
                for j in 0..<d { p[j] += dot * e[j] }
            }
            for j in 0..<d {
                out.pointer[i * d + j] = Float(normal ? Double(v.pointer[i * d + j]) - p[j] : p[j])
            }
        }
        return out
    }
}

/// The host's oracle for data sets with a signal mask: the tangent part of v is v on the
/// signal pixels (mask 1), the normal part v on the distractor pixels. `masks` belong to the
/// measured images, in order.
public final class MaskTangent: TangentSource {
    public let name = "oracle (signal mask)"
    let masks: Tensor
    public init(masks: Tensor) { self.masks = masks }
    public func project(_ x: Tensor, _ v: Tensor, rows: Range<Int>, normal: Bool) throws -> Tensor {
        let d = v.count / v.shape[0]
        precondition(rows.count == v.shape[0] && rows.upperBound <= masks.shape[0], "mask oracle: rows \(rows) do not fit")
        let out = Tensor.zeros(v.shape)
        let m = masks.pointer + rows.lowerBound * d
        for i in 0..<v.count { out.pointer[i] = v.pointer[i] * (normal ? 1 - m[i] : m[i]) }
        return out
    }
}

/// The host's oracle for data sets that know their subspaces (the synthetic set): the tangent
/// space is the span of the signal basis.
public final class SubspaceTangent: TangentSource {
    public let name = "oracle (signal subspace)"
    let basis: Tensor  // [d, k], orthonormal columns
    public init(basis: Tensor) { self.basis = basis }
    public func project(_ x: Tensor, _ v: Tensor, rows: Range<Int>, normal: Bool) throws -> Tensor {
        let n = v.shape[0], d = v.count / n
        let flat = v.reshape([n, d])
        let p = noGrad { Tensor.matmul(Tensor.matmul(flat, basis), basis, transposeB: true) }
        return noGrad { (normal ? flat - p : p).reshape(v.shape) }
    }
}

/// The exact score of the Gaussian-smoothed empirical distribution of `reference` images:
/// score(x) = (sum_i w_i x_i - x) / sigma^2 with w = softmax_i(-||x - x_i||^2 / (2 sigma^2));
/// with labels, only the images of the same class take part (the class-conditional score).
/// Distances come from one matrix product per batch.
public final class EmpiricalScore: ScoreSource {
    public let name = "empirical (host)"
    let reference: Tensor       // [M, D]
    let labels: [Int]
    let norms: [Float]
    public init(images: Tensor, labels: [Int]) {
        let m = images.shape[0], d = images.count / m
        reference = images.reshape([m, d]).copy()
        self.labels = labels
        norms = (0..<m).map { i in (0..<d).reduce(Float(0)) { $0 + images.pointer[i * d + $1] * images.pointer[i * d + $1] } }
    }
    public func score(_ x: Tensor, sigma: Double, labels y: [Int]?) throws -> Tensor {
        let n = x.shape[0], d = x.count / n, m = reference.shape[0]
        let flat = x.reshape([n, d]).copy()
        let dots = noGrad { Tensor.matmul(flat, reference, transposeB: true) }  // [n, m]
        let weights = Tensor.zeros([n, m])
        let s2 = 2 * sigma * sigma
        for i in 0..<n {
            var xn: Float = 0
            for j in 0..<d { xn += flat.pointer[i * d + j] * flat.pointer[i * d + j] }
            var logits = [Double](repeating: -.infinity, count: m)
            for k in 0..<m where y == nil || labels[k] == y![i] {
                logits[k] = -Double(xn + norms[k] - 2 * dots.pointer[i * m + k]) / s2
            }
            let top = logits.max() ?? 0
            var total = 0.0
            for k in 0..<m { logits[k] = logits[k].isFinite ? exp(logits[k] - top) : 0; total += logits[k] }
            for k in 0..<m { weights.pointer[i * m + k] = Float(total > 0 ? logits[k] / total : 0) }
        }
        let mean = noGrad { Tensor.matmul(weights, reference) }  // [n, d]
        let out = Tensor.zeros(x.shape)
        let inv = Float(1 / (sigma * sigma))
        for i in 0..<(n * d) { out.pointer[i] = (mean.pointer[i] - flat.pointer[i]) * inv }
        return out
    }
}

/// The synthetic set's closed-form score of the smoothed distribution.
public final class AnalyticScore: ScoreSource {
    public let name = "analytic (synthetic)"
    let manifold: SyntheticManifold
    public init(manifold: SyntheticManifold) { self.manifold = manifold }
    public func score(_ x: Tensor, sigma: Double, labels: [Int]?) throws -> Tensor {
        manifold.score(x, labels: labels, smoothing: sigma)
    }
}
