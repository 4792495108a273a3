import CPAGPlugin
import PAGTensor

// The differentiable operations of the pag_host table. Each entry checks shapes and arguments
// (Check) before calling the engine, whose own checks would abort the process.

@inline(__always)
private func unary(_ c: OpaquePointer?, _ x: OpaquePointer?, _ op: StaticString,
                   _ f: (Tensor) throws -> Tensor) -> OpaquePointer? {
    guard let ctx = CallContext.from(c) else { return nil }
    return ctx.op(op) { try f(try ctx.tensor(x, op, 1)) }
}

@inline(__always)
private func binary(_ c: OpaquePointer?, _ a: OpaquePointer?, _ b: OpaquePointer?, _ op: StaticString,
                    _ f: (Tensor, Tensor) -> Tensor) -> OpaquePointer? {
    guard let ctx = CallContext.from(c) else { return nil }
    return ctx.op(op) {
        let x = try ctx.tensor(a, op, 1), y = try ctx.tensor(b, op, 2)
        if x.shape != y.shape { _ = try Check.broadcast(op, x.shape, y.shape) }
        return f(x, y)
    }
}

private func reduce(_ c: OpaquePointer?, _ x: OpaquePointer?, _ axes: UnsafePointer<Int32>?, _ n: Int32, _ keep: Int32,
                    _ op: StaticString, _ f: (Tensor, [Int]?, Bool) -> Tensor) -> OpaquePointer? {
    unary(c, x, op) { t in f(t, try Check.axes(op, axes, n, rank: t.rank), keep != 0) }
}

/// amax / amin: a reduction that has no value over an empty tensor.
private func extremum(_ c: OpaquePointer?, _ x: OpaquePointer?, _ axes: UnsafePointer<Int32>?, _ n: Int32, _ keep: Int32,
                      _ op: StaticString, _ f: (Tensor, [Int]?, Bool) -> Tensor) -> OpaquePointer? {
    unary(c, x, op) { t in
        guard t.count > 0 else { throw RuntimeError("\(op): the input \(t.shape) is empty, so it has no extremum") }
        return f(t, try Check.axes(op, axes, n, rank: t.rank), keep != 0)
    }
}

private func pool(_ c: OpaquePointer?, _ x: OpaquePointer?, _ k: Int32, _ s: Int32, _ p: Int32, _ op: StaticString,
                  _ f: (Tensor, Int, Int, Int) -> Tensor) -> OpaquePointer? {
    unary(c, x, op) { t in
        try Check.pool(op, t.shape, kernel: k, stride: s, padding: p)
        return f(t, Int(k), Int(s == 0 ? k : s), Int(p))
    }
}

/// conv2d, or conv2d_max_pool2x2 (the same followed by a 2x2 max pool) when `pooled`.
private func convolution(_ c: OpaquePointer?, _ x: OpaquePointer?, _ w: OpaquePointer?, _ b: OpaquePointer?,
                         _ stride: (Int32, Int32), _ pad: (Int32, Int32), pooled: Bool) -> OpaquePointer? {
    let op = Check.convolutionName(pooled: pooled)
    return withContext(c) { ctx in
        ctx.op(op) {
            let input = try ctx.tensor(x, op, 1), weight = try ctx.tensor(w, op, 2)
            let bias = try ctx.optionalTensor(b, op, 3)
            try Check.conv2d(input.shape, weight.shape, bias?.shape, stride: stride, pad: pad, pooled: pooled)
            let (s, p) = ((Int(stride.0), Int(stride.1)), (Int(pad.0), Int(pad.1)))
            return pooled ? Tensor.conv2dMaxPool2x2(input, weight: weight, bias: bias, stride: s, padding: p)
                          : Tensor.conv2d(input, weight: weight, bias: bias, stride: s, padding: p)
        }
    }
}

/// Reads a host-table array argument of `count` Int32 values, each at least `minimum`.
private func intArray(_ p: UnsafePointer<Int32>?, _ count: Int, _ what: String, minimum: Int, _ op: StaticString) throws -> [Int] {
    guard let p else { throw RuntimeError("\(op): \(what) is NULL (expected \(count) values)") }
    let values = (0..<count).map { Int(p[$0]) }
    guard values.allSatisfy({ $0 >= minimum }) else { throw RuntimeError("\(op): \(what) \(values) must be at least \(minimum)") }
    return values
}

/// conv2d_ex: groups, dilation and asymmetric padding (ABI 1.5).
private func generalConvolution(_ c: OpaquePointer?, _ x: OpaquePointer?, _ w: OpaquePointer?, _ b: OpaquePointer?,
                                _ stride: UnsafePointer<Int32>?, _ dilation: UnsafePointer<Int32>?,
                                _ pads: UnsafePointer<Int32>?, _ groups: Int32) -> OpaquePointer? {
    let op: StaticString = "conv2d_ex"
    return withContext(c) { ctx in
        ctx.op(op) {
            let input = try ctx.tensor(x, op, 1), weight = try ctx.tensor(w, op, 2)
            let bias = try ctx.optionalTensor(b, op, 3)
            let s = try intArray(stride, 2, "stride", minimum: 1, op), d = try intArray(dilation, 2, "dilation", minimum: 1, op)
            let options = ConvOptions(stride: (s[0], s[1]), pads: try intArray(pads, 4, "pads", minimum: 0, op),
                                      dilation: (d[0], d[1]), groups: Int(groups))
            try Check.conv2d(input.shape, weight.shape, bias?.shape, options)
            return Tensor.conv2d(input, weight: weight, bias: bias, options: options)
        }
    }
}

/// pool2d: max or average pooling with every window attribute (ABI 1.5).
private func generalPool(_ c: OpaquePointer?, _ x: OpaquePointer?, _ mode: Int32, _ kernel: UnsafePointer<Int32>?,
                         _ stride: UnsafePointer<Int32>?, _ dilation: UnsafePointer<Int32>?, _ pads: UnsafePointer<Int32>?,
                         _ ceil: Int32, _ includePad: Int32) -> OpaquePointer? {
    unary(c, x, "pool2d") { t in
        let op: StaticString = "pool2d"
        guard mode == Int32(PAG_POOL_MAX.rawValue) || mode == Int32(PAG_POOL_AVG.rawValue) else {
            throw RuntimeError("pool2d: mode \(mode) is neither PAG_POOL_MAX (0) nor PAG_POOL_AVG (1)")
        }
        let k = try intArray(kernel, 2, "kernel", minimum: 1, op), s = try intArray(stride, 2, "stride", minimum: 1, op)
        let d = try intArray(dilation, 2, "dilation", minimum: 1, op)
        let options = PoolOptions(kernel: (k[0], k[1]), stride: (s[0], s[1]), dilation: (d[0], d[1]),
                                  pads: try intArray(pads, 4, "pads", minimum: 0, op), ceilMode: ceil != 0, countIncludePad: includePad != 0)
        try Check.pool2d(t.shape, options)
        return t.pool2d(max: mode == Int32(PAG_POOL_MAX.rawValue), options: options)
    }
}

private func softmaxLike(_ c: OpaquePointer?, _ x: OpaquePointer?, _ axis: Int32, _ op: StaticString,
                         _ f: (Tensor, Int) -> Tensor) -> OpaquePointer? {
    unary(c, x, op) { t in
        guard t.rank >= 1 else { throw RuntimeError("\(op): needs a tensor of rank >= 1, got a scalar") }
        return f(t, try Check.axis(op, axis, rank: t.rank))
    }
}

extension HostTable {
    static func installOps(_ h: inout pag_host) {
        h.add = { c, a, b in binary(c, a, b, "add", +) }
        h.sub = { c, a, b in binary(c, a, b, "sub", -) }
        h.mul = { c, a, b in binary(c, a, b, "mul", *) }
        h.div = { c, a, b in binary(c, a, b, "div", /) }
        h.add_scalar = { c, x, s in unary(c, x, "add_scalar") { $0 + s } }
        h.mul_scalar = { c, x, s in unary(c, x, "mul_scalar") { $0 * s } }
        h.neg = { c, x in unary(c, x, "neg") { -$0 } }
        h.exp = { c, x in unary(c, x, "exp") { $0.exp() } }
        h.log = { c, x in unary(c, x, "log") { $0.log() } }
        h.sqrt = { c, x in unary(c, x, "sqrt") { $0.sqrt() } }
        h.square = { c, x in unary(c, x, "square") { $0.square() } }
        h.pow = { c, x, p in unary(c, x, "pow") { $0.pow(p) } }
        h.abs = { c, x in unary(c, x, "abs") { $0.abs() } }
        h.clamp = { c, x, lo, hi in
            unary(c, x, "clamp") { t in
                guard !lo.isNaN, !hi.isNaN, lo <= hi else { throw RuntimeError("clamp: low \(lo) is above high \(hi)") }
                return t.clamp(min: lo, max: hi)
            }
        }
        h.relu = { c, x in unary(c, x, "relu") { $0.relu() } }
        h.softplus = { c, x, beta, threshold in
            unary(c, x, "softplus") { t in
                guard beta > 0 else { throw RuntimeError("softplus: beta must be positive, got \(beta)") }
                return t.softplus(beta: beta, threshold: threshold)
            }
        }
        h.tanh = { c, x in unary(c, x, "tanh") { $0.tanh() } }
        h.sigmoid = { c, x in unary(c, x, "sigmoid") { $0.sigmoid() } }

        h.matmul = { c, a, b, ta, tb in
            withContext(c) { ctx in
                ctx.op("matmul") {
                    let x = try ctx.tensor(a, "matmul", 1), y = try ctx.tensor(b, "matmul", 2)
                    try Check.matmul(x.shape, y.shape, ta != 0, tb != 0)
                    return Tensor.matmul(x, y, transposeA: ta != 0, transposeB: tb != 0)
                }
            }
        }
        h.linear = { c, x, w, b in
            withContext(c) { ctx in
                ctx.op("linear") {
                    let input = try ctx.tensor(x, "linear", 1), weight = try ctx.tensor(w, "linear", 2)
                    let bias = try ctx.optionalTensor(b, "linear", 3)
                    try Check.linear(input.shape, weight.shape, bias?.shape)
                    return Tensor.linear(input, weight: weight, bias: bias)
                }
            }
        }
        h.conv2d = { c, x, w, b, sh, sw, ph, pw in convolution(c, x, w, b, (sh, sw), (ph, pw), pooled: false) }
        h.conv2d_max_pool2x2 = { c, x, w, b, sh, sw, ph, pw in convolution(c, x, w, b, (sh, sw), (ph, pw), pooled: true) }
        h.conv2d_ex = { c, x, w, b, stride, dilation, pads, groups in generalConvolution(c, x, w, b, stride, dilation, pads, groups) }
        h.pool2d = { c, x, mode, k, s, d, p, ceil, include in generalPool(c, x, mode, k, s, d, p, ceil, include) }
        h.erf = { c, x in unary(c, x, "erf") { $0.erf() } }
        h.amax = { c, x, axes, n, keep in extremum(c, x, axes, n, keep, "amax") { $0.amax(axes: $1, keepDims: $2) } }
        h.amin = { c, x, axes, n, keep in extremum(c, x, axes, n, keep, "amin") { $0.amin(axes: $1, keepDims: $2) } }
        h.max_pool2d = { c, x, k, s, p in pool(c, x, k, s, p, "max_pool2d") { $0.maxPool2d(kernel: $1, stride: $2, padding: $3) } }
        h.avg_pool2d = { c, x, k, s, p in pool(c, x, k, s, p, "avg_pool2d") { $0.avgPool2d(kernel: $1, stride: $2, padding: $3) } }
        h.global_avg_pool2d = { c, x in
            unary(c, x, "global_avg_pool2d") { t in
                guard t.rank == 4 else { throw RuntimeError("global_avg_pool2d: input must be [N, C, H, W], got \(t.shape)") }
                return t.globalAvgPool2d()
            }
        }
        h.batch_norm = { c, x, w, b, rm, rv, training, momentum, eps in
            withContext(c) { ctx in
                ctx.op("batch_norm") {
                    let op: StaticString = "batch_norm"
                    let input = try ctx.tensor(x, op, 1)
                    let weight = try ctx.optionalTensor(w, op, 2), bias = try ctx.optionalTensor(b, op, 3)
                    let mean = try ctx.optionalTensor(rm, op, 4), variance = try ctx.optionalTensor(rv, op, 5)
                    try Check.batchNorm(input.shape, [("weight", weight), ("bias", bias), ("running_mean", mean), ("running_var", variance)],
                                        training: training != 0, hasRunning: mean != nil && variance != nil)
                    return Tensor.batchNorm(input, weight: weight, bias: bias, runningMean: mean, runningVar: variance,
                                            training: training != 0, momentum: momentum, eps: eps)
                }
            }
        }
        h.dropout = { c, x, p, training in
            withContext(c) { ctx in
                ctx.op("dropout") {
                    let t = try ctx.tensor(x, "dropout", 1)
                    guard p >= 0, p < 1 else { throw RuntimeError("dropout: probability \(p) is outside [0, 1)") }
                    return t.dropout(p: p, training: training != 0, rng: &ctx.rng)
                }
            }
        }

        h.sum = { c, x, axes, n, keep in reduce(c, x, axes, n, keep, "sum") { $0.sum(axes: $1, keepDims: $2) } }
        h.mean = { c, x, axes, n, keep in reduce(c, x, axes, n, keep, "mean") { $0.mean(axes: $1, keepDims: $2) } }
        h.reshape = { c, x, shape, ndim in
            unary(c, x, "reshape") { t in
                guard ndim >= 0, ndim <= Check.maxRank, ndim == 0 || shape != nil else {
                    throw RuntimeError("reshape: bad shape (ndim \(ndim))")
                }
                let s = (0..<Int(ndim)).map { Int(shape![$0]) }
                return t.reshape(try Check.reshape(t.shape, count: t.count, to: s))
            }
        }
        h.flatten = { c, x in
            unary(c, x, "flatten") { t in t.reshape([t.shape.first ?? 1, t.shape.dropFirst().reduce(1, *)]) }
        }
        h.permute = { c, x, perm, n in unary(c, x, "permute") { t in t.permute(try Check.permutation(perm, n, rank: t.rank)) } }
        h.slice = { c, x, axis, start, end in
            unary(c, x, "slice") { t in
                guard t.rank >= 1 else { throw RuntimeError("slice: cannot slice a scalar") }
                let ax = try Check.axis("slice", axis, rank: t.rank)
                guard start >= 0, start <= end, end <= Int64(t.shape[ax]) else {
                    throw RuntimeError("slice: \(start)..<\(end) is outside axis \(ax) of size \(t.shape[ax]) (shape \(t.shape))")
                }
                return t.slice(axis: ax, Int(start)..<Int(end))
            }
        }
        h.pad = { c, x, axis, before, after in
            unary(c, x, "pad") { t in
                guard t.rank >= 1 else { throw RuntimeError("pad: cannot pad a scalar") }
                let ax = try Check.axis("pad", axis, rank: t.rank)
                guard before >= 0, after >= 0, before + after <= Int64(Check.maxElements) else {
                    throw RuntimeError("pad: before \(before) and after \(after) must be >= 0")
                }
                return t.pad(axis: ax, before: Int(before), after: Int(after))
            }
        }
        h.concat = { c, parts, n, axis in
            withContext(c) { ctx in
                ctx.op("concat") {
                    guard n >= 1, let parts else { throw RuntimeError("concat: needs at least one tensor (n = \(n))") }
                    let ts = try (0..<Int(n)).map { try ctx.tensor(parts[$0], "concat", $0 + 1) }
                    let ax = try Check.concat(ts.map(\.shape), axis: axis)
                    return Tensor.concat(ts, axis: ax)
                }
            }
        }
        h.broadcast_to = { c, x, shape, ndim in
            unary(c, x, "broadcast_to") { t in
                let target = try Check.shape("broadcast_to", shape, ndim)
                guard (try? Check.broadcast("broadcast_to", t.shape, target)) == target else {
                    throw RuntimeError("broadcast_to: cannot broadcast \(t.shape) to \(target)")
                }
                return t.broadcast(to: target)
            }
        }

        h.log_softmax = { c, x, axis in softmaxLike(c, x, axis, "log_softmax") { $0.logSoftmax(axis: $1) } }
        h.softmax = { c, x, axis in softmaxLike(c, x, axis, "softmax") { $0.softmax(axis: $1) } }
        h.cross_entropy = { c, logits, labels, smoothing, reduction in
            unary(c, logits, "cross_entropy") { t in
                let ys = try Check.crossEntropy(t.shape, labels, smoothing: smoothing, reduction: reduction)
                return Tensor.crossEntropy(t, labels: ys, labelSmoothing: smoothing,
                                           reduction: try Check.reduction("cross_entropy", reduction))
            }
        }
        h.mse = { c, a, b, reduction in
            withContext(c) { ctx in
                ctx.op("mse") {
                    let x = try ctx.tensor(a, "mse", 1), y = try ctx.tensor(b, "mse", 2)
                    guard x.shape == y.shape else { throw RuntimeError("mse: shapes \(x.shape) and \(y.shape) differ") }
                    return Tensor.mse(x, y, reduction: try Check.reduction("mse", reduction))
                }
            }
        }
        h.norm_per_sample = { c, x, p in
            unary(c, x, "norm_per_sample") { t in
                guard t.rank >= 1 else { throw RuntimeError("norm_per_sample: needs a batch dimension, got a scalar") }
                guard p == 1 || p == 2 else { throw RuntimeError("norm_per_sample: p must be 1 or 2, got \(p)") }
                return t.normPerSample(p: Int(p))
            }
        }

        h.detach = { c, x in unary(c, x, "detach") { $0.detached() } }
        h.requires_grad = { c, x in
            unary(c, x, "requires_grad") { t in
                let leaf = t.detached()
                leaf.requiresGrad = true
                return leaf
            }
        }
        h.grad = { c, outs, nOut, gradOuts, ins, nIn, createGraph, grads in
            guard let ctx = CallContext.from(c) else { return PAG_ERROR }
            if let grads, nIn > 0 { for i in 0..<Int(nIn) { grads[i] = nil } }
            var results: [Tensor] = []
            let st = ctx.status("grad") {
                guard nOut >= 1, nIn >= 1, let outs, let ins, grads != nil else {
                    throw RuntimeError("grad: needs at least one output and one input and non-NULL arrays (n_outputs \(nOut), n_inputs \(nIn))")
                }
                let o = try (0..<Int(nOut)).map { try ctx.tensor(outs[$0], "grad", 1) }
                let i = try (0..<Int(nIn)).map { try ctx.tensor(ins[$0], "grad", 5) }
                let g = try gradOuts.map { p in try (0..<Int(nOut)).map { try ctx.tensor(p[$0], "grad", 4) } }
                do {
                    results = try PAGTensor.grad(of: o, wrt: i, gradOutputs: g, createGraph: createGraph != 0)
                } catch {
                    throw RuntimeError("grad: \(error)")
                }
            }
            if st == PAG_OK, let grads { for (k, t) in results.enumerated() { grads[k] = ctx.push(t) } }
            return st
        }
        h.set_grad_enabled = { c, enabled in
            guard let ctx = CallContext.from(c) else { return 0 }
            let old: Int32 = ctx.gradEnabled ? 1 : 0
            ctx.gradEnabled = enabled != 0
            return old
        }
    }
}
