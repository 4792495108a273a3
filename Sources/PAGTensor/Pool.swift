import CPAGKernels

// Pooling. Max pooling records which input element won each window; its backward scatters
// through those positions and the scatter's backward gathers through them again, so both are
// linear ops with fixed indices and differentiate to any order.

/// How a pooling window slides (ONNX's MaxPool / AveragePool attributes, PyTorch's max_pool2d and
/// avg_pool2d): kernel, stride, dilation, zero padding (top, left, bottom, right), ceil mode (the
/// last partial window counts when it starts inside the input or its top/left padding) and, for
/// averages, whether padding counts in the divisor (the overhang ceil mode adds never does).
public struct PoolOptions: Equatable, Sendable {
    public var kernel: (Int, Int), stride: (Int, Int), dilation: (Int, Int)
    public var pads: [Int]
    public var ceilMode: Bool, countIncludePad: Bool

    public init(kernel: (Int, Int), stride: (Int, Int)? = nil, dilation: (Int, Int) = (1, 1), pads: [Int] = [0, 0, 0, 0],
                ceilMode: Bool = false, countIncludePad: Bool = true) {
        precondition(pads.count == 4, "PoolOptions: pads are [top, left, bottom, right], got \(pads)")
        (self.kernel, self.stride, self.dilation, self.pads) = (kernel, stride ?? kernel, dilation, pads)
        (self.ceilMode, self.countIncludePad) = (ceilMode, countIncludePad)
    }

    public static func == (a: PoolOptions, b: PoolOptions) -> Bool {
        a.kernel == b.kernel && a.stride == b.stride && a.dilation == b.dilation && a.pads == b.pads
            && a.ceilMode == b.ceilMode && a.countIncludePad == b.countIncludePad
    }
}

/// Geometry of a pooling window over NCHW planes.
struct PoolGeometry {
    var planes, h, w, kh, kw, sh, sw, ph, pw, oh, ow: Int
    var n, c: Int
    // The general window (PoolOptions): dilation, bottom and right padding, the divisor rule.
    var dh = 1, dw = 1, pb = 0, pr = 0, countIncludePad = true

    init(_ shape: [Int], kernel: Int, stride: Int?, padding: Int, op: String) {
        ShapeRules.require { try ShapeRules.pool(op, shape, kernel: kernel, stride: stride ?? 0, padding: padding) }
        let s = stride ?? kernel
        (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3])
        planes = n * c
        (kh, kw, sh, sw, ph, pw) = (kernel, kernel, s, s, padding, padding)
        (pb, pr) = (padding, padding)
        oh = ShapeRules.windows(h, kernel: kh, stride: sh, padding: ph)
        ow = ShapeRules.windows(w, kernel: kw, stride: sw, padding: pw)
    }

    init(_ shape: [Int], options o: PoolOptions, op: String) {
        (oh, ow) = ShapeRules.require { try ShapeRules.pool2d(op, shape, o) }
        (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3])
        planes = n * c
        (kh, kw, sh, sw, dh, dw) = (o.kernel.0, o.kernel.1, o.stride.0, o.stride.1, o.dilation.0, o.dilation.1)
        (ph, pw, pb, pr) = (o.pads[0], o.pads[1], o.pads[2], o.pads[3])
        countIncludePad = o.countIncludePad
    }

    /// True when the square, symmetric, undilated kernels of maxPool2d / avgPool2d compute it.
    var isSquare: Bool {
        kh == kw && sh == sw && dh == 1 && dw == 1 && ph == pw && pb == ph && pr == pw && ph * 2 <= kh
            && oh == ShapeRules.windows(h, kernel: kh, stride: sh, padding: ph)
            && ow == ShapeRules.windows(w, kernel: kw, stride: sw, padding: pw)
            && (countIncludePad || ph == 0)
    }

    var inputShape: [Int] { [n, c, h, w] }
    var outputShape: [Int] { [n, c, oh, ow] }
    var poolShape: pag_pool_shape {
        pag_pool_shape(h: Int64(h), w: Int64(w), kh: Int64(kh), kw: Int64(kw), sh: Int64(sh), sw: Int64(sw),
                       ph: Int64(ph), pw: Int64(pw), oh: Int64(oh), ow: Int64(ow))
    }

    /// The taps of output row oy (or column) that fall on the input, and how many the divisor
    /// counts (taps inside the padded input when padding counts, else the input's taps).
    func taps(_ o: Int, stride: Int, pad: Int, padEnd: Int, kernel: Int, dilation: Int, size: Int) -> (real: [Int], counted: Int) {
        let start = o * stride - pad
        var real: [Int] = [], padded = 0
        for k in 0..<kernel {
            let i = start + k * dilation
            if i < size + padEnd { padded += 1 }
            if i >= 0 && i < size { real.append(i) }
        }
        return (real, countIncludePad ? padded : real.count)
    }
    func rowTaps(_ oy: Int) -> (real: [Int], counted: Int) { taps(oy, stride: sh, pad: ph, padEnd: pb, kernel: kh, dilation: dh, size: h) }
    func colTaps(_ ox: Int) -> (real: [Int], counted: Int) { taps(ox, stride: sw, pad: pw, padEnd: pr, kernel: kw, dilation: dw, size: w) }
}

/// The common 2x2 stride-2 max pool without window bookkeeping (it dominated a LeNet step).
private func maxPool2x2(_ px: UnsafeMutablePointer<Float>, _ po: UnsafeMutablePointer<Float>,
                        _ pi: UnsafeMutablePointer<Int32>, _ geo: PoolGeometry) {
    let inPlane = geo.h * geo.w, outPlane = geo.oh * geo.ow
    Parallel.forEach(geo.planes, cost: inPlane) { r in
        let lo = r.lowerBound
        pag_simd_maxpool2x2(Int64(r.count), Int64(geo.h), Int64(geo.w), Int64(geo.oh), Int64(geo.ow),
                            px + lo * inPlane, po + lo * outPlane, pi + lo * outPlane)
    }
}

/// Argmax positions of a max pool: for each output element, its flat index within its input plane.
final class PoolIndices {
    let indices: UnsafeMutablePointer<Int32>
    init(count: Int) { indices = .allocate(capacity: max(count, 1)) }
    deinit { indices.deallocate() }
}

extension Tensor {
    /// Max pooling over `kernel`x`kernel` windows (stride defaults to the kernel, padding with -inf).
    public func maxPool2d(kernel: Int, stride: Int? = nil, padding: Int = 0) -> Tensor {
        let geo = PoolGeometry(shape, kernel: kernel, stride: stride, padding: padding, op: "max_pool2d")
        let out = Tensor(uninitialized: geo.outputShape)
        let idx = PoolIndices(count: out.count)
        let px = pointer, po = out.pointer, pi = idx.indices
        let inPlane = geo.h * geo.w, outPlane = geo.oh * geo.ow
        if geo.kh == 2 && geo.kw == 2 && geo.sh == 2 && geo.sw == 2 && geo.ph == 0 && geo.pw == 0 {
            maxPool2x2(px, po, pi, geo)
            return Tensor.record(out, "max_pool2d", [self]) { g, _ in [g.poolScatter(idx, geo)] }
        }
        Parallel.forEach(geo.planes, cost: inPlane) { r in
            for p in r {
                let src = px + p * inPlane, dst = po + p * outPlane, di = pi + p * outPlane
                for oy in 0..<geo.oh {
                    let y0 = oy * geo.sh - geo.ph
                    for ox in 0..<geo.ow {
                        let x0 = ox * geo.sw - geo.pw
                        var best = -Float.infinity, bestI: Int32 = -1
                        for ky in max(0, -y0)..<min(geo.kh, geo.h - y0) {
                            let row = (y0 + ky) * geo.w
                            for kx in max(0, -x0)..<min(geo.kw, geo.w - x0) {
                                let v = src[row + x0 + kx]
                                // NaN propagates like PyTorch: a NaN wins the window.
                                if v > best || v.isNaN || bestI < 0 { best = v; bestI = Int32(row + x0 + kx); if v.isNaN { break } }
                            }
                        }
                        dst[oy * geo.ow + ox] = best
                        di[oy * geo.ow + ox] = bestI
                    }
                }
            }
        }
        return Tensor.record(out, "max_pool2d", [self]) { g, _ in [g.poolScatter(idx, geo)] }
    }

    /// Adds each output-gradient element into the input position that won its window.
    func poolScatter(_ idx: PoolIndices, _ geo: PoolGeometry) -> Tensor {
        let out = Tensor(uninitialized: geo.inputShape)
        let pg = pointer, po = out.pointer, pi = idx.indices
        let inPlane = geo.h * geo.w, outPlane = geo.oh * geo.ow
        Parallel.forEach(geo.planes, cost: inPlane) { r in
            for p in r {
                let src = pg + p * outPlane, dst = po + p * inPlane, si = pi + p * outPlane
                // Zeroed plane by plane, so the scatter finds it in cache (one pass over memory).
                dst.update(repeating: 0, count: inPlane)
                for k in 0..<outPlane where si[k] >= 0 { dst[Int(si[k])] += src[k] }
            }
        }
        return Tensor.record(out, "max_pool2d_backward", [self]) { g, _ in [g.poolGather(idx, geo)] }
    }

    /// Reads, for each window, the input-shaped tensor at the window's argmax (adjoint of scatter).
    func poolGather(_ idx: PoolIndices, _ geo: PoolGeometry) -> Tensor {
        let out = Tensor(uninitialized: geo.outputShape)
        let px = pointer, po = out.pointer, pi = idx.indices
        let inPlane = geo.h * geo.w, outPlane = geo.oh * geo.ow
        Parallel.forEach(geo.planes, cost: outPlane) { r in
            for p in r {
                let src = px + p * inPlane, dst = po + p * outPlane, si = pi + p * outPlane
                for k in 0..<outPlane { dst[k] = si[k] >= 0 ? src[Int(si[k])] : 0 }
            }
        }
        return Tensor.record(out, "max_pool2d_gather", [self]) { g, _ in [g.poolScatter(idx, geo)] }
    }

    /// Average pooling; zero padding counts in the average (PyTorch's count_include_pad=True).
    public func avgPool2d(kernel: Int, stride: Int? = nil, padding: Int = 0) -> Tensor {
        let geo = PoolGeometry(shape, kernel: kernel, stride: stride, padding: padding, op: "avg_pool2d")
        return avgPoolForward(geo)
    }

    func avgPoolForward(_ geo: PoolGeometry) -> Tensor {
        let out = Tensor(uninitialized: geo.outputShape)
        let px = pointer, po = out.pointer
        let inPlane = geo.h * geo.w, outPlane = geo.oh * geo.ow
        withUnsafePointer(to: geo.poolShape) { ps in
            Parallel.forEach(geo.planes, cost: inPlane) { r in
                pag_simd_avgpool(ps, Int64(r.count), px + r.lowerBound * inPlane, po + r.lowerBound * outPlane)
            }
        }
        return Tensor.record(out, "avg_pool2d", [self]) { g, _ in [g.avgPoolAdjoint(geo)] }
    }

    /// Spreads each output-gradient element evenly over its window (adjoint of average pooling).
    func avgPoolAdjoint(_ geo: PoolGeometry) -> Tensor {
        let out = Tensor.zeros(geo.inputShape)
        let pg = pointer, po = out.pointer
        let inPlane = geo.h * geo.w, outPlane = geo.oh * geo.ow
        withUnsafePointer(to: geo.poolShape) { ps in
            Parallel.forEach(geo.planes, cost: inPlane) { r in
                pag_simd_avgpool_adjoint(ps, Int64(r.count), pg + r.lowerBound * outPlane, po + r.lowerBound * inPlane)
            }
        }
        return Tensor.record(out, "avg_pool2d_backward", [self]) { g, _ in [g.avgPoolForward(geo)] }
    }

    /// Max or average pooling with every ONNX / PyTorch window attribute (PoolOptions). Square,
    /// symmetric windows run maxPool2d's and avgPool2d's kernels; others a general loop. A max
    /// window with no input element (possible only with dilation) gives -inf and no gradient.
    public func pool2d(max isMax: Bool, options: PoolOptions) -> Tensor {
        let geo = PoolGeometry(shape, options: options, op: isMax ? "max_pool2d" : "avg_pool2d")
        if geo.isSquare {
            return isMax ? maxPool2d(kernel: geo.kh, stride: geo.sh, padding: geo.ph) : avgPool2d(kernel: geo.kh, stride: geo.sh, padding: geo.ph)
        }
        return isMax ? generalMaxPool(geo) : generalAvgPool(geo)
    }

    func generalMaxPool(_ geo: PoolGeometry) -> Tensor {
        let out = Tensor(uninitialized: geo.outputShape)
        let idx = PoolIndices(count: out.count)
        let px = pointer, po = out.pointer, pi = idx.indices
        let inPlane = geo.h * geo.w, outPlane = geo.oh * geo.ow
        let rows = (0..<geo.oh).map { geo.rowTaps($0).real }, cols = (0..<geo.ow).map { geo.colTaps($0).real }
        Parallel.forEach(geo.planes, cost: inPlane) { r in
            for p in r {
                let src = px + p * inPlane, dst = po + p * outPlane, di = pi + p * outPlane
                for oy in 0..<geo.oh {
                    for ox in 0..<geo.ow {
                        var best = -Float.infinity, bestI: Int32 = -1
                        scan: for y in rows[oy] {
                            for x in cols[ox] {
                                let v = src[y * geo.w + x]
                                if v > best || v.isNaN || bestI < 0 { best = v; bestI = Int32(y * geo.w + x); if v.isNaN { break scan } }
                            }
                        }
                        dst[oy * geo.ow + ox] = best
                        di[oy * geo.ow + ox] = bestI
                    }
                }
            }
        }
        return Tensor.record(out, "max_pool2d", [self]) { g, _ in [g.poolScatter(idx, geo)] }
    }

    func generalAvgPool(_ geo: PoolGeometry) -> Tensor {
        let out = Tensor(uninitialized: geo.outputShape)
        let px = pointer, po = out.pointer
        let inPlane = geo.h * geo.w, outPlane = geo.oh * geo.ow
        let rows = (0..<geo.oh).map { geo.rowTaps($0) }, cols = (0..<geo.ow).map { geo.colTaps($0) }
        Parallel.forEach(geo.planes, cost: inPlane) { r in
            for p in r {
                let src = px + p * inPlane, dst = po + p * outPlane
                for oy in 0..<geo.oh {
                    for ox in 0..<geo.ow {
                        var acc: Float = 0
                        for y in rows[oy].real { for x in cols[ox].real { acc += src[y * geo.w + x] } }
                        let divisor = rows[oy].counted * cols[ox].counted
                        dst[oy * geo.ow + ox] = divisor > 0 ? acc / Float(divisor) : 0
                    }
                }
            }
        }
        return Tensor.record(out, "avg_pool2d", [self]) { g, _ in [g.generalAvgPoolAdjoint(geo)] }
    }

    /// Spreads each output-gradient element over its window's input taps, each with 1 / divisor.
    func generalAvgPoolAdjoint(_ geo: PoolGeometry) -> Tensor {
        let out = Tensor.zeros(geo.inputShape)
        let pg = pointer, po = out.pointer
        let inPlane = geo.h * geo.w, outPlane = geo.oh * geo.ow
        let rows = (0..<geo.oh).map { geo.rowTaps($0) }, cols = (0..<geo.ow).map { geo.colTaps($0) }
        Parallel.forEach(geo.planes, cost: inPlane) { r in
            for p in r {
                let src = pg + p * outPlane, dst = po + p * inPlane
                for oy in 0..<geo.oh {
                    for ox in 0..<geo.ow {
                        let divisor = rows[oy].counted * cols[ox].counted
                        guard divisor > 0 else { continue }
                        let v = src[oy * geo.ow + ox] / Float(divisor)
                        for y in rows[oy].real { for x in cols[ox].real { dst[y * geo.w + x] += v } }
                    }
                }
            }
        }
        return Tensor.record(out, "avg_pool2d_backward", [self]) { g, _ in [g.generalAvgPool(geo)] }
    }

    /// Mean over H and W: [N, C, H, W] -> [N, C, 1, 1] (PyTorch's adaptive_avg_pool2d(1)).
    public func globalAvgPool2d() -> Tensor {
        precondition(rank == 4, "global_avg_pool2d: input must be NCHW, got shape \(shape)")
        return mean(axes: [2, 3], keepDims: true)
    }
}
