import XCTest
import Foundation
import PAGTensor
@testable import PAGData

final class SyntheticTests: XCTestCase {
    func smallConfig() -> SyntheticConfig {
        var c = SyntheticConfig()
        c.shape = [1, 8, 8]
        c.classCount = 4
        c.signalDim = 3
        c.distractorDim = 5
        c.classRadius = 2
        c.noiseStd = 0.1
        c.trainCount = 400
        c.testCount = 100
        c.seed = 11
        return c
    }

    func dot(_ a: [Double], _ b: [Double]) -> Double { zip(a, b).reduce(0) { $0 + $1.0 * $1.1 } }

    func testBasesAreOrthonormal() {
        let m = SyntheticManifold(config: SyntheticConfig())
        let cols = m.signalColumns + m.distractorColumns
        XCTAssertEqual(cols.count, 16)
        for i in 0..<cols.count {
            for j in 0..<cols.count {
                XCTAssertEqual(dot(cols[i], cols[j]), i == j ? 1 : 0, accuracy: 1e-12)
            }
        }
        let us = m.signalBasis, ud = m.distractorBasis
        XCTAssertEqual(us.shape, [256, 8])
        XCTAssertEqual(ud.shape, [256, 8])
        XCTAssertEqual(Double(us.values[5 * 8 + 2]), m.signalColumns[2][5], accuracy: 1e-7)
    }

    /// log p(x | y) computed the slow way: the dense covariance and its Cholesky factor.
    /// With `shifted`, the distractor coordinates' mean is the class's (`distractorMeans[y]`).
    func denseClassLogLikelihood(_ m: SyntheticManifold, _ x: [Double], _ y: Int, smoothing: Double, shifted: Bool = false) -> Double {
        let d = m.dimension
        let nv = m.noiseStd * m.noiseStd + smoothing * smoothing
        var cov = [Double](repeating: 0, count: d * d)
        for i in 0..<d { cov[i * d + i] = nv }
        for (j, u) in m.signalColumns.enumerated() {
            let v = m.classStds[y][j] * m.classStds[y][j]
            for a in 0..<d { for b in 0..<d { cov[a * d + b] += v * u[a] * u[b] } }
        }
        for u in m.distractorColumns {
            let v = m.distractorStd * m.distractorStd
            for a in 0..<d { for b in 0..<d { cov[a * d + b] += v * u[a] * u[b] } }
        }
        var mean = [Double](repeating: 0, count: d)
        for (j, u) in m.signalColumns.enumerated() { for a in 0..<d { mean[a] += m.classMeans[y][j] * u[a] } }
        if shifted { for (j, u) in m.distractorColumns.enumerated() { for a in 0..<d { mean[a] += m.distractorMeans[y][j] * u[a] } } }
        // Cholesky cov = L L^T, then solve L z = x - mean.
        var l = [Double](repeating: 0, count: d * d)
        for i in 0..<d {
            for j in 0...i {
                var s = cov[i * d + j]
                for k in 0..<j { s -= l[i * d + k] * l[j * d + k] }
                l[i * d + j] = i == j ? s.squareRoot() : s / l[j * d + j]
            }
        }
        var z = [Double](repeating: 0, count: d), logDet = 0.0
        for i in 0..<d {
            var s = x[i] - mean[i]
            for k in 0..<i { s -= l[i * d + k] * z[k] }
            z[i] = s / l[i * d + i]
            logDet += 2 * log(l[i * d + i])
        }
        return -0.5 * (dot(z, z) + logDet + Double(d) * log(2 * Double.pi))
    }

    func testClosedFormMatchesDenseGaussian() {
        let m = SyntheticManifold(config: smallConfig())
        var rng = RandomGenerator(seed: 1, stream: "test points")
        for t in 0..<5 {
            let x = m.sample(label: t % 4, rng: &rng)
            for s in [0.0, 0.3] {
                let joint = m.classLogJoint(x, smoothing: s)
                for y in 0..<4 {
                    XCTAssertEqual(joint[y], denseClassLogLikelihood(m, x, y, smoothing: s) - log(4.0), accuracy: 1e-9)
                }
            }
        }
    }

    func testCorrelatedDistractorIsTheStatedMixture() {
        // p(x | y) = rho N(x; shifted mean) + (1 - rho) N(x; unshifted mean), each dense.
        for rho in [0.3, 1.0] {
            var c = smallConfig()
            c.distractorCorrelation = rho
            let m = SyntheticManifold(config: c)
            var rng = RandomGenerator(seed: 1, stream: "test points")
            for t in 0..<5 {
                let x = m.sample(label: t % 4, rng: &rng)
                for s in [0.0, 0.3] {
                    let joint = m.classLogJoint(x, smoothing: s)
                    for y in 0..<4 {
                        let a = log(rho) + denseClassLogLikelihood(m, x, y, smoothing: s, shifted: true)
                        let b = rho == 1 ? -Double.infinity : log(1 - rho) + denseClassLogLikelihood(m, x, y, smoothing: s)
                        let hi = max(a, b)
                        XCTAssertEqual(joint[y], hi + log(exp(a - hi) + exp(b - hi)) - log(4.0), accuracy: 1e-9)
                    }
                }
            }
            // The distractor means differ by class and have the stated norm.
            let norm = m.distractorMeans[0].map { $0 * $0 }.reduce(0, +).squareRoot()
            XCTAssertEqual(norm, c.classRadius * c.distractorStd / c.signalStd, accuracy: 1e-9)
            XCTAssertNotEqual(m.distractorMeans[0], m.distractorMeans[1])
        }
    }

    func testPosteriorIsNormalizedExpOfClassLogJoint() {
        let m = SyntheticManifold(config: smallConfig())
        var rng = RandomGenerator(seed: 2, stream: "test points")
        for t in 0..<20 {
            let x = m.sample(label: t % 4, rng: &rng)
            let p = m.posterior(x)
            XCTAssertEqual(p.reduce(0, +), 1, accuracy: 1e-12)
            let joint = m.classLogJoint(x)
            let z = joint.map(exp).reduce(0, +)
            for y in 0..<4 { XCTAssertEqual(p[y], exp(joint[y]) / z, accuracy: 1e-12) }
            XCTAssertEqual(m.logDensity(x), log(z), accuracy: 1e-9)
        }
    }

    /// Central finite differences of f along every coordinate.
    func finiteDifferenceGradient(_ x: [Double], h: Double = 1e-5, _ f: ([Double]) -> Double) -> [Double] {
        (0..<x.count).map { i in
            var a = x, b = x
            a[i] += h; b[i] -= h
            return (f(a) - f(b)) / (2 * h)
        }
    }

    func assertClose(_ a: [Double], _ b: [Double], relative: Double, file: StaticString = #filePath, line: UInt = #line) {
        let diff = zip(a, b).map { ($0 - $1) * ($0 - $1) }.reduce(0, +).squareRoot()
        let norm = b.map { $0 * $0 }.reduce(0, +).squareRoot()
        XCTAssertLessThan(diff, relative * max(norm, 1e-12), "difference \(diff), norm \(norm)", file: file, line: line)
    }

    func testScoreMatchesFiniteDifferencesOfLogDensity() {
        for rho in [0.0, 0.5] { checkScoresAgainstFiniteDifferences(rho: rho) }
    }

    func checkScoresAgainstFiniteDifferences(rho: Double) {
        var c = smallConfig()
        c.distractorCorrelation = rho
        let m = SyntheticManifold(config: c)
        var rng = RandomGenerator(seed: 3, stream: "test points")
        for t in 0..<4 {
            // Points on the data and a bit off it (where the mixture weights matter most).
            var x = m.sample(label: t, rng: &rng)
            if t >= 2 { x = x.enumerated().map { $0.element + 0.3 * sin(Double($0.offset)) } }
            for s in [0.0, 0.5] {
                assertClose(m.score(x, smoothing: s), finiteDifferenceGradient(x) { m.logDensity($0, smoothing: s) }, relative: 1e-6)
                for y in 0..<4 {
                    assertClose(m.classScore(x, label: y, smoothing: s),
                                finiteDifferenceGradient(x) { m.classLogJoint($0, smoothing: s)[y] }, relative: 1e-6)
                    assertClose(m.logPosteriorGradient(x, label: y, smoothing: s),
                                finiteDifferenceGradient(x) { log(m.posterior($0, smoothing: s)[y]) }, relative: 1e-5)
                }
            }
        }
    }

    func testBayesGradientLiesInSignalSubspace() {
        let m = SyntheticManifold(config: SyntheticConfig())
        var rng = RandomGenerator(seed: 4, stream: "test points")
        for t in 0..<10 {
            let x = m.sample(label: t, rng: &rng)
            let g = m.logPosteriorGradient(x, label: (t + 1) % 10)
            let onSignal = m.signalColumns.map { dot($0, g) }.map { $0 * $0 }.reduce(0, +)
            XCTAssertEqual(onSignal / dot(g, g), 1, accuracy: 1e-10)
        }
    }

    func testSamplesFollowTheDistribution() {
        let c = smallConfig()
        let train = SyntheticDataset(config: c, split: .train)
        let test = SyntheticDataset(config: c, split: .test)
        XCTAssertEqual(train.count, 400)
        XCTAssertEqual(test.count, 100)
        XCTAssertEqual(train.info.sampleShape, [1, 8, 8])
        XCTAssertTrue(train.labels.allSatisfy { (0..<4).contains($0) })
        XCTAssertNotEqual(Array(train.values[0..<64]), Array(test.values[0..<64]))
        // Same config, same samples.
        XCTAssertEqual(SyntheticDataset(config: c, split: .train).values, train.values)
        // Class means in signal coordinates are where the model says.
        let m = train.manifold
        var sums = [[Double]](repeating: [Double](repeating: 0, count: 3), count: 4), counts = [Int](repeating: 0, count: 4)
        for i in 0..<train.count {
            let x = (0..<64).map { Double(train.values[i * 64 + $0]) }
            let cs = x.withUnsafeBufferPointer { m.coordinates($0).signal }
            for j in 0..<3 { sums[train.labels[i]][j] += cs[j] }
            counts[train.labels[i]] += 1
        }
        for y in 0..<4 { for j in 0..<3 { XCTAssertEqual(sums[y][j] / Double(counts[y]), m.classMeans[y][j], accuracy: 0.3) } }
    }

    func testBatchFunctionsAgreeWithPointFunctions() throws {
        let d = try DatasetRegistry.standard.load("synthetic", split: .test) as! SyntheticDataset
        XCTAssertEqual(d.count, 2000)
        let (x, y) = d.batch([0, 1, 2])
        let m = d.manifold
        let post = m.posterior(x), logits = m.bayesLogits(x), score = m.score(x), cscore = m.score(x, labels: y)
        XCTAssertEqual(post.shape, [3, 10])
        XCTAssertEqual(score.shape, [3, 1, 16, 16])
        for b in 0..<3 {
            let p = (0..<256).map { Double(x.values[b * 256 + $0]) }
            let pp = m.posterior(p), lj = m.classLogJoint(p), sc = m.score(p), cs = m.classScore(p, label: y[b])
            for k in 0..<10 {
                XCTAssertEqual(Double(post.values[b * 10 + k]), pp[k], accuracy: 1e-6)
                XCTAssertEqual(Double(logits.values[b * 10 + k]), lj[k], accuracy: 1e-3 * max(1, abs(lj[k])))
            }
            for i in 0..<256 {
                XCTAssertEqual(Double(score.values[b * 256 + i]), sc[i], accuracy: 1e-4 * max(1, abs(sc[i])))
                XCTAssertEqual(Double(cscore.values[b * 256 + i]), cs[i], accuracy: 1e-4 * max(1, abs(cs[i])))
            }
        }
        // The Bayes classifier is good but not perfect with the default settings.
        let (all, labels) = d.allSamples()
        let p = m.posterior(all).values
        var correct = 0
        for b in 0..<d.count {
            let row = Array(p[(b * 10)..<(b * 10 + 10)])
            if row.firstIndex(of: row.max()!) == labels[b] { correct += 1 }
        }
        let accuracy = Double(correct) / Double(d.count)
        print("synthetic Bayes test accuracy: \(accuracy)")
        XCTAssertGreaterThan(accuracy, 0.8)
    }
}
