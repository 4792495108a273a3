import XCTest
@testable import PAGTensor

/// Optimizers, batch-norm statistics, autograd behaviour and small end-to-end training.
final class TrainingTests: XCTestCase {
    func testSGDMomentumNesterovWeightDecayByHand() {
        // One parameter p = [1, -2], constant gradient g = [0.5, 1].
        let p = Tensor([1, -2], shape: [2])
        let opt = SGD(params: [p], learningRate: 0.1, momentum: 0.9, weightDecay: 0.01, nesterov: true)
        p.grad = Tensor([0.5, 1], shape: [2]); opt.step()
        // d = g + wd p = [0.51, 0.98]; buf = d; nesterov step d + 0.9 buf = 1.9 d.
        XCTAssertEqual(p.values, [1 - 0.1 * 1.9 * 0.51, -2 - 0.1 * 1.9 * 0.98], accuracy: 1e-6)
        let p1 = p.values
        opt.step()
        let d2 = [0.5 + 0.01 * p1[0], 1 + 0.01 * p1[1]]
        let buf2 = [0.9 * 0.51 + d2[0], 0.9 * 0.98 + d2[1]]
        XCTAssertEqual(p.values, [p1[0] - 0.1 * (d2[0] + 0.9 * buf2[0]), p1[1] - 0.1 * (d2[1] + 0.9 * buf2[1])], accuracy: 1e-6)
    }

    func testSGDPlainMomentumWithDampening() {
        let p = Tensor([0], shape: [1])
        let opt = SGD(params: [p], learningRate: 1, momentum: 0.5, dampening: 0.5)
        p.grad = Tensor([1], shape: [1])
        opt.step(); XCTAssertEqual(p.item, -1, accuracy: 1e-6)          // buf = 1 (first step: no dampening)
        opt.step(); XCTAssertEqual(p.item, -2, accuracy: 1e-6)          // buf = 0.5 + 0.5 = 1
    }

    func testAdamByHand() {
        let p = Tensor([1], shape: [1])
        let opt = Adam(params: [p], learningRate: 0.1)
        p.grad = Tensor([2], shape: [1]); opt.step()
        // m = 0.2, v = 0.004; mhat = 2, vhat = 4: step = 0.1 * 2 / (2 + 1e-8).
        XCTAssertEqual(p.item, 0.9, accuracy: 1e-6)
        p.grad = Tensor([-1], shape: [1]); opt.step()
        let m: Float = 0.9 * 0.2 + 0.1 * -1, v: Float = 0.999 * 0.004 + 0.001 * 1
        let mhat = m / (1 - 0.81), vhat = v / (1 - 0.999 * 0.999)
        XCTAssertEqual(p.item, 0.9 - 0.1 * mhat / (vhat.squareRoot() + 1e-8), accuracy: 1e-6)
    }

    func testLearningRateSchedules() {
        XCTAssertEqual(LRSchedule.step(stepSize: 2, gamma: 0.1).learningRate(base: 1, at: 3), 0.1, accuracy: 1e-7)
        XCTAssertEqual(LRSchedule.step(stepSize: 2, gamma: 0.1).learningRate(base: 1, at: 4), 0.01, accuracy: 1e-8)
        XCTAssertEqual(LRSchedule.cosine(tMax: 10, etaMin: 0).learningRate(base: 2, at: 5), 1, accuracy: 1e-6)
        XCTAssertEqual(LRSchedule.cosine(tMax: 10, etaMin: 0.1).learningRate(base: 2, at: 10), 0.1, accuracy: 1e-6)
        XCTAssertEqual(LRSchedule.constant.learningRate(base: 0.3, at: 100), 0.3)
    }

    func testBatchNormRunningStatisticsByHand() {
        // Channel 0 holds 1,2,3,4; channel 1 holds 0,0,2,2 (N=2, H=1, W=2).
        let x = Tensor([1, 2, 0, 0, 3, 4, 2, 2], shape: [2, 2, 1, 2])
        let rm = Tensor.zeros([2]), rv = Tensor.ones([2])
        let y = Tensor.batchNorm(x, weight: nil, bias: nil, runningMean: rm, runningVar: rv, training: true, momentum: 0.1, eps: 0)
        // mean [2.5, 1]; biased var [1.25, 1]; unbiased [5/3, 4/3].
        XCTAssertEqual(rm.values, [0.25, 0.1], accuracy: 1e-6)
        XCTAssertEqual(rv.values, [0.9 + 0.1 * 5 / 3, 0.9 + 0.1 * 4 / 3], accuracy: 1e-6)
        let s = 1 / Float(1.25).squareRoot()
        XCTAssertEqual(y.values, [-1.5 * s, -0.5 * s, -1, -1, 0.5 * s, 1.5 * s, 1, 1], accuracy: 1e-5)
        let e = Tensor.batchNorm(x, weight: Tensor([2, 1], shape: [2]), bias: Tensor([0, 1], shape: [2]),
                                 runningMean: rm, runningVar: rv, training: false, eps: 0)
        XCTAssertEqual(e.pointer[0], 2 * (1 - 0.25) / rv.pointer[0].squareRoot(), accuracy: 1e-5)
        XCTAssertEqual(e.pointer[2], 1 + (0 - 0.1) / rv.pointer[1].squareRoot(), accuracy: 1e-5)
    }

    func testBackwardAccumulatesIntoLeaves() throws {
        let w = Tensor([1, 2], shape: [2], requiresGrad: true)
        try (w * w).sum().backward()
        try (w * 3).sum().backward()
        XCTAssertEqual(w.grad?.values ?? [], [5, 7])
        XCTAssertNil(w.grad?.gradFn)
    }

    func testGradErrors() {
        let c = Tensor([1], shape: [1])
        XCTAssertThrowsError(try grad(of: c, wrt: c)) { e in
            XCTAssertEqual("\(e)", "output 0 (shape [1]) does not depend on any tensor that requires grad")
        }
        let x = Tensor([1], shape: [1], requiresGrad: true), unused = Tensor([1], shape: [1], requiresGrad: true)
        XCTAssertThrowsError(try grad(of: [x * 2], wrt: [unused], allowUnused: false)) { e in
            XCTAssertEqual("\(e)", "input 0 (shape [1]) was not used to compute the outputs")
        }
        XCTAssertEqual(try grad(of: [x * 2], wrt: [unused])[0].values, [0])
    }

    func testThirdOrderDerivative() throws {
        // d³/dx³ of x⁴ at x = 1.5 is 24 x = 36.
        let x = Tensor([1.5], shape: [1], requiresGrad: true)
        let y = x.pow(4).sum()
        let g1 = try grad(of: [y], wrt: [x], createGraph: true)[0]
        let g2 = try grad(of: [g1.sum()], wrt: [x], createGraph: true)[0]
        let g3 = try grad(of: [g2.sum()], wrt: [x])[0]
        XCTAssertEqual(g1.item, 4 * 3.375, accuracy: 1e-4)
        XCTAssertEqual(g2.item, 12 * 2.25, accuracy: 1e-4)
        XCTAssertEqual(g3.item, 36, accuracy: 1e-3)
    }

    /// A two-layer net on a separable synthetic problem: the loss must fall well below chance.
    func testTrainingLoopDrivesLossDown() throws {
        var rng = RandomGenerator(seed: 1, stream: "data")
        let n = 64
        let x = Tensor.randn([n, 2], rng: &rng)
        let labels = (0..<n).map { x.pointer[2 * $0] * x.pointer[2 * $0 + 1] > 0 ? 1 : 0 }  // XOR of signs
        var init_ = RandomGenerator(seed: 1, stream: "init")
        let w1 = Tensor.randn([16, 2], std: 0.7, rng: &init_, requiresGrad: true)
        let b1 = Tensor.zeros([16], requiresGrad: true)
        let w2 = Tensor.randn([2, 16], std: 0.25, rng: &init_, requiresGrad: true)
        let b2 = Tensor.zeros([2], requiresGrad: true)
        let opt = Adam(params: [w1, b1, w2, b2], learningRate: 0.05)
        func loss() -> Tensor {
            Tensor.crossEntropy(Tensor.linear(Tensor.linear(x, weight: w1, bias: b1).tanh(), weight: w2, bias: b2), labels: labels)
        }
        let first = loss().item
        for _ in 0..<300 { opt.zeroGrad(); try loss().backward(); opt.step() }
        let last = loss().item
        XCTAssertEqual(first, logf(2), accuracy: 0.3)
        XCTAssertLessThan(last, 0.1, "loss went from \(first) to \(last)")
    }

    /// The gradient-norm objective of the paper: CE + lambda 1e5 sum(g²)/B with g = dCE/dx kept in
    /// the graph. Its parameter gradients must match finite differences of the whole loss.
    func testGradientNormObjectiveParameterGradientsMatchFiniteDifferences() throws {
        var rng = RandomGenerator(seed: 3, stream: "gradnorm")
        let x = Tensor.randn([3, 1, 5, 5], rng: &rng)
        let labels = [0, 2, 1]
        let cw = Tensor.randn([2, 1, 3, 3], std: 0.5, rng: &rng, requiresGrad: true)
        let cb = Tensor.randn([2], std: 0.1, rng: &rng, requiresGrad: true)
        let fw = Tensor.randn([3, 2], std: 0.5, rng: &rng, requiresGrad: true)
        let params = [cw, cb, fw]
        let lambda: Float = 1e-3
        func loss() throws -> Tensor {
            let xi = x.copy(); xi.requiresGrad = true
            let h = Tensor.conv2d(xi, weight: cw, bias: cb).softplus(beta: 3).maxPool2d(kernel: 2).flatten()
            let ce = Tensor.crossEntropy(Tensor.linear(h, weight: fw), labels: labels)
            let g = try grad(of: [ce], wrt: [xi], createGraph: true)[0]
            return ce + g.square().sum() * (lambda * 1e5 / 3)
        }
        let analytic = try grad(of: [try loss()], wrt: params)
        let eps: Float = 1e-3
        for (k, p) in params.enumerated() {
            var numeric: [Float] = []
            for i in 0..<p.count {
                let base = p.pointer[i]
                p.pointer[i] = base + eps; let lp = try loss().item
                p.pointer[i] = base - eps; let lm = try loss().item
                p.pointer[i] = base
                numeric.append((lp - lm) / (2 * eps))
            }
            let err = GradCheck.relativeError(analytic[k].values, numeric)
            XCTAssertLessThan(err, 2e-2, "parameter \(k): relative error \(err)")
        }
        // The regularizer contributes: without it the gradients differ.
        let xi = x.copy(); xi.requiresGrad = true
        let plain = Tensor.crossEntropy(Tensor.linear(Tensor.conv2d(xi, weight: cw, bias: cb).softplus(beta: 3).maxPool2d(kernel: 2).flatten(), weight: fw), labels: labels)
        let plainGrad = try grad(of: [plain], wrt: [cw])[0]
        XCTAssertGreaterThan(GradCheck.relativeError(plainGrad.values, analytic[0].values), 0.05)
    }

    /// Graphs and buffers are freed once unreachable: resident memory stays flat over 1000 steps.
    func testNoMemoryGrowthOverThousandSteps() throws {
        var rng = RandomGenerator(seed: 9)
        let x = Tensor.randn([16, 1, 8, 8], rng: &rng)
        let w = Tensor.randn([4, 1, 3, 3], std: 0.3, rng: &rng, requiresGrad: true)
        let fw = Tensor.randn([10, 36], std: 0.1, rng: &rng, requiresGrad: true)
        let opt = SGD(params: [w, fw], learningRate: 0.01, momentum: 0.9)
        let labels = (0..<16).map { $0 % 10 }
        func step() throws {
            let xi = x.copy(); xi.requiresGrad = true
            let logits = Tensor.linear(Tensor.conv2d(xi, weight: w).relu().maxPool2d(kernel: 2).flatten(), weight: fw)
            let ce = Tensor.crossEntropy(logits, labels: labels)
            let g = try grad(of: [ce], wrt: [xi], createGraph: true)[0]
            opt.zeroGrad()
            try (ce + g.square().sum() * 10).backward()
            opt.step()
        }
        for _ in 0..<100 { try step() }
        let before = residentMemoryKB()
        for _ in 0..<1000 { try step() }
        let after = residentMemoryKB()
        XCTAssertLessThan(after - before, 4096, "resident memory grew from \(before) kB to \(after) kB")
    }
}

/// Current resident set size in kB, from /proc/self/statm.
func residentMemoryKB() -> Int {
    guard let s = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
    let fields = s.split(separator: " ")
    return (Int(fields[1]) ?? 0) * 4
}
