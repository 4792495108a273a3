import Foundation
import PAGData
import PAGTensor

/// Something that estimates the score grad_x log p_sigma(x) of the data (a score plugin).
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
