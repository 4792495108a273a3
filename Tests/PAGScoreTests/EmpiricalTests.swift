// The `empirical` score plugin: exactly the formula (against a brute-force Double computation on
// a tiny set), and the exact smoothed score of the synthetic data set where the empirical
// approximation is good (large subset, sigma large against the spacing of the samples).
import Foundation
import PAGData
import PAGLab
import PAGTensor
import XCTest

/// grad log (1/N) sum_i N(x; x_i, sigma^2 I) in Double, term by term: log-sum-exp weights.
func bruteForceScore(_ x: [Double], points: [[Double]], sigma: Double) -> [Double] {
    let logw = points.map { p in -zip(x, p).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) } / (2 * sigma * sigma) }
    let top = logw.max()!
    let w = logw.map { exp($0 - top) }
    let total = w.reduce(0, +)
    var mean = [Double](repeating: 0, count: x.count)
    for (wi, p) in zip(w, points) { for j in 0..<x.count { mean[j] += wi / total * p[j] } }
    return zip(mean, x).map { ($0 - $1) / (sigma * sigma) }
}

final class EmpiricalTests: XCTestCase {
    /// Agreement of a float32 score with a Double reference, relative to the reference's largest
    /// entry: float32 matmul and softmax lose about 1e-6 relative; 1e-4 leaves room for the
    /// exponent amplifying logit rounding at small sigma.
    func assertMatches(_ got: [[Double]], _ want: [[Double]], _ what: String, tolerance: Double = 1e-4,
                       file: StaticString = #filePath, line: UInt = #line) {
        let scale = max(want.flatMap { $0 }.map(abs).max() ?? 1, 1e-12)
        for (i, (g, w)) in zip(got, want).enumerated() {
            for j in g.indices where abs(g[j] - w[j]) > tolerance * scale {
                XCTFail("\(what): row \(i) entry \(j) is \(g[j]), brute force \(w[j])", file: file, line: line)
                return
            }
        }
    }

    func testMatchesBruteForceOnATinySet() throws {
        var rng = RandomGenerator(seed: 11, stream: "empirical.tiny")
        let images = Tensor.randn([7, 1, 2, 3], rng: &rng)
        let labels: [Int32] = [0, 1, 2, 0, 1, 2, 0]
        let data = HostDataset(images: images, labels: labels, classes: 3)
        let queries = Tensor.randn([4, 1, 2, 3], std: 1.5, rng: &rng)
        let qy: [Int32] = [2, 0, 1, 0]
        let pts = rows(images)
        for subset in [7, 100, 3] {
            let s = try ScoreLibrary.instance("empirical", ["subset=\(subset)"])
            try s.fit(data)
            // subset 3 of 7: evenly spaced indices 0, 2, 4.
            let used = subset >= 7 ? Array(0..<7) : [0, 2, 4]
            for sigma in [0.2, 0.7, 3.0] {
                let got = rows(try s.score(queries, sigma: sigma, labels: nil))
                let want = rows(queries).map { bruteForceScore($0, points: used.map { pts[$0] }, sigma: sigma) }
                assertMatches(got, want, "subset \(subset), sigma \(sigma), unconditional")
                if subset == 7 {
                    let gotC = rows(try s.score(queries, sigma: sigma, labels: qy))
                    let wantC = rows(queries).enumerated().map { b, q in
                        bruteForceScore(q, points: (0..<7).filter { labels[$0] == qy[b] }.map { pts[$0] }, sigma: sigma)
                    }
                    assertMatches(gotC, wantC, "sigma \(sigma), class-conditional")
                }
            }
        }
        // Rows processed in blocks give the same numbers, to rounding: oneDNN's sgemm may sum a
        // 1-row product in another order than a 4-row one (it does with its AVX2 kernels).
        let blocked = try ScoreLibrary.instance("empirical", ["chunk=7"])   // one row per block
        try blocked.fit(data)
        let whole = try ScoreLibrary.instance("empirical")
        try whole.fit(data)
        assertMatches(rows(try blocked.score(queries, sigma: 0.5, labels: qy)),
                      rows(try whole.score(queries, sigma: 0.5, labels: qy)), "one row per block", tolerance: 1e-6)
    }

    func testClearErrors() throws {
        let s = try ScoreLibrary.instance("empirical", ["subset=2"])
        let x = Tensor.zeros([2, 1, 2, 2])
        XCTAssertEqual(message { try s.score(x, sigma: 0.5, labels: nil) },
                       "plugin 'empirical': score called before fit: the empirical score needs a data set")
        var rng = RandomGenerator(seed: 1)
        try s.fit(HostDataset(images: Tensor.randn([4, 1, 2, 2], rng: &rng), labels: [0, 0, 0, 2], classes: 3))
        for bad in [0.0, -1, .nan, .infinity] {
            XCTAssertEqual(message { try s.score(x, sigma: bad, labels: nil) },
                           "plugin 'empirical': sigma must be a positive finite number, got \(bad)")
        }
        XCTAssertEqual(message { try s.score(Tensor.zeros([2, 1, 3, 3]), sigma: 0.5, labels: nil) },
                       "plugin 'empirical': score: input [2, 1, 3, 3] does not match the fitted samples [N, 1, 2, 2]")
        XCTAssertEqual(message { try s.score(x, sigma: 0.5, labels: [0, 5]) },
                       "plugin 'empirical': score: label 5 outside 0..<3")
        // subset 2 of 4 takes samples 0 and 2: class 2 (sample 3) is not in it.
        XCTAssertEqual(message { try s.score(x, sigma: 0.5, labels: [0, 2]) },
                       "plugin 'empirical': score: class 2 has no sample in the fitted subset of 2; raise `subset`")
    }

    // MARK: against the synthetic set's exact smoothed score

    struct Agreement {
        /// Mean over points of ||s_hat - s|| / ||s||, in R^d.
        var full: Double
        /// The same for the components in the 16-dimensional signal + distractor subspace, where
        /// the data's structure is (off it, both are -x / (s_n^2 + sigma^2) up to sampling noise).
        var subspace: Double
        /// Mean cosine of the subspace components.
        var cosine: Double
        /// `subspace` for the structure-blind score -x / (s_n^2 + sigma^2).
        var baseline: Double
    }

    /// Compares the plugin fitted on `train` with the exact score of p * N(0, sigma^2) at points
    /// drawn from that smoothed distribution (test samples plus sigma noise).
    func agreement(_ train: SyntheticDataset, test: SyntheticDataset, sigma: Double, points: Int,
                   conditional: Bool = false) throws -> Agreement {
        let s = try ScoreLibrary.instance("empirical", ["subset=\(train.count)"])
        try s.fit(LearnedEstimator.hostDataset(train))
        let (clean, labels) = test.allSamples(limit: points)
        var rng = RandomGenerator(seed: 5, stream: "empirical.synthetic.noise")
        let x = noGrad { clean + Tensor.randn(clean.shape, std: Float(sigma), rng: &rng) }
        let got = rows(try s.score(x, sigma: sigma, labels: conditional ? labels.map(Int32.init) : nil))
        let want = rows(train.manifold.score(x, labels: conditional ? labels : nil, smoothing: sigma))
        let basis = train.manifold.signalColumns + train.manifold.distractorColumns
        func project(_ v: [Double]) -> [Double] { basis.map { dot($0, v) } }
        var full = 0.0, sub = 0.0, cos = 0.0, base = 0.0
        let blind = 1 / (train.manifold.noiseStd * train.manifold.noiseStd + sigma * sigma)
        for (xi, (g, w)) in zip(rows(x), zip(got, want)) {
            full += norm(zip(g, w).map { $0 - $1 }) / norm(w)
            let pg = project(g), pw = project(w)
            sub += norm(zip(pg, pw).map { $0 - $1 }) / norm(pw)
            cos += dot(pg, pw) / (norm(pg) * norm(pw))
            let pb = project(xi).map { -$0 * blind }
            base += norm(zip(pb, pw).map { $0 - $1 }) / norm(pw)
        }
        let n = Double(got.count)
        return Agreement(full: full / n, subspace: sub / n, cosine: cos / n, baseline: base / n)
    }

    /// The data sets of the synthetic checks: 20,000 training samples, 200 test points.
    func synthetic(signal: Int, distractor: Int) -> (train: SyntheticDataset, test: SyntheticDataset) {
        var c = SyntheticConfig()
        c.signalDim = signal; c.distractorDim = distractor; c.trainCount = 20_000; c.testCount = 200
        let train = SyntheticDataset(config: c, split: .train)
        return (train, SyntheticDataset(config: c, split: .test, manifold: train.manifold))
    }

    /// Where it should match: sigma large against the spacing of 20,000 samples in the data's
    /// intrinsic dimensions. Then the smoothed empirical distribution is a Monte Carlo estimate of
    /// the smoothed data distribution, and its score is off by the sampling error of a weighted
    /// mean over the training points near x: relative error about 1/sqrt(effective number of
    /// points), which measured (seed 0): full 0.023 / subspace 0.11 / cosine 0.994 for the default
    /// set (8 signal + 8 distractor dimensions) at sigma 2, and 0.0075 / 0.11 / 0.994 for a
    /// 2 + 2 dimensional set at sigma 1. The tolerances are about twice those. Where it should
    /// not: at sigma 0.2 the Gaussians around the training points barely overlap, the score
    /// points at the nearest sample (memorization), and the subspace error is 10 to 30 times
    /// the score itself. The structure-blind score -x / (s_n^2 + sigma^2), exact off the
    /// subspaces, is the baseline the empirical score must beat inside them.
    func testMatchesTheSyntheticSetsExactSmoothedScoreWhereItShould() throws {
        for (dims, sigma, fullTol, subTol) in [((8, 8), 2.0, 0.05, 0.2), ((2, 2), 1.0, 0.02, 0.2)] {
            let (train, test) = synthetic(signal: dims.0, distractor: dims.1)
            let what = "\(dims.0)+\(dims.1) dimensions, sigma \(sigma)"
            let a = try agreement(train, test: test, sigma: sigma, points: 200)
            print(String(format: "empirical vs exact score, %@: full %.4f, subspace %.4f, cosine %.4f, baseline subspace %.4f",
                         what, a.full, a.subspace, a.cosine, a.baseline))
            XCTAssertLessThan(a.full, fullTol, what)
            XCTAssertLessThan(a.subspace, subTol, what)
            XCTAssertGreaterThan(a.cosine, 0.98, what)
            XCTAssertLessThan(a.subspace * 3, a.baseline, "\(what): no better than the structure-blind score")
            let c = try agreement(train, test: test, sigma: sigma, points: 200, conditional: true)
            print(String(format: "  class-conditional: full %.4f, subspace %.4f, cosine %.4f", c.full, c.subspace, c.cosine))
            XCTAssertLessThan(c.subspace, 1.5 * subTol, "\(what), class-conditional")
            XCTAssertGreaterThan(c.cosine, 0.97, "\(what), class-conditional")
            // Small sigma: memorization, far from the smoothed data score.
            let m = try agreement(train, test: test, sigma: 0.2, points: 50)
            print(String(format: "  sigma 0.2 (memorization): subspace %.2f, cosine %.3f", m.subspace, m.cosine))
            XCTAssertGreaterThan(m.subspace, 5, "\(what): at sigma 0.2 the empirical score should not match")
        }
    }
}
