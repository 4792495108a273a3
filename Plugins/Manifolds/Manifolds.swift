// The manifold estimator plugins of pag, as one dynamic library (libPAGManifolds.so):
//
//   oracle       the exact signal part where the data set knows it (the synthetic set's signal
//                subspace; the signal half of each distractor image), read through the host's
//                oracle facts (pag_host.dataset_signal_basis / signal_mask, ABI 1.1)
//   pca          local PCA of the k nearest training samples of each input
//   autoencoder  a small convolutional autoencoder trained by the host's trainer; tangent space =
//                the column space of the decoder Jacobian at the encoding of x, computed with
//                Jacobian-vector products over the latent dimensions
//
// Every estimator returns an orthonormal basis [N, d, D] and projects with it.
import PAGPluginKit

/// The library's entry point: registers the three estimators with pag.
@_cdecl("pag_plugin_init")
public func pagPluginInit(_ host: UnsafePointer<pag_host>?, _ registry: OpaquePointer?) -> pag_status {
    PluginRegistration.register(OracleManifold.self, LocalPCA.self, Autoencoder.self, host: host, registry: registry)
}

/// Tangent or normal component of v [N, ...] in the row space of basis [N, d, D]
/// (orthonormal rows): t = Bᵀ (B v).
func projectWithBasis(_ basis: Tensor, _ v: Tensor, onto part: Projection) throws -> Tensor {
    let shape = v.shape
    let n = shape[0], d = basis.shape[2]
    let vc = try v.reshaped([n, d, 1])
    let coeff = try basis.matmul(vc)                               // [N, k, 1]
    let tangent = try basis.matmul(coeff, transposeSelf: true)    // [N, D, 1]
    let t = try tangent.reshaped(shape)
    return part == .tangent ? t : try v - t
}

// MARK: - Small dense linear algebra in Double (k x k problems)

enum Dense {
    /// Eigenvalues (descending) and eigenvectors (columns of a row-major n x n matrix) of a
    /// symmetric matrix, by cyclic Jacobi rotations.
    static func symmetricEigen(_ a: [Double], n: Int) -> (values: [Double], vectors: [Double]) {
        var a = a
        var v = [Double](repeating: 0, count: n * n)
        for i in 0..<n { v[i * n + i] = 1 }
        var scale = 0.0
        for x in a { scale = max(scale, abs(x)) }
        if scale == 0 { return ([Double](repeating: 0, count: n), v) }
        for _ in 0..<100 {
            var off = 0.0
            for p in 0..<n { for q in (p + 1)..<max(n, p + 1) { off += a[p * n + q] * a[p * n + q] } }
            if off.squareRoot() <= 1e-15 * scale { break }
            for p in 0..<n {
                for q in (p + 1)..<max(n, p + 1) {
                    let apq = a[p * n + q]
                    if abs(apq) <= 1e-300 { continue }
                    let theta = (a[q * n + q] - a[p * n + p]) / (2 * apq)
                    let t = (theta >= 0 ? 1.0 : -1.0) / (abs(theta) + (theta * theta + 1).squareRoot())
                    let c = 1 / (t * t + 1).squareRoot(), s = t * c
                    for k in 0..<n {  // rotate columns p, q
                        let akp = a[k * n + p], akq = a[k * n + q]
                        a[k * n + p] = c * akp - s * akq
                        a[k * n + q] = s * akp + c * akq
                    }
                    for k in 0..<n {  // rotate rows p, q
                        let apk = a[p * n + k], aqk = a[q * n + k]
                        a[p * n + k] = c * apk - s * aqk
                        a[q * n + k] = s * apk + c * aqk
                    }
                    for k in 0..<n {
                        let vkp = v[k * n + p], vkq = v[k * n + q]
                        v[k * n + p] = c * vkp - s * vkq
                        v[k * n + q] = s * vkp + c * vkq
                    }
                }
            }
        }
        let order = (0..<n).sorted { a[$0 * n + $0] > a[$1 * n + $1] }
        var vals = [Double](repeating: 0, count: n), vecs = [Double](repeating: 0, count: n * n)
        for (j, o) in order.enumerated() {
            vals[j] = a[o * n + o]
            for i in 0..<n { vecs[i * n + j] = v[i * n + o] }
        }
        return (vals, vecs)
    }

    /// Orthonormalizes `rows` (each of length d) in place by modified Gram-Schmidt, twice (the
    /// second pass removes what rounding left). Returns false when a row is (numerically) in the
    /// span of the earlier ones.
    static func orthonormalize(_ rows: inout [[Double]]) -> Bool {
        for i in 0..<rows.count {
            let norm0 = rows[i].reduce(0) { $0 + $1 * $1 }.squareRoot()
            for _ in 0..<2 {
                for j in 0..<i {
                    var dot = 0.0
                    for t in 0..<rows[i].count { dot += rows[i][t] * rows[j][t] }
                    for t in 0..<rows[i].count { rows[i][t] -= dot * rows[j][t] }
                }
            }
            let norm = rows[i].reduce(0) { $0 + $1 * $1 }.squareRoot()
            guard norm > 1e-10 * max(norm0, 1e-300) else { return false }
            for t in 0..<rows[i].count { rows[i][t] /= norm }
        }
        return true
    }
}
