import CPAGKernels

// Batch normalization in training mode as fused primitives.
//
// The forward pass computes the per-channel mean and biased variance in one parallel pass over
// the channels (sums in Double) and writes y = (x - mean) * invstd * gamma + beta directly; it
// records a single tape node and keeps no full-size intermediate (x is already held by its
// producer; the node saves only the per-channel mean and invstd).
//
// Its backward is written with three more primitives that share those statistics:
//   normalized(x)       = xhat = (x - mean(x)) * invstd(x)
//   invstd(x)           = 1 / sqrt(var(x) + eps), shape [1, C, 1, 1] (or [1, C])
//   backwardX(x, g, w)  = w * invstd * (g - mean(g) - xhat * mean(g * xhat))  (= dL/dx)
// Every one of them has a fused kernel for its value and for its first-order backward (the
// common case: a plain backward, or the second pass of double backpropagation, runs with
// recording off), and a backward written in differentiable operations over these primitives
// when the backward itself is recorded, so derivatives of any order are exact.

/// The input of one batch-norm call, its layout and its batch statistics (computed once and
/// shared by every primitive derived from the same input).
final class BatchNormContext {
    let x: Tensor
    let n: Int, c: Int, hw: Int
    let eps: Float
    /// Per-channel mean, biased variance and 1 / sqrt(var + eps).
    let mean: [Double], variance: [Double], invstd: [Double]
    let statShape: [Int]
    let axes: [Int]
    /// Values per channel (N * H * W).
    var perChannel: Int { n * hw }

    init(_ x: Tensor, eps: Float) {
        self.x = x
        self.eps = eps
        n = x.shape[0]; c = x.shape[1]
        hw = x.shape[2...].reduce(1, *)
        statShape = x.rank == 4 ? [1, c, 1, 1] : [1, c]
        axes = x.rank == 4 ? [0, 2, 3] : [0]
        let sums = channelSums(x, n: n, c: c, hw: hw)
        let cnt = Double(n * hw)
        let m = sums.map { $0 / cnt }
        let sq = channelSquaredDeviations(x, mean: m.map { Float($0) }, n: n, c: c, hw: hw)
        // The squared deviations are taken from the Float-rounded mean; correct for the rounding.
        var v = [Double](repeating: 0, count: c)
        for i in 0..<c {
            let d = m[i] - Double(Float(m[i]))
            v[i] = Swift.max(0, sq[i] / cnt - d * d)
        }
        mean = m
        variance = v
        invstd = v.map { 1 / ($0 + Double(eps)).squareRoot() }
    }

    // MARK: differentiable pieces

    /// xhat = (x - mean) * invstd as one recorded node.
    func normalized() -> Tensor {
        let s = invstd.map { Float($0) }
        let k = (0..<c).map { Float(-mean[$0] * invstd[$0]) }
        let out = linearCombination(n: n, c: c, hw: hw, terms: [(x, s)], constant: k)
        return Tensor.record(out, "batch_norm_normalize", [x]) { g, _ in
            [self.backwardX(g, weight: nil)]
        }
    }

    /// invstd = 1 / sqrt(var(x) + eps) with the stat shape, as one recorded node.
    func invstdTensor() -> Tensor {
        let out = Tensor(invstd.map { Float($0) }, shape: statShape)
        return Tensor.record(out, "batch_norm_invstd", [x]) { g, _ in
            // d invstd_c / d x_i = -invstd_c^2 * xhat_i / (N H W).
            let cnt = Float(self.perChannel)
            if GradMode.isEnabled {
                let s = self.invstdTensor()
                return [self.normalized() * (g * s.square() * (-1 / cnt))]
            }
            // Raw: gx = k_c * (x - mean) with k = -g s^3 / cnt.
            var kx = [Float](repeating: 0, count: self.c), k0 = kx
            for i in 0..<self.c {
                let s = self.invstd[i], kd = -Double(g.pointer[i]) * s * s * s / Double(cnt)
                kx[i] = Float(kd); k0[i] = Float(-kd * self.mean[i])
            }
            return [linearCombination(n: self.n, c: self.c, hw: self.hw, terms: [(self.x, kx)], constant: k0)]
        }
    }

    /// dL/dx of batch norm for the output gradient `g`: w * invstd * (g - mean(g) - xhat * mean(g * xhat)),
    /// one recorded node with inputs x, g (and w). Its Jacobian in g is symmetric, so its
    /// gradient with respect to g is itself applied to the incoming gradient.
    func backwardX(_ g: Tensor, weight: Tensor?) -> Tensor {
        let w = weight.map { wt in (0..<c).map { Double(wt.pointer[$0]) } } ?? [Double](repeating: 1, count: c)
        let out = applyBackwardX(g, w)
        let inputs = weight.map { [x, g, $0] } ?? [x, g]
        return Tensor.record(out, "batch_norm_backward", inputs) { u, needs in
            if GradMode.isEnabled { return self.backwardXBackwardRecorded(u, g, weight, needs) }
            return self.backwardXBackwardRaw(u, g, w, hasWeight: weight != nil, needs)
        }
    }

    /// The value of `backwardX` (no recording): A g + B x + K per channel.
    func applyBackwardX(_ g: Tensor, _ w: [Double]) -> Tensor {
        let sg = channelSums(g, n: n, c: c, hw: hw)
        let sgx = channelDots(g, x, shift: mean.map { Float($0) }, n: n, c: c, hw: hw)
        let cnt = Double(perChannel)
        var ka = [Float](repeating: 0, count: c), kb = ka, k0 = ka
        for i in 0..<c {
            let s = invstd[i], a = sg[i] / cnt, b = s * sgx[i] / cnt  // b = mean(g * xhat)
            let ws = w[i] * s
            ka[i] = Float(ws)
            kb[i] = Float(-ws * s * b)
            k0[i] = Float(-ws * a + ws * s * b * mean[i])
        }
        return linearCombination(n: n, c: c, hw: hw, terms: [(g, ka), (x, kb)], constant: k0)
    }

    /// First-order gradients of `backwardX` with fused kernels.
    private func backwardXBackwardRaw(_ u: Tensor, _ g: Tensor, _ w: [Double], hasWeight: Bool, _ needs: [Bool]) -> [Tensor?] {
        var result: [Tensor?] = [nil, needs[1] ? applyBackwardX(u, w) : nil]
        if hasWeight { result.append(nil) }
        let wantX = needs[0], wantW = hasWeight && needs[2]
        guard wantX || wantW else { return result }
        let shift = mean.map { Float($0) }
        let sg = channelSums(g, n: n, c: c, hw: hw)
        let sgx = channelDots(g, x, shift: shift, n: n, c: c, hw: hw)
        let su = channelSums(u, n: n, c: c, hw: hw)
        let sux = channelDots(u, x, shift: shift, n: n, c: c, hw: hw)
        let sug = channelDots(u, g, shift: nil, n: n, c: c, hw: hw)
        let cnt = Double(perChannel)
        var ku = [Float](repeating: 0, count: c), kg = ku, kx = ku, k0 = ku
        var gw = [Float](repeating: 0, count: c)
        for i in 0..<c {
            let s = invstd[i]
            let a = sg[i] / cnt, b = s * sgx[i] / cnt          // mean(g), mean(g xhat)
            let U = su[i], UX = s * sux[i], UG = sug[i]         // sum(u), sum(u xhat), sum(u g)
            let r = UG - a * U - b * UX
            gw[i] = Float(s * r)
            // gx = w s^2 [cxh xhat - b u - (UX/n) g + (b U + UX a)/n], xhat = s (x - mean).
            let cxh = -r / cnt + 2 * b * UX / cnt
            let f = w[i] * s * s
            ku[i] = Float(-f * b)
            kg[i] = Float(-f * UX / cnt)
            kx[i] = Float(f * cxh * s)
            k0[i] = Float(f * (b * U + UX * a) / cnt - f * cxh * s * mean[i])
        }
        if wantX { result[0] = linearCombination(n: n, c: c, hw: hw, terms: [(u, ku), (g, kg), (x, kx)], constant: k0) }
        if wantW { result[2] = Tensor(gw, shape: [c]) }
        return result
    }

    /// Gradients of `backwardX` written in differentiable operations (for recorded backward passes).
    private func backwardXBackwardRecorded(_ u: Tensor, _ g: Tensor, _ weight: Tensor?, _ needs: [Bool]) -> [Tensor?] {
        var result: [Tensor?] = [nil, needs[1] ? backwardX(u, weight: weight) : nil]
        if weight != nil { result.append(nil) }
        let wantX = needs[0], wantW = weight != nil && needs[2]
        guard wantX || wantW else { return result }
        let cnt = Float(perChannel)
        let xhat = normalized(), s = invstdTensor()
        let a = g.mean(axes: axes, keepDims: true), b = (g * xhat).mean(axes: axes, keepDims: true)
        let U = u.sum(axes: axes, keepDims: true), UX = (u * xhat).sum(axes: axes, keepDims: true)
        let UG = (u * g).sum(axes: axes, keepDims: true)
        let r = UG - a * U - b * UX
        if wantW { result[2] = (s * r).reshape([c]) }
        if wantX {
            let cxh = r * (-1 / cnt) + b * UX * (2 / cnt)
            var gx = s.square() * (xhat * cxh - u * b - g * (UX / cnt) + (b * U + UX * a) / cnt)
            if let weight { gx = gx * weight.reshape(statShape) }
            result[0] = gx
        }
        return result
    }
}

extension Tensor {
    /// Training-mode batch norm as one recorded node (see the top of this file); updates the
    /// running statistics like PyTorch (momentum, unbiased variance).
    static func batchNormTraining(_ x: Tensor, weight: Tensor?, bias: Tensor?,
                                  runningMean: Tensor?, runningVar: Tensor?,
                                  momentum: Float, eps: Float) -> Tensor {
        let ctx = BatchNormContext(x, eps: eps)
        let c = ctx.c, cnt = ctx.perChannel
        if let rm = runningMean {
            for i in 0..<c { rm.pointer[i] = (1 - momentum) * rm.pointer[i] + momentum * Float(ctx.mean[i]) }
        }
        if let rv = runningVar {
            let unbias = Double(cnt) / Double(cnt - 1)
            for i in 0..<c { rv.pointer[i] = (1 - momentum) * rv.pointer[i] + momentum * Float(ctx.variance[i] * unbias) }
        }
        // y = x * (w s) + (b - mean w s).
        var scale = [Float](repeating: 0, count: c), shift = scale
        for i in 0..<c {
            let w = weight.map { Double($0.pointer[i]) } ?? 1, b = bias.map { Double($0.pointer[i]) } ?? 0
            let ws = w * ctx.invstd[i]
            scale[i] = Float(ws); shift[i] = Float(b - ctx.mean[i] * ws)
        }
        let out = linearCombination(n: ctx.n, c: c, hw: ctx.hw, terms: [(x, scale)], constant: shift)
        var inputs = [x]
        if let weight { inputs.append(weight) }
        if let bias { inputs.append(bias) }
        let wi = weight == nil ? -1 : 1, bi = bias == nil ? -1 : (weight == nil ? 1 : 2)
        return record(out, "batch_norm", inputs) { g, needs in
            var result = [Tensor?](repeating: nil, count: inputs.count)
            let wantW = wi >= 0 && needs[wi], wantB = bi >= 0 && needs[bi]
            if GradMode.isEnabled {
                if needs[0] { result[0] = ctx.backwardX(g, weight: weight) }
                if wantW { result[wi] = (g * ctx.normalized()).sum(axes: ctx.axes) }
                if wantB { result[bi] = g.sum(axes: ctx.axes) }
                return result
            }
            if needs[0] {
                let w = weight.map { wt in (0..<c).map { Double(wt.pointer[$0]) } } ?? [Double](repeating: 1, count: c)
                result[0] = ctx.applyBackwardX(g, w)
            }
            if wantW || wantB {
                let sg = channelSums(g, n: ctx.n, c: c, hw: ctx.hw)
                if wantB { result[bi] = Tensor(sg.map { Float($0) }, shape: [c]) }
                if wantW {
                    let sgx = channelDots(g, x, shift: ctx.mean.map { Float($0) }, n: ctx.n, c: c, hw: ctx.hw)
                    result[wi] = Tensor((0..<c).map { Float(sgx[$0] * ctx.invstd[$0]) }, shape: [c])
                }
            }
            return result
        }
    }
}

extension Tensor {
    /// y = x * scale[c] + shift[c] over the channels of an [N, C, ...] input, one recorded node
    /// (evaluation-mode batch norm). `scale` and `shift` have shape [C]. Its backward is the same
    /// node applied to the output gradient, plus per-channel sums, so it is differentiable to any order.
    static func channelAffine(_ x: Tensor, scale: Tensor, shift: Tensor?) -> Tensor {
        let n = x.shape[0], c = x.shape[1], hw = x.shape[2...].reduce(1, *)
        precondition(scale.shape == [c] && (shift?.shape ?? [c]) == [c], "channel_affine: scale and shift must have shape [\(c)]")
        let k = Array(UnsafeBufferPointer(start: scale.pointer, count: c))
        let zero = [Float](repeating: 0, count: c)
        let z = shift.map { Array(UnsafeBufferPointer(start: $0.pointer, count: c)) } ?? zero
        let out = linearCombination(n: n, c: c, hw: hw, terms: [(x, k)], constant: z)
        let inputs = shift.map { [x, scale, $0] } ?? [x, scale]
        let axes = [0] + Array(2..<x.rank)
        return record(out, "channel_affine", inputs) { g, needs in
            var result = [Tensor?](repeating: nil, count: inputs.count)
            let wantShift = inputs.count == 3 && needs[2]
            if GradMode.isEnabled {
                if needs[0] { result[0] = channelAffine(g, scale: scale, shift: nil) }
                if needs[1] { result[1] = (g * x).sum(axes: axes) }
                if wantShift { result[2] = g.sum(axes: axes) }
                return result
            }
            if needs[0] { result[0] = linearCombination(n: n, c: c, hw: hw, terms: [(g, k)], constant: zero) }
            if needs[1] { result[1] = Tensor(channelDots(g, x, shift: nil, n: n, c: c, hw: hw).map { Float($0) }, shape: [c]) }
            if wantShift { result[2] = Tensor(channelSums(g, n: n, c: c, hw: hw).map { Float($0) }, shape: [c]) }
            return result
        }
    }
}

// MARK: per-channel kernels over [N, C, HW] layouts

/// Runs `body(channel)` for every channel, channels split over the cores.
@inline(__always)
private func forEachChannel(_ c: Int, work: Int, _ body: (Int) -> Void) {
    Parallel.forEach(c, cost: Swift.max(1, work)) { r in for ch in r { body(ch) } }
}

/// Per-channel sum of `a`, accumulated in Double.
func channelSums(_ a: Tensor, n: Int, c: Int, hw: Int) -> [Double] {
    var out = [Double](repeating: 0, count: c)
    let pa = UnsafePointer(a.pointer)
    out.withUnsafeMutableBufferPointer { o in
        let po = o.baseAddress!
        forEachChannel(c, work: n * hw) { ch in
            var s: Double = 0
            for i in 0..<n { s += Double(simdSum(pa + (i * c + ch) * hw, hw)) }
            po[ch] = s
        }
    }
    return out
}

/// Per-channel sum of (a - mean)^2, accumulated in Double.
func channelSquaredDeviations(_ a: Tensor, mean: [Float], n: Int, c: Int, hw: Int) -> [Double] {
    var out = [Double](repeating: 0, count: c)
    let pa = UnsafePointer(a.pointer)
    out.withUnsafeMutableBufferPointer { o in
        let po = o.baseAddress!
        forEachChannel(c, work: 2 * n * hw) { ch in
            var s: Double = 0
            let m = mean[ch]
            for i in 0..<n { s += Double(simdDot(pa + (i * c + ch) * hw, m, pa + (i * c + ch) * hw, m, hw)) }
            po[ch] = s
        }
    }
    return out
}

/// Per-channel sum of a * (b - shift), accumulated in Double (shift 0 when nil).
func channelDots(_ a: Tensor, _ b: Tensor, shift: [Float]?, n: Int, c: Int, hw: Int) -> [Double] {
    var out = [Double](repeating: 0, count: c)
    let pa = UnsafePointer(a.pointer), pb = UnsafePointer(b.pointer)
    out.withUnsafeMutableBufferPointer { o in
        let po = o.baseAddress!
        forEachChannel(c, work: 2 * n * hw) { ch in
            var s: Double = 0
            let m = shift?[ch] ?? 0
            for i in 0..<n { s += Double(simdDot(pa + (i * c + ch) * hw, 0, pb + (i * c + ch) * hw, m, hw)) }
            po[ch] = s
        }
    }
    return out
}

/// sum_i (a[i] - ma) * (b[i] - mb) (pag_simd_dot).
@inline(__always)
private func simdDot(_ a: UnsafePointer<Float>, _ ma: Float, _ b: UnsafePointer<Float>, _ mb: Float, _ n: Int) -> Float {
    pag_simd_dot(a, ma, b, mb, Int64(n))
}

/// out = sum_k coef_k[channel] * term_k + constant[channel], elementwise over [N, C, HW] (1 to 3 terms).
func linearCombination(n: Int, c: Int, hw: Int, terms: [(Tensor, [Float])], constant: [Float]) -> Tensor {
    precondition((1...3).contains(terms.count))
    let out = Tensor(uninitialized: terms[0].0.shape)
    let po = out.pointer
    let p0 = UnsafePointer(terms[0].0.pointer), k0 = terms[0].1
    let p1 = UnsafePointer(terms.count > 1 ? terms[1].0.pointer : terms[0].0.pointer)
    let p2 = UnsafePointer(terms.count > 2 ? terms[2].0.pointer : terms[0].0.pointer)
    let k1 = terms.count > 1 ? terms[1].1 : k0, k2 = terms.count > 2 ? terms[2].1 : k0
    let nterms = Int32(terms.count)
    constant.withUnsafeBufferPointer { z in
    k0.withUnsafeBufferPointer { c0 in k1.withUnsafeBufferPointer { c1 in k2.withUnsafeBufferPointer { c2 in
        let z = z.baseAddress!, c0 = c0.baseAddress!, c1 = c1.baseAddress!, c2 = c2.baseAddress!
        Parallel.forEach(n * c, cost: hw * Int(nterms)) { r in
            pag_simd_lincomb(Int64(r.lowerBound), Int64(r.count), Int64(c), Int64(hw), nterms, p0, c0, p1, c1, p2, c2, z, po)
        }
    } } }
    }
    return out
}
