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
        guard x.count == 4 else { throw ShapeError(op, "input must be [N, C, H, W], got \(x)") }
        guard w.count == 4 else { throw ShapeError(op, "weight must be [O, C, KH, KW], got \(w)") }
        guard x[1] == w[1] else { throw ShapeError(op, "input \(x) has \(x[1]) channels but weight \(w) expects \(w[1])") }
        guard stride.0 > 0, stride.1 > 0, pad.0 >= 0, pad.1 >= 0 else {
            throw ShapeError(op, "stride (\(stride.0), \(stride.1)) must be positive and padding (\(pad.0), \(pad.1)) non-negative")
        }
        guard x[2] + 2 * pad.0 >= w[2], x[3] + 2 * pad.1 >= w[3] else {
            throw ShapeError(op, "kernel \(w[2])x\(w[3]) is larger than the padded input \(x[2] + 2 * pad.0)x\(x[3] + 2 * pad.1) (input \(x))")
        }
        if let b, b != [w[0]] { throw ShapeError(op, "bias \(b) does not match weight \(w) (expected [\(w[0])])") }
        return (windows(x[2], kernel: w[2], stride: stride.0, padding: pad.0),
                windows(x[3], kernel: w[3], stride: stride.1, padding: pad.1))
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
