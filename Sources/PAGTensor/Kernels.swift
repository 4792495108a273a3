import CPAGKernels

/// Elementwise, broadcasting and reduction loops. The loops themselves are C (pag_simd.h, one
/// variant per instruction set chosen at start); this file plans them (broadcast dims, reduced
/// dims) and splits them over the cores.

/// An elementwise op on one tensor: a PAG_U_* code of pag_simd.h and its two parameters.
struct UnaryOp {
    let code: Int32
    var p0: Float = 0, p1: Float = 0
    init(_ code: Int, _ p0: Float = 0, _ p1: Float = 0) { self.code = Int32(code); self.p0 = p0; self.p1 = p1 }
}

/// An elementwise op on two broadcast tensors: a PAG_B_* code and its two parameters.
struct BinaryOp {
    let code: Int32
    var p0: Float = 0, p1: Float = 0
    init(_ code: Int, _ p0: Float = 0, _ p1: Float = 0) { self.code = Int32(code); self.p0 = p0; self.p1 = p1 }
}

/// `out[i] = op(x[i])`.
func mapUnary(_ k: UnaryOp, _ x: Tensor, cost: Int = 1) -> Tensor {
    let out = Tensor(uninitialized: x.shape)
    let src = x.pointer, dst = out.pointer
    Parallel.forEach(x.count, cost: cost) { r in
        pag_simd_unary(k.code, Int64(r.count), src + r.lowerBound, dst + r.lowerBound, k.p0, k.p1)
    }
    return out
}

/// One dimension of a broadcast loop: length and the element strides of a and b in it.
struct BroadcastDim { var n: Int; var sa: Int; var sb: Int }

/// Dims of a broadcast from `a` and `b` to `out`, with size-1 dims dropped and contiguous runs merged.
func broadcastPlan(_ a: [Int], _ b: [Int], _ out: [Int]) -> [BroadcastDim] {
    let r = out.count
    let pa = [Int](repeating: 1, count: r - a.count) + a
    let pb = [Int](repeating: 1, count: r - b.count) + b
    let stA = Shape.strides(pa), stB = Shape.strides(pb)
    var dims: [BroadcastDim] = []
    for i in 0..<r where out[i] != 1 {
        dims.append(BroadcastDim(n: out[i], sa: pa[i] == 1 ? 0 : stA[i], sb: pb[i] == 1 ? 0 : stB[i]))
    }
    // Merge an outer dim into the inner one when the pair is contiguous for both operands.
    var merged: [BroadcastDim] = []
    for d in dims {
        if var last = merged.last, last.sa == d.sa * d.n, last.sb == d.sb * d.n {
            last = BroadcastDim(n: last.n * d.n, sa: d.sa, sb: d.sb)
            merged[merged.count - 1] = last
        } else {
            merged.append(d)
        }
    }
    return merged.isEmpty ? [BroadcastDim(n: 1, sa: 0, sb: 0)] : merged
}

/// `out = op(a, b)` with NumPy broadcasting to `outShape`.
func mapBinary(_ k: BinaryOp, _ a: Tensor, _ b: Tensor, outShape: [Int]) -> Tensor {
    let out = Tensor(uninitialized: outShape)
    let pa = UnsafePointer(a.pointer), pb = UnsafePointer(b.pointer), po = out.pointer
    let dims = broadcastPlan(a.shape, b.shape, outShape)
    let inner = dims[dims.count - 1]
    if dims.count == 1 {
        Parallel.forEach(inner.n) { r in
            pag_simd_binary(k.code, 1, Int64(r.count), pa + r.lowerBound * inner.sa, 0, Int64(inner.sa),
                            pb + r.lowerBound * inner.sb, 0, Int64(inner.sb), po + r.lowerBound, k.p0, k.p1)
        }
        return out
    }
    // Outer dims are walked as one flat index; each step runs the inner loop. A short inner loop
    // (e.g. the 2 of a 2x upsampling broadcast) takes the next dim along, so the index
    // arithmetic is paid once per block rather than once per couple of elements.
    var outer = Array(dims.dropLast())
    let block = inner.n < 16 && outer.count > 0 ? outer.removeLast() : BroadcastDim(n: 1, sa: 0, sb: 0)
    let outerCount = outer.reduce(1) { $0 * $1.n }
    let blockCount = block.n * inner.n
    Parallel.forEach(outerCount, cost: blockCount) { r in
        for flat in r {
            var rem = flat, offA = 0, offB = 0
            for d in outer.reversed() {
                let i = rem % d.n; rem /= d.n
                offA += i * d.sa; offB += i * d.sb
            }
            pag_simd_binary(k.code, Int64(block.n), Int64(inner.n), pa + offA, Int64(block.sa), Int64(inner.sa),
                            pb + offB, Int64(block.sb), Int64(inner.sb), po + flat * blockCount, k.p0, k.p1)
        }
    }
    return out
}

/// Sum of `n` floats (16-wide accumulators; the same order in every instruction-set variant).
@inline(__always)
func simdSum(_ p: UnsafePointer<Float>, _ n: Int) -> Float { pag_simd_sum(p, Int64(n)) }

/// Sums `x` down to `target` (same rank, 1 where summed), the reverse of broadcasting.
func reduceSum(_ x: Tensor, to target: [Int]) -> Tensor {
    let out = Tensor(uninitialized: target)
    let po = out.pointer, px = UnsafePointer(x.pointer)
    precondition(target.count == x.rank)
    // Dims with their input stride and output stride (0 where reduced), merged when contiguous.
    let inSt = Shape.strides(x.shape), outSt = Shape.strides(target)
    var dims: [(n: Int, si: Int, so: Int)] = []
    for i in 0..<x.rank where x.shape[i] != 1 {
        let d = (n: x.shape[i], si: inSt[i], so: target[i] == 1 ? 0 : outSt[i])
        if let last = dims.last, last.si == d.si * d.n, (last.so == 0) == (d.so == 0), last.so == d.so * d.n {
            dims[dims.count - 1] = (n: last.n * d.n, si: d.si, so: d.so)
        } else {
            dims.append(d)
        }
    }
    if dims.isEmpty { po[0] = x.count == 0 ? 0 : px[0]; return out }
    let inner = dims[dims.count - 1]
    var outer = Array(dims.dropLast())
    // A short inner loop takes the next dim along (see mapBinary).
    let block = inner.n < 16 && outer.count > 0 ? outer.removeLast() : (n: 1, si: 0, so: 0)
    let outerCount = outer.reduce(1) { $0 * $1.n }

    // Runs the outer flat indices in `r`, accumulating into `dst` (laid out like `out`).
    func run(_ r: Range<Int>, _ dst: UnsafeMutablePointer<Float>) {
        for flat in r {
            var rem = flat, offI = 0, offO = 0
            for d in outer.reversed() {
                let i = rem % d.n; rem /= d.n
                offI += i * d.si; offO += i * d.so
            }
            for j in 0..<block.n {
                pag_simd_accumulate(Int64(inner.n), px + offI + j * block.si, Int64(inner.si), dst + offO + j * block.so, Int64(inner.so))
            }
        }
    }

    out.pointer.update(repeating: 0, count: out.count)
    let chunks = min(Parallel.threads, max(1, x.count / Parallel.grain))
    if chunks <= 1 || outerCount < chunks {
        run(0..<outerCount, po)
    } else if outer.first!.so != 0 && (outer.count == 1 || outer.first!.n >= chunks) && outer.first!.so * outer.first!.n == out.count {
        // The outermost dim is kept: threads write disjoint parts of the output.
        let per = outerCount / outer.first!.n
        let n0 = outer.first!.n
        let step = (n0 + chunks - 1) / chunks
        Parallel.run(chunks) { c in
            let lo = min(n0, c * step), hi = min(n0, lo + step)
            run(lo * per..<hi * per, po)
        }
    } else {
        // The outermost dim is reduced: each thread sums into its own buffer, then they are added.
        let partial = Tensor.zeros([chunks, out.count])
        let pp = partial.pointer, oc = out.count
        let step = (outerCount + chunks - 1) / chunks
        Parallel.run(chunks) { c in
            let lo = min(outerCount, c * step), hi = min(outerCount, lo + step)
            run(lo..<hi, pp + c * oc)
        }
        for c in 0..<chunks { pag_simd_accumulate(Int64(oc), pp + c * oc, 1, po, 1) }
    }
    return out
}

/// Copies `x` broadcast to `shape`.
func broadcastCopy(_ x: Tensor, to shape: [Int]) -> Tensor {
    mapBinary(BinaryOp(PAG_B_TAKE_A), x, x, outShape: shape)
}

import Dispatch
