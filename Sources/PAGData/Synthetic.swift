import PAGTensor
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Settings of the synthetic manifold data set.
public struct SyntheticConfig: Equatable, Sendable {
    /// Sample shape [C, H, W]; d = C*H*W.
    public var shape: [Int] = [1, 16, 16]
    public var classCount = 10
    /// Dimension of the signal subspace (it carries the label).
    public var signalDim = 8
    /// Dimension of the distractor subspace (independent of the label).
    public var distractorDim = 8
    /// Class means lie at this distance from the origin in signal coordinates.
    public var classRadius = 3.0
    /// Within-class standard deviation along the signal axes; each class and axis gets this
    /// times a random factor in [0.5, 1.5), so the Bayes classifier is quadratic, not linear.
    public var signalStd = 1.0
    /// Standard deviation along each distractor axis.
    public var distractorStd = 2.0
    /// Isotropic pixel noise, in every direction of R^d.
    public var noiseStd = 0.05
    /// `distractor_correlation`: with this probability a sample's distractor coordinates are
    /// centred on its class's distractor mean instead of 0 (0: independent of the class).
    public var distractorCorrelation = 0.0
    public var trainCount = 10_000
    public var testCount = 2_000
    /// Fixes the subspaces, the class parameters and the samples.
    public var seed: UInt64 = 0

    public init() {}
}

/// The distribution behind the synthetic data set, with everything in closed form.
///
/// x = U_s z_s + U_d z_d + n, where U_s (d x k_s) and U_d (d x k_d) have orthonormal columns,
/// orthogonal to each other; given the class y (uniform prior), z_s ~ N(mu_y, diag(a_y^2)),
/// z_d ~ N(0, s_d^2 I) independent of y, and n ~ N(0, s_n^2 I_d). So x | y is Gaussian with
/// covariance U_s diag(a_y^2) U_s^T + s_d^2 U_d U_d^T + s_n^2 I, which is diagonal in the basis
/// (U_s, U_d, rest): variances a_y^2 + s_n^2 on the signal axes, s_d^2 + s_n^2 on the
/// distractor axes, s_n^2 on the d - k_s - k_d others. Densities, posteriors and scores need
/// only the coordinates U_s^T x, U_d^T x and the residual norm.
///
/// With `distractorCorrelation` rho > 0 the distractor depends on the class: z_d | y is the
/// mixture rho N(m_y, s_d^2 I) + (1 - rho) N(0, s_d^2 I), m_y a class mean as far out (in
/// units of s_d) as the signal's mu_y are (in units of the signal std). The Bayes classifier
/// then uses the distractor too and its gradient leaves the signal subspace; rho = 0 is the
/// independent case above, value for value. Every function takes a
/// `smoothing` sigma: the same quantity for p convolved with N(0, sigma^2 I) (the noise
/// variance becomes s_n^2 + sigma^2), i.e. the exact target of a denoising score estimator.
public struct SyntheticManifold: Sendable {
    public let dimension: Int
    public let classCount: Int
    /// The columns of U_s, d values each (orthonormal).
    public let signalColumns: [[Double]]
    /// The columns of U_d, d values each (orthonormal, orthogonal to U_s).
    public let distractorColumns: [[Double]]
    /// mu_y in signal coordinates, classCount x k_s.
    public let classMeans: [[Double]]
    /// a_y in signal coordinates, classCount x k_s.
    public let classStds: [[Double]]
    public let distractorStd: Double
    public let noiseStd: Double
    /// rho, and m_y in distractor coordinates (classCount x k_d; used only when rho > 0).
    public let distractorCorrelation: Double
    public let distractorMeans: [[Double]]

    public var signalDim: Int { signalColumns.count }
    public var distractorDim: Int { distractorColumns.count }

    /// Draws the bases and class parameters from `config.seed` (streams "synthetic/...").
    public init(config: SyntheticConfig) {
        let d = config.shape.reduce(1, *)
        precondition(config.signalDim >= 1 && config.distractorDim >= 0
                     && config.signalDim + config.distractorDim < d, "subspace dimensions must fit in d = \(d)")
        precondition(config.classCount >= 2 && config.noiseStd > 0)
        dimension = d
        classCount = config.classCount
        var basisRNG = RandomGenerator(seed: config.seed, stream: "synthetic/basis")
        let columns = SyntheticManifold.orthonormalColumns(d: d, k: config.signalDim + config.distractorDim, rng: &basisRNG)
        signalColumns = Array(columns[0..<config.signalDim])
        distractorColumns = Array(columns[config.signalDim...])
        var classRNG = RandomGenerator(seed: config.seed, stream: "synthetic/classes")
        var means: [[Double]] = [], stds: [[Double]] = []
        for _ in 0..<config.classCount {
            var v = (0..<config.signalDim).map { _ in SyntheticManifold.normal(&classRNG) }
            let norm = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
            v = v.map { $0 / norm * config.classRadius }
            means.append(v)
            stds.append((0..<config.signalDim).map { _ in config.signalStd * (0.5 + Double(classRNG.nextFloat())) })
        }
        classMeans = means
        classStds = stds
        distractorStd = config.distractorStd
        noiseStd = config.noiseStd
        precondition(config.distractorCorrelation >= 0 && config.distractorCorrelation <= 1, "distractor correlation outside [0, 1]")
        distractorCorrelation = config.distractorCorrelation
        var meanRNG = RandomGenerator(seed: config.seed, stream: "synthetic/distractor-means")
        distractorMeans = (0..<config.classCount).map { _ in
            let v = (0..<config.distractorDim).map { _ in SyntheticManifold.normal(&meanRNG) }
            let norm = Swift.max(v.reduce(0) { $0 + $1 * $1 }.squareRoot(), 1e-12)
            return v.map { $0 / norm * config.classRadius * config.distractorStd / config.signalStd }
        }
    }

    /// The class-dependent part of log p(z_d | y) with noise variance folded in, and the
    /// weight r_y of the class component (the gradient of that part in cd is r_y m_y / distVar):
    /// log(1 - rho + rho exp(a_y)), a_y = (cd . m_y - |m_y|^2 / 2) / distVar. Zero at rho = 0.
    func distractorTerm(_ cd: [Double], label y: Int, distVar: Double) -> (log: Double, weight: Double) {
        let rho = distractorCorrelation
        guard rho > 0, distractorDim > 0 else { return (0, 0) }
        let m = distractorMeans[y]
        var dot = 0.0, mm = 0.0
        for j in 0..<distractorDim { dot += cd[j] * m[j]; mm += m[j] * m[j] }
        let a = (dot - mm / 2) / distVar
        if rho == 1 { return (a, 1) }
        let l0 = Glibc.log(1 - rho), l1 = Glibc.log(rho) + a
        let top = Swift.max(l0, l1)
        let lse = top + Glibc.log(exp(l0 - top) + exp(l1 - top))
        return (lse, exp(l1 - lse))
    }

    // MARK: Closed forms, one point at a time (Double)

    /// U_s^T x, U_d^T x and the squared norm of the rest of x.
    public func coordinates(_ x: UnsafeBufferPointer<Double>) -> (signal: [Double], distractor: [Double], residual: Double) {
        precondition(x.count == dimension, "point has \(x.count) values, expected \(dimension)")
        var r = Array(x)
        func project(_ cols: [[Double]]) -> [Double] {
            cols.map { u in
                var c = 0.0
                for i in 0..<dimension { c += u[i] * x[i] }
                for i in 0..<dimension { r[i] -= c * u[i] }
                return c
            }
        }
        let cs = project(signalColumns), cd = project(distractorColumns)
        return (cs, cd, r.reduce(0) { $0 + $1 * $1 })
    }

    /// log p(x, y) = log(1/K) + log p(x | y) for every class y.
    public func classLogJoint(_ x: [Double], smoothing: Double = 0) -> [Double] {
        let (cs, cd, res) = x.withUnsafeBufferPointer { coordinates($0) }
        let noiseVar = noiseStd * noiseStd + smoothing * smoothing
        let distVar = distractorStd * distractorStd + noiseVar
        let rest = Double(dimension - signalDim - distractorDim)
        // The class-independent part: distractor axes, residual, constants.
        var shared = -0.5 * (cd.reduce(0) { $0 + $1 * $1 } / distVar + res / noiseVar)
        shared -= 0.5 * (Double(distractorDim) * log(distVar) + rest * log(noiseVar))
        shared -= 0.5 * Double(dimension) * log(2 * Double.pi) + log(Double(classCount))
        return (0..<classCount).map { y in
            var q = 0.0, logDet = 0.0
            for j in 0..<signalDim {
                let v = classStds[y][j] * classStds[y][j] + noiseVar
                let e = cs[j] - classMeans[y][j]
                q += e * e / v
                logDet += log(v)
            }
            return shared - 0.5 * (q + logDet) + distractorTerm(cd, label: y, distVar: distVar).log
        }
    }

    /// log p(x).
    public func logDensity(_ x: [Double], smoothing: Double = 0) -> Double {
        SyntheticManifold.logSumExp(classLogJoint(x, smoothing: smoothing))
    }

    /// The Bayes posterior p(y | x), one value per class.
    public func posterior(_ x: [Double], smoothing: Double = 0) -> [Double] {
        let lj = classLogJoint(x, smoothing: smoothing)
        let lse = SyntheticManifold.logSumExp(lj)
        return lj.map { exp($0 - lse) }
    }

    /// The class-conditional score, grad_x log p(x | y) = -Sigma_y^-1 (x - U_s mu_y).
    public func classScore(_ x: [Double], label y: Int, smoothing: Double = 0) -> [Double] {
        let (cs, cd, _) = x.withUnsafeBufferPointer { coordinates($0) }
        return classScore(x, cs: cs, cd: cd, label: y, smoothing: smoothing)
    }

    private func classScore(_ x: [Double], cs: [Double], cd: [Double], label y: Int, smoothing: Double) -> [Double] {
        precondition(y >= 0 && y < classCount, "label \(y) outside 0..<\(classCount)")
        let noiseVar = noiseStd * noiseStd + smoothing * smoothing
        let distVar = distractorStd * distractorStd + noiseVar
        // -(residual)/noiseVar, residual = x - U_s cs - U_d cd, then the subspace terms.
        var g = x.map { -$0 / noiseVar }
        for j in 0..<signalDim {
            let v = classStds[y][j] * classStds[y][j] + noiseVar
            let w = cs[j] / noiseVar - (cs[j] - classMeans[y][j]) / v
            let u = signalColumns[j]
            for i in 0..<dimension { g[i] += w * u[i] }
        }
        let r = distractorTerm(cd, label: y, distVar: distVar).weight
        for j in 0..<distractorDim {
            let w = cd[j] / noiseVar - (cd[j] - r * (r > 0 ? distractorMeans[y][j] : 0)) / distVar
            let u = distractorColumns[j]
            for i in 0..<dimension { g[i] += w * u[i] }
        }
        return g
    }

    /// The score of the data, grad_x log p(x) = sum_y p(y | x) grad_x log p(x | y).
    public func score(_ x: [Double], smoothing: Double = 0) -> [Double] {
        let (cs, cd, _) = x.withUnsafeBufferPointer { coordinates($0) }
        let post = posterior(x, smoothing: smoothing)
        var g = [Double](repeating: 0, count: dimension)
        for y in 0..<classCount where post[y] > 0 {
            let s = classScore(x, cs: cs, cd: cd, label: y, smoothing: smoothing)
            for i in 0..<dimension { g[i] += post[y] * s[i] }
        }
        return g
    }

    /// The input gradient of the Bayes classifier's log-probability of class y,
    /// grad_x log p(y | x) = grad_x log p(x | y) - grad_x log p(x). It lies in the signal
    /// subspace exactly: the distractor and residual terms are the same for every class.
    public func logPosteriorGradient(_ x: [Double], label y: Int, smoothing: Double = 0) -> [Double] {
        let a = classScore(x, label: y, smoothing: smoothing), b = score(x, smoothing: smoothing)
        return zip(a, b).map { $0 - $1 }
    }

    /// The share of `g`'s squared norm in the signal subspace, ||U_s^T g||^2 / ||g||^2 (the
    /// on-manifold fraction the oracle tangent space measures; 1 for a zero vector).
    public func signalFraction(_ g: [Double]) -> Double {
        let total = g.reduce(0) { $0 + $1 * $1 }
        guard total > 0 else { return 1 }
        var on = 0.0
        for u in signalColumns {
            var c = 0.0
            for i in 0..<dimension { c += u[i] * g[i] }
            on += c * c
        }
        return Swift.min(on / total, 1)
    }

    /// The exact Bayes classifier's on-manifold gradient fraction at `x` for class `y`:
    /// `signalFraction` of grad_x log p(y | x). Exactly 1 when the distractor is independent of
    /// the class; below 1 once it is not.
    public func bayesSignalFraction(_ x: [Double], label y: Int) -> Double {
        signalFraction(logPosteriorGradient(x, label: y))
    }

    /// One sample of class `label`.
    public func sample(label: Int, rng: inout RandomGenerator) -> [Double] {
        var x = (0..<dimension).map { _ in noiseStd * SyntheticManifold.normal(&rng) }
        for j in 0..<signalDim {
            let z = classMeans[label][j] + classStds[label][j] * SyntheticManifold.normal(&rng)
            for i in 0..<dimension { x[i] += z * signalColumns[j][i] }
        }
        // The coin is drawn only when it can matter, so rho = 0 keeps the stream of before.
        let follows = distractorCorrelation > 0 && Double(rng.nextUInt64() >> 11) * 0x1p-53 < distractorCorrelation
        for j in 0..<distractorDim {
            let z = (follows ? distractorMeans[label][j] : 0) + distractorStd * SyntheticManifold.normal(&rng)
            for i in 0..<dimension { x[i] += z * distractorColumns[j][i] }
        }
        return x
    }

    // MARK: Batches (Tensor in, Tensor out)

    /// The rows of a batch [B, ...] as Double points.
    private func points(_ x: Tensor) -> [[Double]] {
        precondition(x.rank >= 1 && x.count == x.shape[0] * dimension,
                     "batch of shape \(x.shape) does not hold points of dimension \(dimension)")
        let p = x.pointer
        return (0..<x.shape[0]).map { b in (0..<dimension).map { Double(p[b * dimension + $0]) } }
    }

    /// The Bayes classifier's logits, log p(x, y), [B, K].
    public func bayesLogits(_ x: Tensor, smoothing: Double = 0) -> Tensor {
        let rows = points(x).map { classLogJoint($0, smoothing: smoothing) }
        return Tensor(rows.flatMap { $0.map(Float.init) }, shape: [rows.count, classCount])
    }

    /// The Bayes posterior p(y | x), [B, K].
    public func posterior(_ x: Tensor, smoothing: Double = 0) -> Tensor {
        let rows = points(x).map { posterior($0, smoothing: smoothing) }
        return Tensor(rows.flatMap { $0.map(Float.init) }, shape: [rows.count, classCount])
    }

    /// log p(x) of every row.
    public func logDensity(_ x: Tensor, smoothing: Double = 0) -> [Double] {
        points(x).map { logDensity($0, smoothing: smoothing) }
    }

    /// The score grad_x log p(x), or with `labels` the class-conditional score
    /// grad_x log p(x | y_b), in the shape of `x`.
    public func score(_ x: Tensor, labels: [Int]? = nil, smoothing: Double = 0) -> Tensor {
        let pts = points(x)
        if let labels { precondition(labels.count == pts.count, "one label per point") }
        let rows = pts.enumerated().map { b, p in
            labels.map { classScore(p, label: $0[b], smoothing: smoothing) } ?? score(p, smoothing: smoothing)
        }
        return Tensor(rows.flatMap { $0.map(Float.init) }, shape: x.shape)
    }

    /// U_s as a [d, k_s] tensor (orthonormal columns).
    public var signalBasis: Tensor { SyntheticManifold.matrix(signalColumns, rows: dimension) }
    /// U_d as a [d, k_d] tensor (orthonormal columns, orthogonal to U_s).
    public var distractorBasis: Tensor { SyntheticManifold.matrix(distractorColumns, rows: dimension) }

    // MARK: Helpers

    static func matrix(_ columns: [[Double]], rows: Int) -> Tensor {
        var v = [Float](repeating: 0, count: rows * columns.count)
        for (j, c) in columns.enumerated() { for i in 0..<rows { v[i * columns.count + j] = Float(c[i]) } }
        return Tensor(v, shape: [rows, columns.count])
    }

    static func logSumExp(_ v: [Double]) -> Double {
        let m = v.max()!
        return m + log(v.reduce(0) { $0 + exp($1 - m) })
    }

    /// A standard normal draw (Box-Muller, double precision).
    static func normal(_ rng: inout RandomGenerator) -> Double {
        let u1 = Double(rng.nextUInt64() >> 11) * (1.0 / 9_007_199_254_740_992.0)
        let u2 = Double(rng.nextUInt64() >> 11) * (1.0 / 9_007_199_254_740_992.0)
        return (-2.0 * log(1.0 - u1)).squareRoot() * cos(2.0 * Double.pi * u2)
    }

    /// k orthonormal vectors in R^d: Gaussian columns, Gram-Schmidt applied twice (the second
    /// pass removes the rounding the first leaves).
    static func orthonormalColumns(d: Int, k: Int, rng: inout RandomGenerator) -> [[Double]] {
        var cols: [[Double]] = []
        for _ in 0..<k {
            var v = (0..<d).map { _ in normal(&rng) }
            for _ in 0..<2 {
                for u in cols {
                    var dot = 0.0
                    for i in 0..<d { dot += u[i] * v[i] }
                    for i in 0..<d { v[i] -= dot * u[i] }
                }
            }
            let norm = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
            cols.append(v.map { $0 / norm })
        }
        return cols
    }
}

/// A data set that knows its exact signal and distractor subspaces (the `oracle` manifold
/// estimator uses them).
public protocol SubspaceOracle {
    /// [d, k_s], orthonormal columns.
    var signalBasis: Tensor { get }
    /// [d, k_d], orthonormal columns, orthogonal to the signal basis.
    var distractorBasis: Tensor { get }
}

/// Samples of a `SyntheticManifold` (registry name `synthetic`). Train and test share the
/// distribution and use different sample streams.
public final class SyntheticDataset: Dataset, SubspaceOracle {
    public let info: DatasetInfo
    public let split: Split
    public let labels: [Int]
    public let config: SyntheticConfig
    /// The exact distribution the samples come from.
    public let manifold: SyntheticManifold
    /// The samples, d floats each.
    public let values: [Float]

    public init(config: SyntheticConfig = SyntheticConfig(), split: Split, manifold: SyntheticManifold? = nil) {
        self.config = config
        self.split = split
        let m = manifold ?? SyntheticManifold(config: config)
        self.manifold = m
        info = DatasetInfo(name: "synthetic", sampleShape: config.shape, classCount: config.classCount, normalization: .identity,
                           settings: config.distractorCorrelation == 0 ? [:] : [DataOption.correlation.name: String(config.distractorCorrelation)])
        let n = split == .train ? config.trainCount : config.testCount
        var labelRNG = RandomGenerator(seed: config.seed, stream: "synthetic/labels/\(split.rawValue)")
        var sampleRNG = RandomGenerator(seed: config.seed, stream: "synthetic/samples/\(split.rawValue)")
        var ys: [Int] = [], xs: [Float] = []
        ys.reserveCapacity(n); xs.reserveCapacity(n * m.dimension)
        for _ in 0..<n {
            let y = labelRNG.nextInt(below: config.classCount)
            ys.append(y)
            xs += m.sample(label: y, rng: &sampleRNG).map(Float.init)
        }
        labels = ys
        values = xs
    }

    public var count: Int { labels.count }
    public var signalBasis: Tensor { manifold.signalBasis }
    public var distractorBasis: Tensor { manifold.distractorBasis }

    public func writeSample(_ index: Int, to out: UnsafeMutablePointer<Float>, augment: Bool, rng: inout RandomGenerator) {
        let d = manifold.dimension
        values.withUnsafeBufferPointer { out.update(from: $0.baseAddress! + index * d, count: d) }
    }
}
