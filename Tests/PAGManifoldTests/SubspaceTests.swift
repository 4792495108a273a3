import Foundation
import PAGData
import PAGLab
import PAGTensor
import XCTest

/// oracle and pca against the synthetic set's exact subspaces, and the Bayes classifier's input
/// gradient on the signal subspace.
final class SubspaceTests: XCTestCase {
    func testOracleIsTheSignalSubspace() throws {
        let train = smallSynthetic(), test = smallSynthetic(split: .test)
        let oracle = try Manifolds.instance("oracle")
        try oracle.fit(LearnedEstimator.hostDataset(train, limit: 100), signalBasis: OracleFacts.signalBasis(train))
        let x = test.batch(Array(0..<16)).images
        let b = try oracle.tangentBasis(x)
        XCTAssertEqual(b.shape, [16, 4, 64])
        let truth = columns(train.signalBasis)
        var worst = 0.0, ortho = 0.0
        for s in 0..<16 {
            let rows = basisRows(b, sample: s)
            worst = max(worst, principalAngles(rows, truth).last!)
            ortho = max(ortho, orthonormalityError(rows))
        }
        print("oracle vs signal subspace: largest principal angle \(degrees(worst)) degrees; orthonormality error \(ortho)")
        XCTAssertLessThan(degrees(worst), 0.05)
        XCTAssertLessThan(ortho, 1e-5)

        // Projections: tangent + normal = v; a signal direction is its own tangent part.
        let v = { var r = RandomGenerator(seed: 1); return Tensor.randn([16, 1, 8, 8], rng: &r) }()
        let t = try oracle.project(x, v, normal: false), n = try oracle.project(x, v, normal: true)
        for (a, (p, q)) in zip(v.values, zip(t.values, n.values)) { XCTAssertEqual(a, p + q, accuracy: 1e-5) }
        let u0 = truth[0].map(Float.init)
        let onSignal = Tensor(Array((0..<16).map { _ in u0 }.joined()), shape: [16, 1, 8, 8])
        let back = try oracle.project(x, onSignal, normal: false).values
        for (p, q) in zip(back, onSignal.values) { XCTAssertEqual(p, q, accuracy: 1e-5) }

        // Without oracle facts: a clear error.
        let bare = try Manifolds.instance("oracle")
        try bare.fit(LearnedEstimator.hostDataset(train, limit: 10))
        XCTAssertThrowsError(try bare.tangentBasis(x)) { XCTAssertTrue("\($0)".contains("no oracle facts"), "\($0)") }
    }

    func testOracleWithSignalMasks() throws {
        let oracle = try Manifolds.instance("oracle")
        // Two 1x4x2 "images": signal in the top half of the first, the bottom half of the second.
        let x = { var r = RandomGenerator(seed: 2); return Tensor.randn([2, 1, 4, 2], rng: &r) }()
        let mask = Tensor([1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1], shape: [2, 1, 4, 2])
        let b = try oracle.tangentBasis(x, signalMask: mask)
        XCTAssertEqual(b.shape, [2, 4, 8])
        for s in 0..<2 {
            let rows = basisRows(b, sample: s)
            XCTAssertEqual(orthonormalityError(rows), 0)
            for r in rows { for (i, e) in r.enumerated() where e != 0 { XCTAssertEqual(mask.values[s * 8 + i], 1) } }
        }
        let v = { var r = RandomGenerator(seed: 3); return Tensor.randn([2, 1, 4, 2], rng: &r) }()
        let t = try oracle.project(x, v, normal: false, signalMask: mask)
        XCTAssertEqual(t.values, zip(v.values, mask.values).map { $0 * $1 })
        XCTAssertThrowsError(try oracle.tangentBasis(x, signalMask: Tensor.ones([2, 8]))) {
            XCTAssertTrue("\($0)".contains("does not match the input"), "\($0)")
        }
    }

    func testOracleOnTheDistractorSet() throws {
        let data: Dataset
        do { data = try DatasetRegistry.standard.load("fashion-mnist-distractor", split: .test) }
        catch { throw XCTSkip("fashion-mnist-distractor unavailable: \(error)") }
        let idx = Array(0..<4)
        let x = data.batch(idx).images, mask = OracleFacts.signalMask(data, idx)!
        let oracle = try Manifolds.instance("oracle")
        let b = try oracle.tangentBasis(x, signalMask: mask)
        XCTAssertEqual(b.shape, [4, 784, 1568])
        let v = { var r = RandomGenerator(seed: 4); return Tensor.randn(x.shape, rng: &r) }()
        let t = try oracle.project(x, v, normal: false, signalMask: mask)
        // The tangent part is the signal half: 784 of 1568 entries per image survive.
        for s in 0..<4 { XCTAssertEqual(t.values[(s * 1568)..<((s + 1) * 1568)].filter { $0 != 0 }.count, 784) }
    }

    func testLocalPCAMatchesTheDataSubspace() throws {
        // Low noise, enough neighbours: the local tangent space of the data is span(U_s, U_d).
        let train = smallSynthetic(noise: 0.01, train: 4000), test = smallSynthetic(split: .test)
        let pca = try Manifolds.instance("pca", ["neighbors=64", "dimension=8"])
        try pca.fit(LearnedEstimator.hostDataset(train))
        let x = test.batch(Array(0..<32)).images
        let b = try pca.tangentBasis(x)
        XCTAssertEqual(b.shape, [32, 8, 64])
        let truth = columns(train.signalBasis) + columns(train.distractorBasis)
        var angles: [Double] = [], ortho = 0.0
        for s in 0..<32 {
            let rows = basisRows(b, sample: s)
            angles.append(principalAngles(rows, truth).last!)
            ortho = max(ortho, orthonormalityError(rows))
        }
        let mean = angles.reduce(0, +) / Double(angles.count)
        print("pca (k=64, d=8, noise 0.01) vs span(U_s, U_d): largest principal angle mean \(degrees(mean)) deg, max \(degrees(angles.max()!)) deg; orthonormality error \(ortho)")
        XCTAssertLessThan(degrees(angles.max()!), 5)
        XCTAssertLessThan(ortho, 1e-5)

        // With only signal axes in the data, the pca space is the signal subspace itself.
        let plain = smallSynthetic(distractor: 0, noise: 0.01, train: 4000)
        let pca4 = try Manifolds.instance("pca", ["neighbors=48", "dimension=4"])
        try pca4.fit(LearnedEstimator.hostDataset(plain))
        let b4 = try pca4.tangentBasis(smallSynthetic(distractor: 0, split: .test).batch(Array(0..<32)).images)
        let worst = (0..<32).map { principalAngles(basisRows(b4, sample: $0), columns(plain.signalBasis)).last! }.max()!
        print("pca (k=48, d=4, no distractor) vs U_s: largest principal angle \(degrees(worst)) deg")
        XCTAssertLessThan(degrees(worst), 5)

        // More noise gives larger angles: the estimate is really local PCA, not an oracle.
        let noisy = smallSynthetic(noise: 0.3, train: 4000)
        let pcaN = try Manifolds.instance("pca", ["neighbors=64", "dimension=8"])
        try pcaN.fit(LearnedEstimator.hostDataset(noisy))
        let bN = try pcaN.tangentBasis(x)
        let noisyMean = (0..<32).map { principalAngles(basisRows(bN, sample: $0), truth).last! }.reduce(0, +) / 32
        print("pca with noise 0.3: largest principal angle mean \(degrees(noisyMean)) deg")
        XCTAssertGreaterThan(noisyMean, mean)
    }

    func testPCAErrors() throws {
        XCTAssertThrowsError(try Manifolds.instance("pca", ["neighbors=4", "dimension=4"])) {
            XCTAssertTrue("\($0)".contains("needs at least 5 neighbors"), "\($0)")
        }
        let pca = try Manifolds.instance("pca", ["neighbors=8", "dimension=2"])
        XCTAssertThrowsError(try pca.tangentBasis(Tensor.zeros([1, 1, 8, 8]))) { XCTAssertTrue("\($0)".contains("call fit"), "\($0)") }
    }

    /// Theorem (Bayes optimal): the input gradient of log p(y | x) lies in the signal subspace.
    /// The Bayes logits are built with engine operations (checked against `bayesLogits`), the
    /// gradient comes from the engine, and the oracle plugin projects it.
    func testBayesGradientLiesInTheSignalSubspace() throws {
        // Pixel noise 0.3: with 0.01 the class-independent terms of the logits are ~1e4 times
        // larger than the class terms and float32 rounding in the log-softmax, not the theorem,
        // would decide the result.
        let test = smallSynthetic(noise: 0.3, split: .test)
        let m = test.manifold
        let n = 64
        let (x0, labels) = test.batch(Array(0..<n))
        let x = x0.detached(); x.requiresGrad = true
        let logits = bayesLogitsWithEngine(m, x)
        let exact = m.bayesLogits(x0)
        for (a, b) in zip(logits.values, exact.values) { XCTAssertEqual(a, b, accuracy: 1e-3 * max(1, abs(b))) }

        let logPost = logits.logSoftmax(axis: 1)
        let onehot = Tensor((0..<n).flatMap { i in (0..<m.classCount).map { Float($0 == labels[i] ? 1 : 0) } }, shape: [n, m.classCount])
        let g = try grad(of: (logPost * onehot).sum(), wrt: x)

        let oracle = try Manifolds.instance("oracle")
        try oracle.fit(LearnedEstimator.hostDataset(test, limit: 10), signalBasis: test.signalBasis)
        let t = try oracle.project(x0, g, normal: false)
        let d = 64
        var worst = 1.0, onAll = 0.0, all = 0.0, counted = 0
        for s in 0..<n {
            let gs = g.values[(s * d)..<((s + 1) * d)].map(Double.init)
            let ts = t.values[(s * d)..<((s + 1) * d)].map(Double.init)
            onAll += dot(ts, ts); all += dot(gs, gs)
            // Where the posterior of the label is ~1 the gradient is ~0 and float32 rounding of
            // the class-independent terms (|grad| ~ 1e-5 here) is all that is left: skip those.
            if dot(gs, gs).squareRoot() > 1e-2 { worst = min(worst, dot(ts, ts) / dot(gs, gs)); counted += 1 }
            // And against the closed form.
            let cf = m.logPosteriorGradient(x0.values[(s * d)..<((s + 1) * d)].map(Double.init), label: labels[s])
            for (a, b) in zip(gs, cf) { XCTAssertEqual(a, b, accuracy: 1e-3 * max(1, abs(b))) }
        }
        print("Bayes classifier, grad log p(y|x): on-signal fraction over \(n) points \(onAll / all); smallest per point \(worst) (\(counted) points with |grad| > 1e-2)")
        XCTAssertGreaterThan(onAll / all, 0.999)
        XCTAssertGreaterThan(counted, n / 4)
        XCTAssertGreaterThan(worst, 0.999)

        // Every class at once: the mean of log p(y|x) over the classes (large gradients everywhere).
        let gm = try grad(of: logPost.mean(), wrt: x)
        let tm = try oracle.project(x0, gm, normal: false)
        var worstMean = 1.0
        for s in 0..<n {
            let gs = gm.values[(s * d)..<((s + 1) * d)].map(Double.init)
            let ts = tm.values[(s * d)..<((s + 1) * d)].map(Double.init)
            worstMean = min(worstMean, dot(ts, ts) / dot(gs, gs))
        }
        print("Bayes classifier, grad of the mean log-posterior over classes: smallest on-signal fraction per point \(worstMean)")
        XCTAssertGreaterThan(worstMean, 0.999)

        // The gradient of the sum of log joints is not on the signal subspace (the check can fail).
        let gj = try grad(of: bayesLogitsWithEngine(m, x).sum(), wrt: x)
        let tj = try oracle.project(x0, gj, normal: false)
        let frac = dot(tj.values.map(Double.init), tj.values.map(Double.init)) / dot(gj.values.map(Double.init), gj.values.map(Double.init))
        XCTAssertLessThan(frac, 0.9)
    }

    /// log p(x, y) of the synthetic distribution as engine operations (differentiable in x).
    func bayesLogitsWithEngine(_ m: SyntheticManifold, _ x: Tensor) -> Tensor {
        let n = x.shape[0], d = m.dimension, ks = m.signalDim, kd = m.distractorDim
        let xf = x.reshape([n, d])
        let cs = Tensor.matmul(xf, m.signalBasis)                       // [n, ks]
        let cd = Tensor.matmul(xf, m.distractorBasis)                   // [n, kd]
        let noiseVar = Float(m.noiseStd * m.noiseStd), distVar = Float(m.distractorStd * m.distractorStd) + noiseVar
        let x2 = xf.square().sum(axes: [1], keepDims: true)
        let cs2 = cs.square().sum(axes: [1], keepDims: true), cd2 = cd.square().sum(axes: [1], keepDims: true)
        let res = x2 - cs2 - cd2
        let rest = Float(d - ks - kd)
        let constant = -0.5 * (Float(kd) * log(distVar) + rest * log(noiseVar)) - 0.5 * Float(d) * Float(log(2 * Double.pi))
            - Float(log(Double(m.classCount)))
        let shared = (cd2 * (-0.5 / distVar) + res * (-0.5 / noiseVar)) + constant     // [n, 1]
        var cols: [Tensor] = []
        for y in 0..<m.classCount {
            let v = (0..<ks).map { Float(m.classStds[y][$0] * m.classStds[y][$0]) + noiseVar }
            let mu = Tensor(m.classMeans[y].map(Float.init), shape: [1, ks])
            let inv = Tensor(v.map { 1 / $0 }, shape: [1, ks])
            let q = ((cs - mu).square() * inv).sum(axes: [1], keepDims: true)
            let logDet = v.reduce(Float(0)) { $0 + log($1) }
            cols.append(shared + q * -0.5 + (-0.5 * logDet))
        }
        return Tensor.concat(cols, axis: 1)
    }
}

