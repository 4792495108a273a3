// The shape rules of the engine's operations, in one place. The engine treats a broken rule as a
// programming error (`ShapeRules.require` stops with the message); the runtime table calls the
// same functions and hands the message to the plugin as an error naming the operation.

/// A broken shape rule: "OP: what is wrong".
public struct ShapeError: Error, CustomStringConvertible, Equatable {
    public let op: String
    public let message: String
    public init(_ op: String, _ message: String) { self.op = op; self.message = message }
    public var description: String { "\(op): \(message)" }
}

public enum ShapeRules {
    /// Runs a rule inside the engine, where a broken rule is a bug of the caller.
    @inline(__always)
    @discardableResult
    static func require<T>(_ rule: () throws -> T) -> T {
        do { return try rule() } catch { preconditionFailure("\(error)") }
    }

    /// NumPy broadcasting of two shapes.
    public static func broadcast(_ op: String, _ a: [Int], _ b: [Int]) throws -> [Int] {
        guard let s = Shape.broadcast(a, b) else { throw ShapeError(op, "shapes \(a) and \(b) cannot be broadcast together") }
        return s
    }

    /// A possibly negative axis of a tensor of rank `rank`.
    public static func axis(_ op: String, _ a: Int, rank: Int) throws -> Int {
        let r = a < 0 ? a + rank : a
        guard r >= 0, r < Swift.max(rank, 1) else { throw ShapeError(op, "axis \(a) is out of range for a tensor of rank \(rank)") }
        return r
    }

    /// op(a) · op(b) of two 2-D (or two batched 3-D) shapes; returns the result's shape.
    @discardableResult
    public static func matmul(_ a: [Int], _ b: [Int], transposeA ta: Bool, transposeB tb: Bool) throws -> [Int] {
        if a.count == 3 && b.count == 3 {
            guard a[0] == b[0] else { throw ShapeError("matmul", "batch sizes of \(a) and \(b) differ") }
            return [a[0]] + (try matmul(Array(a.dropFirst()), Array(b.dropFirst()), transposeA: ta, transposeB: tb))
        }
        guard a.count == 2, b.count == 2 else { throw ShapeError("matmul", "needs two 2-D (or two 3-D) tensors, got \(a) and \(b)") }
        let k = ta ? a[0] : a[1], kb = tb ? b[1] : b[0]
        guard k == kb else { throw ShapeError("matmul", "inner dimensions differ: \(a)\(ta ? "ᵀ" : "") · \(b)\(tb ? "ᵀ" : "")") }
        return [ta ? a[1] : a[0], tb ? b[0] : b[1]]
    }

    /// x [..., in] through weight [out, in] and bias [out].
    public static func linear(_ x: [Int], _ w: [Int], _ b: [Int]?) throws {
        guard w.count == 2 else { throw ShapeError("linear", "weight must be [out, in], got \(w)") }
        guard let last = x.last, last == w[1] else {
            throw ShapeError("linear", "input \(x) does not match weight \(w) (the input's last dimension must be \(w[1]))")
        }
        if let b, b != [w[0]] { throw ShapeError("linear", "bias \(b) does not match weight \(w) (expected [\(w[0])])") }
    }

    /// A 2-D convolution of x [N, C, H, W] by w [O, C, KH, KW] (groups 1); returns the output's
    /// height and width.
    @discardableResult
    public static func conv2d(_ x: [Int], _ w: [Int], _ b: [Int]?, stride: (Int, Int), padding pad: (Int, Int),
                              op: String = "conv2d") throws -> (oh: Int, ow: Int) {
        try conv2d(x, w, b, ConvOptions(stride: stride, padding: pad), op: op)
    }

    /// A 2-D convolution of x [N, C, H, W] by w [O, C / groups, KH, KW] with `options`; returns
    /// the output's height and width.
    @discardableResult
    public static func conv2d(_ x: [Int], _ w: [Int], _ b: [Int]?, _ options: ConvOptions,
                              op: String = "conv2d") throws -> (oh: Int, ow: Int) {
        let o = options, g = options.groups
        guard x.count == 4 else { throw ShapeError(op, "input must be [N, C, H, W], got \(x)") }
        guard w.count == 4 else { throw ShapeError(op, "weight must be [O, C / groups, KH, KW], got \(w)") }
        guard g >= 1, x[1] % g == 0, w[0] % g == 0 else {
            throw ShapeError(op, "groups \(g) must be positive and divide the input's \(x[1]) channels and the weight's \(w[0]) outputs")
        }
        guard x[1] == w[1] * g else {
            let expects = g == 1 ? "\(w[1])" : "\(w[1]) x \(g) groups = \(w[1] * g)"
            throw ShapeError(op, "input \(x) has \(x[1]) channels but weight \(w) expects \(expects)")
        }
        guard o.stride.0 > 0, o.stride.1 > 0, o.pads.allSatisfy({ $0 >= 0 }) else {
            throw ShapeError(op, "stride (\(o.stride.0), \(o.stride.1)) must be positive and padding \(o.pads) non-negative")
        }
        guard o.dilation.0 > 0, o.dilation.1 > 0 else {
            throw ShapeError(op, "dilation (\(o.dilation.0), \(o.dilation.1)) must be positive")
        }
        let ekh = o.dilation.0 * (w[2] - 1) + 1, ekw = o.dilation.1 * (w[3] - 1) + 1
        let ph = x[2] + o.pads[0] + o.pads[2], pw = x[3] + o.pads[1] + o.pads[3]
        guard ph >= ekh, pw >= ekw else {
            let dilated = o.dilation == (1, 1) ? "" : " (\(ekh)x\(ekw) dilated)"
            throw ShapeError(op, "kernel \(w[2])x\(w[3])\(dilated) is larger than the padded input \(ph)x\(pw) (input \(x))")
        }
        if let b, b != [w[0]] { throw ShapeError(op, "bias \(b) does not match weight \(w) (expected [\(w[0])])") }
        return ((ph - ekh) / o.stride.0 + 1, (pw - ekw) / o.stride.1 + 1)
    }

    /// How many positions a sliding window (convolution or pooling) takes along one axis.
    static func windows(_ size: Int, kernel: Int, stride: Int, padding: Int) -> Int {
        (size + 2 * padding - kernel) / stride + 1
    }

    /// conv2d's rules, and an output of at least 2x2 for the max pool behind it; returns the
    /// convolution's output height and width.
    @discardableResult
    public static func conv2dMaxPool2x2(_ x: [Int], _ w: [Int], _ b: [Int]?, stride: (Int, Int),
                                        padding pad: (Int, Int)) throws -> (oh: Int, ow: Int) {
        let op = "conv2d_max_pool2x2"
        let (oh, ow) = try conv2d(x, w, b, stride: stride, padding: pad, op: op)
        guard oh >= 2, ow >= 2 else {
            throw ShapeError(op, "the convolution's output \(oh)x\(ow) (input \(x), weight \(w)) is smaller than the 2x2 pool window")
        }
        return (oh, ow)
    }

    /// A square pooling window over x [N, C, H, W]; stride 0 means the kernel size.
    public static func pool(_ op: String, _ x: [Int], kernel: Int, stride: Int, padding: Int) throws {
        guard x.count == 4 else { throw ShapeError(op, "input must be [N, C, H, W], got \(x)") }
        let s = stride == 0 ? kernel : stride
        guard kernel > 0, s > 0, padding >= 0, padding * 2 <= kernel else {
            throw ShapeError(op, "bad kernel \(kernel), stride \(stride) or padding \(padding) (kernel and stride positive, padding at most half the kernel)")
        }
        guard x[2] + 2 * padding >= kernel, x[3] + 2 * padding >= kernel else {
            throw ShapeError(op, "window \(kernel) is larger than the padded input \(x[2] + 2 * padding)x\(x[3] + 2 * padding) (input \(x))")
        }
    }

    /// A pooling window over x [N, C, H, W] with `options`; returns the output's height and width.
    @discardableResult
    public static func pool2d(_ op: String, _ x: [Int], _ o: PoolOptions) throws -> (oh: Int, ow: Int) {
        guard x.count == 4 else { throw ShapeError(op, "input must be [N, C, H, W], got \(x)") }
        guard o.kernel.0 > 0, o.kernel.1 > 0, o.stride.0 > 0, o.stride.1 > 0, o.dilation.0 > 0, o.dilation.1 > 0 else {
            throw ShapeError(op, "kernel (\(o.kernel.0), \(o.kernel.1)), stride (\(o.stride.0), \(o.stride.1)) and dilation (\(o.dilation.0), \(o.dilation.1)) must be positive")
        }
        let ek = [o.dilation.0 * (o.kernel.0 - 1) + 1, o.dilation.1 * (o.kernel.1 - 1) + 1]
        guard o.pads.allSatisfy({ $0 >= 0 }), zip(o.pads, ek + ek).allSatisfy({ $0 < $1 }) else {
            throw ShapeError(op, "padding \(o.pads) must be non-negative and smaller than the window \(ek[0])x\(ek[1])")
        }
        func size(_ n: Int, _ axis: Int) throws -> Int {
            let padded = n + o.pads[axis] + o.pads[axis + 2], s = axis == 0 ? o.stride.0 : o.stride.1
            guard padded >= ek[axis] else {
                throw ShapeError(op, "window \(ek[0])x\(ek[1]) is larger than the padded input (input \(x), padding \(o.pads))")
            }
            var out = (padded - ek[axis] + (o.ceilMode ? s - 1 : 0)) / s + 1
            // Ceil mode's last window must start inside the input or its leading padding.
            if o.ceilMode && (out - 1) * s >= n + o.pads[axis] { out -= 1 }
            return out
        }
        return (try size(x[2], 0), try size(x[3], 1))
    }

    /// Batch norm of x [N, C] or [N, C, H, W] with per-channel parameters (nil: absent).
    public static func batchNorm(_ x: [Int], _ params: [(String, [Int]?)], training: Bool, hasRunning: Bool) throws {
        let op = "batch_norm"
        guard x.count == 2 || x.count == 4 else { throw ShapeError(op, "input must be [N, C] or [N, C, H, W], got \(x)") }
        let c = x[1]
        for (name, s) in params {
            if let s, s != [c] { throw ShapeError(op, "\(name) has shape \(s), expected [\(c)] for input \(x)") }
        }
        if training {
            guard c > 0, x.reduce(1, *) / c > 1 else { throw ShapeError(op, "training needs more than one value per channel, got input \(x)") }
        } else if !hasRunning {
            throw ShapeError(op, "evaluation mode needs running_mean and running_var")
        }
    }

    /// `to` with its -1 (at most one) resolved for `count` elements.
    public static func reshape(_ from: [Int], count: Int, to s: [Int]) throws -> [Int] {
        var out = s
        let unknown = s.indices.filter { s[$0] == -1 }
        guard unknown.count <= 1, s.allSatisfy({ $0 >= -1 }) else {
            throw ShapeError("reshape", "cannot reshape \(from) to \(s) (at most one -1, other dimensions >= 0)")
        }
        if let i = unknown.first {
            let known = s.enumerated().filter { $0.offset != i }.reduce(1) { $0 * $1.element }
            guard known > 0, count % known == 0 else { throw ShapeError("reshape", "cannot reshape \(from) (\(count) elements) to \(s)") }
            out[i] = count / known
        }
        guard out.reduce(1, *) == count else { throw ShapeError("reshape", "cannot reshape \(from) (\(count) elements) to \(s)") }
        return out
    }

    /// A permutation of the axes of a tensor of rank `rank`.
    public static func permutation(_ perm: [Int], rank: Int) throws {
        guard perm.count == rank, Set(perm) == Set(0..<rank) else {
            throw ShapeError("permute", "\(perm) is not a permutation of 0..<\(rank)")
        }
    }

    /// Shapes joined along `axis`; returns the normalized axis.
    public static func concat(_ shapes: [[Int]], axis: Int) throws -> Int {
        guard let first = shapes.first else { throw ShapeError("concat", "needs at least one tensor") }
        guard !first.isEmpty else { throw ShapeError("concat", "cannot concatenate scalars") }
        let ax = try self.axis("concat", axis, rank: first.count)
        for s in shapes {
            var a = s, b = first
            guard a.count == b.count else { throw ShapeError("concat", "shape \(s) does not match \(first) outside axis \(ax)") }
            a[ax] = 0; b[ax] = 0
            guard a == b else { throw ShapeError("concat", "shape \(s) does not match \(first) outside axis \(ax)") }
        }
        return ax
    }

    /// Logits [N, C] against N labels in 0..<C with smoothing in [0, 1].
    public static func crossEntropy(_ logits: [Int], labels: [Int], smoothing: Float) throws {
        let op = "cross_entropy"
        guard logits.count == 2 else { throw ShapeError(op, "logits must be [N, C], got \(logits)") }
        let (n, c) = (logits[0], logits[1])
        guard c > 0 else { throw ShapeError(op, "logits \(logits) have no classes") }
        guard labels.count == n else { throw ShapeError(op, "\(labels.count) labels for \(n) rows of logits") }
        guard smoothing >= 0, smoothing <= 1 else { throw ShapeError(op, "label smoothing \(smoothing) is outside [0, 1]") }
        for (i, y) in labels.enumerated() where y < 0 || y >= c {
            throw ShapeError(op, "label \(y) at position \(i) is outside 0..<\(c)")
        }
    }
}
