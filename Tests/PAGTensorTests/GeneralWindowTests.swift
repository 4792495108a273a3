import XCTest
@testable import PAGTensor

/// The ABI 1.5 operations imported networks need: convolutions with groups, dilation and
/// asymmetric padding; pooling with every ONNX window attribute; erf; amax and amin. Values are
/// checked against the definitions (computed here in Double), gradients and Hessian-vector
/// products against finite differences.
final class GeneralWindowTests: XCTestCase {
    let gc = GradCheck()

    /// y[n, o, i, j] = b[o] + sum over the group's channels and taps, by the definition.
    func referenceConv(_ x: Tensor, _ w: Tensor, _ b: Tensor?, _ o: ConvOptions) -> [Float] {
        let (n, c, h, wd) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (oc, cg, kh, kw) = (w.shape[0], w.shape[1], w.shape[2], w.shape[3])
        let (oh, ow) = try! ShapeRules.conv2d(x.shape, w.shape, b?.shape, o)
        let og = oc / o.groups
        var y = [Float]()
        let xv = x.values, wv = w.values, bv = b?.values
        for b0 in 0..<n { for oo in 0..<oc { for i in 0..<oh { for j in 0..<ow {
            var acc = Double(bv?[oo] ?? 0)
            let g = oo / og
            for ci in 0..<cg { for p in 0..<kh { for q in 0..<kw {
                let r = i * o.stride.0 - o.pads[0] + p * o.dilation.0, t = j * o.stride.1 - o.pads[1] + q * o.dilation.1
                guard r >= 0, r < h, t >= 0, t < wd else { continue }
                let cc = g * cg + ci
                acc += Double(xv[((b0 * c + cc) * h + r) * wd + t]) * Double(wv[((oo * cg + ci) * kh + p) * kw + q])
            } } }
            y.append(Float(acc))
        } } } }
        return y
    }

    func assertClose(_ a: [Float], _ b: [Float], _ tol: Float, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, what, file: file, line: line)
        let err = zip(a, b).map { Swift.abs($0 - $1) }.max() ?? 0
        XCTAssertLessThanOrEqual(err, tol, "\(what): max error \(err)", file: file, line: line)
    }

    func testGeneralConvolutionMatchesTheDefinition() throws {
        let cases: [(String, [Int], [Int], ConvOptions)] = [
            ("groups 2", [2, 4, 7, 6], [6, 2, 3, 3], ConvOptions(stride: (1, 1), pads: [1, 1, 1, 1], groups: 2)),
            ("depthwise stride 2", [2, 8, 9, 9], [8, 1, 3, 3], ConvOptions(stride: (2, 2), pads: [1, 1, 1, 1], groups: 8)),
            ("dilation 2", [1, 3, 9, 8], [4, 3, 3, 3], ConvOptions(pads: [2, 2, 2, 2], dilation: (2, 2))),
            ("asymmetric padding (TF 'SAME', stride 2)", [2, 3, 8, 8], [5, 3, 3, 3], ConvOptions(stride: (2, 2), pads: [0, 0, 1, 1])),
            ("everything at once", [1, 6, 10, 9], [9, 2, 3, 2], ConvOptions(stride: (2, 1), pads: [2, 0, 1, 3], dilation: (2, 3), groups: 3)),
            ("16 channels, symmetric (pag's own kernels' geometry)", [1, 16, 8, 8], [16, 16, 3, 3], ConvOptions(stride: (1, 1), padding: (1, 1))),
        ]
        for (i, (name, xs, ws, options)) in cases.enumerated() {
            let x = randomInput(xs, seed: 100 + UInt64(i)), w = randomInput(ws, seed: 200 + UInt64(i), scale: 0.5)
            let b = randomInput([ws[0]], seed: 300 + UInt64(i))
            for algorithm in ConvolutionAlgorithm.allCases {
                ConvolutionAlgorithm.current = algorithm
                defer { ConvolutionAlgorithm.current = .direct }
                let y = Tensor.conv2d(x, weight: w, bias: b, options: options)
                assertClose(y.values, referenceConv(x, w, b, options), 1e-4, "\(name) (\(algorithm))")
            }
        }
        // The ordinary convolution is conv2d with default options, value for value.
        let x = randomInput([2, 3, 6, 6], seed: 1), w = randomInput([4, 3, 3, 3], seed: 2)
        XCTAssertEqual(Tensor.conv2d(x, weight: w, bias: nil, options: ConvOptions(stride: (2, 2), padding: (1, 1))).values,
                       Tensor.conv2d(x, weight: w, stride: 2, padding: 1).values)
    }

    func testGeneralConvolutionGradientsToSecondOrder() throws {
        let x = randomInput([2, 4, 6, 5], seed: 21, scale: 0.5)
        try gc.check("conv2d groups 2, dilation, asymmetric pads", [x, randomInput([4, 2, 2, 3], seed: 22, scale: 0.5), randomInput([4], seed: 23)]) {
            Tensor.conv2d($0[0], weight: $0[1], bias: $0[2], options: ConvOptions(stride: (2, 1), pads: [1, 0, 0, 2], dilation: (2, 1), groups: 2))
        }
        try gc.check("depthwise conv2d", [x, randomInput([4, 1, 3, 3], seed: 24, scale: 0.5)]) {
            Tensor.conv2d($0[0], weight: $0[1], bias: nil, options: ConvOptions(stride: (1, 1), pads: [1, 1, 1, 1], groups: 4))
        }
        // Double backpropagation through a depthwise layer's input gradient (gradient norms).
        try gc.checkGradient("depthwise input-gradient norm", [x, randomInput([4, 1, 3, 3], seed: 25, scale: 0.5)]) { t in
            let xi = t[0] + Tensor.zeros(t[0].shape, requiresGrad: true)
            let y = Tensor.conv2d(xi, weight: t[1], bias: nil, options: ConvOptions(pads: [1, 1, 1, 1], groups: 4)).tanh().sum()
            return try! grad(of: [y], wrt: [xi], createGraph: true)[0].square().sum()
        }
    }

    func testGeneralConvolutionShapeErrors() {
        func message(_ x: [Int], _ w: [Int], _ o: ConvOptions) -> String {
            do { try ShapeRules.conv2d(x, w, nil, o); return "no error" } catch { return "\(error)" }
        }
        XCTAssertEqual(message([1, 4, 5, 5], [4, 3, 3, 3], ConvOptions(groups: 2)),
                       "conv2d: input [1, 4, 5, 5] has 4 channels but weight [4, 3, 3, 3] expects 3 x 2 groups = 6")
        XCTAssertEqual(message([1, 4, 5, 5], [3, 2, 3, 3], ConvOptions(groups: 2)),
                       "conv2d: groups 2 must be positive and divide the input's 4 channels and the weight's 3 outputs")
        XCTAssertEqual(message([1, 1, 4, 4], [1, 1, 3, 3], ConvOptions(dilation: (2, 2))),
                       "conv2d: kernel 3x3 (5x5 dilated) is larger than the padded input 4x4 (input [1, 1, 4, 4])")
    }

    /// Max and average pools by the definition (PyTorch's divisor rule), in Double.
    func referencePool(_ x: Tensor, _ o: PoolOptions, max isMax: Bool) -> [Float] {
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (oh, ow) = try! ShapeRules.pool2d("pool", x.shape, o)
        let v = x.values
        var out = [Float]()
        for p in 0..<(n * c) { for i in 0..<oh { for j in 0..<ow {
            var best = -Double.infinity, sum = 0.0, real = 0, padded = 0
            for a in 0..<o.kernel.0 { for b in 0..<o.kernel.1 {
                let r = i * o.stride.0 - o.pads[0] + a * o.dilation.0, t = j * o.stride.1 - o.pads[1] + b * o.dilation.1
                if r < h + o.pads[2] && t < w + o.pads[3] { padded += 1 }
                guard r >= 0, r < h, t >= 0, t < w else { continue }
                let e = Double(v[(p * h + r) * w + t])
                best = Swift.max(best, e); sum += e; real += 1
            } }
            out.append(Float(isMax ? best : sum / Double(o.countIncludePad ? padded : real)))
        } } }
        return out
    }

    func testGeneralPoolingMatchesTheDefinition() throws {
        let x = randomInput([2, 3, 7, 8], seed: 31)
        let cases: [(String, PoolOptions)] = [
            ("3x3 stride 2 ceil", PoolOptions(kernel: (3, 3), stride: (2, 2), ceilMode: true)),
            ("2x3 asymmetric pads", PoolOptions(kernel: (2, 3), stride: (2, 1), pads: [1, 0, 0, 2])),
            ("dilation 2", PoolOptions(kernel: (3, 2), stride: (1, 2), dilation: (2, 2), pads: [1, 1, 1, 1])),
            ("3x3 stride 2 pad 1 ceil, padding not counted", PoolOptions(kernel: (3, 3), stride: (2, 2), pads: [1, 1, 1, 1], ceilMode: true, countIncludePad: false)),
            ("3x3 stride 2 pad 1 ceil, padding counted", PoolOptions(kernel: (3, 3), stride: (2, 2), pads: [1, 1, 1, 1], ceilMode: true, countIncludePad: true)),
            ("square (the fast kernels)", PoolOptions(kernel: (3, 3), stride: (2, 2), pads: [1, 1, 1, 1])),
        ]
        for (name, o) in cases {
            assertClose(x.pool2d(max: true, options: o).values, referencePool(x, o, max: true), 1e-6, "max \(name)")
            assertClose(x.pool2d(max: false, options: o).values, referencePool(x, o, max: false), 1e-5, "avg \(name)")
        }
        // PyTorch: F.avg_pool2d(arange(9).view(1,1,3,3), 2, 2, ceil_mode=True) = [[2, 3.5], [6.5, 8]];
        // F.max_pool2d(..., 2, 2, ceil_mode=True) = [[4, 5], [7, 8]].
        let ramp = Tensor((0..<9).map(Float.init), shape: [1, 1, 3, 3])
        let ceil = PoolOptions(kernel: (2, 2), ceilMode: true)
        XCTAssertEqual(ramp.pool2d(max: false, options: ceil).values, [2, 3.5, 6.5, 8])
        XCTAssertEqual(ramp.pool2d(max: true, options: ceil).values, [4, 5, 7, 8])
        // PyTorch 2.15: F.avg_pool2d(arange(9)..., 3, 2, padding=1, ceil_mode=True) = [[0.8889, 1.3333],
        // [2.2222, 2.6667]] with count_include_pad=True, [[2, 3], [5, 6]] with count_include_pad=False;
        // on arange(16).view(1, 1, 4, 4) the overhang of the last window is not counted:
        // [[1.1111, 2.6667, 1.6667], [5.6667, 10, 5.5], [4.1667, 7, 3.75]].
        let padded = PoolOptions(kernel: (3, 3), stride: (2, 2), pads: [1, 1, 1, 1], ceilMode: true)
        assertClose(ramp.pool2d(max: false, options: padded).values, ninths([8, 12, 20, 24]), 1e-6, "count_include_pad")
        var excluded = padded
        excluded.countIncludePad = false
        assertClose(ramp.pool2d(max: false, options: excluded).values, [2, 3, 5, 6], 1e-6, "count_include_pad=False")
        let expected16: [Float] = [10 / 9, 24 / 9, 10 / 6, 51 / 9, 10, 33 / 6, 25 / 6, 7, 3.75]
        let ramp16 = Tensor((0..<16).map(Float.init), shape: [1, 1, 4, 4])
        assertClose(ramp16.pool2d(max: false, options: padded).values,
                    expected16, 1e-5, "ceil overhang")
    }

    func ninths(_ v: [Float]) -> [Float] { v.map { $0 / 9 } }

    func testGeneralPoolingGradientsToSecondOrder() throws {
        var vals = (0..<(2 * 2 * 7 * 6)).map { Float($0) * 0.05 }
        var rng = RandomGenerator(seed: 5)
        vals.shuffle(using: &rng)
        let x = Tensor(vals.map { $0 - 4 }, shape: [2, 2, 7, 6])
        let o = PoolOptions(kernel: (3, 2), stride: (2, 2), pads: [1, 0, 1, 1], ceilMode: true, countIncludePad: false)
        try gc.check("max pool2d general", [x]) { ($0[0] * 0.3).tanh().pool2d(max: true, options: o).square() }
        try gc.check("avg pool2d general", [x]) { ($0[0] * 0.3).tanh().pool2d(max: false, options: o).square() }
    }

    func testPoolShapeErrors() {
        func message(_ o: PoolOptions) -> String {
            do { try ShapeRules.pool2d("max_pool2d", [1, 1, 4, 4], o); return "no error" } catch { return "\(error)" }
        }
        XCTAssertEqual(message(PoolOptions(kernel: (2, 2), pads: [2, 0, 0, 0])),
                       "max_pool2d: padding [2, 0, 0, 0] must be non-negative and smaller than the window 2x2")
        XCTAssertEqual(message(PoolOptions(kernel: (0, 2))),
                       "max_pool2d: kernel (0, 2), stride (0, 2) and dilation (1, 1) must be positive")
    }

    func testErf() throws {
        // erf(0.5) = 0.5204998778, erf(-1) = -0.8427007929, erf(2) = 0.9953222650.
        assertClose(Tensor([0, 0.5, -1, 2], shape: [4]).erf().values, [0, 0.5204998778, -0.8427007929, 0.9953222650], 1e-6, "erf")
        try gc.check("erf", [randomInput([3, 5], seed: 41)]) { $0[0].erf() }
    }

    func testAmaxAndAminShareTheGradientAmongTies() throws {
        let x = Tensor([1, 3, 3, -2, 0, -2], shape: [2, 3], requiresGrad: true)
        let m = x.amax(axes: [1])
        XCTAssertEqual(m.values, [3, 0])
        XCTAssertEqual(try grad(of: [m.sum()], wrt: [x])[0].values, [0, 0.5, 0.5, 0, 1, 0])
        let n = x.amin(axes: [1], keepDims: true)
        XCTAssertEqual(n.shape, [2, 1])
        XCTAssertEqual(n.values, [1, -2])
        XCTAssertEqual(try grad(of: [n.sum()], wrt: [x])[0].values, [1, 0, 0, 0.5, 0, 0.5])
        XCTAssertEqual(x.amax().values, [3])
        XCTAssertTrue(Tensor([1, .nan, 2], shape: [3]).amax().item.isNaN)
        // Away from ties the gradient is exact, also through a second derivative.
        try gc.check("amax over axes 0 and 2", [randomInput([3, 4, 5], seed: 42)]) { $0[0].amax(axes: [0, 2]) }
        try gc.check("amin keepDims", [randomInput([3, 4, 5], seed: 43)]) { $0[0].amin(axes: [1], keepDims: true) }
    }
}
