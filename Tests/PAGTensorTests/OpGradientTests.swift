import XCTest
@testable import PAGTensor

/// First and second derivatives of every differentiable operation against finite differences.
final class OpGradientTests: XCTestCase {
    let gc = GradCheck()

    func testArithmeticWithBroadcasting() throws {
        let a = randomInput([2, 3, 4], seed: 1), b = randomInput([3, 1], seed: 2)
        let pos = randomInput([3, 1], seed: 3, positive: true)
        try gc.check("add", [a, b]) { $0[0] + $0[1] }
        try gc.check("sub", [a, b]) { $0[0] - $0[1] }
        try gc.check("mul", [a, b]) { $0[0] * $0[1] }
        try gc.check("div", [a, pos]) { $0[0] / $0[1] }
        try gc.check("neg", [a]) { -$0[0] }
        try gc.check("scalar ops", [a]) { ($0[0] * 3 + 1) / 2 - 0.5 }
        try gc.check("mul same input", [a]) { $0[0] * $0[0] }
    }

    func testUnaryFunctions() throws {
        let x = randomInput([3, 5], seed: 4)
        let pos = randomInput([3, 5], seed: 5, positive: true)
        let kinked = randomInput([3, 5], seed: 6, awayFromZero: 0.05)
        try gc.check("exp", [x]) { $0[0].exp() }
        try gc.check("log", [pos]) { $0[0].log() }
        try gc.check("sqrt", [pos]) { $0[0].sqrt() }
        try gc.check("square", [x]) { $0[0].square() }
        try gc.check("pow 3", [x]) { $0[0].pow(3) }
        try gc.check("pow -1.5", [pos]) { $0[0].pow(-1.5) }
        try gc.check("abs", [kinked]) { $0[0].abs() * $0[0] }
        try gc.check("relu", [kinked]) { $0[0].relu() * $0[0] }
        try gc.check("tanh", [x]) { $0[0].tanh() }
        try gc.check("sigmoid", [x]) { $0[0].sigmoid() }
        try gc.check("softplus", [x]) { $0[0].softplus(beta: 2, threshold: 20) }
        // Entries above the threshold take the linear branch.
        let mixed = Tensor([-1.2, -0.3, 0.4, 1.5, 6.5, 8.0], shape: [6])
        try gc.check("softplus threshold", [mixed]) { $0[0].softplus(beta: 2, threshold: 10) }
        let clampIn = Tensor([-2.0, -0.7, -0.2, 0.3, 0.6, 1.7], shape: [6])
        try gc.check("clamp", [clampIn]) { $0[0].clamp(min: -0.5, max: 0.5) * $0[0] }
    }

    func testKinkedOpsHaveExactValues() {
        let x = Tensor([-1, 0, 2], shape: [3])
        XCTAssertEqual(x.relu().values, [0, 0, 2])
        XCTAssertEqual(x.abs().values, [1, 0, 2])
        XCTAssertEqual(x.clamp(min: -0.5, max: 1).values, [-0.5, 0, 1])
        XCTAssertEqual(Tensor([30], shape: [1]).softplus(beta: 1, threshold: 20).values, [30])
        XCTAssertEqual(Tensor([0], shape: [1]).softplus().item, logf(2), accuracy: 1e-6)
    }

    func testMatmulAndLinear() throws {
        let a = randomInput([3, 4], seed: 7), b = randomInput([4, 5], seed: 8)
        try gc.check("matmul", [a, b]) { Tensor.matmul($0[0], $0[1]) }
        try gc.check("matmul Aᵀ", [a.transpose().copy(), b]) { Tensor.matmul($0[0], $0[1], transposeA: true) }
        try gc.check("matmul Bᵀ", [a, b.transpose().copy()]) { Tensor.matmul($0[0], $0[1], transposeB: true) }
        try gc.check("matmul AᵀBᵀ", [a.transpose().copy(), b.transpose().copy()]) {
            Tensor.matmul($0[0], $0[1], transposeA: true, transposeB: true)
        }
        try gc.check("batched matmul", [randomInput([2, 3, 4], seed: 9), randomInput([2, 4, 2], seed: 10)]) {
            Tensor.matmul($0[0], $0[1])
        }
        try gc.check("linear", [randomInput([3, 4], seed: 11), randomInput([2, 4], seed: 12), randomInput([2], seed: 13)]) {
            Tensor.linear($0[0], weight: $0[1], bias: $0[2])
        }
        XCTAssertEqual(Tensor.matmul(Tensor([1, 2, 3, 4], shape: [2, 2]), Tensor([5, 6, 7, 8], shape: [2, 2])).values, [19, 22, 43, 50])
    }

    func testConv2d() throws {
        let x = randomInput([2, 3, 5, 6], seed: 14, scale: 0.5)
        let w = randomInput([4, 3, 3, 2], seed: 15, scale: 0.5)
        let b = randomInput([4], seed: 16)
        try gc.check("conv2d stride 2 pad 1", [x, w, b]) {
            Tensor.conv2d($0[0], weight: $0[1], bias: $0[2], stride: (2, 2), padding: (1, 1))
        }
        try gc.check("conv2d plain", [x, randomInput([2, 3, 3, 3], seed: 17, scale: 0.5)]) {
            Tensor.conv2d($0[0], weight: $0[1])
        }
        // Double backprop through the input gradient: the gradient-norm pattern.
        try gc.checkGradient("conv2d input-gradient norm", [x, w]) { t in
            // Adding a zero leaf keeps xi differentiable even when t[0] is a plain constant.
            let xi = t[0] + Tensor.zeros(t[0].shape, requiresGrad: true)
            let y = Tensor.conv2d(xi, weight: t[1], padding: 1).tanh().sum()
            let g = try! grad(of: [y], wrt: [xi], createGraph: true)[0]
            return g.square().sum()
        }
    }

    func testConv2dMatchesDirectSum() {
        // 1 input channel, 1 output channel, 2x2 kernel on a 3x3 ramp.
        let x = Tensor((0..<9).map(Float.init), shape: [1, 1, 3, 3])
        let w = Tensor([1, 0, 0, -1], shape: [1, 1, 2, 2])
        let y = Tensor.conv2d(x, weight: w, bias: Tensor([0.5], shape: [1]))
        XCTAssertEqual(y.shape, [1, 1, 2, 2])
        XCTAssertEqual(y.values, [-3.5, -3.5, -3.5, -3.5])
        let padded = Tensor.conv2d(x, weight: Tensor.ones([1, 1, 3, 3]), padding: 1)
        XCTAssertEqual(padded.values, [8, 15, 12, 21, 36, 27, 20, 33, 24])
    }

    func testPooling() throws {
        // Distinct, well-separated values so no window has a near tie.
        var vals = (0..<(2 * 2 * 6 * 6)).map { Float($0) * 0.05 }
        var rng = RandomGenerator(seed: 3)
        vals.shuffle(using: &rng)
        let x = Tensor(vals.map { $0 - 3.5 }, shape: [2, 2, 6, 6])
        try gc.check("max_pool2d 2", [x]) { $0[0].maxPool2d(kernel: 2) }
        try gc.check("max_pool2d 3 stride 2 pad 1", [x]) { $0[0].maxPool2d(kernel: 3, stride: 2, padding: 1) }
        try gc.check("max_pool2d after tanh", [x]) { ($0[0] * 0.3).tanh().maxPool2d(kernel: 2).square() }
        try gc.check("avg_pool2d 2", [x]) { $0[0].avgPool2d(kernel: 2) }
        try gc.check("avg_pool2d 3 stride 2 pad 1", [x]) { $0[0].avgPool2d(kernel: 3, stride: 2, padding: 1) }
        try gc.check("global avg pool", [x]) { $0[0].globalAvgPool2d() }
        let small = Tensor([1, 5, 2, 0, 3, 4, 9, -1, 6, 7, 8, 2, 0, 1, 2, 3], shape: [1, 1, 4, 4])
        XCTAssertEqual(small.maxPool2d(kernel: 2).values, [5, 9, 7, 8])
        XCTAssertEqual(small.avgPool2d(kernel: 2).values, [3.25, 2.5, 3.5, 3.75])
    }

    /// The lenet plugin pools before its ReLU: relu(maxpool(x)) must give the values, the
    /// gradients and the double-backward gradients of the reference's maxpool(relu(x)), also for
    /// windows with no positive value and windows with ties.
    func testPoolThenReluMatchesReluThenPool() throws {
        var vals = (0..<144).map { Float($0 % 13) - 8 }  // mostly negative, with repeats
        var rng = RandomGenerator(seed: 11)
        vals.shuffle(using: &rng)
        for (i, v) in zip([0, 1, 6, 7], [-1, -2, -3, -4] as [Float]) { vals[i] = v }  // window (0, 0): all negative
        for (i, v) in zip([14, 15, 20, 21], [0, -2, 0, -1] as [Float]) { vals[i] = v }  // window (1, 1): a tie at 0
        let x = Tensor(vals, shape: [2, 2, 6, 6])
        let weights = randomInput([2, 2, 3, 3], seed: 12)
        func loss(_ order: (Tensor) -> Tensor) throws -> (Tensor, Tensor, Tensor) {
            let xi = x.detached(); xi.requiresGrad = true
            let y = order(xi + xi.square() * 0.1)  // smooth before the pool, so second order is not 0
            let l = (y * weights).sum()
            let g = try grad(of: [l], wrt: [xi], createGraph: true)[0]
            // Second order: the gradient of a function of the first gradient (gradnorm's shape).
            let gg = try grad(of: [(g * x).sum().square()], wrt: [xi])[0]
            return (y, g, gg)
        }
        let reference = try loss { $0.relu().maxPool2d(kernel: 2) }
        let pooled = try loss { $0.maxPool2d(kernel: 2).relu() }
        XCTAssertEqual(pooled.0.values, reference.0.values)
        XCTAssertEqual(pooled.1.values, reference.1.values)
        XCTAssertEqual(pooled.2.values, reference.2.values)
        XCTAssertEqual(reference.0.values[0], 0)  // the all-negative window
        XCTAssertGreaterThan(reference.1.values.filter { $0 != 0 }.count, 8)
    }

    func testReductionsAndShapes() throws {
        let x = randomInput([2, 3, 4], seed: 18)
        try gc.check("sum all", [x]) { $0[0].sum() }
        try gc.check("sum axis 1", [x]) { $0[0].sum(axes: [1]) }
        try gc.check("sum axes 0,2 keep", [x]) { $0[0].sum(axes: [0, 2], keepDims: true) }
        try gc.check("mean axis -1", [x]) { $0[0].mean(axes: [-1]) }
        try gc.check("sum to", [x]) { $0[0].sum(to: [3, 1]) }
        try gc.check("broadcast", [randomInput([3, 1], seed: 19)]) { $0[0].broadcast(to: [2, 3, 4]) }
        try gc.check("reshape", [x]) { $0[0].reshape([4, -1]) * Tensor.ones([4, 6]) }
        try gc.check("flatten", [x]) { $0[0].flatten() }
        try gc.check("permute", [x]) { $0[0].permute([2, 0, 1]) }
        try gc.check("transpose", [x]) { $0[0].transpose(0, 2) }
        try gc.check("slice", [x]) { $0[0].slice(axis: 1, 1..<3) }
        try gc.check("pad", [x]) { $0[0].pad(axis: 2, before: 1, after: 2) }
        try gc.check("concat", [x, randomInput([2, 1, 4], seed: 20)]) { Tensor.concat([$0[0], $0[1], $0[0]], axis: 1) }
        let m = Tensor([1, 2, 3, 4, 5, 6], shape: [2, 3])
        XCTAssertEqual(m.sum(axes: [0]).values, [5, 7, 9])
        XCTAssertEqual(m.sum(axes: [1]).values, [6, 15])
        XCTAssertEqual(m.permute([1, 0]).values, [1, 4, 2, 5, 3, 6])
        XCTAssertEqual(Tensor.concat([m, m.slice(axis: 1, 0..<1)], axis: 1).values, [1, 2, 3, 1, 4, 5, 6, 4])
    }

    func testSoftmaxAndLosses() throws {
        let logits = randomInput([4, 5], seed: 21)
        try gc.check("log_softmax", [logits]) { $0[0].logSoftmax(axis: 1) }
        try gc.check("log_softmax axis 0", [logits]) { $0[0].logSoftmax(axis: 0) }
        try gc.check("softmax", [logits]) { $0[0].softmax(axis: 1) }
        try gc.check("cross_entropy", [logits]) { Tensor.crossEntropy($0[0], labels: [0, 3, 4, 1]) }
        try gc.check("cross_entropy smoothed", [logits]) { Tensor.crossEntropy($0[0], labels: [0, 3, 4, 1], labelSmoothing: 0.1) }
        try gc.check("mse", [logits, randomInput([4, 5], seed: 22)]) { Tensor.mse($0[0], $0[1]) }
        try gc.check("norm per sample L2", [randomInput([3, 2, 2], seed: 23)]) { $0[0].normPerSample() }
        try gc.check("norm per sample L1", [randomInput([3, 4], seed: 24, awayFromZero: 0.05)]) { $0[0].normPerSample(p: 1) }
        // Closed forms: uniform logits give log(C); softmax rows sum to one.
        XCTAssertEqual(Tensor.crossEntropy(Tensor.zeros([2, 4]), labels: [1, 2]).item, logf(4), accuracy: 1e-6)
        let l = Tensor([2, 0, 0, 0], shape: [1, 4])
        let expected = -(2 - logf(expf(2) + 3))
        XCTAssertEqual(Tensor.crossEntropy(l, labels: [0]).item, expected, accuracy: 1e-5)
        // Label smoothing 0.1 over 4 classes: 0.925 * nll(0) + 0.025 * (nll(1) + nll(2) + nll(3)).
        let lse = logf(expf(2) + 3)
        let smoothed = 0.925 * (lse - 2) + 0.025 * 3 * lse
        XCTAssertEqual(Tensor.crossEntropy(l, labels: [0], labelSmoothing: 0.1).item, smoothed, accuracy: 1e-5)
        XCTAssertEqual(logits.softmax(axis: 1).sum(axes: [1]).values, [1, 1, 1, 1].map { Float($0) }, accuracy: 1e-6)
    }

    func testBatchNorm() throws {
        let x = randomInput([4, 3, 2, 2], seed: 25)
        let w = randomInput([3], seed: 26), b = randomInput([3], seed: 27)
        try gc.check("batch_norm train", [x, w, b]) {
            Tensor.batchNorm($0[0], weight: $0[1], bias: $0[2], runningMean: nil, runningVar: nil, training: true)
        }
        let rm = randomInput([3], seed: 28), rv = randomInput([3], seed: 29, positive: true)
        try gc.check("batch_norm eval", [x, w, b]) {
            Tensor.batchNorm($0[0], weight: $0[1], bias: $0[2], runningMean: rm, runningVar: rv, training: false)
        }
        try gc.check("batch_norm 2d", [randomInput([5, 3], seed: 30), w, b]) {
            Tensor.batchNorm($0[0], weight: $0[1], bias: $0[2], runningMean: nil, runningVar: nil, training: true)
        }
        // Evaluation mode is one fused per-channel affine node: check it in every input, on
        // [N, C] too, and against the closed form (x - mean) / sqrt(var + eps) * w + b.
        try gc.check("batch_norm eval, running statistics differentiable", [x, w, b, rm, rv]) {
            Tensor.batchNorm($0[0], weight: $0[1], bias: $0[2], runningMean: $0[3], runningVar: $0[4], training: false)
        }
        try gc.check("batch_norm eval 2d", [randomInput([5, 3], seed: 31), w, b]) {
            Tensor.batchNorm($0[0], weight: $0[1], bias: $0[2], runningMean: rm, runningVar: rv, training: false)
        }
        let y = Tensor.batchNorm(x, weight: w, bias: b, runningMean: rm, runningVar: rv, training: false, eps: 1e-3)
        let expected = (0..<x.count).map { i -> Float in
            let ch = (i / 4) % 3
            return (x.values[i] - rm.values[ch]) / (rv.values[ch] + 1e-3).squareRoot() * w.values[ch] + b.values[ch]
        }
        XCTAssertEqual(y.values, expected, accuracy: 1e-5)
        let noAffine = Tensor.batchNorm(x, weight: nil, bias: nil, runningMean: rm, runningVar: rv, training: false, eps: 0)
        XCTAssertEqual(noAffine.values[5], (x.values[5] - rm.values[1]) / rv.values[1].squareRoot(), accuracy: 1e-5)
    }

    func testDropoutIsSeededAndScaled() throws {
        let x = randomInput([4, 8], seed: 31)
        try gc.check("dropout", [x]) { t in
            var rng = RandomGenerator(seed: 5, stream: "dropout")
            return t[0].dropout(p: 0.5, training: true, rng: &rng)
        }
        var r1 = RandomGenerator(seed: 5, stream: "dropout"), r2 = RandomGenerator(seed: 5, stream: "dropout")
        let ones = Tensor.ones([1000])
        let d1 = ones.dropout(p: 0.25, training: true, rng: &r1), d2 = ones.dropout(p: 0.25, training: true, rng: &r2)
        XCTAssertEqual(d1.values, d2.values)
        XCTAssertTrue(d1.values.allSatisfy { $0 == 0 || Swift.abs($0 - 4.0 / 3.0) < 1e-6 })
        let kept = d1.values.filter { $0 != 0 }.count
        XCTAssertGreaterThan(kept, 700); XCTAssertLessThan(kept, 800)
        XCTAssertEqual(ones.dropout(p: 0.25, training: false, rng: &r1).values, ones.values)
    }

    /// The C loop behind dropout draws exactly nextFloat's stream and leaves the generator where
    /// that many draws leave it.
    func testDropoutMaskIsTheGeneratorsStream() {
        for (n, p) in [(1, Float(0.5)), (17, 0.1), (1000, 0.9)] {
            var fast = RandomGenerator(seed: 9, stream: "mask"), slow = fast
            let out = UnsafeMutablePointer<Float>.allocate(capacity: n)
            defer { out.deallocate() }
            fast.fillDropoutMask(out, count: n, p: p, keep: 1 / (1 - p))
            let expected = (0..<n).map { _ in slow.nextFloat() < p ? 0 : 1 / (1 - p) }
            XCTAssertEqual(Array(UnsafeBufferPointer(start: out, count: n)), expected)
            XCTAssertEqual(fast.nextUInt64(), slow.nextUInt64())
        }
    }

    func testDetachStopsGradients() throws {
        let x = Tensor([1, 2, 3], shape: [3], requiresGrad: true)
        let y = (x * x).sum() + (x.detached() * x).sum()
        let g = try grad(of: y, wrt: x)
        XCTAssertEqual(g.values, [3, 6, 9])  // 2x from x*x, x from the detached product
    }
}

func XCTAssertEqual(_ a: [Float], _ b: [Float], accuracy: Float, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.count, b.count, file: file, line: line)
    for (x, y) in zip(a, b) { XCTAssertEqual(x, y, accuracy: accuracy, file: file, line: line) }
}

/// The oneDNN convolution paths (blocked layouts, Winograd) against a direct sum in Swift.
final class ConvolutionKernelTests: XCTestCase {
    /// Reference convolution by the definition.
    func referenceConv(_ x: Tensor, _ w: Tensor, stride: Int, padding: Int) -> [Float] {
        let (n, c, h, wd) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (o, kh, kw) = (w.shape[0], w.shape[2], w.shape[3])
        let oh = (h + 2 * padding - kh) / stride + 1, ow = (wd + 2 * padding - kw) / stride + 1
        var out = [Float](repeating: 0, count: n * o * oh * ow)
        let xv = x.values, wv = w.values
        for b in 0..<n { for oc in 0..<o { for i in 0..<oh { for j in 0..<ow {
            var s: Double = 0
            for ic in 0..<c { for p in 0..<kh { for q in 0..<kw {
                let y = i * stride + p - padding, z = j * stride + q - padding
                if y >= 0 && y < h && z >= 0 && z < wd {
                    s += Double(xv[((b * c + ic) * h + y) * wd + z]) * Double(wv[((oc * c + ic) * kh + p) * kw + q])
                }
            }}}
            out[((b * o + oc) * oh + i) * ow + j] = Float(s)
        }}}}
        return out
    }

    func testForwardAndBackwardMatchReferenceUnderEveryAlgorithm() throws {
        let saved = ConvolutionAlgorithm.current
        defer { ConvolutionAlgorithm.current = saved }
        let x = randomInput([2, 16, 9, 9], seed: 40), w = randomInput([16, 16, 3, 3], seed: 41, scale: 0.2)
        let r = randomInput([2, 16, 9, 9], seed: 42)
        let expected = referenceConv(x, w, stride: 1, padding: 1)
        // The adjoint identity <conv(x, w), r> = <x, backward_data(r, w)> = <w, backward_weights(x, r)>
        // ties the two backward kernels to the forward reference.
        let inner = zip(expected, r.values).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        for algo in ConvolutionAlgorithm.allCases {
            ConvolutionAlgorithm.current = algo
            let xi = x.copy(); xi.requiresGrad = true
            let wi = w.copy(); wi.requiresGrad = true
            let y = Tensor.conv2d(xi, weight: wi, padding: 1)
            XCTAssertLessThan(GradCheck.relativeError(y.values, expected), 1e-5, "forward with \(algo)")
            let g = try grad(of: [y], wrt: [xi, wi], gradOutputs: [r])
            let viaData = zip(x.values, g[0].values).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
            let viaWeights = zip(w.values, g[1].values).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
            XCTAssertEqual(viaData, inner, accuracy: 1e-4 * Swift.abs(inner) + 1e-3, "backward-data with \(algo)")
            XCTAssertEqual(viaWeights, inner, accuracy: 1e-4 * Swift.abs(inner) + 1e-3, "backward-weights with \(algo)")
        }
        let strided = Tensor.conv2d(x, weight: w, stride: 2, padding: 0)
        XCTAssertLessThan(GradCheck.relativeError(strided.values, referenceConv(x, w, stride: 2, padding: 0)), 1e-5)
    }
}
