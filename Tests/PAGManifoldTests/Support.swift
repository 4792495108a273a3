import Foundation
import PAGData
import PAGLab
import PAGTensor
import PAGTestSupport
import XCTest

/// libPAGManifolds.so as SwiftPM builds it, next to the test bundle.
enum Manifolds {
    static var library: String { builtProductsDirectory + "/libPAGManifolds.so" }

    static let registry = builtPluginRegistry(libraries: ["libPAGManifolds.so"])

    static func instance(_ name: String, _ settings: [String] = [], seed: UInt64 = 1, data: DataDescription? = nil) throws -> PluginInstance {
        try PluginInstance(plugin: registry.get().plugin(named: name), settings: try Setting.parse(settings), seed: seed, data: data)
    }
}

/// A small synthetic set: 8x8 samples, signal 4, distractor 4, little pixel noise.
func smallSynthetic(signal: Int = 4, distractor: Int = 4, noise: Double = 0.01, train: Int = 4000,
                    split: Split = .train) -> SyntheticDataset {
    var c = SyntheticConfig()
    c.shape = [1, 8, 8]
    c.classCount = 4
    c.signalDim = signal
    c.distractorDim = distractor
    c.noiseStd = noise
    c.trainCount = train
    c.testCount = 200
    c.seed = 3
    return SyntheticDataset(config: c, split: split)
}

/// Rows of a [d, k] tensor's columns, as Double vectors.
func columns(_ t: Tensor) -> [[Double]] {
    let d = t.shape[0], k = t.shape[1], v = t.values
    return (0..<k).map { j in (0..<d).map { Double(v[$0 * k + j]) } }
}

/// The rows of sample s of a basis [N, k, D].
func basisRows(_ b: Tensor, sample s: Int) -> [[Double]] {
    let k = b.shape[1], d = b.shape[2], v = b.values
    return (0..<k).map { j in (0..<d).map { Double(v[(s * k + j) * d + $0]) } }
}

func dot(_ a: [Double], _ b: [Double]) -> Double { zip(a, b).reduce(0) { $0 + $1.0 * $1.1 } }

/// Largest deviation of the Gram matrix of `rows` from the identity.
func orthonormalityError(_ rows: [[Double]]) -> Double {
    var worst = 0.0
    for i in 0..<rows.count { for j in 0..<rows.count {
        worst = max(worst, abs(dot(rows[i], rows[j]) - (i == j ? 1 : 0)))
    } }
    return worst
}

/// Principal angles (radians, ascending) between span(a) and span(b), both orthonormal sets of
/// vectors: the arccosines of the singular values of the matrix of inner products.
func principalAngles(_ a: [[Double]], _ b: [[Double]]) -> [Double] {
    let p = a.count, q = b.count
    let m = a.map { ai in b.map { dot(ai, $0) } }          // p x q
    let small = min(p, q)
    // Eigenvalues of the smaller Gram matrix (M Mᵀ or Mᵀ M) = squared cosines.
    var g = [Double](repeating: 0, count: small * small)
    for i in 0..<small { for j in 0..<small {
        g[i * small + j] = p <= q ? dot(m[i], m[j]) : (0..<p).reduce(0) { $0 + m[$1][i] * m[$1][j] }
    } }
    let cos2 = jacobiEigenvalues(g, n: small)
    return cos2.map { acos(min(1, max(0, $0)).squareRoot()) }.sorted()
}

/// Eigenvalues of a symmetric matrix by Jacobi rotations.
func jacobiEigenvalues(_ m: [Double], n: Int) -> [Double] {
    var a = m
    for _ in 0..<100 {
        var off = 0.0
        for p in 0..<n { for q in 0..<n where q != p { off += a[p * n + q] * a[p * n + q] } }
        if off < 1e-30 { break }
        for p in 0..<n { for q in (p + 1)..<n where abs(a[p * n + q]) > 1e-300 {
            let theta = (a[q * n + q] - a[p * n + p]) / (2 * a[p * n + q])
            let t = (theta >= 0 ? 1.0 : -1.0) / (abs(theta) + (theta * theta + 1).squareRoot())
            let c = 1 / (t * t + 1).squareRoot(), s = t * c
            for k in 0..<n {
                let akp = a[k * n + p], akq = a[k * n + q]
                a[k * n + p] = c * akp - s * akq; a[k * n + q] = s * akp + c * akq
            }
            for k in 0..<n {
                let apk = a[p * n + k], aqk = a[q * n + k]
                a[p * n + k] = c * apk - s * aqk; a[q * n + k] = s * apk + c * aqk
            }
        } }
    }
    return (0..<n).map { a[$0 * n + $0] }
}

func degrees(_ r: Double) -> Double { r * 180 / .pi }
