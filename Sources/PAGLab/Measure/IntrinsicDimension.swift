import Foundation
import PAGData
import PAGFormats
import PAGTensor

/// Intrinsic dimension of a point cloud from nearest-neighbour distances (the paper's first open
/// check: how low-dimensional are the data and signal manifolds?). Two standard estimators:
///
/// - TwoNN (Facco et al. 2017): mu_i = r2 / r1, the ratio of each point's second to first
///   neighbour distance, is Pareto(d) distributed for locally uniform data, so the maximum-
///   likelihood estimate is d = 1 / mean(log mu_i).
/// - Levina-Bickel MLE with k neighbours and MacKay-Ghahramani's correction: per point
///   m_k(x)^-1 = 1/(k-1) sum_{j<k} log(T_k(x) / T_j(x)), and d = 1 / mean(m_k(x)^-1) (averaging the
///   inverses, not the per-point estimates, which are biased upward).
///
/// Both are 1 / mean of a per-point statistic, so the 95% interval is a bootstrap over points of
/// that statistic (percentiles of `bootstrap` resamples). Both underestimate high dimensions at
/// finite samples (TwoNN gives 16.4 to 17.6 for 20-dimensional manifolds with 2,000 to 8,000
/// points, also in an independent NumPy implementation): read d above ~15 as a lower bound. Points with a duplicate (a zero
/// neighbour distance) have no statistic and are dropped (counted in `dropped`).
public enum IntrinsicDimension {
    /// One estimate with its interval.
    public struct Estimate: Codable, Equatable, Sendable {
        public var estimator: String
        public var dimension: Double
        public var ci95Low: Double
        public var ci95High: Double
        public var points: Int
        public var dropped: Int
        public var k: Int?

    }

    /// Distances (not squared) from each row of x [N, D] to its k nearest other rows, ascending:
    /// squared distances |a|^2 + |b|^2 - 2 a.b from the engine's matrix product, in row blocks.
    public static func nearestDistances(_ x: Tensor, k: Int) -> [[Float]] {
        precondition(x.rank == 2 && x.shape[0] > k && k >= 1, "nearestDistances: need more than k = \(k) rows, got \(x.shape)")
        let n = x.shape[0], d = x.shape[1]
        let px = x.pointer
        let norms = (0..<n).map { i -> Float in
            var s: Float = 0
            for j in 0..<d { s += px[i * d + j] * px[i * d + j] }
            return s
        }
        var result = [[Float]](repeating: [], count: n)
        let block = 512
        var start = 0
        while start < n {
            let end = Swift.min(start + block, n)
            let gram = noGrad { Tensor.matmul(x.slice(axis: 0, start..<end).copy(), x, transposeA: false, transposeB: true) }
            let pg = gram.pointer
            for r in 0..<(end - start) {
                let i = start + r
                var best = [Float](repeating: .infinity, count: k)  // ascending squared distances
                for j in 0..<n where j != i {
                    // |a|^2 + |b|^2 - 2 a.b cancels: below float32 rounding of the norms it is a duplicate.
                    var sq = norms[i] + norms[j] - 2 * pg[r * n + j]
                    if sq <= 1e-6 * (norms[i] + norms[j]) { sq = 0 }
                    if sq < best[k - 1] {
                        var p = k - 1
                        while p > 0 && best[p - 1] > sq { best[p] = best[p - 1]; p -= 1 }
                        best[p] = sq
                    }
                }
                result[i] = best.map { $0.squareRoot() }
            }
            start = end
        }
        return result
    }

    /// TwoNN's per-point statistic log(r2 / r1); nil for a point with a duplicate.
    static func twoNNStatistic(_ r: [Float]) -> Double? {
        guard r.count >= 2, r[0] > 0 else { return nil }
        return Foundation.log(Double(r[1]) / Double(r[0]))
    }

    /// Levina-Bickel's per-point inverse estimate with k neighbours; nil for a duplicate.
    static func mleStatistic(_ r: [Float], k: Int) -> Double? {
        guard r.count >= k, k >= 2, r[0] > 0 else { return nil }
        let tk = Double(r[k - 1])
        var s = 0.0
        for j in 0..<(k - 1) { s += Foundation.log(tk / Double(r[j])) }
        return s / Double(k - 1)
    }

    /// 1 / mean(stats) with a percentile-bootstrap interval over the points.
    static func estimate(_ name: String, _ stats: [Double?], k: Int?, bootstrap: Int, seed: UInt64) -> Estimate {
        let kept = stats.compactMap { $0 }
        let dimension = kept.isEmpty ? .nan : 1 / (kept.reduce(0, +) / Double(kept.count))
        var rng = RandomGenerator(seed: seed, stream: "dimension-" + name)
        var draws: [Double] = []
        draws.reserveCapacity(bootstrap)
        if !kept.isEmpty {
            for _ in 0..<bootstrap {
                var s = 0.0
                for _ in 0..<kept.count { s += kept[rng.nextInt(below: kept.count)] }
                draws.append(1 / (s / Double(kept.count)))
            }
        }
        draws.sort()
        func percentile(_ q: Double) -> Double {
            guard !draws.isEmpty else { return .nan }
            let pos = q * Double(draws.count - 1)
            let lo = Int(pos.rounded(.down)), hi = Swift.min(lo + 1, draws.count - 1)
            return draws[lo] + (draws[hi] - draws[lo]) * (pos - Double(lo))
        }
        return Estimate(estimator: name, dimension: dimension, ci95Low: percentile(0.025), ci95High: percentile(0.975),
                        points: kept.count, dropped: stats.count - kept.count, k: k)
    }

    /// Both estimators on the rows of x [N, D] (N > k).
    public static func estimate(_ x: Tensor, k: Int = 20, bootstrap: Int = 1000, seed: UInt64 = 0) -> (twoNN: Estimate, mle: Estimate) {
        let r = nearestDistances(x, k: Swift.max(k, 2))
        return (estimate("twonn", r.map(twoNNStatistic), k: nil, bootstrap: bootstrap, seed: seed),
                estimate("mle", r.map { mleStatistic($0, k: k) }, k: k, bootstrap: bootstrap, seed: seed))
    }
}

/// What `pag measure dimension` writes (snake_case keys, as every measurement file): the data's and (where the data set knows it) the
/// signal's intrinsic dimension.
public struct DimensionReport: Codable, Sendable {
    public var data: String
    public var samples: Int
    public var ambientDimension: Int
    public var bootstrap: Int
    public var seed: UInt64
    public var dataEstimates: [IntrinsicDimension.Estimate]
    /// What "signal" means for this data set (nil: the data set does not know its signal).
    public var signal: String?
    public var signalAmbientDimension: Int?
    public var signalEstimates: [IntrinsicDimension.Estimate]?
    public var wallTimeSeconds: Double


    /// Measures the first `samples` training images of `dataset`: all their pixels, and their
    /// signal alone (the distractor sets' object half, the synthetic set's coordinates in its
    /// signal subspace).
    public static func measure(_ dataset: Dataset, samples: Int, k: Int = 20, bootstrap: Int = 1000, seed: UInt64 = 0) throws -> DimensionReport {
        guard samples > k + 1 else { throw TrainingError.badConfig("--samples must be larger than k + 1 = \(k + 1), got \(samples)") }
        guard k >= 2, k <= 200 else { throw TrainingError.badConfig("--k must be in 2...200, got \(k)") }
        guard bootstrap >= 10, bootstrap <= 100_000 else { throw TrainingError.badConfig("--bootstrap must be in 10...100000, got \(bootstrap)") }
        guard dataset.count > k + 1 else { throw TrainingError.badConfig("data set '\(dataset.info.name)' has \(dataset.count) samples; the estimators need more than k + 1 = \(k + 1)") }
        let started = Date()
        let idx = Array(0..<Swift.min(samples, dataset.count))
        let images = dataset.batch(idx).images
        let flat = images.reshape([idx.count, -1])
        let all = IntrinsicDimension.estimate(flat, k: k, bootstrap: bootstrap, seed: seed)
        var report = DimensionReport(data: dataset.info.variantName, samples: idx.count, ambientDimension: flat.shape[1], bootstrap: bootstrap,
                                     seed: seed, dataEstimates: [all.twoNN, all.mle], signal: nil, signalAmbientDimension: nil,
                                     signalEstimates: nil, wallTimeSeconds: 0)
        if let part = signalPart(dataset, images: flat, indices: idx) {
            let s = IntrinsicDimension.estimate(part.points, k: k, bootstrap: bootstrap, seed: seed)
            report.signal = part.what
            report.signalAmbientDimension = part.points.shape[1]
            report.signalEstimates = [s.twoNN, s.mle]
        }
        report.wallTimeSeconds = Date().timeIntervalSince(started)
        return report
    }

    /// The signal of each sample as a point: the elements its signal mask marks, or its
    /// coordinates in the data set's signal subspace. nil when the data set knows neither.
    static func signalPart(_ dataset: Dataset, images flat: Tensor, indices: [Int]) -> (points: Tensor, what: String)? {
        if let synthetic = dataset as? SubspaceOracle {
            let basis = synthetic.signalBasis  // [D, k], orthonormal columns
            return (noGrad { Tensor.matmul(flat, basis) }, "coordinates in the signal subspace (\(basis.shape[1]) dimensions)")
        }
        guard let masks = dataset.signalMask(indices) else { return nil }
        let m = masks.reshape([indices.count, -1])
        let n = indices.count, d = flat.shape[1], pm = m.pointer, px = flat.pointer
        // Each sample's own marked elements, in order (the object's half differs by sample).
        let kept = (0..<n).map { i in (0..<d).filter { pm[i * d + $0] != 0 } }
        guard let width = kept.first?.count, width > 0, kept.allSatisfy({ $0.count == width }) else { return nil }
        let out = Tensor.zeros([n, width])
        for i in 0..<n { for (j, e) in kept[i].enumerated() { out.pointer[i * width + j] = px[i * d + e] } }
        return (out, "the object half (the signal mask's \(width) elements)")
    }

    /// Writes dimension.json and dimension.csv to `out`.
    public func write(to out: String) throws {
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        try MeasureRunner.writeJSON(self, to: out + "/dimension.json")
        let rows: [[CSVField]] = dataEstimates.map { ["data", $0.estimator, $0.dimension, $0.ci95Low, $0.ci95High, $0.points] }
            + (signalEstimates ?? []).map { ["signal", $0.estimator, $0.dimension, $0.ci95Low, $0.ci95High, $0.points] }
        try CSV.write(header: ["part", "estimator", "dimension", "ci95_low", "ci95_high", "points"], rows: rows, to: out + "/dimension.csv")
    }
}
