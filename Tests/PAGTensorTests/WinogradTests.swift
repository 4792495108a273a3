import CPAGKernels
import XCTest
@testable import PAGTensor

/// pag's own Winograd F(4x4, 3x3) convolutions (winograd.c), which `fast` uses where oneDNN has no
/// Winograd (below AVX-512). Forced here with PAG_CONV_PAG_WINOGRAD so they run on every machine,
/// under every instruction-set variant the CPU has, against convolutions summed in Double by the
/// definition: forward with and without bias, backward-data, backward-weights and the bias
/// gradient, on shapes with partial tiles, every padding 0...2, channel counts that are not
/// multiples of 8 or 16, and a single image.
final class WinogradTests: XCTestCase {
    struct Shape { let n, c, h, w, o, pad: Int }
    let shapes = [
        Shape(n: 2, c: 16, h: 9, w: 9, o: 16, pad: 1),
        Shape(n: 3, c: 20, h: 13, w: 11, o: 17, pad: 0),
        Shape(n: 2, c: 24, h: 8, w: 8, o: 40, pad: 2),
        Shape(n: 1, c: 16, h: 10, w: 7, o: 16, pad: 1),
        Shape(n: 2, c: 33, h: 14, w: 6, o: 33, pad: 1),
    ]

    override func tearDown() {
        pag_kernels_set_conv_policy(Int32(PAG_CONV_AUTO))
        InstructionSet.use(InstructionSet.cpuBest)
        super.tearDown()
    }

    func cShape(_ s: Shape) -> pag_conv_shape {
        let oh = s.h + 2 * s.pad - 2, ow = s.w + 2 * s.pad - 2
        return pag_conv_shape(n: Int64(s.n), c: Int64(s.c), h: Int64(s.h), w: Int64(s.w), o: Int64(s.o), kh: 3, kw: 3,
                              sh: 1, sw: 1, ph: Int64(s.pad), pw: Int64(s.pad), oh: Int64(oh), ow: Int64(ow))
    }

    /// y, gx, gw, gbias by the definition, in Double.
    func reference(_ s: Shape, x: [Float], w: [Float], bias: [Float], gy: [Float]) -> [[Float]] {
        let oh = s.h + 2 * s.pad - 2, ow = s.w + 2 * s.pad - 2
        var y = [Double](repeating: 0, count: s.n * s.o * oh * ow), gx = [Double](repeating: 0, count: x.count)
        var gw = [Double](repeating: 0, count: w.count), gb = [Double](repeating: 0, count: s.o)
        for b in 0..<s.n { for o in 0..<s.o { for i in 0..<oh { for j in 0..<ow {
            let yi = ((b * s.o + o) * oh + i) * ow + j
            var acc = Double(bias[o])
            let g = Double(gy[yi])
            gb[o] += g
            for c in 0..<s.c { for p in 0..<3 { for q in 0..<3 {
                let r = i + p - s.pad, t = j + q - s.pad
                guard r >= 0, r < s.h, t >= 0, t < s.w else { continue }
                let xi = ((b * s.c + c) * s.h + r) * s.w + t, wi = ((o * s.c + c) * 3 + p) * 3 + q
                acc += Double(x[xi]) * Double(w[wi])
                gx[xi] += g * Double(w[wi])
                gw[wi] += g * Double(x[xi])
            }}}
            y[yi] = acc
        }}}}
        return [y, gx, gw, gb].map { $0.map(Float.init) }
    }

    /// The four results of pag's Winograd under the variant in use.
    func winograd(_ s: Shape, x: [Float], w: [Float], bias: [Float], gy: [Float]) -> [[Float]] {
        var shape = cShape(s)
        XCTAssertEqual(pag_winograd_supports(&shape), 1)
        var y = [Float](repeating: .nan, count: gy.count), gx = [Float](repeating: .nan, count: x.count)
        var gw = [Float](repeating: .nan, count: w.count), gb = [Float](repeating: .nan, count: s.o)
        XCTAssertEqual(pag_conv2d_forward(&shape, x, w, bias, &y), 0)
        XCTAssertEqual(pag_conv2d_backward_data(&shape, gy, w, &gx), 0)
        XCTAssertEqual(pag_conv2d_backward_weights(&shape, x, gy, &gw, &gb), 0)
        var plain = [Float](repeating: .nan, count: gy.count)
        XCTAssertEqual(pag_conv2d_forward(&shape, x, w, nil, &plain), 0)
        let unbiased = zip(y.indices, plain).map { i, v in v + bias[(i / (shape.oh * shape.ow).asInt) % s.o] }
        XCTAssertLessThan(GradCheck.relativeError(unbiased, y), 1e-6, "bias is added after the transform")
        return [y, gx, gw, gb]
    }

    func testMatchesTheDefinitionUnderEveryVariant() {
        pag_kernels_set_conv_policy(Int32(PAG_CONV_PAG_WINOGRAD))
        for (k, s) in shapes.enumerated() {
            let oh = s.h + 2 * s.pad - 2, ow = s.w + 2 * s.pad - 2
            let x = randomInput([s.n, s.c, s.h, s.w], seed: UInt64(100 + k)).values
            let w = randomInput([s.o, s.c, 3, 3], seed: UInt64(200 + k), scale: 0.3).values
            let bias = randomInput([s.o], seed: UInt64(300 + k)).values
            let gy = randomInput([s.n, s.o, oh, ow], seed: UInt64(400 + k)).values
            let expected = reference(s, x: x, w: w, bias: bias, gy: gy)
            var baseline: [[Float]]?
            for isa in InstructionSet.supported {
                XCTAssertEqual(InstructionSet.use(isa), isa)
                let got = winograd(s, x: x, w: w, bias: bias, gy: gy)
                XCTAssertEqual(winograd(s, x: x, w: w, bias: bias, gy: gy).map { $0.map(\.bitPattern) },
                               got.map { $0.map(\.bitPattern) }, "shape \(k), \(isa): not reproducible")
                for (name, (g, e)) in zip(["forward", "backward-data", "backward-weights", "bias gradient"], zip(got, expected)) {
                    // F(4,3) in float: a few times the rounding error of a direct sum.
                    XCTAssertLessThan(GradCheck.relativeError(g, e), 2e-6, "shape \(k) \(name), \(isa)")
                    XCTAssertFalse(g.contains { !$0.isFinite }, "shape \(k) \(name), \(isa): every element written")
                }
                if let b = baseline {
                    for (g, r) in zip(got, b) { XCTAssertLessThan(GradCheck.relativeError(g, r), 2e-6, "shape \(k), \(isa) vs baseline") }
                } else {
                    baseline = got
                }
            }
        }
    }

    /// What `fast` picks: oneDNN's Winograd where oneDNN has one, pag's otherwise; shapes pag's
    /// does not cover (stride 2, 5x5, fewer than 16 channels, padding over 2, outputs under 64
    /// pixels, where the transforms cost more than they save) stay with oneDNN.
    func testSupportedShapes() {
        var s = cShape(Shape(n: 2, c: 16, h: 9, w: 9, o: 16, pad: 1))
        XCTAssertEqual(pag_winograd_supports(&s), 1)
        var few = s; few.c = 8
        var strided = s; strided.sh = 2; strided.sw = 2; strided.oh = 5; strided.ow = 5
        var wide = s; wide.kh = 5; wide.kw = 5; wide.oh = 7; wide.ow = 7
        var padded = s; padded.ph = 3; padded.pw = 3; padded.oh = 13; padded.ow = 13
        var small = s; small.h = 4; small.w = 4; small.oh = 4; small.ow = 4
        for var t in [few, strided, wide, padded, small] { XCTAssertEqual(pag_winograd_supports(&t), 0) }
    }
}

private extension Int64 { var asInt: Int { Int(self) } }
