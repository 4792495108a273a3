/// How a loss combines per-sample values (pag_reduction).
public enum Reduction: Int32, Sendable {
    /// Mean over the batch: a scalar.
    case mean = 0
    /// Sum over the batch: a scalar.
    case sum = 1
    /// One value per sample.
    case none = 2
}

/// A tensor of the host: a `pag_tensor` handle and the context of the call it belongs to.
///
/// The host owns the values and records every operation for automatic differentiation. Every
/// operation throws the host's message when the host reports an error (a shape mismatch, a
/// released handle, ...). Binary elementwise operations broadcast like NumPy; axes may be negative.
///
/// A tensor an operation returns owns its handle: when the last reference to it goes away during
/// the call, it releases the handle, so the host frees the values as soon as neither the plugin
/// nor the recorded graph needs them (like PyTorch's reference counting). Without this, a deep
/// network's forward pass would hold every activation until the call returns.
public final class Tensor {
    /// The raw handle.
    public let handle: pag_tensor
    /// The call this handle belongs to.
    public let context: Context
    /// Whether going away releases `handle`: true for what the Kit's operations return.
    private var ownsHandle: Bool

    /// Wraps a handle of the call `context` (e.g. a parameter handle kept since create, or an
    /// argument of the call) without owning it: the handle stays valid when this value goes away.
    public init(handle: pag_tensor, context: Context) {
        self.handle = handle
        self.context = context
        ownsHandle = false
    }

    /// Wraps a handle the host made for this call; the value releases it when it goes away.
    init(owning handle: pag_tensor, context: Context) {
        self.handle = handle
        self.context = context
        ownsHandle = true
    }

    deinit {
        if ownsHandle && context.call.isOpen { host.pointee.release(ctx, handle) }
    }

    /// The handle, to return to the host as the call's result: this value stops owning it, so it
    /// stays valid after the value goes away (the host releases it with the call's other handles).
    func handedBack() -> pag_tensor {
        ownsHandle = false
        return handle
    }

    @inline(__always) var ctx: OpaquePointer { context.pointer }
    @inline(__always) var host: UnsafePointer<pag_host> { context.host }
    @inline(__always) func wrap(_ h: pag_tensor?, _ what: String) throws -> Tensor {
        try context.wrap(h, what)
    }

    // MARK: Shape and values

    /// Number of dimensions (0 for a scalar).
    public var rank: Int { Int(host.pointee.ndim(ctx, handle)) }

    /// The dimensions, e.g. [N, C, H, W]. (Empty if the handle is no longer valid; the host then
    /// holds an error that fails the call.)
    public var shape: [Int] {
        let n = host.pointee.ndim(ctx, handle)
        guard n > 0 else { return [] }
        return (0..<n).map { Int(host.pointee.dim(ctx, handle, $0)) }
    }

    /// Number of elements.
    public var count: Int { Int(host.pointee.numel(ctx, handle)) }

    /// A copy of the elements, row-major.
    public func scalars() throws -> [Float] {
        let n = count
        guard n >= 0 else { throw context.lastError("numel failed") }
        var out = [Float](repeating: 0, count: n)
        try context.check(host.pointee.copy_out(ctx, handle, &out, Int64(n)), "copy_out")
        return out
    }

    /// The value of a one-element tensor.
    public func item() throws -> Float {
        var v: Float = 0
        try context.check(host.pointee.item(ctx, handle, &v), "item")
        return v
    }

    /// Overwrites the elements in place without recording (only for parameters and buffers of
    /// the instance being called: custom initialization, buffer updates).
    public func assign(_ values: [Float]) throws {
        try context.check(host.pointee.copy_in(ctx, handle, values, Int64(values.count)), "copy_in")
    }

    // MARK: Lifetimes

    /// A handle to the same tensor that outlives this call (until `release()` or the end of the
    /// plugin instance). Use it in a later call with `Tensor(handle:context:)`.
    public func keep() throws -> pag_tensor {
        guard let h = host.pointee.keep(ctx, handle) else { throw context.lastError("keep failed") }
        return h
    }

    /// Releases this handle now (a kept handle, or a borrowed one the plugin is done with).
    /// Tensors the Kit's operations return release theirs by themselves when they go away. Do
    /// not use the tensor afterwards.
    public func release() {
        ownsHandle = false
        host.pointee.release(ctx, handle)
    }

    // MARK: Elementwise

    /// e^x.
    public func exp() throws -> Tensor { try wrap(host.pointee.exp(ctx, handle), "exp") }
    /// Natural logarithm.
    public func log() throws -> Tensor { try wrap(host.pointee.log(ctx, handle), "log") }
    /// Square root.
    public func sqrt() throws -> Tensor { try wrap(host.pointee.sqrt(ctx, handle), "sqrt") }
    /// x².
    public func squared() throws -> Tensor { try wrap(host.pointee.square(ctx, handle), "square") }
    /// x^p for a constant p.
    public func pow(_ p: Float) throws -> Tensor { try wrap(host.pointee.pow(ctx, handle, p), "pow") }
    /// |x| (gradient 0 at 0).
    public func abs() throws -> Tensor { try wrap(host.pointee.abs(ctx, handle), "abs") }
    /// Clamps into [low, high]; infinity for no bound.
    public func clamped(min low: Float = -.infinity, max high: Float = .infinity) throws -> Tensor {
        try wrap(host.pointee.clamp(ctx, handle, low, high), "clamp")
    }
    /// max(x, 0).
    public func relu() throws -> Tensor { try wrap(host.pointee.relu(ctx, handle), "relu") }
    /// log(1 + e^(βx)) / β, and x where βx > threshold (PyTorch's softplus).
    public func softplus(beta: Float = 1, threshold: Float = 20) throws -> Tensor {
        try wrap(host.pointee.softplus(ctx, handle, beta, threshold), "softplus")
    }
    /// Hyperbolic tangent.
    public func tanh() throws -> Tensor { try wrap(host.pointee.tanh(ctx, handle), "tanh") }
    /// Logistic sigmoid.
    public func sigmoid() throws -> Tensor { try wrap(host.pointee.sigmoid(ctx, handle), "sigmoid") }
    /// The error function (ABI 1.5).
    public func erf() throws -> Tensor { try wrap(host.pointee.erf(ctx, handle), "erf") }

    // MARK: Linear algebra and layers

    /// op(self) · op(other) for 2-D (or batched 3-D) tensors.
    public func matmul(_ other: Tensor, transposeSelf: Bool = false, transposeOther: Bool = false) throws -> Tensor {
        try wrap(host.pointee.matmul(ctx, handle, other.handle, transposeSelf ? 1 : 0, transposeOther ? 1 : 0), "matmul")
    }

    /// self [..., in] · weight[out, in]ᵀ + bias[out] (PyTorch's layout).
    public func linear(weight: Tensor, bias: Tensor? = nil) throws -> Tensor {
        try wrap(host.pointee.linear(ctx, handle, weight.handle, bias?.handle), "linear")
    }

    /// 2-D convolution of NCHW input with weight [O, C, KH, KW] and optional bias [O].
    public func conv2d(weight: Tensor, bias: Tensor? = nil, stride: (Int, Int) = (1, 1),
                       padding: (Int, Int) = (0, 0)) throws -> Tensor {
        try wrap(host.pointee.conv2d(ctx, handle, weight.handle, bias?.handle, Int32(stride.0), Int32(stride.1),
                             Int32(padding.0), Int32(padding.1)), "conv2d")
    }

    /// `conv2d(...).maxPool2d(kernel: 2)` in one host call (ABI 1.4): the same values and
    /// gradients, faster where the host pools the convolution's output tiles as they are made.
    public func conv2dMaxPool2x2(weight: Tensor, bias: Tensor? = nil, stride: (Int, Int) = (1, 1),
                                 padding: (Int, Int) = (0, 0)) throws -> Tensor {
        try wrap(host.pointee.conv2d_max_pool2x2(ctx, handle, weight.handle, bias?.handle, Int32(stride.0),
                                                 Int32(stride.1), Int32(padding.0), Int32(padding.1)),
                 "conv2d_max_pool2x2")
    }

    /// 2-D convolution with channel groups, dilation and asymmetric padding (ABI 1.5): weight
    /// [O, C / groups, KH, KW]; stride and dilation (height, width), padding (top, left, bottom,
    /// right).
    public func conv2d(weight: Tensor, bias: Tensor? = nil, stride: [Int], padding: [Int], dilation: [Int] = [1, 1],
                       groups: Int = 1) throws -> Tensor {
        let (s, d, p) = (try Self.int32s(stride, 2, "stride"), try Self.int32s(dilation, 2, "dilation"), try Self.int32s(padding, 4, "padding"))
        return try wrap(host.pointee.conv2d_ex(ctx, handle, weight.handle, bias?.handle, s, d, p, Int32(clamping: groups)), "conv2d_ex")
    }

    /// Max or average pooling with every window attribute (ABI 1.5): kernel, stride and dilation
    /// (height, width), padding (top, left, bottom, right), ceil mode, and whether padding counts
    /// in an average's divisor.
    public func pool2d(max: Bool, kernel: [Int], stride: [Int], padding: [Int], dilation: [Int] = [1, 1],
                       ceilMode: Bool = false, countIncludePad: Bool = true) throws -> Tensor {
        let k = try Self.int32s(kernel, 2, "kernel"), s = try Self.int32s(stride, 2, "stride")
        let d = try Self.int32s(dilation, 2, "dilation"), p = try Self.int32s(padding, 4, "padding")
        let mode = Int32((max ? PAG_POOL_MAX : PAG_POOL_AVG).rawValue)
        return try wrap(host.pointee.pool2d(ctx, handle, mode, k, s, d, p, ceilMode ? 1 : 0, countIncludePad ? 1 : 0), "pool2d")
    }

    private static func int32s(_ values: [Int], _ count: Int, _ what: String) throws -> [Int32] {
        guard values.count == count else { throw PluginKitError("\(what) needs \(count) values, got \(values)") }
        return values.map { Int32(clamping: $0) }
    }

    /// Max pooling over kernel × kernel windows; stride nil means the kernel size.
    public func maxPool2d(kernel: Int, stride: Int? = nil, padding: Int = 0) throws -> Tensor {
        try wrap(host.pointee.max_pool2d(ctx, handle, Int32(kernel), Int32(stride ?? 0), Int32(padding)), "max_pool2d")
    }

    /// Average pooling (zero padding counts in the average); stride nil means the kernel size.
    public func avgPool2d(kernel: Int, stride: Int? = nil, padding: Int = 0) throws -> Tensor {
        try wrap(host.pointee.avg_pool2d(ctx, handle, Int32(kernel), Int32(stride ?? 0), Int32(padding)), "avg_pool2d")
    }

    /// Mean over H and W: [N, C, H, W] -> [N, C, 1, 1].
    public func globalAvgPool2d() throws -> Tensor {
        try wrap(host.pointee.global_avg_pool2d(ctx, handle), "global_avg_pool2d")
    }

    /// Batch normalization of [N, C] or [N, C, H, W] (PyTorch semantics). In training it uses
    /// batch statistics and updates the running buffers in place.
    public func batchNorm(weight: Tensor?, bias: Tensor?, runningMean: Tensor?, runningVar: Tensor?,
                          training: Bool, momentum: Float = 0.1, eps: Float = 1e-5) throws -> Tensor {
        try wrap(host.pointee.batch_norm(ctx, handle, weight?.handle, bias?.handle, runningMean?.handle,
                                 runningVar?.handle, training ? 1 : 0, momentum, eps), "batch_norm")
    }

    /// Dropout with probability p when training; the identity otherwise.
    public func dropout(p: Float, training: Bool) throws -> Tensor {
        try wrap(host.pointee.dropout(ctx, handle, p, training ? 1 : 0), "dropout")
    }

    // MARK: Reductions and shapes

    /// Sum over `axes` (all axes when nil).
    public func sum(axes: [Int]? = nil, keepDims: Bool = false) throws -> Tensor {
        let a = axes?.map(Int32.init)
        return try wrap(host.pointee.sum(ctx, handle, a, Int32(a?.count ?? 0), keepDims ? 1 : 0), "sum")
    }

    /// Largest element over `axes` (all axes when nil; ABI 1.5): PyTorch's amax.
    public func amax(axes: [Int]? = nil, keepDims: Bool = false) throws -> Tensor {
        let a = axes?.map(Int32.init)
        return try wrap(host.pointee.amax(ctx, handle, a, Int32(a?.count ?? 0), keepDims ? 1 : 0), "amax")
    }

    /// Smallest element over `axes` (all axes when nil; ABI 1.5): PyTorch's amin.
    public func amin(axes: [Int]? = nil, keepDims: Bool = false) throws -> Tensor {
        let a = axes?.map(Int32.init)
        return try wrap(host.pointee.amin(ctx, handle, a, Int32(a?.count ?? 0), keepDims ? 1 : 0), "amin")
    }

    /// Mean over `axes` (all axes when nil).
    public func mean(axes: [Int]? = nil, keepDims: Bool = false) throws -> Tensor {
        let a = axes?.map(Int32.init)
        return try wrap(host.pointee.mean(ctx, handle, a, Int32(a?.count ?? 0), keepDims ? 1 : 0), "mean")
    }

    /// Same elements, new shape; one dimension may be -1.
    public func reshaped(_ shape: [Int]) throws -> Tensor {
        let dims = shape.map(Int64.init)
        return try wrap(host.pointee.reshape(ctx, handle, dims, Int32(dims.count)), "reshape")
    }

    /// [N, ...] -> [N, prod(...)].
    public func flattened() throws -> Tensor { try wrap(host.pointee.flatten(ctx, handle), "flatten") }

    /// Reorders axes: result.shape[i] = shape[permutation[i]].
    public func permuted(_ permutation: [Int]) throws -> Tensor {
        let p = permutation.map(Int32.init)
        return try wrap(host.pointee.permute(ctx, handle, p, Int32(p.count)), "permute")
    }

    /// Elements range.lowerBound ..< range.upperBound along `axis`.
    public func slice(axis: Int, _ range: Range<Int>) throws -> Tensor {
        try wrap(host.pointee.slice(ctx, handle, Int32(axis), Int64(range.lowerBound), Int64(range.upperBound)), "slice")
    }

    /// Zero padding along `axis`.
    public func padded(axis: Int, before: Int, after: Int) throws -> Tensor {
        try wrap(host.pointee.pad(ctx, handle, Int32(axis), Int64(before), Int64(after)), "pad")
    }

    /// Joins tensors along `axis`; other dimensions must agree.
    public static func concat(_ parts: [Tensor], axis: Int) throws -> Tensor {
        guard let first = parts.first else { throw PluginKitError("concat of no tensors") }
        let handles: [pag_tensor?] = parts.map { $0.handle }
        return try first.wrap(first.host.pointee.concat(first.ctx, handles, Int32(handles.count), Int32(axis)), "concat")
    }

    /// Repeats size-1 (or missing leading) dimensions up to `shape`.
    public func broadcast(to shape: [Int]) throws -> Tensor {
        let dims = shape.map(Int64.init)
        return try wrap(host.pointee.broadcast_to(ctx, handle, dims, Int32(dims.count)), "broadcast_to")
    }

    // MARK: Softmax and losses

    /// Numerically stable log-softmax along `axis`.
    public func logSoftmax(axis: Int = -1) throws -> Tensor {
        try wrap(host.pointee.log_softmax(ctx, handle, Int32(axis)), "log_softmax")
    }

    /// Softmax along `axis`.
    public func softmax(axis: Int = -1) throws -> Tensor {
        try wrap(host.pointee.softmax(ctx, handle, Int32(axis)), "softmax")
    }

    /// Cross-entropy of these logits [N, C] against labels (PyTorch's F.cross_entropy).
    public func crossEntropy(labels: [Int32], smoothing: Float = 0, reduction: Reduction = .mean) throws -> Tensor {
        try wrap(host.pointee.cross_entropy(ctx, handle, labels, smoothing, reduction.rawValue), "cross_entropy")
    }

    /// Mean squared error against a tensor of the same shape.
    public func mse(_ target: Tensor, reduction: Reduction = .mean) throws -> Tensor {
        try wrap(host.pointee.mse(ctx, handle, target.handle, reduction.rawValue), "mse")
    }

    /// The L1 (p = 1) or L2 (p = 2) norm of each sample: [N, ...] -> [N].
    public func normPerSample(p: Int = 2) throws -> Tensor {
        try wrap(host.pointee.norm_per_sample(ctx, handle, Int32(p)), "norm_per_sample")
    }

    // MARK: Automatic differentiation

    /// The same values, cut from the graph.
    public func detached() throws -> Tensor { try wrap(host.pointee.detach(ctx, handle), "detach") }

    /// A new leaf with these values that gradients can be taken with respect to.
    public func requiringGrad() throws -> Tensor { try wrap(host.pointee.requires_grad(ctx, handle), "requires_grad") }
}

// MARK: - Operators

extension Tensor {
    public static func + (a: Tensor, b: Tensor) throws -> Tensor { try a.wrap(a.host.pointee.add(a.ctx, a.handle, b.handle), "add") }
    public static func - (a: Tensor, b: Tensor) throws -> Tensor { try a.wrap(a.host.pointee.sub(a.ctx, a.handle, b.handle), "sub") }
    public static func * (a: Tensor, b: Tensor) throws -> Tensor { try a.wrap(a.host.pointee.mul(a.ctx, a.handle, b.handle), "mul") }
    public static func / (a: Tensor, b: Tensor) throws -> Tensor { try a.wrap(a.host.pointee.div(a.ctx, a.handle, b.handle), "div") }

    public static func + (a: Tensor, s: Float) throws -> Tensor { try a.wrap(a.host.pointee.add_scalar(a.ctx, a.handle, s), "add_scalar") }
    public static func - (a: Tensor, s: Float) throws -> Tensor { try a + (-s) }
    public static func * (a: Tensor, s: Float) throws -> Tensor { try a.wrap(a.host.pointee.mul_scalar(a.ctx, a.handle, s), "mul_scalar") }
    public static func / (a: Tensor, s: Float) throws -> Tensor { try a * (1 / s) }

    public static func + (s: Float, a: Tensor) throws -> Tensor { try a + s }
    public static func - (s: Float, a: Tensor) throws -> Tensor { try (-a) + s }
    public static func * (s: Float, a: Tensor) throws -> Tensor { try a * s }
    public static func / (s: Float, a: Tensor) throws -> Tensor { try a.pow(-1) * s }

    public static prefix func - (a: Tensor) throws -> Tensor { try a.wrap(a.host.pointee.neg(a.ctx, a.handle), "neg") }
}

// MARK: - Gradients

/// Gradients of `outputs` (weighted by `gradOutputs`, or ones) with respect to each of `inputs`.
/// An input the outputs do not depend on gets zeros. With `createGraph` the gradients are
/// themselves differentiable (gradient penalties, double backpropagation).
public func grad(of outputs: [Tensor], wrt inputs: [Tensor], gradOutputs: [Tensor]? = nil,
                 createGraph: Bool = false) throws -> [Tensor] {
    guard let c = outputs.first?.context ?? inputs.first?.context else { return [] }
    if let g = gradOutputs, g.count != outputs.count {
        throw PluginKitError("grad: \(g.count) gradOutputs for \(outputs.count) outputs")
    }
    let outs: [pag_tensor?] = outputs.map { $0.handle }
    let ins: [pag_tensor?] = inputs.map { $0.handle }
    let gouts: [pag_tensor?]? = gradOutputs?.map { $0.handle }
    var grads = [pag_tensor?](repeating: nil, count: inputs.count)
    let status = c.host.pointee.grad(c.pointer, outs, Int32(outs.count), gouts, ins, Int32(ins.count),
                                     createGraph ? 1 : 0, &grads)
    try c.check(status, "grad")
    return try grads.map { try c.wrap($0, "grad") }
}

/// The gradient of `output` with respect to each of `inputs`.
public func grad(of output: Tensor, wrt inputs: [Tensor], createGraph: Bool = false) throws -> [Tensor] {
    try grad(of: [output], wrt: inputs, createGraph: createGraph)
}

/// The gradient of `output` with respect to `input`.
public func grad(of output: Tensor, wrt input: Tensor, createGraph: Bool = false) throws -> Tensor {
    try grad(of: [output], wrt: [input], createGraph: createGraph)[0]
}
