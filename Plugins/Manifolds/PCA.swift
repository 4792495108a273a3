import PAGPluginKit

/// Local PCA: the tangent space at x is spanned by the top `dimension` principal directions of
/// its `neighbors` nearest training samples (Euclidean).
///
/// fit keeps up to `max_points` training samples on the host. For a batch x [N, D] the squared
/// distances to all of them come from one engine matmul, ‖x‖² + ‖t‖² - 2 x tᵀ; for each input the
/// k neighbours are centred on their mean and the small k x k Gram matrix C Cᵀ is diagonalized
/// in Double; its top eigenvectors e_j give the directions Cᵀ e_j / √λ_j, orthonormalized again
/// in Double. Result: an orthonormal basis [N, dimension, D].
struct LocalPCA: ManifoldPlugin, FitsData, ProvidesTangentBasis, ProvidesProjection {
    static let name = "pca"
    static let summary = "local PCA of the k nearest training samples (distances by matmul, k x k Gram in Double)"
    static let hyperparameters: [Hyperparameter] = [
        .int("neighbors", default: 64, range: 2...100_000, help: "k: nearest training samples per input"),
        .int("dimension", default: 8, range: 1...10_000, help: "tangent dimension (at most neighbors - 1)"),
        .int("max_points", default: 10_000, range: 1...10_000_000, help: "training samples kept by fit (the first ones)"),
        .int("chunk", default: 256, range: 1...100_000, help: "inputs per distance matmul"),
    ]

    let neighbors: Int, dim: Int, maxPoints: Int, chunk: Int
    /// The neighbour count in use: `neighbors`, or all samples when fit saw fewer.
    var k: Int
    /// The kept training samples [M, D] and their squared norms [1, M] (host handles).
    var points: pag_tensor?, norms: pag_tensor?
    /// The same samples in Swift memory, M * D floats, to gather neighbours.
    var values: [Float] = []
    var m = 0, d = 0

    init(context: Context) throws {
        neighbors = try context.int("neighbors")
        k = neighbors
        dim = try context.int("dimension")
        maxPoints = try context.int("max_points")
        chunk = try context.int("chunk")
        guard dim < k else {
            throw PluginKitError("dimension \(dim) needs at least \(dim + 1) neighbors (k = \(k)): k centred points span at most k - 1 directions")
        }
    }

    mutating func fit(_ data: Dataset) throws {
        let c = data.context
        let count = min(data.count, maxPoints)
        guard count > dim else { throw PluginKitError("pca: fit needs more than dimension = \(dim) samples, the data set has \(count)") }
        if count < neighbors {
            c.log("the data set has \(count) samples, fewer than neighbors = \(neighbors): using all of them")
        }
        k = min(neighbors, count)
        let x = try data.images(0..<count).flattened()
        let n2 = try x.squared().sum(axes: [1]).reshaped([1, count])
        points = try x.keep()
        norms = try n2.keep()
        values = try x.scalars()
        m = count
        d = x.shape[1]
    }

    func tangentBasis(at x: Tensor) throws -> Tensor {
        guard let points, let norms else { throw PluginKitError("pca: call fit before tangent_basis") }
        let c = x.context
        let n = x.shape[0]
        let flat = try x.reshaped([n, -1])
        guard flat.shape[1] == d else { throw PluginKitError("pca: fitted on samples of \(d) elements, got \(flat.shape[1])") }
        let train = Tensor(handle: points, context: c), tn = Tensor(handle: norms, context: c)
        var out = [Float](repeating: 0, count: n * dim * d)
        try c.withGradient(enabled: false) {
            var start = 0
            while start < n {
                let end = min(n, start + chunk)
                let xb = try flat.slice(axis: 0, start..<end)
                // ‖x‖² + ‖t‖² - 2 x tᵀ: [B, M]
                let xn = try xb.squared().sum(axes: [1], keepDims: true)
                let dist = try (xn + tn) - (xb.matmul(train, transposeOther: true) * 2)
                let dv = try dist.scalars()
                let xv = try xb.scalars()
                for b in 0..<(end - start) {
                    let idx = nearest(dv, row: b, count: m, k: k)
                    let basis = try localBasis(idx, center: Array(xv[(b * d)..<((b + 1) * d)]))
                    for j in 0..<dim {
                        for i in 0..<d { out[((start + b) * dim + j) * d + i] = Float(basis[j][i]) }
                    }
                }
                start = end
            }
        }
        return try c.tensor(out, shape: [n, dim, d])
    }

    /// Indices of the k smallest entries of row `row` (a partial selection: a max-heap of k).
    func nearest(_ dist: [Float], row: Int, count: Int, k: Int) -> [Int] {
        var heap: [(Float, Int)] = []  // max-heap on distance
        heap.reserveCapacity(k)
        func siftDown(_ i0: Int) {
            var i = i0
            while true {
                let l = 2 * i + 1, r = l + 1
                var big = i
                if l < heap.count && heap[l].0 > heap[big].0 { big = l }
                if r < heap.count && heap[r].0 > heap[big].0 { big = r }
                if big == i { return }
                heap.swapAt(i, big); i = big
            }
        }
        let base = row * count
        for j in 0..<count {
            let v = dist[base + j]
            if heap.count < k {
                heap.append((v, j))
                var i = heap.count - 1
                while i > 0 && heap[(i - 1) / 2].0 < heap[i].0 { heap.swapAt(i, (i - 1) / 2); i = (i - 1) / 2 }
            } else if v < heap[0].0 {
                heap[0] = (v, j)
                siftDown(0)
            }
        }
        return heap.map(\.1)
    }

    /// The top `dim` principal directions of the neighbours `idx`, orthonormal, in Double.
    func localBasis(_ idx: [Int], center: [Float]) throws -> [[Double]] {
        let kk = idx.count
        var mean = [Double](repeating: 0, count: d)
        for j in idx { for i in 0..<d { mean[i] += Double(values[j * d + i]) } }
        for i in 0..<d { mean[i] /= Double(kk) }
        var cen = [[Double]](repeating: [], count: kk)
        for (a, j) in idx.enumerated() { cen[a] = (0..<d).map { Double(values[j * d + $0]) - mean[$0] } }
        var gram = [Double](repeating: 0, count: kk * kk)
        for a in 0..<kk {
            for b in a..<kk {
                var s = 0.0
                let ra = cen[a], rb = cen[b]
                for i in 0..<d { s += ra[i] * rb[i] }
                gram[a * kk + b] = s; gram[b * kk + a] = s
            }
        }
        let (vals, vecs) = Dense.symmetricEigen(gram, n: kk)
        var rows: [[Double]] = []
        for j in 0..<dim {
            guard vals[j] > 1e-12 * max(vals[0], 1e-300) else {
                throw PluginKitError("pca: the \(kk) neighbours span only \(j) directions, fewer than dimension = \(dim)")
            }
            var r = [Double](repeating: 0, count: d)
            for a in 0..<kk {
                let w = vecs[a * kk + j]
                if w == 0 { continue }
                let ca = cen[a]
                for i in 0..<d { r[i] += w * ca[i] }
            }
            rows.append(r)
        }
        guard Dense.orthonormalize(&rows) else {
            throw PluginKitError("pca: the principal directions are degenerate (fewer than \(dim) independent ones)")
        }
        _ = center
        return rows
    }

    func project(_ v: Tensor, at x: Tensor, onto part: Projection) throws -> Tensor {
        try projectWithBasis(tangentBasis(at: x), v, onto: part)
    }
}
