import CPAGKernels
import XCTest
@testable import PAGTensor

/// pag's own convolution kernels, under every instruction-set variant the CPU has, against
/// convolutions summed in Double by the definition (forward with bias, backward-data,
/// backward-weights, bias gradient):
/// - Winograd F(4x4, 3x3) (winograd.c), which `fast` uses where oneDNN has no Winograd or the
///   layer is narrow; forced here with PAG_CONV_PAG_WINOGRAD so it runs on every machine, on
///   shapes with partial tiles, every padding 0...2, channel counts that are not multiples of 8
///   or 16, and a single image;
/// - the narrow kernels (narrow.c) for fewer than 8 output channels, which every policy but the
///   forced oneDNN ones uses, on several kernel sizes and paddings.
final class OwnConvolutionTests: XCTestCase {
    struct Shape {
        let n, c, h, w, o: Int
        var kh = 3, kw = 3, ph = 1, pw = 1
        var oh: Int { h + 2 * ph - kh + 1 }
        var ow: Int { w + 2 * pw - kw + 1 }
    }
    let winogradShapes = [
        Shape(n: 2, c: 16, h: 9, w: 9, o: 16),
        Shape(n: 3, c: 20, h: 13, w: 11, o: 17, ph: 0, pw: 0),
        Shape(n: 2, c: 24, h: 8, w: 8, o: 40, ph: 2, pw: 2),
        Shape(n: 1, c: 16, h: 10, w: 7, o: 16),
        Shape(n: 2, c: 33, h: 14, w: 6, o: 33),
    ]
    let narrowShapes = [
        Shape(n: 2, c: 32, h: 9, w: 7, o: 1),
        Shape(n: 3, c: 5, h: 8, w: 6, o: 3, kh: 5, kw: 5, ph: 2, pw: 2),
        Shape(n: 1, c: 4, h: 6, w: 6, o: 7, ph: 0, pw: 0),
        Shape(n: 2, c: 16, h: 7, w: 9, o: 2, kh: 1, kw: 1, ph: 0, pw: 0),
        Shape(n: 9, c: 3, h: 10, w: 5, o: 4, kh: 3, kw: 2, ph: 1, pw: 1),
    ]

    override func tearDown() {
        pag_kernels_set_conv_policy(Int32(PAG_CONV_AUTO))
        InstructionSet.use(InstructionSet.cpuBest)
        super.tearDown()
    }

    func cShape(_ s: Shape) -> pag_conv_shape {
        pag_conv_shape(n: Int64(s.n), c: Int64(s.c), h: Int64(s.h), w: Int64(s.w), o: Int64(s.o), kh: Int64(s.kh),
                       kw: Int64(s.kw), sh: 1, sw: 1, ph: Int64(s.ph), pw: Int64(s.pw), oh: Int64(s.oh), ow: Int64(s.ow),
                       groups: 1, dh: 1, dw: 1, pb: Int64(s.ph), pr: Int64(s.pw))
    }

    /// y, gx, gw, gbias by the definition, in Double.
    func reference(_ s: Shape, x: [Float], w: [Float], bias: [Float], gy: [Float]) -> [[Float]] {
        var y = [Double](repeating: 0, count: s.n * s.o * s.oh * s.ow), gx = [Double](repeating: 0, count: x.count)
        var gw = [Double](repeating: 0, count: w.count), gb = [Double](repeating: 0, count: s.o)
        for b in 0..<s.n { for o in 0..<s.o { for i in 0..<s.oh { for j in 0..<s.ow {
            let yi = ((b * s.o + o) * s.oh + i) * s.ow + j
            var acc = Double(bias[o])
            let g = Double(gy[yi])
            gb[o] += g
            for c in 0..<s.c { for p in 0..<s.kh { for q in 0..<s.kw {
                let r = i + p - s.ph, t = j + q - s.pw
                guard r >= 0, r < s.h, t >= 0, t < s.w else { continue }
                let xi = ((b * s.c + c) * s.h + r) * s.w + t, wi = ((o * s.c + c) * s.kh + p) * s.kw + q
                acc += Double(x[xi]) * Double(w[wi])
                gx[xi] += g * Double(w[wi])
                gw[wi] += g * Double(x[xi])
            }}}
            y[yi] = acc
        }}}}
        return [y, gx, gw, gb].map { $0.map(Float.init) }
    }

    /// The four results of the kernel the policy picks for the shape, under the variant in use.
    func results(_ s: Shape, x: [Float], w: [Float], bias: [Float], gy: [Float]) -> [[Float]] {
        var shape = cShape(s)
        var y = [Float](repeating: .nan, count: gy.count), gx = [Float](repeating: .nan, count: x.count)
        var gw = [Float](repeating: .nan, count: w.count), gb = [Float](repeating: .nan, count: s.o)
        XCTAssertEqual(pag_conv2d_forward(&shape, x, w, bias, &y), 0)
        XCTAssertEqual(pag_conv2d_backward_data(&shape, gy, w, &gx), 0)
        XCTAssertEqual(pag_conv2d_backward_weights(&shape, x, gy, &gw, &gb), 0)
        var plain = [Float](repeating: .nan, count: gy.count)
        XCTAssertEqual(pag_conv2d_forward(&shape, x, w, nil, &plain), 0)
        let unbiased = zip(y.indices, plain).map { i, v in v + bias[(i / (s.oh * s.ow)) % s.o] }
        XCTAssertLessThan(GradCheck.relativeError(unbiased, y), 1e-6, "bias is added after the sum")
        return [y, gx, gw, gb]
    }

    /// Every shape under every variant: within `tolerance` of the definition (relative, L2),
    /// bit-reproducible, every element written, and within rounding of the baseline variant.
    func check(_ shapes: [Shape], tolerance: Float, _ what: String) {
        for (k, s) in shapes.enumerated() {
            let x = randomInput([s.n, s.c, s.h, s.w], seed: UInt64(100 + k)).values
            let w = randomInput([s.o, s.c, s.kh, s.kw], seed: UInt64(200 + k), scale: 0.3).values
            let bias = randomInput([s.o], seed: UInt64(300 + k)).values
            let gy = randomInput([s.n, s.o, s.oh, s.ow], seed: UInt64(400 + k)).values
            let expected = reference(s, x: x, w: w, bias: bias, gy: gy)
            var baseline: [[Float]]?
            for isa in InstructionSet.supported {
                XCTAssertEqual(InstructionSet.use(isa), isa)
                let got = results(s, x: x, w: w, bias: bias, gy: gy)
                XCTAssertEqual(results(s, x: x, w: w, bias: bias, gy: gy).map { $0.map(\.bitPattern) },
                               got.map { $0.map(\.bitPattern) }, "\(what) shape \(k), \(isa): not reproducible")
                for (name, (g, e)) in zip(["forward", "backward-data", "backward-weights", "bias gradient"], zip(got, expected)) {
                    XCTAssertLessThan(GradCheck.relativeError(g, e), tolerance, "\(what) shape \(k) \(name), \(isa)")
                    XCTAssertFalse(g.contains { !$0.isFinite }, "\(what) shape \(k) \(name), \(isa): every element written")
                }
                if let b = baseline {
                    for (g, r) in zip(got, b) { XCTAssertLessThan(GradCheck.relativeError(g, r), tolerance, "\(what) shape \(k), \(isa) vs baseline") }
                } else {
                    baseline = got
                }
            }
        }
    }

    func testWinogradMatchesTheDefinitionUnderEveryVariant() {
        pag_kernels_set_conv_policy(Int32(PAG_CONV_PAG_WINOGRAD))
        for s in winogradShapes {
            var shape = cShape(s)
            XCTAssertEqual(pag_winograd_supports(&shape), 1)
        }
        check(winogradShapes, tolerance: 2e-6, "winograd")  // F(4,3) in float: a few times direct's rounding
    }

    func testNarrowMatchesTheDefinitionUnderEveryVariant() {
        for policy in [PAG_CONV_AUTO, PAG_CONV_FAST] {
            pag_kernels_set_conv_policy(Int32(policy))
            for s in narrowShapes {
                var shape = cShape(s)
                XCTAssertEqual(pag_narrow_supports(&shape), 1)
            }
            check(narrowShapes, tolerance: 5e-7, "narrow")
        }
    }

    /// conv2dMaxPool2x2 is conv2d then maxPool2d(kernel: 2), bit for bit: values (NaN and ties
    /// included), first- and second-order gradients, with and without recording, under every
    /// variant; fused where pag's Winograd runs (partial tiles, odd outputs whose last row and
    /// column the pool drops, channel counts not multiples of 8), and the two ops elsewhere
    /// (fewer than 16 channels, stride 2, policy AUTO).
    func testConvolutionWithMaxPoolIsConvolutionThenPoolBitForBit() throws {
        struct Case { let s: Shape; var stride = 1; let policy: Int32; let fused: Bool }
        let cases = [
            Case(s: Shape(n: 2, c: 16, h: 9, w: 9, o: 16), policy: Int32(PAG_CONV_PAG_WINOGRAD), fused: true),
            Case(s: Shape(n: 3, c: 20, h: 13, w: 11, o: 17, ph: 0, pw: 0), policy: Int32(PAG_CONV_PAG_WINOGRAD), fused: true),
            Case(s: Shape(n: 1, c: 16, h: 10, w: 7, o: 20, ph: 2, pw: 2), policy: Int32(PAG_CONV_PAG_WINOGRAD), fused: true),
            Case(s: Shape(n: 2, c: 32, h: 14, w: 8, o: 64, ph: 0, pw: 0), policy: Int32(PAG_CONV_FAST), fused: true),
            Case(s: Shape(n: 2, c: 8, h: 9, w: 9, o: 16), policy: Int32(PAG_CONV_FAST), fused: false),
            Case(s: Shape(n: 2, c: 16, h: 11, w: 9, o: 16), stride: 2, policy: Int32(PAG_CONV_FAST), fused: false),
            Case(s: Shape(n: 2, c: 16, h: 9, w: 9, o: 16), policy: Int32(PAG_CONV_AUTO), fused: false),
        ]
        for (k, c) in cases.enumerated() {
            pag_kernels_set_conv_policy(c.policy)
            let s = c.s, stride = (c.stride, c.stride), padding = (s.ph, s.pw)
            var shape = cShape(s)
            shape.sh = Int64(c.stride); shape.sw = Int64(c.stride)
            shape.oh = Int64((s.h + 2 * s.ph - 3) / c.stride + 1); shape.ow = Int64((s.w + 2 * s.pw - 3) / c.stride + 1)
            let pooled = Int(shape.n * shape.o * (shape.oh / 2) * (shape.ow / 2))
            var probe = [Float](repeating: 0, count: pooled)
            let x0 = randomInput([s.n, s.c, s.h, s.w], seed: UInt64(500 + k))
            let fusedHere = pag_conv2d_forward_maxpool2x2(&shape, x0.pointer, randomInput([s.o, s.c, 3, 3], seed: 1).pointer,
                                                          nil, &probe, nil) == 0
            XCTAssertEqual(fusedHere, c.fused, "case \(k): fused")
            for isa in InstructionSet.supported {
                XCTAssertEqual(InstructionSet.use(isa), isa)
                for input in ["random", "constant", "nan"] {
                    let x = x0.copy()
                    if input == "constant" { for i in 0..<x.count { x.pointer[i] = 0.5 } }  // equal outputs: ties
                    if input == "nan" { x.pointer[x.count / 3] = .nan }
                    let w = randomInput([s.o, s.c, 3, 3], seed: UInt64(600 + k), scale: 0.3)
                    let b = randomInput([s.o], seed: UInt64(700 + k))
                    let weights = randomInput([s.n, s.o, Int(shape.oh / 2), Int(shape.ow / 2)], seed: UInt64(800 + k))
                    func run(_ op: (Tensor, Tensor, Tensor) -> Tensor) throws -> [[UInt32]] {
                        let xs = [x, w, b].map { t -> Tensor in let v = t.copy(); v.requiresGrad = true; return v }
                        let y = op(xs[0], xs[1], xs[2])
                        let plain = noGrad { op(x, w, b) }
                        let g = try grad(of: [(y * weights).sum() + y.square().sum() * 0.1], wrt: xs, createGraph: true)
                        let gg = try grad(of: [(g[0] * x).sum().square() + (g[1] * w).sum()], wrt: xs)
                        return ([y, plain] + g + gg).map { $0.values.map(\.bitPattern) }
                    }
                    let fused = try run { Tensor.conv2dMaxPool2x2($0, weight: $1, bias: $2, stride: stride, padding: padding) }
                    let twoOps = try run { Tensor.conv2d($0, weight: $1, bias: $2, stride: stride, padding: padding).maxPool2d(kernel: 2) }
                    let names = ["values", "values without recording", "dx", "dw", "db", "d2x", "d2w", "d2b"]
                    for (name, (f, t)) in zip(names, zip(fused, twoOps)) {
                        XCTAssertEqual(f, t, "case \(k), \(isa), \(input) input: \(name)")
                    }
                    if input == "nan" { XCTAssertTrue(fused[0].contains { Float(bitPattern: $0).isNaN }, "case \(k): NaN wins its window") }
                }
            }
        }
        // Against finite differences too (first and second order), on a fused shape whose windows
        // have clear winners: the input rises along each row (by ~0.15 per pixel after the
        // convolution), so no finite-difference step moves a window's maximum.
        pag_kernels_set_conv_policy(Int32(PAG_CONV_PAG_WINOGRAD))
        let x = randomInput([1, 16, 10, 10], seed: 40, scale: 0.01)
        for i in 0..<x.count { x.pointer[i] += 0.01 * Float(i % 100) }
        let w = randomInput([16, 16, 3, 3], seed: 41, scale: 0.03)
        for i in 0..<w.count { w.pointer[i] += 0.1 }
        try GradCheck().check("conv2d_max_pool2x2", [x, w, randomInput([16], seed: 42)]) {
            Tensor.conv2dMaxPool2x2($0[0], weight: $0[1], bias: $0[2], stride: (1, 1), padding: (0, 0))
        }
    }

    /// What `fast` picks: oneDNN's Winograd where oneDNN has one, pag's otherwise; shapes pag's
    /// does not cover (stride 2, 5x5, fewer than 16 channels, padding over 2, outputs under 64
    /// pixels, where the transforms cost more than they save) stay with oneDNN.
    func testSupportedShapes() {
        var s = cShape(Shape(n: 2, c: 16, h: 9, w: 9, o: 16))
        XCTAssertEqual(pag_winograd_supports(&s), 1)
        var few = s; few.c = 8
        var strided = s; strided.sh = 2; strided.sw = 2; strided.oh = 5; strided.ow = 5
        var wide = s; wide.kh = 5; wide.kw = 5; wide.oh = 7; wide.ow = 7
        var padded = s; padded.ph = 3; padded.pw = 3; padded.oh = 13; padded.ow = 13
        var small = s; small.h = 4; small.w = 4; small.oh = 4; small.ow = 4
        for var t in [few, strided, wide, padded, small] { XCTAssertEqual(pag_winograd_supports(&t), 0) }
        // Narrow: fewer than 8 outputs, stride 1, padding below the kernel size.
        XCTAssertEqual(pag_narrow_supports(&s), 0)
        var one = s; one.o = 1
        var seven = s; seven.o = 7
        XCTAssertEqual(pag_narrow_supports(&one), 1)
        XCTAssertEqual(pag_narrow_supports(&seven), 1)
        var oneStrided = strided; oneStrided.o = 1
        var onePadded = padded; onePadded.o = 1
        for var t in [oneStrided, onePadded] { XCTAssertEqual(pag_narrow_supports(&t), 0) }
    }
}

