import CPAGKernels
import XCTest
@testable import PAGTensor

/// Every instruction-set variant of the engine's loops (pag_simd.h) against the baseline variant,
/// forcing each one this CPU has, on every kernel path: each elementwise op (with NaN, infinities
/// and odd lengths), each stride case of the broadcast loop, sums to shapes (sequential, kept and
/// reduced parallel paths), batch norm forward, backward and double backward, max and average
/// pooling and their adjoints, log-softmax along both layouts, and SGD / Adam updates. Ops with a
/// single rounding per element must agree bit for bit; those where a variant may fuse a multiply
/// and an add (batch norm, optimizers) agree to a tight relative tolerance. Each variant is also
/// bit-reproducible run to run.
final class InstructionSetTests: XCTestCase {
    override func tearDown() {
        InstructionSet.use(InstructionSet.cpuBest)
        super.tearDown()
    }

    /// Runs `body` under each supported variant and compares every output with the baseline's.
    /// `exact`: outputs must be bit-identical; otherwise |a - b| <= rtol * (|b| + scale), with
    /// `scale` the largest magnitude of that output (so sums of cancelling terms are judged
    /// against the size of what was summed).
    func compareVariants(_ what: String, exact: Bool, rtol: Float = 2e-5, _ body: () throws -> [Tensor],
                         file: StaticString = #filePath, line: UInt = #line) rethrows {
        InstructionSet.use(.baseline)
        XCTAssertEqual(InstructionSet.current, .baseline)
        let reference = try body().map(\.values)
        XCTAssertEqual(try body().map(\.values).map { $0.map(\.bitPattern) }, reference.map { $0.map(\.bitPattern) },
                       "\(what): baseline not reproducible", file: file, line: line)
        for isa in InstructionSet.supported where isa != .baseline {
            XCTAssertEqual(InstructionSet.use(isa), isa)
            let got = try body().map(\.values)
            let again = try body().map(\.values)
            XCTAssertEqual(got.map { $0.map(\.bitPattern) }, again.map { $0.map(\.bitPattern) },
                           "\(what): \(isa) not reproducible", file: file, line: line)
            XCTAssertEqual(got.count, reference.count)
            for (k, (g, r)) in zip(got, reference).enumerated() {
                XCTAssertEqual(g.count, r.count)
                let scale = r.filter(\.isFinite).map(Swift.abs).max() ?? 0
                var bad = 0, first = ""
                for i in r.indices {
                    let a = g[i], b = r[i]
                    let ok: Bool
                    if exact || !b.isFinite { ok = a.bitPattern == b.bitPattern || (a.isNaN && b.isNaN) }
                    else { ok = Swift.abs(a - b) <= rtol * (Swift.abs(b) + scale) }
                    if !ok { if bad == 0 { first = "[\(i)] \(isa) \(a) vs baseline \(b)" }; bad += 1 }
                }
                XCTAssertEqual(bad, 0, "\(what) output \(k): \(bad) of \(r.count) differ, first \(first)", file: file, line: line)
            }
        }
    }

    /// Random values with NaN, ±inf, ±0 and values near the ops' thresholds mixed in.
    func input(_ shape: [Int], seed: UInt64, specials: Bool = true, positive: Bool = false) -> Tensor {
        var rng = RandomGenerator(seed: seed, stream: 77)
        let t = positive ? Tensor.rand(shape, low: 0.05, high: 4, rng: &rng) : Tensor.randn(shape, std: 3, rng: &rng)
        if specials {
            let sp: [Float] = [.nan, .infinity, -.infinity, 0, -0.0, 1, -1, 20, 25, 1e-30]
            for (i, v) in sp.enumerated() where i * 97 < t.count { t.pointer[i * 97] = v }
        }
        return t
    }

    func testMachineReportsItsVariants() {
        XCTAssertEqual(InstructionSet.supported.first, .baseline)
        XCTAssertEqual(InstructionSet.use(.avx512), InstructionSet.cpuBest, "a variant above the CPU's is capped")
        XCTAssertFalse(InstructionSet.oneDNN.isEmpty)
    }

    func testUnaryOpsAgree() {
        // 1037: vector body plus tail; 70001: split over the threads.
        for n in [1037, 70001] {
            let x = input([n], seed: UInt64(n)), xp = input([n], seed: UInt64(n) + 1, specials: false, positive: true)
            compareVariants("unary n=\(n)", exact: true) {
                [x * 1.7, x + 0.3, x.exp(), xp.log(), xp.sqrt(), x.square(), xp.pow(1.5), x.abs(), x.relu(),
                 x.clamp(min: -1, max: 2), x.tanh(), x.sigmoid(), x.softplus(beta: 2, threshold: 20),
                 mapUnary(UnaryOp(PAG_U_THRESHOLD_MASK, 2, 20), x)]
            }
        }
    }

    func testBinaryOpsAgreeOnEveryStrideCase() {
        let shapes: [([Int], [Int])] = [
            ([70001], [70001]),           // both contiguous, parallel
            ([64, 33], [33]),             // b broadcast over rows (contiguous inner)
            ([64, 33], [64, 1]),          // b broadcast along the inner run (sb = 0)
            ([64, 1], [64, 33]),          // a broadcast along the inner run (sa = 0)
            ([5, 1, 7], [1, 6, 7]),       // short inner run walked in blocks
            ([4, 3, 5, 1, 6, 1], [4, 3, 5, 2, 6, 2]),  // 2x nearest upsampling pattern
            ([32, 16, 1, 1], [32, 16, 9, 9]),
        ]
        for (sa, sb) in shapes {
            let a = input(sa, seed: 5), b = input(sb, seed: 6)
            let out = Shape.broadcast(sa, sb)!
            compareVariants("binary \(sa) \(sb)", exact: true) {
                [a + b, a - b, a * b, a / b,
                 mapBinary(BinaryOp(PAG_B_MASK_POSITIVE), a, b, outShape: out),
                 mapBinary(BinaryOp(PAG_B_MASK_RANGE, -0.5, 1), a, b, outShape: out),
                 mapBinary(BinaryOp(PAG_B_MUL_SIGN), a, b, outShape: out),
                 a.broadcast(to: out)]
            }
        }
        // The general strided case (neither stride 0 nor 1), called directly.
        let a = input([300], seed: 7), b = input([300], seed: 8)
        compareVariants("binary strided", exact: true) {
            (0..<8).map { op in
                let o = Tensor.zeros([3, 40])
                pag_simd_binary(Int32(op), 3, 40, a.pointer, 90, 2, b.pointer, 7, 3, o.pointer, -0.5, 1)
                return o
            }
        }
    }

    func testSumsAgree() {
        let x = input([32, 24, 9, 11], seed: 9, specials: false)
        let big = input([64, 40, 33], seed: 10, specials: false)
        compareVariants("sum", exact: true) {
            [x.sum(to: [1, 24, 1, 1]), x.sum(to: [32, 1, 1, 1]), x.sum(to: [1, 1, 9, 11]), x.sum(to: [32, 24, 1, 11]),
             x.sum(), big.sum(to: [1, 40, 1]), big.sum(to: [64, 1, 33]), big.sum(to: [1, 1, 33]), big.sum(to: [64, 40, 1])]
        }
    }

    /// y += a x (narrow convolutions' inner loop), on lengths around the vector widths; the
    /// variants may fuse the multiply and the add.
    func testAxpyAgrees() {
        let x = input([1000], seed: 11, specials: false), y = input([1000], seed: 12, specials: false)
        compareVariants("axpy", exact: false, rtol: 1e-6) {
            [1, 7, 15, 16, 17, 33, 1000].map { n -> Tensor in
                let out = y.copy()
                pag_simd_axpy(Int64(n), -0.37, x.pointer, out.pointer)
                return out
            }
        }
    }

    func testBatchNormAgreesThroughDoubleBackward() throws {
        for shape in [[16, 12, 9, 7], [32, 64, 16, 16], [64, 10]] {
            let x0 = input(shape, seed: 11, specials: false)
            let c = shape[1]
            var rng = RandomGenerator(seed: 12)
            let w0 = Tensor.rand([c], low: 0.5, high: 1.5, rng: &rng), b0 = Tensor.randn([c], rng: &rng)
            let probe = input(shape, seed: 13, specials: false)
            try compareVariants("batch norm \(shape)", exact: false) {
                let x = x0.copy(), w = w0.copy(), b = b0.copy()
                x.requiresGrad = true; w.requiresGrad = true; b.requiresGrad = true
                let rm = Tensor.zeros([c]), rv = Tensor.ones([c])
                let y = Tensor.batchNorm(x, weight: w, bias: b, runningMean: rm, runningVar: rv, training: true)
                let loss = (y * probe).square().sum()
                let g = try grad(of: [loss], wrt: [x, w, b], createGraph: true)
                let penalty = g[0].square().sum()
                let gg = try grad(of: [penalty], wrt: [x, w])
                let eval = Tensor.batchNorm(x0, weight: w0, bias: b0, runningMean: rm, runningVar: rv, training: false)
                return [y, rm, rv, g[0], g[1], g[2], gg[0], gg[1], eval]
            }
        }
    }

    func testPoolingAgrees() throws {
        let x0 = input([8, 6, 28, 26], seed: 14)
        let x1 = input([64, 32, 56, 28], seed: 15, specials: false)   // the denoiser's avg-pool shape, parallel
        try compareVariants("pooling", exact: true) {
            var outs: [Tensor] = []
            for x0 in [x0, x1] {
                let x = x0.copy(); x.requiresGrad = true
                let m2 = x.maxPool2d(kernel: 2), m3 = x.maxPool2d(kernel: 3, stride: 2, padding: 1)
                let a2 = x.avgPool2d(kernel: 2), a3 = x.avgPool2d(kernel: 3, stride: 2, padding: 1)
                let loss = m2.square().sum() + m3.sum() + a2.square().sum() + a3.square().sum()
                let g = try grad(of: [loss], wrt: [x], createGraph: true)[0]
                let gg = try grad(of: [(g * x0).sum()], wrt: [x], allowUnused: true)[0]
                outs += [m2, m3, a2, a3, g, gg]
            }
            return outs
        }
    }

    func testLogSoftmaxAndCrossEntropyAgree() throws {
        let logits0 = input([128, 10], seed: 16, specials: false)
        let maps = input([4, 7, 5, 3], seed: 17)
        let labels = (0..<128).map { $0 % 10 }
        try compareVariants("log-softmax", exact: true) {
            let logits = logits0.copy(); logits.requiresGrad = true
            let ce = Tensor.crossEntropy(logits, labels: labels, labelSmoothing: 0.1)
            let g = try grad(of: [ce], wrt: [logits])[0]
            return [logits0.logSoftmax(axis: 1), maps.logSoftmax(axis: 1), maps.softmax(axis: -1), ce, g]
        }
    }

    func testOptimizersAgree() {
        let n = 70001
        let p0 = input([n], seed: 18, specials: false), g0 = input([n], seed: 19, specials: false)
        compareVariants("optimizers", exact: false) {
            var outs: [Tensor] = []
            for (mom, nest, wd) in [(Float(0), false, Float(0)), (0.9, false, 1e-4), (0.9, true, 1e-4)] {
                let p = p0.copy(); p.grad = g0
                let opt = SGD(params: [p], learningRate: 0.01, momentum: mom, dampening: 0, weightDecay: wd, nesterov: nest)
                for _ in 0..<3 { opt.step() }
                outs.append(p)
            }
            let p = p0.copy(); p.grad = g0
            let adam = Adam(params: [p], learningRate: 2e-3, weightDecay: 1e-4)
            for _ in 0..<3 { adam.step() }
            outs.append(p)
            return outs
        }
    }
}
