import CPAGKernels

// 2-D convolution on oneDNN primitives. Three primitives are differentiable ops of their own:
// forward, backward-data and backward-weights. Each one's derivatives are again these three,
// so gradients of gradients (double backpropagation) stay on the fast kernels.

/// How a convolution slides: stride, zero padding (top, left, bottom, right), dilation and
/// channel groups (ONNX's Conv attributes; PyTorch's conv2d with asymmetric padding).
public struct ConvOptions: Equatable, Sendable {
    public var stride: (Int, Int)
    public var pads: [Int]
    public var dilation: (Int, Int)
    public var groups: Int

    public init(stride: (Int, Int) = (1, 1), pads: [Int] = [0, 0, 0, 0], dilation: (Int, Int) = (1, 1), groups: Int = 1) {
        precondition(pads.count == 4, "ConvOptions: pads are [top, left, bottom, right], got \(pads)")
        (self.stride, self.pads, self.dilation, self.groups) = (stride, pads, dilation, groups)
    }

    /// Symmetric padding, no dilation, one group.
    public init(stride: (Int, Int), padding: (Int, Int)) {
        self.init(stride: stride, pads: [padding.0, padding.1, padding.0, padding.1])
    }

    public static func == (a: ConvOptions, b: ConvOptions) -> Bool {
        a.stride == b.stride && a.pads == b.pads && a.dilation == b.dilation && a.groups == b.groups
    }
}

/// Geometry of a convolution.
struct ConvGeometry {
    var n, c, h, w, o, kh, kw, oh, ow: Int
    var options: ConvOptions

    init(input: [Int], weight: [Int], bias: [Int]? = nil, options: ConvOptions) {
        (oh, ow) = ShapeRules.require { try ShapeRules.conv2d(input, weight, bias, options) }
        (n, c, h, w) = (input[0], input[1], input[2], input[3])
        (o, kh, kw) = (weight[0], weight[2], weight[3])
        self.options = options
    }

    init(input: [Int], weight: [Int], bias: [Int]? = nil, stride: (Int, Int), padding: (Int, Int)) {
        self.init(input: input, weight: weight, bias: bias, options: ConvOptions(stride: stride, padding: padding))
    }

    var inputShape: [Int] { [n, c, h, w] }
    var weightShape: [Int] { [o, c / options.groups, kh, kw] }
    var outputShape: [Int] { [n, o, oh, ow] }
    var flops: Double { 2.0 * Double(n * o * oh * ow * (c / options.groups) * kh * kw) }

    var c_shape: pag_conv_shape {
        let p = options.pads.map(Int64.init)
        return pag_conv_shape(n: Int64(n), c: Int64(c), h: Int64(h), w: Int64(w), o: Int64(o), kh: Int64(kh), kw: Int64(kw),
                              sh: Int64(options.stride.0), sw: Int64(options.stride.1), ph: p[0], pw: p[1],
                              oh: Int64(oh), ow: Int64(ow), groups: Int64(options.groups),
                              dh: Int64(options.dilation.0), dw: Int64(options.dilation.1), pb: p[2], pr: p[3])
    }
}

extension Tensor {
    /// 2-D convolution (cross-correlation, as PyTorch): x [N,C,H,W], weight [O,C,KH,KW], bias [O].
    public static func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor? = nil,
                              stride: Int = 1, padding: Int = 0) -> Tensor {
        conv2d(x, weight: weight, bias: bias, stride: (stride, stride), padding: (padding, padding))
    }

    public static func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor?, stride: (Int, Int), padding: (Int, Int)) -> Tensor {
        let geo = ConvGeometry(input: x.shape, weight: weight.shape, bias: bias?.shape, stride: stride, padding: padding)
        return convForward(x, weight, bias, geo)
    }

    /// 2-D convolution with groups, dilation and asymmetric padding (ONNX's Conv): x [N,C,H,W],
    /// weight [O, C / groups, KH, KW], bias [O]. Differentiable to any order, like conv2d.
    public static func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor?, options: ConvOptions) -> Tensor {
        convForward(x, weight, bias, ConvGeometry(input: x.shape, weight: weight.shape, bias: bias?.shape, options: options))
    }

    static func convForward(_ x: Tensor, _ w: Tensor, _ bias: Tensor?, _ geo: ConvGeometry) -> Tensor {
        let out = Tensor(uninitialized: geo.outputShape)
        var s = geo.c_shape
        let rc = pag_conv2d_forward(&s, x.pointer, w.pointer, bias?.pointer, out.pointer)
        precondition(rc == 0, "oneDNN convolution forward failed with status \(rc)")
        let inputs = bias.map { [x, w, $0] } ?? [x, w]
        return record(out, "conv2d", inputs) { g, needs in convGradients(g, needs, x, w, bias, geo) }
    }

    /// The gradients of conv2d's inputs (x, w and the bias when there is one) from gy.
    static func convGradients(_ gy: Tensor, _ needs: [Bool], _ x: Tensor, _ w: Tensor, _ bias: Tensor?,
                              _ geo: ConvGeometry) -> [Tensor?] {
        var grads: [Tensor?] = [needs[0] ? convBackwardData(gy, w, geo) : nil,
                                needs[1] ? convBackwardWeights(x, gy, geo) : nil]
        if bias != nil { grads.append(needs[2] ? gy.sum(axes: [0, 2, 3]) : nil) }
        return grads
    }

    /// `conv2d(...).maxPool2d(kernel: 2)`, with the same values and gradients (bit for bit), in
    /// one pass where pag's Winograd computes the convolution: its output tiles are pooled before
    /// they are stored, so the full-size output is never written. Other layers run the two ops.
    public static func conv2dMaxPool2x2(_ x: Tensor, weight w: Tensor, bias: Tensor?, stride: (Int, Int),
                                        padding: (Int, Int)) -> Tensor {
        let geo = ConvGeometry(input: x.shape, weight: w.shape, bias: bias?.shape, stride: stride, padding: padding)
        let pool = PoolGeometry(geo.outputShape, kernel: 2, stride: nil, padding: 0, op: "max_pool2d")
        let inputs = bias.map { [x, w, $0] } ?? [x, w]
        let out = Tensor(uninitialized: pool.outputShape)
        let idx = recorded(inputs) ? PoolIndices(count: out.count) : nil  // the winners, for the backward
        var s = geo.c_shape
        let rc = pag_conv2d_forward_maxpool2x2(&s, x.pointer, w.pointer, bias?.pointer, out.pointer, idx?.indices)
        if rc == Int32(PAG_KERNELS_UNFUSED) {
            return convForward(x, w, bias, geo).maxPool2d(kernel: 2)
        }
        precondition(rc == 0, "convolution with max pool failed with status \(rc)")
        guard let idx else { return out }
        return record(out, "conv2d_max_pool2x2", inputs) { g, needs in
            convGradients(g.poolScatter(idx, pool), needs, x, w, bias, geo)
        }
    }

    /// Gradient of the convolution wrt its input: linear in gy and in w.
    static func convBackwardData(_ gy: Tensor, _ w: Tensor, _ geo: ConvGeometry) -> Tensor {
        let out = Tensor(uninitialized: geo.inputShape)
        var s = geo.c_shape
        let rc = pag_conv2d_backward_data(&s, gy.pointer, w.pointer, out.pointer)
        precondition(rc == 0, "oneDNN convolution backward-data failed with status \(rc)")
        return record(out, "conv2d_backward_data", [gy, w]) { g, needs in
            [needs[0] ? convForward(g, w, nil, geo) : nil,
             needs[1] ? convBackwardWeights(g, gy, geo) : nil]
        }
    }

    /// Gradient of the convolution wrt its weight: linear in x and in gy.
    static func convBackwardWeights(_ x: Tensor, _ gy: Tensor, _ geo: ConvGeometry) -> Tensor {
        let out = Tensor(uninitialized: geo.weightShape)
        var s = geo.c_shape
        let rc = pag_conv2d_backward_weights(&s, x.pointer, gy.pointer, out.pointer, nil)
        precondition(rc == 0, "oneDNN convolution backward-weights failed with status \(rc)")
        return record(out, "conv2d_backward_weights", [x, gy]) { g, needs in
            [needs[0] ? convBackwardData(gy, g, geo) : nil,
             needs[1] ? convForward(x, g, nil, geo) : nil]
        }
    }
}

/// How convolutions are computed; see pag_kernels.h. `.auto` (the default) picks per shape and
/// op the fastest of direct and the Winograds, measured once on this machine (ConvolutionChoices;
/// a run records its choices so that resume and replicate repeat them). `.fast` adds Winograd
/// F(4,3) for 3x3 stride-1 layers with at least 16 channels in and out (pag's own, on every
/// machine; oneDNN's for layers wider than 32 x 64 channels on AVX-512): 1.2-2.5x faster there,
/// rounding error ~1e-6 relative. `.direct` uses oneDNN's direct algorithm everywhere, as
/// PyTorch does.
public enum ConvolutionAlgorithm: String, CaseIterable, Sendable {
    case auto, direct, fast

    /// Which kernels the algorithm in effect uses on this machine, for benchmark reports. pag's
    /// Winograd has baseline, AVX2 and AVX-512 variants (the last: AVX2 transforms, 16-wide products).
    public static var kernels: String {
        let narrow = "under 8 output channels: pag's narrow kernels"
        let variant = InstructionSet.current.rawValue >= InstructionSet.avx512.rawValue ? "avx512"
            : InstructionSet.current.rawValue >= InstructionSet.avx2.rawValue ? "avx2" : "baseline"
        switch current {
        case .direct:
            return "direct (oneDNN; \(narrow))"
        case .auto:
            let choices = ConvolutionChoices.current
            let counts = Dictionary(grouping: choices, by: \.kernel).mapValues(\.count)
            let made = ConvolutionChoice.Kernel.allCases.compactMap { k in counts[k].map { "\($0) \(k.rawValue)" } }.joined(separator: ", ")
            return "auto (per shape and op the fastest of direct, oneDNN on plain layouts, pag's \(variant) Winograd\(pag_kernels_onednn_has_winograd() != 0 ? ", oneDNN's Winograd" : ""), measured once; \(choices.count) choices\(made.isEmpty ? "" : ": " + made))"
        case .fast:
            return pag_kernels_onednn_has_winograd() != 0
                ? "fast (3x3: Winograd F(4,3), pag's \(variant) variant up to 32 x 64 channels, oneDNN's above; \(narrow))"
                : "fast (3x3: Winograd F(4,3), pag's \(variant) variant; \(narrow))"
        }
    }

    /// The algorithm in effect (process-wide).
    public static var current: ConvolutionAlgorithm {
        get {
            switch pag_kernels_get_conv_policy() {
            case Int32(PAG_CONV_FAST): return .fast
            case Int32(PAG_CONV_MEASURED): return .auto
            default: return .direct
            }
        }
        set {
            pag_kernels_set_conv_policy(newValue == .fast ? Int32(PAG_CONV_FAST) : newValue == .auto ? Int32(PAG_CONV_MEASURED) : Int32(PAG_CONV_AUTO))
        }
    }
}

/// One choice of `.auto`: the kernel for one convolution shape and op, and the times (ms, median
/// of 3) that chose it when it was measured here.
public struct ConvolutionChoice: Codable, Equatable, Hashable, Sendable {
    public enum Op: String, Codable, CaseIterable, Sendable { case forward, backwardData = "backward_data", backwardWeights = "backward_weights" }
    public enum Kernel: String, Codable, CaseIterable, Sendable { case direct, pagWinograd = "pag_winograd", onednnWinograd = "onednn_winograd", onednnPlain = "onednn_plain" }
    /// n, c, h, w, o, kh, kw, sh, sw, ph, pw, oh, ow, groups, dh, dw, pb, pr (pag_conv_shape's order).
    public var shape: [Int]
    public var op: Op
    public var kernel: Kernel
    /// Per kernel, its measured time; absent for preloaded choices.
    public var ms: [String: Double]?

    public init(shape: [Int], op: Op, kernel: Kernel, ms: [String: Double]? = nil) {
        self.shape = shape; self.op = op; self.kernel = kernel; self.ms = ms
    }

    /// The same choice without its timings: what decides the numbers.
    public var decision: ConvolutionChoice { ConvolutionChoice(shape: shape, op: op, kernel: kernel) }

    /// `base` followed by the choices of `extra` for shapes and ops `base` has none for: a choice
    /// is known by its shape and op (the kernel is what it decides), and the first one stays.
    public static func merged(_ base: [ConvolutionChoice], adding extra: [ConvolutionChoice]) -> [ConvolutionChoice] {
        var known = Set(base.map { ConvolutionChoice(shape: $0.shape, op: $0.op, kernel: .direct) })
        return base + extra.filter { known.insert(ConvolutionChoice(shape: $0.shape, op: $0.op, kernel: .direct)).inserted }
    }

    var cShape: pag_conv_shape? {
        guard shape.count == 18 else { return nil }
        let v = shape.map(Int64.init)
        return pag_conv_shape(n: v[0], c: v[1], h: v[2], w: v[3], o: v[4], kh: v[5], kw: v[6], sh: v[7], sw: v[8], ph: v[9], pw: v[10],
                              oh: v[11], ow: v[12], groups: v[13], dh: v[14], dw: v[15], pb: v[16], pr: v[17])
    }
}

/// The choices `.auto` has made or been given in this process (pag_conv_choice_*).
public enum ConvolutionChoices {
    /// The revision of the kernels the choices are made between: raised whenever a kernel's
    /// speed changes (2: pag's Winograd got 16-wide products on AVX-512, and oneDNN on plain
    /// layouts became a candidate), so that choices
    /// measured with older kernels are measured again (ConvolutionCache keys its files by it).
    public static let kernelRevision = 2

    public struct LoadError: Error, CustomStringConvertible {
        public let description: String
    }

    /// Every choice so far, in the order made.
    public static var current: [ConvolutionChoice] { choices(usedOnly: false) }

    /// The choices convolutions ran with (or that were made) since the last `resetUsage()`: what
    /// a run records, rather than everything a cache loaded.
    public static var used: [ConvolutionChoice] { choices(usedOnly: true) }

    /// Starts a new record of `used` (each task starts one).
    public static func resetUsage() { pag_conv_choice_reset_usage() }

    static func choices(usedOnly: Bool) -> [ConvolutionChoice] {
        (0..<pag_conv_choice_count()).compactMap { i in
            if usedOnly && pag_conv_choice_used(i) == 0 { return nil }
            var c = pag_conv_choice()
            guard pag_conv_choice_get(i, &c) == 0 else { return nil }
            let s = c.s
            let shape = [s.n, s.c, s.h, s.w, s.o, s.kh, s.kw, s.sh, s.sw, s.ph, s.pw, s.oh, s.ow, s.groups, s.dh, s.dw, s.pb, s.pr].map(Int.init)
            let times = withUnsafeBytes(of: c.ms) { Array($0.bindMemory(to: Double.self)) }
            var ms: [String: Double] = [:]
            for (k, kernel) in ConvolutionChoice.Kernel.allCases.enumerated() where times[k] >= 0 { ms[kernel.rawValue] = times[k] }
            return ConvolutionChoice(shape: shape, op: ConvolutionChoice.Op.allCases[Int(c.op)],
                                     kernel: ConvolutionChoice.Kernel.allCases[Int(c.kernel)], ms: ms.isEmpty ? nil : ms)
        }
    }

    /// Gives `.auto` these choices (replacing any for the same shape and op): those shapes are
    /// then not measured. A choice this machine cannot run (e.g. oneDNN's Winograd from an
    /// AVX-512 machine, here without AVX-512) or a malformed one is an error naming it.
    public static func load(_ choices: [ConvolutionChoice], source: String) throws {
        // All or nothing: every choice is checked before any is given.
        if let bad = choices.first(where: { !canRun($0) }) {
            throw LoadError(description: "\(source): convolution choice \(bad.kernel.rawValue) for \(bad.op.rawValue) of shape \(bad.shape) cannot run on this machine (or the shape is malformed)")
        }
        for c in choices {
            var s = c.cShape!
            _ = pag_conv_choice_set(&s, opIndex(c.op), kernelIndex(c.kernel))
        }
    }

    /// Whether this machine's kernels can compute `choice` (its kernel supports the shape and op).
    public static func canRun(_ choice: ConvolutionChoice) -> Bool {
        guard var s = choice.cShape else { return false }
        return pag_conv_kernel_supports(&s, opIndex(choice.op), kernelIndex(choice.kernel)) != 0
    }

    static func opIndex(_ op: ConvolutionChoice.Op) -> Int32 { Int32(ConvolutionChoice.Op.allCases.firstIndex(of: op)!) }
    static func kernelIndex(_ k: ConvolutionChoice.Kernel) -> Int32 { Int32(ConvolutionChoice.Kernel.allCases.firstIndex(of: k)!) }

    /// Forgets every choice (tests).
    public static func clear() { pag_conv_choice_clear() }
}
