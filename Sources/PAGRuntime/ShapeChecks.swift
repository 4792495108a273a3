import PAGTensor

// Argument checks for the runtime table: what arrives through C pointers (shapes, axes, labels,
// codes) is read here; the shape rules of each operation are the engine's own (ShapeRules), so a
// plugin's mistake becomes an error naming the operation instead of stopping pag.

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

    /// Runs one of the engine's shape rules; a broken rule becomes the plugin's error.
    static func rule<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch let e as ShapeError { throw RuntimeError(e.description) }
    }

    static func broadcast(_ op: StaticString, _ a: [Int], _ b: [Int]) throws -> [Int] {
        try rule { try ShapeRules.broadcast("\(op)", a, b) }
    }

    /// A possibly negative axis of a tensor of rank `rank` (>= 1).
    static func axis(_ op: StaticString, _ a: Int32, rank: Int) throws -> Int {
        guard rank > 0 else { throw fail(op, "axis \(a) is out of range for a tensor of rank 0") }
        return try rule { try ShapeRules.axis("\(op)", Int(a), rank: rank) }
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
        _ = try rule { try ShapeRules.matmul(a, b, transposeA: ta, transposeB: tb) }
    }

    static func linear(_ x: [Int], _ w: [Int], _ b: [Int]?) throws {
        try rule { try ShapeRules.linear(x, w, b) }
    }

    /// The host operation's name: conv2d, or conv2d_max_pool2x2 when a 2x2 max pool follows.
    static func convolutionName(pooled: Bool) -> StaticString { pooled ? "conv2d_max_pool2x2" : "conv2d" }

    static func conv2d(_ x: [Int], _ w: [Int], _ b: [Int]?, stride: (Int32, Int32), pad: (Int32, Int32),
                       pooled: Bool = false) throws {
        let op = convolutionName(pooled: pooled)
        guard x.count != 4 || w.count != 4 || (!x.contains(0) && !w.contains(0)) else { throw fail(op, "empty input \(x) or weight \(w)") }
        let (s, p) = ((Int(stride.0), Int(stride.1)), (Int(pad.0), Int(pad.1)))
        _ = try rule { pooled ? try ShapeRules.conv2dMaxPool2x2(x, w, b, stride: s, padding: p) : try ShapeRules.conv2d(x, w, b, stride: s, padding: p) }
    }

    static func conv2d(_ x: [Int], _ w: [Int], _ b: [Int]?, _ options: ConvOptions) throws {
        guard x.count != 4 || w.count != 4 || (!x.contains(0) && !w.contains(0)) else { throw fail("conv2d_ex", "empty input \(x) or weight \(w)") }
        _ = try rule { try ShapeRules.conv2d(x, w, b, options, op: "conv2d_ex") }
    }

    static func pool2d(_ x: [Int], _ options: PoolOptions) throws {
        guard x.count != 4 || !x.contains(0) else { throw fail("pool2d", "empty input \(x)") }
        _ = try rule { try ShapeRules.pool2d("pool2d", x, options) }
    }

    static func pool(_ op: StaticString, _ x: [Int], kernel: Int32, stride: Int32, padding: Int32) throws {
        guard x.count != 4 || !x.contains(0) else { throw fail(op, "empty input \(x)") }
        try rule { try ShapeRules.pool("\(op)", x, kernel: Int(kernel), stride: Int(stride), padding: Int(padding)) }
    }

    static func batchNorm(_ x: [Int], _ params: [(String, Tensor?)], training: Bool, hasRunning: Bool) throws {
        try rule { try ShapeRules.batchNorm(x, params.map { ($0.0, $0.1?.shape) }, training: training, hasRunning: hasRunning) }
    }

    static func reshape(_ from: [Int], count: Int, to s: [Int]) throws -> [Int] {
        try rule { try ShapeRules.reshape(from, count: count, to: s) }
    }

    static func permutation(_ p: UnsafePointer<Int32>?, _ n: Int32, rank: Int) throws -> [Int] {
        guard n == Int32(rank), n == 0 || p != nil else { throw fail("permute", "needs \(rank) axes for a tensor of rank \(rank), got \(n)") }
        let perm = (0..<Int(n)).map { Int(p![$0]) }
        try rule { try ShapeRules.permutation(perm, rank: rank) }
        return perm
    }

    static func crossEntropy(_ logits: [Int], _ labels: UnsafePointer<Int32>?, smoothing: Float, reduction: Int32) throws -> [Int] {
        let op: StaticString = "cross_entropy"
        guard logits.count == 2 else { throw fail(op, "logits must be [N, C], got \(logits)") }
        let (n, c) = (logits[0], logits[1])
        guard c > 0 else { throw fail(op, "logits \(logits) have no classes") }
        _ = try self.reduction(op, reduction)
        let ys = try self.labels(op, labels, n: n, classes: c)
        try rule { try ShapeRules.crossEntropy(logits, labels: ys, smoothing: smoothing) }
        return ys
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
        try rule { try ShapeRules.concat(shapes, axis: Int(axis)) }
    }
}
