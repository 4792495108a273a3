import CPAGKernels
import XCTest
@testable import PAGTensor

/// `conv_algorithm: auto`: every kernel it can choose agrees with direct (forward, input
/// gradient, weight gradient, and a second-order pass), a given table is used as given (nothing
/// measured), and a new shape is measured once with the stated rule.
final class ConvolutionChoiceTests: XCTestCase {
    override func tearDown() {
        ConvolutionAlgorithm.current = .direct
        ConvolutionChoices.clear()
        super.tearDown()
    }

    /// n, c, h, w, o, 3x3, stride 1, padding 1: a shape every kernel computes.
    func shape(n: Int, c: Int, h: Int, w: Int, o: Int) -> [Int] { [n, c, h, w, o, 3, 3, 1, 1, 1, 1, h, w, 1, 1, 1, 1, 1] }

    /// y, dL/dx, dL/dw and the second-order d/dw ||dL/dx||^2 for L = sum(r * conv(x, w)).
    func passes(_ x: Tensor, _ w: Tensor, _ r: Tensor) throws -> [[Float]] {
        let xi = x.copy(), wi = w.copy()
        xi.requiresGrad = true; wi.requiresGrad = true
        let y = Tensor.conv2d(xi, weight: wi, padding: 1)
        let g = try grad(of: [(y * r).sum()], wrt: [xi, wi], createGraph: true)
        let second = try grad(of: [g[0].square().sum()], wrt: [wi])
        return [y.values, g[0].values, g[1].values, second[0].values]
    }

    func maxRelative(_ a: [Float], _ b: [Float]) -> Float {
        let scale = b.map(abs).max() ?? 1
        return zip(a, b).map { abs($0 - $1) }.max()! / max(scale, 1e-6)
    }

    /// Tolerance: 1e-5 of the largest magnitude for the first-order passes, 1e-4 for the second
    /// (Winograd's rounding error is a few times direct's, ~1e-6 relative).
    func testEveryKernelAgreesWithDirect() throws {
        var rng = RandomGenerator(seed: 3, stream: "conv choices")
        let (n, c, h, w, o) = (2, 16, 12, 10, 24)
        let x = Tensor.randn([n, c, h, w], rng: &rng), wt = Tensor.randn([o, c, 3, 3], rng: &rng) * 0.1
        let r = Tensor.randn([n, o, h, w], rng: &rng)
        ConvolutionAlgorithm.current = .direct
        let direct = try passes(x, wt, r)
        // The shapes the passes use: the forward's, and the second-order pass's convolutions of gy-like tensors (same shape).
        var checked = 0
        for kernel in ConvolutionChoice.Kernel.allCases {
            let choices = ConvolutionChoice.Op.allCases.map { ConvolutionChoice(shape: shape(n: n, c: c, h: h, w: w, o: o), op: $0, kernel: kernel) }
            ConvolutionChoices.clear()
            do { try ConvolutionChoices.load(choices, source: "test") } catch {
                XCTAssertEqual(kernel, .onednnWinograd, "only oneDNN's Winograd may be missing (no AVX-512): \(error)")
                continue
            }
            ConvolutionAlgorithm.current = .auto
            let got = try passes(x, wt, r)
            for (k, name) in ["forward", "input gradient", "weight gradient", "second order"].enumerated() {
                XCTAssertLessThan(maxRelative(got[k], direct[k]), k == 3 ? 1e-4 : 1e-5, "\(kernel.rawValue): \(name)")
            }
            // Exactly the given choices: none measured, none added.
            XCTAssertEqual(ConvolutionChoices.current, choices)
            checked += 1
        }
        XCTAssertGreaterThanOrEqual(checked, 3)  // direct, onednn_plain, pag_winograd everywhere
    }

    /// pag's Winograd on AVX-512 (16-wide products) computes every value with the same fused
    /// multiply-adds in the same order as its AVX2 variant: the two agree bit for bit. Shapes
    /// cover the 32-channel blocks, a last block of 16 channels, and 6- and 12-tile ends.
    func testPagWinogradAVX512MatchesAVX2BitForBit() throws {
        guard InstructionSet.supported.contains(.avx512) else { throw XCTSkip("no AVX-512 here") }
        defer { _ = InstructionSet.use(InstructionSet.cpuBest) }
        var rng = RandomGenerator(seed: 5, stream: "winograd variants")
        for (n, c, h, w, o) in [(2, 16, 12, 10, 24), (3, 24, 16, 16, 40), (1, 32, 9, 30, 64)] {
            let x = Tensor.randn([n, c, h, w], rng: &rng), wt = Tensor.randn([o, c, 3, 3], rng: &rng) * 0.1
            let r = Tensor.randn([n, o, h, w], rng: &rng)
            var results: [[[Float]]] = []
            for isa in [InstructionSet.avx2, .avx512] {
                _ = InstructionSet.use(isa)
                ConvolutionChoices.clear()
                try ConvolutionChoices.load(ConvolutionChoice.Op.allCases.map {
                    ConvolutionChoice(shape: shape(n: n, c: c, h: h, w: w, o: o), op: $0, kernel: .pagWinograd)
                }, source: "test")
                ConvolutionAlgorithm.current = .auto
                results.append(try passes(x, wt, r))
            }
            for (k, name) in ["forward", "input gradient", "weight gradient", "second order"].enumerated() {
                XCTAssertEqual(results[0][k], results[1][k], "\(name) of \([n, c, h, w, o])")
            }
        }
    }

    func testANewShapeIsMeasuredOnceThenKept() throws {
        var rng = RandomGenerator(seed: 4, stream: "conv choices")
        ConvolutionChoices.clear()
        ConvolutionAlgorithm.current = .auto
        let x = Tensor.randn([4, 32, 16, 16], rng: &rng), wt = Tensor.randn([32, 32, 3, 3], rng: &rng) * 0.1
        let y1 = Tensor.conv2d(x, weight: wt, padding: 1)
        let made = ConvolutionChoices.current
        XCTAssertEqual(made.count, 1)
        let c = try XCTUnwrap(made.first)
        XCTAssertEqual(c.shape, shape(n: 4, c: 32, h: 16, w: 16, o: 32))
        XCTAssertEqual(c.op, .forward)
        let ms = try XCTUnwrap(c.ms)
        XCTAssertNotNil(ms["direct"]); XCTAssertNotNil(ms["pag_winograd"])
        XCTAssertEqual(ms["onednn_winograd"] != nil, pag_kernels_onednn_has_winograd() != 0)
        // The rule: direct unless another kernel takes under 0.95 of direct's time (then the fastest).
        let fastest = ms.filter { $0.key != "direct" }.min { $0.value < $1.value }
        let expected = fastest.map { $0.value < 0.95 * ms["direct"]! ? $0.key : "direct" } ?? "direct"
        XCTAssertEqual(c.kernel.rawValue, expected)
        // Again: not measured again, the same numbers.
        let y2 = Tensor.conv2d(x, weight: wt, padding: 1)
        XCTAssertEqual(ConvolutionChoices.current, made)
        XCTAssertEqual(y1.values, y2.values)
        // A choice given for it replaces the measured one.
        try ConvolutionChoices.load([ConvolutionChoice(shape: c.shape, op: .forward, kernel: .direct)], source: "test")
        XCTAssertEqual(ConvolutionChoices.current, [ConvolutionChoice(shape: c.shape, op: .forward, kernel: .direct)])
        ConvolutionAlgorithm.current = .direct
        XCTAssertEqual(Tensor.conv2d(x, weight: wt, padding: 1).values, {
            ConvolutionAlgorithm.current = .auto
            return Tensor.conv2d(x, weight: wt, padding: 1).values
        }())
    }

    func testChoicesThisMachineCannotRunAreRefused() {
        // Winograd computes 3x3 kernels only.
        let fiveByFive = [2, 16, 12, 12, 16, 5, 5, 1, 1, 2, 2, 12, 12, 1, 1, 1, 2, 2]
        XCTAssertThrowsError(try ConvolutionChoices.load([ConvolutionChoice(shape: fiveByFive, op: .forward, kernel: .pagWinograd)], source: "run/metrics.json")) {
            XCTAssertEqual("\($0)", "run/metrics.json: convolution choice pag_winograd for forward of shape \(fiveByFive) cannot run on this machine (or the shape is malformed)")
        }
        XCTAssertThrowsError(try ConvolutionChoices.load([ConvolutionChoice(shape: [1, 2, 3], op: .forward, kernel: .direct)], source: "c.json"))
        XCTAssertEqual(ConvolutionChoices.current, [])
    }
}
