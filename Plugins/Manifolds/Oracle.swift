import PAGPluginKit

/// The exact decomposition, where the data set knows it.
///
/// - Synthetic set: fit reads the signal subspace U_s [D, k] (pag_host.dataset_signal_basis);
///   the tangent space at every x is span(U_s), the basis U_sᵀ for every sample.
/// - Distractor sets: the caller passes each image's signal mask with the batch
///   (pag_host.signal_mask); the tangent space is the span of the signal pixels: the basis is
///   the unit vectors of those pixels, the projection multiplies by the mask.
///
/// A mask given with the batch wins over a fitted subspace. Neither: an error saying what to pass.
struct OracleManifold: ManifoldPlugin, FitsData, ProvidesTangentBasis, ProvidesProjection {
    static let name = "oracle"
    static let summary = "exact signal subspace (synthetic) or signal half (distractor sets), from the data set's oracle facts"

    /// U_sᵀ [k, D] as a kept handle, once fitted on a data set that knows its subspace.
    var basisT: pag_tensor?

    init(context: Context) throws {}

    mutating func fit(_ data: Dataset) throws {
        let c = data.context
        guard let b = c.host.pointee.dataset_signal_basis(c.pointer, data.pointer) else {
            // A data set without a subspace (the distractor sets): the masks come with each batch.
            c.clearError()
            basisT = nil
            return
        }
        let u = Tensor(handle: b, context: c)
        basisT = try u.permuted([1, 0]).keep()
    }

    /// The caller's signal mask of x, or nil when none was passed.
    func mask(_ x: Tensor) throws -> Tensor? {
        let c = x.context
        guard let h = c.host.pointee.signal_mask(c.pointer) else {
            c.clearError()
            return nil
        }
        return Tensor(handle: h, context: c)
    }

    func missing() -> PluginKitError {
        PluginKitError("no oracle facts: fit on a data set with a known signal subspace (synthetic), or pass the batch's signal mask (distractor data sets)")
    }

    func tangentBasis(at x: Tensor) throws -> Tensor {
        let n = x.shape[0], d = x.count / max(n, 1)
        if let m = try mask(x) {
            // One unit vector per signal element; every sample must have the same count.
            let values = try m.scalars()
            var rows: [[Int]] = []
            for s in 0..<n {
                var idx: [Int] = []
                for i in 0..<d where values[s * d + i] > 0.5 { idx.append(i) }
                rows.append(idx)
            }
            let k = rows.first?.count ?? 0
            guard rows.allSatisfy({ $0.count == k }), k > 0 else {
                throw PluginKitError("oracle: the signal masks of this batch have different numbers of signal elements (\(Set(rows.map(\.count)).sorted())); a tangent basis needs one k, use project instead")
            }
            var out = [Float](repeating: 0, count: n * k * d)
            for s in 0..<n { for (j, i) in rows[s].enumerated() { out[(s * k + j) * d + i] = 1 } }
            return try x.context.tensor(out, shape: [n, k, d])
        }
        guard let basisT else { throw missing() }
        let bt = Tensor(handle: basisT, context: x.context)
        guard bt.shape[1] == d else {
            throw PluginKitError("oracle: fitted on samples of \(bt.shape[1]) elements, got \(d)")
        }
        return try bt.reshaped([1, bt.shape[0], d]).broadcast(to: [n, bt.shape[0], d])
    }

    func project(_ v: Tensor, at x: Tensor, onto part: Projection) throws -> Tensor {
        if let m = try mask(x) {
            let t = try v * m
            return part == .tangent ? t : try v - t
        }
        return try projectWithBasis(tangentBasis(at: x), v, onto: part)
    }
}
