// Group normalization (PyTorch's F.group_norm) as an engine primitive.
//
// Forward: one fused pass per (sample, group): mean and biased variance in Double, then
// y = (x - mean) * invstd * weight[c] + bias[c] written directly. The node saves only the
// per-group statistics.
//
// Backward (dL/dx, dL/dweight, dL/dbias) is written in differentiable operations:
//   xhat = (x - mean) * invstd          (per group of C/G channels x H x W values)
//   dbias = sum_{n,h,w} g,  dweight = sum_{n,h,w} g * xhat
//   dx = invstd * (gw - mean(gw) - xhat * mean(gw * xhat)),  gw = g * weight  (means per group)
// When the backward pass is itself recorded (create_graph), xhat and invstd are rebuilt from x
// with differentiable operations, so derivatives of any order are exact; otherwise the saved
// statistics give xhat in one fused pass.

/// Per-(sample, group) statistics of a group-norm input.
struct GroupNormStats {
    let n: Int, c: Int, groups: Int, spatial: Int
    var perGroup: Int { (c / groups) * spatial }
    var mean: [Float], invstd: [Float]

    init(_ x: Tensor, groups: Int, eps: Float) {
        n = x.shape[0]; c = x.shape[1]; self.groups = groups
        spatial = x.shape[2...].reduce(1, *)
        let m = (c / groups) * spatial, count = n * groups
        var mu = [Float](repeating: 0, count: count), rs = mu
        let px = x.pointer
        mu.withUnsafeMutableBufferPointer { pm in
            rs.withUnsafeMutableBufferPointer { pr in
                let pmu = pm.baseAddress!, prs = pr.baseAddress!
                Parallel.forEach(count, cost: m * 2) { r in
                    for i in r {
                        let src = px + i * m
                        // Two passes (sum, then squared deviations), partial sums carried in Double.
                        var j = 0
                        var acc = SIMD8<Float>()
                        var accD = 0.0
                        while j + 8 <= m {
                            acc += UnsafeRawPointer(src + j).loadUnaligned(as: SIMD8<Float>.self)
                            j += 8
                            if j & 1023 == 0 { accD += Double(acc.sum()); acc = SIMD8<Float>() }
                        }
                        accD += Double(acc.sum())
                        while j < m { accD += Double(src[j]); j += 1 }
                        let meanD = accD / Double(m)
                        let mf = Float(meanD)
                        var q = SIMD8<Float>(), qD = 0.0
                        j = 0
                        while j + 8 <= m {
                            let d = UnsafeRawPointer(src + j).loadUnaligned(as: SIMD8<Float>.self) - SIMD8(repeating: mf)
                            q += d * d
                            j += 8
                            if j & 1023 == 0 { qD += Double(q.sum()); q = SIMD8<Float>() }
                        }
                        qD += Double(q.sum())
                        while j < m { let d = Double(src[j] - mf); qD += d * d; j += 1 }
                        let corr = meanD - Double(mf)
                        let variance = Swift.max(0, qD / Double(m) - corr * corr)
                        pmu[i] = mf
                        prs[i] = Float(1 / (variance + Double(eps)).squareRoot())
                    }
                }
            }
        }
        mean = mu; invstd = rs
    }

    /// out[n, c, :] = (x - mean[n, g]) * invstd[n, g] * w[c] + b[c] (w, b may be nil).
    func apply(_ x: Tensor, weight: Tensor?, bias: Tensor?) -> Tensor {
        let out = Tensor(uninitialized: x.shape)
        let px = x.pointer, po = out.pointer
        let pw = weight?.pointer, pb = bias?.pointer
        let cpg = c / groups, sp = spatial
        mean.withUnsafeBufferPointer { pm in
            invstd.withUnsafeBufferPointer { pr in
                let pmu = pm.baseAddress!, prs = pr.baseAddress!
                Parallel.forEach(n * c, cost: sp) { r in
                    for row in r {
                        let ni = row / c, ci = row % c, gi = ni * groups + ci / cpg
                        let a = prs[gi] * (pw?[ci] ?? 1)
                        let k = (pb?[ci] ?? 0) - pmu[gi] * a
                        let src = px + row * sp, dst = po + row * sp
                        for j in 0..<sp { dst[j] = src[j] * a + k }
                    }
                }
            }
        }
        return out
    }
}

extension Tensor {
    /// Group normalization of [N, C, ...] input over `groups` groups of C / groups channels
    /// (PyTorch's F.group_norm): biased variance, eps inside the square root; weight and bias
    /// [C] are optional.
    public func groupNorm(groups: Int, weight: Tensor? = nil, bias: Tensor? = nil, eps: Float = 1e-5) -> Tensor {
        precondition(rank >= 2, "group_norm: input must be [N, C, ...], got \(shape)")
        let c = shape[1]
        precondition(groups > 0 && c % groups == 0, "group_norm: \(c) channels do not split into \(groups) groups")
        if let weight { precondition(weight.shape == [c], "group_norm: weight shape \(weight.shape), expected [\(c)]") }
        if let bias { precondition(bias.shape == [c], "group_norm: bias shape \(bias.shape), expected [\(c)]") }
        let stats = GroupNormStats(self, groups: groups, eps: eps)
        let out = stats.apply(self, weight: weight, bias: bias)
        var inputs = [self]
        if let weight { inputs.append(weight) }
        if let bias { inputs.append(bias) }
        let x = self
        return Tensor.record(out, "group_norm", inputs) { g, needs in
            let grads = groupNormBackward(x, g, weight: weight, stats: stats, groups: groups, eps: eps,
                                          needX: needs[0], needW: weight != nil && needs[1],
                                          needB: bias != nil && needs[weight != nil ? 2 : 1])
            var result: [Tensor?] = [grads.x]
            if weight != nil { result.append(grads.w) }
            if bias != nil { result.append(grads.b) }
            return result
        }
    }
}

/// dL/dx, dL/dweight, dL/dbias of group norm for the output gradient g, in differentiable ops.
private func groupNormBackward(_ x: Tensor, _ g: Tensor, weight: Tensor?, stats: GroupNormStats, groups: Int, eps: Float,
                               needX: Bool, needW: Bool, needB: Bool) -> (x: Tensor?, w: Tensor?, b: Tensor?) {
    let n = x.shape[0], c = x.shape[1]
    let grouped = [n, groups, x.count / (n * groups)]
    let channelAxes = [0] + Array(2..<x.rank)
    let wShape = [1, c] + [Int](repeating: 1, count: x.rank - 2)
    // xhat [N, G, M] and invstd [N, G, 1]: rebuilt differentiably when recording.
    let xhat: Tensor, invstd: Tensor
    if GradMode.isEnabled {
        let xr = x.reshape(grouped)
        let d = xr - xr.mean(axes: [2], keepDims: true)
        invstd = (d.square().mean(axes: [2], keepDims: true) + eps).pow(-0.5)
        xhat = d * invstd
    } else {
        xhat = stats.apply(x, weight: nil, bias: nil).reshape(grouped)
        invstd = Tensor(stats.invstd, shape: [n, groups, 1])
    }
    var gx: Tensor?, gw: Tensor?, gb: Tensor?
    if needB { gb = g.sum(axes: channelAxes) }
    if needW { gw = (g * xhat.reshape(x.shape)).sum(axes: channelAxes) }
    if needX {
        let gwr = (weight.map { g * $0.reshape(wShape) } ?? g).reshape(grouped)
        let inner = gwr - gwr.mean(axes: [2], keepDims: true) - xhat * (gwr * xhat).mean(axes: [2], keepDims: true)
        gx = (inner * invstd).reshape(x.shape)
    }
    return (gx, gw, gb)
}
