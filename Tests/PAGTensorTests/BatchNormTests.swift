import XCTest
@testable import PAGTensor

/// The fused training-mode batch norm against the composite formula it replaced, against finite
/// differences up to second order, and for its memory behaviour.
final class BatchNormTests: XCTestCase {
    let gc = GradCheck()

    /// The former composite implementation (mean, subtract, square, mean, add, sqrt, divide,
    /// multiply, add), as the reference.
    static func composite(_ x: Tensor, weight: Tensor?, bias: Tensor?, runningMean: Tensor? = nil,
                          runningVar: Tensor? = nil, momentum: Float = 0.1, eps: Float = 1e-5) -> Tensor {
        let c = x.shape[1]
        let statShape = x.rank == 4 ? [1, c, 1, 1] : [1, c]
        let axes = x.rank == 4 ? [0, 2, 3] : [0]
        let n = x.count / c
        let mean = x.mean(axes: axes, keepDims: true)
        let centered = x - mean
        let variance = centered.square().mean(axes: axes, keepDims: true)
        var y = centered / (variance + eps).sqrt()
        noGrad {
            if let rm = runningMean {
                for i in 0..<c { rm.pointer[i] = (1 - momentum) * rm.pointer[i] + momentum * mean.pointer[i] }
            }
            if let rv = runningVar {
                let unbias = Float(n) / Float(n - 1)
                for i in 0..<c { rv.pointer[i] = (1 - momentum) * rv.pointer[i] + momentum * variance.pointer[i] * unbias }
            }
        }
        if let weight { y = y * weight.reshape(statShape) }
        if let bias { y = y + bias.reshape(statShape) }
        return y
    }

    static func fused(_ x: Tensor, weight: Tensor?, bias: Tensor?) -> Tensor {
        Tensor.batchNorm(x, weight: weight, bias: bias, runningMean: nil, runningVar: nil, training: true)
    }

    func assertClose(_ a: Tensor, _ b: Tensor, _ tol: Float, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.shape, b.shape, what, file: file, line: line)
        let err = GradCheck.relativeError(a.values, b.values)
        XCTAssertLessThan(err, tol, "\(what): relative error \(err)\n\(a.values.prefix(6))\n\(b.values.prefix(6))", file: file, line: line)
    }

    func assertMaxDiff(_ a: Tensor, _ b: Tensor, _ tol: Float, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.shape, b.shape, what, file: file, line: line)
        let d = zip(a.values, b.values).map { Swift.abs($0 - $1) }.max() ?? 0
        XCTAssertLessThanOrEqual(d, tol, "\(what): max difference \(d)", file: file, line: line)
    }

    /// Inputs with a mean offset, so the variance is not trivially computed.
    func inputs(_ shape: [Int], seed: UInt64) -> (Tensor, Tensor, Tensor) {
        let x = randomInput(shape, seed: seed, scale: 2)
        for i in 0..<x.count { x.pointer[i] += 3 }
        let c = shape[1]
        let w = randomInput([c], seed: seed + 1), b = randomInput([c], seed: seed + 2)
        return (x, w, b)
    }

    func testForwardAndRunningStatisticsMatchComposite() {
        for shape in [[4, 5, 3, 3], [7, 4], [2, 3, 17, 9], [3, 40, 6, 6]] {
            let (x, w, b) = inputs(shape, seed: UInt64(shape.reduce(0, +)))
            let c = shape[1]
            for (wt, bs) in [(w, b), (nil, nil), (w, nil), (nil, b)] as [(Tensor?, Tensor?)] {
                let rm1 = randomInput([c], seed: 5), rv1 = randomInput([c], seed: 6, positive: true)
                let rm2 = rm1.copy(), rv2 = rv1.copy()
                let y = Tensor.batchNorm(x, weight: wt, bias: bs, runningMean: rm1, runningVar: rv1, training: true, momentum: 0.3)
                let r = Self.composite(x, weight: wt, bias: bs, runningMean: rm2, runningVar: rv2, momentum: 0.3)
                assertMaxDiff(y, r, 2e-5, "output \(shape)")
                assertMaxDiff(rm1, rm2, 1e-5, "running mean \(shape)")
                assertMaxDiff(rv1, rv2, 1e-4, "running var \(shape)")
            }
        }
        // Large mean, small spread: the Double sums keep the variance accurate.
        let x = randomInput([8, 2, 10, 10], seed: 3, scale: 0.01)
        for i in 0..<x.count { x.pointer[i] += 100 }
        let y = Tensor.batchNorm(x, weight: nil, bias: nil, runningMean: nil, runningVar: nil, training: true, eps: 1e-9)
        let perChannel = y.reshape([8, 2, 100]).permute([1, 0, 2]).reshape([2, 800])
        let variance = perChannel.square().mean(axes: [1])
        XCTAssertEqual(variance.values, [1, 1], accuracy: 2e-3)
    }

    func testFirstOrderGradientsMatchFiniteDifferencesAndComposite() throws {
        for shape in [[4, 3, 2, 2], [5, 3]] {
            let (x, w, b) = inputs(shape, seed: 40)
            try gc.checkGradient("fused bn \(shape)", [x, w, b]) { Self.fused($0[0], weight: $0[1], bias: $0[2]) }
            try gc.checkGradient("fused bn no affine \(shape)", [x]) { Self.fused($0[0], weight: nil, bias: nil) }
        }
        for shape in [[4, 3, 5, 5], [6, 4], [2, 70, 3, 3]] {
            let (x0, w0, b0) = inputs(shape, seed: 50)
            var rng = RandomGenerator(seed: 51)
            let r = Tensor.randn(shape, rng: &rng)
            for createGraph in [false, true] {
                let xs = [x0, w0, b0].map { t -> Tensor in let c = t.copy(); c.requiresGrad = true; return c }
                let fusedG = try grad(of: [GradCheck.loss({ Self.fused($0[0], weight: $0[1], bias: $0[2]) }, xs, r)], wrt: xs, createGraph: createGraph)
                let compG = try grad(of: [GradCheck.loss({ Self.composite($0[0], weight: $0[1], bias: $0[2]) }, xs, r)], wrt: xs)
                for k in 0..<3 { assertClose(fusedG[k], compG[k], 1e-4, "\(shape) input \(k) createGraph \(createGraph)") }
            }
        }
    }

    func testSecondOrderMatchesFiniteDifferencesAndComposite() throws {
        // Hessian-vector products through the recorded backward.
        let (x, w, b) = inputs([4, 3, 2, 2], seed: 60)
        try gc.checkHessianVector("fused bn", [x, w, b]) { Self.fused($0[0], weight: $0[1], bias: $0[2]) }
        try gc.checkHessianVector("fused bn nc", [randomInput([6, 3], seed: 61), w, b]) { Self.fused($0[0], weight: $0[1], bias: $0[2]) }
        try gc.checkHessianVector("fused bn no affine", [x]) { Self.fused($0[0], weight: nil, bias: nil) }

        // The gradnorm pattern: P = sum((dL/dx)^2), differentiated with respect to x and the weight.
        for shape in [[3, 2, 2, 2], [5, 3]] {
            let (x0, w0, b0) = inputs(shape, seed: 70)
            var rng = RandomGenerator(seed: 71)
            let r = Tensor.randn(shape, rng: &rng)
            func penalty(_ bn: @escaping ([Tensor]) -> Tensor, _ x: Tensor, _ w: Tensor, createGraph: Bool) throws -> Tensor {
                let g = try grad(of: [GradCheck.loss(bn, [x, w, b0], r)], wrt: [x], createGraph: createGraph)[0]
                return g.square().sum()
            }
            let fusedF: ([Tensor]) -> Tensor = { Self.fused($0[0], weight: $0[1], bias: $0[2]) }
            let compF: ([Tensor]) -> Tensor = { Self.composite($0[0], weight: $0[1], bias: $0[2]) }
            let x = x0.copy(), w = w0.copy()
            x.requiresGrad = true; w.requiresGrad = true
            let fusedG = try grad(of: [try penalty(fusedF, x, w, createGraph: true)], wrt: [x, w])
            let compG = try grad(of: [try penalty(compF, x, w, createGraph: true)], wrt: [x, w])
            assertClose(fusedG[0], compG[0], 1e-3, "gradnorm d/dx \(shape)")
            assertClose(fusedG[1], compG[1], 1e-3, "gradnorm d/dw \(shape)")
            // Finite differences of the penalty (itself computed with a first-order gradient).
            let eps: Float = 2e-3
            for (k, p) in [x, w].enumerated() {
                var numeric = [Float](repeating: 0, count: p.count)
                for i in 0..<p.count {
                    let base = p.pointer[i]
                    p.pointer[i] = base + eps; let lp = try penalty(fusedF, x, w, createGraph: false).item
                    p.pointer[i] = base - eps; let lm = try penalty(fusedF, x, w, createGraph: false).item
                    p.pointer[i] = base
                    numeric[i] = (lp - lm) / (2 * eps)
                }
                let err = GradCheck.relativeError(fusedG[k].values, numeric)
                XCTAssertLessThan(err, 2e-2, "gradnorm input \(k) \(shape) vs finite differences: \(err)")
            }
        }
    }

    /// Third order exercises the recorded backward of the backward node.
    func testThirdOrderMatchesComposite() throws {
        for shape in [[3, 2, 3, 2], [6, 3]] {
            let (x0, w0, b0) = inputs(shape, seed: 80)
            var rng = RandomGenerator(seed: 81)
            let r = Tensor.randn(shape, rng: &rng), v = Tensor.randn(shape, rng: &rng), vw = Tensor.randn([shape[1]], rng: &rng)
            let v1 = Tensor.randn(shape, rng: &rng)
            func third(_ bn: @escaping ([Tensor]) -> Tensor) throws -> [Tensor] {
                let xs = [x0, w0, b0].map { t -> Tensor in let c = t.copy(); c.requiresGrad = true; return c }
                let g1 = try grad(of: [GradCheck.loss(bn, xs, r)], wrt: [xs[0]], createGraph: true)[0]
                // sum(g1^2) alone is blind to some terms (g1 is orthogonal to xhat); a random
                // direction v1 exercises every term of the backward's recorded backward.
                let g2 = try grad(of: [g1.square().sum() + (g1 * v1).sum()], wrt: [xs[0], xs[1]], createGraph: true)
                let q = (g2[0] * v).sum() + (g2[1] * vw).sum()
                return try grad(of: [q], wrt: xs)
            }
            let f = try third { Self.fused($0[0], weight: $0[1], bias: $0[2]) }
            let c = try third { Self.composite($0[0], weight: $0[1], bias: $0[2]) }
            for k in 0..<2 { assertClose(f[k], c[k], 2e-3, "third order input \(k) \(shape)") }
        }
    }

    func testBackwardRespectsNeeds() throws {
        let (x0, w0, b0) = inputs([4, 3, 2, 2], seed: 90)
        let x = x0.copy(), w = w0.copy(), b = b0.copy()
        for t in [x, w, b] { t.requiresGrad = true }
        let y = Self.fused(x, weight: w, bias: b)
        let fn = try XCTUnwrap(y.gradFn)
        XCTAssertEqual(fn.name, "batch_norm")
        XCTAssertEqual(fn.inputs.count, 3)
        XCTAssertTrue(fn.inputs.allSatisfy { $0.gradFn == nil }, "one node: its inputs are the leaves")
        let g = Tensor.ones(y.shape)
        for createGraph in [false, true] {
            for mask in [[true, false, false], [false, true, false], [false, false, true], [false, true, true]] {
                let out = withGradMode(createGraph) { fn.backward(g, mask) }
                XCTAssertEqual(out.map { $0 != nil }, mask, "createGraph \(createGraph)")
            }
        }
        // The recorded backward's own node.
        let gx = try grad(of: [(y * y).sum()], wrt: [x], createGraph: true)[0]
        func find(_ t: Tensor, _ name: String) -> GradFn? {
            var stack = [t], seen = Set<ObjectIdentifier>()
            while let u = stack.popLast() {
                guard seen.insert(ObjectIdentifier(u)).inserted, let f = u.gradFn else { continue }
                if f.name == name { return f }
                stack.append(contentsOf: f.inputs)
            }
            return nil
        }
        let bfn = try XCTUnwrap(find(gx, "batch_norm_backward"))
        let u = Tensor.ones(x.shape)
        for createGraph in [false, true] {
            for mask in [[true, false, false], [false, true, false], [false, false, true]] {
                let out = withGradMode(createGraph) { bfn.backward(u, mask) }
                XCTAssertEqual(out.map { $0 != nil }, mask, "backward node, createGraph \(createGraph)")
            }
        }
    }

    /// Double backpropagation through batch norm keeps resident memory flat.
    func testNoMemoryGrowthOverRepeatedDoubleBackprop() throws {
        var rng = RandomGenerator(seed: 12)
        let x = Tensor.randn([16, 3, 8, 8], rng: &rng)
        let w = Tensor.randn([8, 3, 3, 3], std: 0.3, rng: &rng, requiresGrad: true)
        let gamma = Tensor.ones([8], requiresGrad: true), beta = Tensor.zeros([8], requiresGrad: true)
        let rm = Tensor.zeros([8]), rv = Tensor.ones([8])
        let fw = Tensor.randn([10, 8 * 16], std: 0.1, rng: &rng, requiresGrad: true)
        let opt = SGD(params: [w, gamma, beta, fw], learningRate: 0.01, momentum: 0.9)
        let labels = (0..<16).map { $0 % 10 }
        func step() throws {
            let xi = x.copy(); xi.requiresGrad = true
            let h = Tensor.batchNorm(Tensor.conv2d(xi, weight: w, padding: 1), weight: gamma, bias: beta,
                                     runningMean: rm, runningVar: rv, training: true)
            let logits = Tensor.linear(h.relu().maxPool2d(kernel: 2).flatten(), weight: fw)
            let ce = Tensor.crossEntropy(logits, labels: labels)
            let g = try grad(of: [ce], wrt: [xi], createGraph: true)[0]
            opt.zeroGrad()
            try (ce + g.square().sum() * 10).backward()
            opt.step()
        }
        for _ in 0..<50 { try step() }
        let before = residentMemoryKB()
        for _ in 0..<500 { try step() }
        let after = residentMemoryKB()
        XCTAssertLessThan(after - before, 4096, "resident memory grew from \(before) kB to \(after) kB")
        XCTAssertTrue(gamma.values.allSatisfy { $0.isFinite })
    }
}
