/// An n-dimensional float32 array, contiguous and row-major (NCHW for images).
///
/// A tensor is a node of the autodiff graph: `gradFn` records the operation that made it, so
/// `grad(of:wrt:)` can walk back to the inputs. Leaves the user wants gradients for set
/// `requiresGrad`. Tensors are reference types; the graph and its buffers are freed as soon
/// as nothing refers to them.
public final class Tensor {
    public let shape: [Int]
    let storage: Storage
    /// The operation that produced this tensor, when it was recorded for differentiation.
    public internal(set) var gradFn: GradFn?
    /// True for leaves whose gradient is wanted (parameters, inputs of an input gradient).
    public var requiresGrad: Bool
    /// Gradient accumulated by `backward()` on leaves.
    public var grad: Tensor?

    init(shape: [Int], storage: Storage, gradFn: GradFn? = nil, requiresGrad: Bool = false) {
        self.shape = shape
        self.storage = storage
        self.gradFn = gradFn
        self.requiresGrad = requiresGrad
    }

    /// Uninitialized tensor (kernels write every element).
    convenience init(uninitialized shape: [Int]) {
        self.init(shape: shape, storage: Storage(count: shape.reduce(1, *)))
    }

    /// A tensor with the given values (row-major); `values.count` must match the shape.
    public convenience init(_ values: [Float], shape: [Int], requiresGrad: Bool = false) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in shape \(shape)")
        precondition(values.count == shape.reduce(1, *),
                     "\(values.count) values do not fill shape \(shape)")
        self.init(uninitialized: shape)
        values.withUnsafeBufferPointer { src in
            storage.pointer.update(from: src.baseAddress!, count: values.count)
        }
        self.requiresGrad = requiresGrad
    }

    /// A scalar (shape []).
    public convenience init(scalar: Float) { self.init([scalar], shape: []) }

    /// Tensor filled with `value`.
    public static func full(_ shape: [Int], _ value: Float, requiresGrad: Bool = false) -> Tensor {
        let t = Tensor(uninitialized: shape)
        t.storage.pointer.update(repeating: value, count: t.count)
        t.requiresGrad = requiresGrad
        return t
    }
    public static func zeros(_ shape: [Int], requiresGrad: Bool = false) -> Tensor { full(shape, 0, requiresGrad: requiresGrad) }
    public static func ones(_ shape: [Int], requiresGrad: Bool = false) -> Tensor { full(shape, 1, requiresGrad: requiresGrad) }

    /// Standard-normal draws scaled by `std` and shifted by `mean`.
    public static func randn(_ shape: [Int], mean: Float = 0, std: Float = 1,
                             rng: inout RandomGenerator, requiresGrad: Bool = false) -> Tensor {
        let t = Tensor(uninitialized: shape)
        rng.fillNormal(t.buffer, mean: mean, std: std)
        t.requiresGrad = requiresGrad
        return t
    }

    /// Uniform draws in [low, high).
    public static func rand(_ shape: [Int], low: Float = 0, high: Float = 1,
                            rng: inout RandomGenerator, requiresGrad: Bool = false) -> Tensor {
        let t = Tensor(uninitialized: shape)
        rng.fillUniform(t.buffer, low: low, high: high)
        t.requiresGrad = requiresGrad
        return t
    }

    public var count: Int { storage.count }
    public var rank: Int { shape.count }
    /// Raw element pointer (contiguous, `count` floats).
    public var pointer: UnsafeMutablePointer<Float> { storage.pointer }
    var buffer: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: storage.pointer, count: storage.count) }

    /// The elements in row-major order.
    public var values: [Float] { Array(UnsafeBufferPointer(start: storage.pointer, count: count)) }
    /// The single element of a one-element tensor.
    public var item: Float {
        precondition(count == 1, "item of a tensor with shape \(shape)")
        return storage.pointer[0]
    }

    /// True when gradients flow through this tensor.
    public var isDifferentiable: Bool { requiresGrad || gradFn != nil }

    /// The same values, cut from the graph (no gradient flows back through it).
    public func detached() -> Tensor { Tensor(shape: shape, storage: storage) }

    /// A copy with its own storage, cut from the graph.
    public func copy() -> Tensor {
        let t = Tensor(uninitialized: shape)
        t.storage.pointer.update(from: storage.pointer, count: count)
        return t
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        let vals = values.prefix(8).map { String($0) }.joined(separator: ", ")
        return "Tensor(shape: \(shape), values: [\(vals)\(count > 8 ? ", ..." : "")])"
    }
}

/// Shape helpers.
enum Shape {
    static func count(_ s: [Int]) -> Int { s.reduce(1, *) }

    /// Row-major strides of `s`.
    static func strides(_ s: [Int]) -> [Int] {
        var st = [Int](repeating: 1, count: s.count)
        var acc = 1
        for i in stride(from: s.count - 1, through: 0, by: -1) { st[i] = acc; acc *= s[i] }
        return st
    }

    /// NumPy broadcasting of two shapes, or nil when they are incompatible.
    static func broadcast(_ a: [Int], _ b: [Int]) -> [Int]? {
        let n = max(a.count, b.count)
        var out = [Int](repeating: 1, count: n)
        for i in 0..<n {
            let da = i < n - a.count ? 1 : a[i - (n - a.count)]
            let db = i < n - b.count ? 1 : b[i - (n - b.count)]
            if da == db || db == 1 { out[i] = da } else if da == 1 { out[i] = db } else { return nil }
        }
        return out
    }

    /// Normalizes a possibly negative axis.
    static func axis(_ a: Int, rank: Int) -> Int {
        let r = a < 0 ? a + rank : a
        precondition(r >= 0 && r < max(rank, 1), "axis \(a) out of range for rank \(rank)")
        return r
    }
}
