import PAGTensor

// Argument checks for the runtime table. The engine treats bad shapes as programming errors
// (precondition), which would abort pag; plugin mistakes must instead become errors that name
// the operation and the shapes. Each check mirrors the preconditions of one engine operation.

enum Check {
    static let maxRank = 8
    static let maxElements = 1 << 34

    static func fail(_ op: StaticString, _ message: String) -> RuntimeError { RuntimeError("\(op): \(message)") }

    /// A shape passed from C: ndim in 0...8, dims >= 0, not absurdly large.
    static func shape(_ op: StaticString, _ p: UnsafePointer<Int64>?, _ ndim: Int32) throws -> [Int] {
        guard ndim >= 0, ndim <= maxRank else { throw fail(op, "ndim \(ndim) is outside 0...\(maxRank)") }
        guard ndim == 0 || p != nil else { throw fail(op, "shape is NULL but ndim is \(ndim)") }
        var s: [Int] = []
        s.reserveCapacity(Int(ndim))
        var count = 1
        for i in 0..<Int(ndim) {
            let d = p![i]
            guard d >= 0, d <= Int64(maxElements) else { throw fail(op, "dimension \(i) of shape is \(d)") }
            s.append(Int(d))
            count = count.multipliedReportingOverflow(by: Int(d)).partialValue
            guard count <= maxElements else { throw fail(op, "shape \(s) has too many elements") }
        }
        return s
    }

    /// NumPy broadcasting; an error naming both shapes when they are incompatible.
    static func broadcast(_ op: StaticString, _ a: [Int], _ b: [Int]) throws -> [Int] {
        let n = max(a.count, b.count)
        var out = [Int](repeating: 1, count: n)
        for i in 0..<n {
            let da = i < n - a.count ? 1 : a[i - (n - a.count)]
            let db = i < n - b.count ? 1 : b[i - (n - b.count)]
            if da == db || db == 1 { out[i] = da } else if da == 1 { out[i] = db } else {
                throw fail(op, "shapes \(a) and \(b) cannot be broadcast together")
            }
        }
        return out
    }

    /// A possibly negative axis of a tensor of rank `rank` (>= 1).
    static func axis(_ op: StaticString, _ a: Int32, rank: Int) throws -> Int {
        let r = a < 0 ? Int(a) + rank : Int(a)
        guard r >= 0, r < rank else { throw fail(op, "axis \(a) is out of range for a tensor of rank \(rank)") }
        return r
    }

    static func axes(_ op: StaticString, _ p: UnsafePointer<Int32>?, _ n: Int32, rank: Int) throws -> [Int]? {
        if p == nil {
            guard n == 0 else { throw fail(op, "axes is NULL but naxes is \(n)") }
            return nil
        }
        guard n >= 0, n <= maxRank else { throw fail(op, "naxes \(n) is outside 0...\(maxRank)") }
        guard rank > 0 || n == 0 else { throw fail(op, "a scalar has no axes") }
        return try (0..<Int(n)).map { try axis(op, p![$0], rank: rank) }
    }

    static func matmul(_ a: [Int], _ b: [Int], _ ta: Bool, _ tb: Bool) throws {
        let op: StaticString = "matmul"
        if a.count == 3 && b.count == 3 {
            guard a[0] == b[0] else { throw fail(op, "batch sizes of \(a) and \(b) differ") }
            return try matmul(Array(a.dropFirst()), Array(b.dropFirst()), ta, tb)
        }
        guard a.count == 2, b.count == 2 else { throw fail(op, "needs two 2-D (or two 3-D) tensors, got \(a) and \(b)") }
        let k = ta ? a[0] : a[1], kb = tb ? b[1] : b[0]
        guard k == kb else {
            throw fail(op, "inner dimensions differ: \(a)\(ta ? "ᵀ" : "") · \(b)\(tb ? "ᵀ" : "")")
        }
    }

    static func linear(_ x: [Int], _ w: [Int], _ b: [Int]?) throws {
        let op: StaticString = "linear"
        guard w.count == 2 else { throw fail(op, "weight must be [out, in], got \(w)") }
        guard let last = x.last, last == w[1] else {
            throw fail(op, "input \(x) does not match weight \(w) (the input's last dimension must be \(w[1]))")
        }
        if let b, b != [w[0]] { throw fail(op, "bias \(b) does not match weight \(w) (expected [\(w[0])])") }
    }

    static func conv2d(_ x: [Int], _ w: [Int], _ b: [Int]?, stride: (Int32, Int32), pad: (Int32, Int32)) throws {
        let op: StaticString = "conv2d"
        guard x.count == 4 else { throw fail(op, "input must be [N, C, H, W], got \(x)") }
        guard w.count == 4 else { throw fail(op, "weight must be [O, C, KH, KW], got \(w)") }
        guard !x.contains(0), !w.contains(0) else { throw fail(op, "empty input \(x) or weight \(w)") }
        guard x[1] == w[1] else { throw fail(op, "input \(x) has \(x[1]) channels but weight \(w) expects \(w[1])") }
        guard stride.0 > 0, stride.1 > 0, pad.0 >= 0, pad.1 >= 0 else {
            throw fail(op, "stride (\(stride.0), \(stride.1)) must be positive and padding (\(pad.0), \(pad.1)) non-negative")
        }
        guard x[2] + 2 * Int(pad.0) >= w[2], x[3] + 2 * Int(pad.1) >= w[3] else {
            throw fail(op, "kernel \(w[2])x\(w[3]) is larger than the padded input \(x[2] + 2 * Int(pad.0))x\(x[3] + 2 * Int(pad.1)) (input \(x))")
        }
        if let b, b != [w[0]] { throw fail(op, "bias \(b) does not match weight \(w) (expected [\(w[0])])") }
    }

    static func pool(_ op: StaticString, _ x: [Int], kernel: Int32, stride: Int32, padding: Int32) throws {
        guard x.count == 4 else { throw fail(op, "input must be [N, C, H, W], got \(x)") }
        guard !x.contains(0) else { throw fail(op, "empty input \(x)") }
        let s = stride == 0 ? kernel : stride
        guard kernel > 0, s > 0, padding >= 0, padding * 2 <= kernel else {
            throw fail(op, "bad kernel \(kernel), stride \(stride) or padding \(padding) (kernel and stride positive, padding at most half the kernel)")
        }
        let k = Int(kernel), p = Int(padding)
        guard x[2] + 2 * p >= k, x[3] + 2 * p >= k else {
            throw fail(op, "window \(kernel) is larger than the padded input \(x[2] + 2 * p)x\(x[3] + 2 * p) (input \(x))")
        }
    }

    static func batchNorm(_ x: [Int], _ params: [(String, Tensor?)], training: Bool, hasRunning: Bool) throws {
        let op: StaticString = "batch_norm"
        guard x.count == 2 || x.count == 4 else { throw fail(op, "input must be [N, C] or [N, C, H, W], got \(x)") }
        let c = x[1]
        for (name, t) in params {
            if let t, t.shape != [c] { throw fail(op, "\(name) has shape \(t.shape), expected [\(c)] for input \(x)") }
        }
        if training {
            guard c > 0, x.reduce(1, *) / c > 1 else {
                throw fail(op, "training needs more than one value per channel, got input \(x)")
            }
        } else if !hasRunning {
            throw fail(op, "evaluation mode needs running_mean and running_var")
        }
    }

    static func reshape(_ from: [Int], count: Int, to s: [Int]) throws -> [Int] {
        let op: StaticString = "reshape"
        var out = s
        let unknown = s.indices.filter { s[$0] == -1 }
        guard unknown.count <= 1, s.allSatisfy({ $0 >= -1 }) else {
            throw fail(op, "cannot reshape \(from) to \(s) (at most one -1, other dimensions >= 0)")
        }
        if let i = unknown.first {
            let known = s.enumerated().filter { $0.offset != i }.reduce(1) { $0 * $1.element }
            guard known > 0, count % known == 0 else { throw fail(op, "cannot reshape \(from) (\(count) elements) to \(s)") }
            out[i] = count / known
        }
        guard out.reduce(1, *) == count else { throw fail(op, "cannot reshape \(from) (\(count) elements) to \(s)") }
        return out
    }

    static func permutation(_ p: UnsafePointer<Int32>?, _ n: Int32, rank: Int) throws -> [Int] {
        let op: StaticString = "permute"
        guard n == Int32(rank), n == 0 || p != nil else { throw fail(op, "needs \(rank) axes for a tensor of rank \(rank), got \(n)") }
        let perm = (0..<Int(n)).map { Int(p![$0]) }
        guard Set(perm) == Set(0..<rank) else { throw fail(op, "\(perm) is not a permutation of 0..<\(rank)") }
        return perm
    }

    static func crossEntropy(_ logits: [Int], _ labels: UnsafePointer<Int32>?, smoothing: Float, reduction: Int32) throws -> [Int] {
        let op: StaticString = "cross_entropy"
        guard logits.count == 2 else { throw fail(op, "logits must be [N, C], got \(logits)") }
        let (n, c) = (logits[0], logits[1])
        guard c > 0 else { throw fail(op, "logits \(logits) have no classes") }
        guard smoothing >= 0, smoothing <= 1 else { throw fail(op, "label smoothing \(smoothing) is outside [0, 1]") }
        _ = try self.reduction(op, reduction)
        return try self.labels(op, labels, n: n, classes: c)
    }

    static func labels(_ op: StaticString, _ labels: UnsafePointer<Int32>?, n: Int, classes c: Int) throws -> [Int] {
        guard n == 0 || labels != nil else { throw fail(op, "labels is NULL") }
        return try (0..<n).map { i in
            let y = Int(labels![i])
            guard y >= 0, y < c else { throw fail(op, "label \(y) at position \(i) is outside 0..<\(c)") }
            return y
        }
    }

    static func reduction(_ op: StaticString, _ r: Int32) throws -> Reduction {
        switch r {
        case 0: return .mean
        case 1: return .sum
        case 2: return .none
        default: throw fail(op, "unknown reduction \(r) (PAG_REDUCTION_MEAN, _SUM or _NONE)")
        }
    }

    static func concat(_ shapes: [[Int]], axis: Int32) throws -> Int {
        let op: StaticString = "concat"
        guard let first = shapes.first else { throw fail(op, "needs at least one tensor") }
        guard !first.isEmpty else { throw fail(op, "cannot concatenate scalars") }
        let ax = try self.axis(op, axis, rank: first.count)
        for s in shapes {
            var a = s, b = first
            guard a.count == b.count else { throw fail(op, "shape \(s) does not match \(first) outside axis \(ax)") }
            a[ax] = 0; b[ax] = 0
            guard a == b else { throw fail(op, "shape \(s) does not match \(first) outside axis \(ax)") }
        }
        return ax
    }
}
