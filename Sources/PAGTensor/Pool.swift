import CPAGKernels

// Pooling. Max pooling records which input element won each window; its backward scatters
// through those positions and the scatter's backward gathers through them again, so both are
// linear ops with fixed indices and differentiate to any order.

/// Geometry of a pooling window over NCHW planes.
struct PoolGeometry {
    var planes, h, w, kh, kw, sh, sw, ph, pw, oh, ow: Int
    var n, c: Int
    init(_ shape: [Int], kernel: Int, stride: Int?, padding: Int, op: String) {
        ShapeRules.require { try ShapeRules.pool(op, shape, kernel: kernel, stride: stride ?? 0, padding: padding) }
        let s = stride ?? kernel
        (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3])
        planes = n * c
        (kh, kw, sh, sw, ph, pw) = (kernel, kernel, s, s, padding, padding)
        oh = ShapeRules.windows(h, kernel: kh, stride: sh, padding: ph)
        ow = ShapeRules.windows(w, kernel: kw, stride: sw, padding: pw)
    }
    var inputShape: [Int] { [n, c, h, w] }
    var outputShape: [Int] { [n, c, oh, ow] }
    var poolShape: pag_pool_shape {
        pag_pool_shape(h: Int64(h), w: Int64(w), kh: Int64(kh), kw: Int64(kw), sh: Int64(sh), sw: Int64(sw),
                       ph: Int64(ph), pw: Int64(pw), oh: Int64(oh), ow: Int64(ow))
    }
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
                for k in 0..<outPlane { dst[Int(si[k])] += src[k] }
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
                for k in 0..<outPlane { dst[k] = src[Int(si[k])] }
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

    /// Mean over H and W: [N, C, H, W] -> [N, C, 1, 1] (PyTorch's adaptive_avg_pool2d(1)).
    public func globalAvgPool2d() -> Tensor {
        precondition(rank == 4, "global_avg_pool2d: input must be NCHW, got shape \(shape)")
        return mean(axes: [2, 3], keepDims: true)
    }
}
