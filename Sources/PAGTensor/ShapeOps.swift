// Reductions, broadcasting and shape operations. Reshape and flatten are views that share the
// buffer; everything else copies.

extension Tensor {
    /// Sums down to `target`, the reverse of broadcasting (`target` may have lower rank).
    public func sum(to target: [Int]) -> Tensor {
        if target == shape { return self }
        let padded = [Int](repeating: 1, count: rank - target.count) + target
        precondition(Shape.broadcast(padded, shape) == shape, "sum(to:): \(shape) does not broadcast from \(target)")
        let out = reduceSum(self, to: padded).viewReshaped(target)
        return Tensor.record(out, "sum_to", [self]) { g, _ in [g.broadcast(to: self.shape)] }
    }

    /// Repeats along size-1 (or missing leading) dims to `target`.
    public func broadcast(to target: [Int]) -> Tensor {
        if target == shape { return self }
        precondition(Shape.broadcast(shape, target) == target, "cannot broadcast \(shape) to \(target)")
        let out = broadcastCopy(self, to: target)
        return Tensor.record(out, "broadcast", [self]) { g, _ in [g.sum(to: self.shape)] }
    }

    /// Sum over `axes` (all axes when nil), keeping them as size 1 when `keepDims`.
    public func sum(axes: [Int]? = nil, keepDims: Bool = false) -> Tensor {
        let ax = Set((axes ?? Array(0..<rank)).map { Shape.axis($0, rank: rank) })
        let kept = shape.enumerated().map { ax.contains($0.offset) ? 1 : $0.element }
        let s = sum(to: kept)
        if keepDims { return s }
        return s.reshape(shape.enumerated().filter { !ax.contains($0.offset) }.map { $0.element })
    }

    /// Mean over `axes` (all axes when nil).
    public func mean(axes: [Int]? = nil, keepDims: Bool = false) -> Tensor {
        let ax = (axes ?? Array(0..<rank)).map { Shape.axis($0, rank: rank) }
        let n = Set(ax).reduce(1) { $0 * shape[$1] }
        return sum(axes: ax, keepDims: keepDims) * (1 / Float(max(n, 1)))
    }

    /// Largest element over `axes` (all axes when nil), PyTorch's amax: the gradient is shared
    /// evenly among the elements that tie for the maximum. A NaN in a group makes it NaN.
    public func amax(axes: [Int]? = nil, keepDims: Bool = false) -> Tensor { extremum(axes, keepDims, largest: true) }

    /// Smallest element over `axes`, like amax(axes:keepDims:) (PyTorch's amin).
    public func amin(axes: [Int]? = nil, keepDims: Bool = false) -> Tensor { extremum(axes, keepDims, largest: false) }

    private func extremum(_ axes: [Int]?, _ keepDims: Bool, largest: Bool) -> Tensor {
        let ax = Set((axes ?? Array(0..<rank)).map { Shape.axis($0, rank: rank) })
        let kept = shape.enumerated().map { ax.contains($0.offset) ? 1 : $0.element }
        let out = Tensor.full(kept, largest ? -.infinity : .infinity)
        let target = targetIndex(kept)
        let px = pointer, po = out.pointer
        for i in 0..<count {
            let t = target(i), v = px[i]
            if v.isNaN || po[t].isNaN { po[t] = v.isNaN ? v : po[t]; continue }
            if largest ? v > po[t] : v < po[t] { po[t] = v }
        }
        let result = Tensor.record(out, largest ? "amax" : "amin", [self]) { g, _ in
            // The share of each element: 1 / ties where it equals its group's extremum, else 0.
            let share = Tensor.zeros(self.shape), counts = Tensor.zeros(kept)
            let ps = share.pointer, pc = counts.pointer
            for i in 0..<self.count where px[i] == po[target(i)] || (px[i].isNaN && po[target(i)].isNaN) { ps[i] = 1; pc[target(i)] += 1 }
            for i in 0..<self.count where ps[i] != 0 { ps[i] = 1 / pc[target(i)] }
            return [g.broadcast(to: self.shape) * share]
        }
        if keepDims { return result }
        return result.reshape(shape.enumerated().filter { !ax.contains($0.offset) }.map { $0.element })
    }

    /// Maps a flat index of this tensor to the flat index of its group in `kept` (same rank,
    /// reduced axes of size 1).
    private func targetIndex(_ kept: [Int]) -> (Int) -> Int {
        let strides = Shape.strides(shape), keptStrides = Shape.strides(kept), dims = shape
        return { i in
            var rest = i, t = 0
            for d in 0..<dims.count {
                let q = rest / strides[d]
                rest -= q * strides[d]
                if kept[d] != 1 { t += q * keptStrides[d] }
            }
            return t
        }
    }

    func viewReshaped(_ newShape: [Int]) -> Tensor { Tensor(shape: newShape, storage: storage) }

    /// The same elements with a new shape (one dim may be -1). Shares the buffer.
    public func reshape(_ newShape: [Int]) -> Tensor {
        let s = ShapeRules.require { try ShapeRules.reshape(shape, count: count, to: newShape) }
        if s == shape { return self }
        let out = viewReshaped(s)
        return Tensor.record(out, "reshape", [self]) { g, _ in [g.reshape(self.shape)] }
    }

    /// Keeps dim 0 and flattens the rest: [N, ...] -> [N, prod(...)].
    public func flatten() -> Tensor { reshape([shape.first ?? 1, -1]) }

    /// Reorders the axes: out.shape[i] = shape[perm[i]].
    public func permute(_ perm: [Int]) -> Tensor {
        ShapeRules.require { try ShapeRules.permutation(perm, rank: rank) }
        if perm == Array(0..<rank) { return self }
        let outShape = perm.map { shape[$0] }
        let out = Tensor(uninitialized: outShape)
        let inSt = Shape.strides(shape)
        let srcSt = perm.map { inSt[$0] }  // input stride for each output axis
        let px = pointer, po = out.pointer
        let innerN = outShape.last!, innerS = srcSt.last!
        let outerShape = Array(outShape.dropLast())
        let outerCount = Shape.count(outerShape)
        Parallel.forEach(outerCount, cost: innerN) { r in
            for flat in r {
                var rem = flat, off = 0
                for d in stride(from: outerShape.count - 1, through: 0, by: -1) {
                    off += (rem % outerShape[d]) * srcSt[d]; rem /= outerShape[d]
                }
                let dst = po + flat * innerN, src = px + off
                for i in 0..<innerN { dst[i] = src[i * innerS] }
            }
        }
        var inverse = [Int](repeating: 0, count: rank)
        for (i, p) in perm.enumerated() { inverse[p] = i }
        return Tensor.record(out, "permute", [self]) { g, _ in [g.permute(inverse)] }
    }

    /// Swaps two axes.
    public func transpose(_ a: Int = -2, _ b: Int = -1) -> Tensor {
        var p = Array(0..<rank)
        p.swapAt(Shape.axis(a, rank: rank), Shape.axis(b, rank: rank))
        return permute(p)
    }

    /// Elements `range` along `axis`.
    public func slice(axis: Int, _ range: Range<Int>) -> Tensor {
        let ax = Shape.axis(axis, rank: rank)
        precondition(range.lowerBound >= 0 && range.upperBound <= shape[ax],
                     "slice \(range) out of bounds for axis \(ax) of size \(shape[ax])")
        var outShape = shape; outShape[ax] = range.count
        let out = Tensor(uninitialized: outShape)
        copyBlocks(from: self, fromOffset: range.lowerBound, to: out, toOffset: 0, axis: ax, length: range.count)
        return Tensor.record(out, "slice", [self]) { g, _ in
            [g.pad(axis: ax, before: range.lowerBound, after: self.shape[ax] - range.upperBound)]
        }
    }

    /// Zero padding along one axis (the adjoint of `slice`).
    public func pad(axis: Int, before: Int, after: Int) -> Tensor {
        let ax = Shape.axis(axis, rank: rank)
        var outShape = shape; outShape[ax] += before + after
        let out = Tensor.zeros(outShape)
        copyBlocks(from: self, fromOffset: 0, to: out, toOffset: before, axis: ax, length: shape[ax])
        return Tensor.record(out, "pad", [self]) { g, _ in [g.slice(axis: ax, before..<(before + self.shape[ax]))] }
    }

    /// Joins tensors along `axis`; all other dims must agree.
    public static func concat(_ parts: [Tensor], axis: Int) -> Tensor {
        let ax = ShapeRules.require { try ShapeRules.concat(parts.map(\.shape), axis: axis) }
        var outShape = parts[0].shape
        outShape[ax] = 0
        for p in parts {
            outShape[ax] += p.shape[ax]
        }
        let out = Tensor(uninitialized: outShape)
        var offset = 0
        var ranges: [Range<Int>] = []
        for p in parts {
            copyBlocks(from: p, fromOffset: 0, to: out, toOffset: offset, axis: ax, length: p.shape[ax])
            ranges.append(offset..<(offset + p.shape[ax]))
            offset += p.shape[ax]
        }
        return record(out, "concat", parts) { g, needs in
            ranges.enumerated().map { needs[$0.offset] ? g.slice(axis: ax, $0.element) : nil }
        }
    }
}

/// Copies `length` slices along `axis` from `src` (starting at fromOffset) into `dst` (at toOffset).
private func copyBlocks(from src: Tensor, fromOffset: Int, to dst: Tensor, toOffset: Int, axis: Int, length: Int) {
    let outer = src.shape[..<axis].reduce(1, *)
    let inner = src.shape[(axis + 1)...].reduce(1, *)
    let srcAxis = src.shape[axis], dstAxis = dst.shape[axis]
    let ps = src.pointer, pd = dst.pointer
    let block = length * inner
    Parallel.forEach(outer, cost: block) { r in
        for o in r {
            (pd + (o * dstAxis + toOffset) * inner).update(from: ps + (o * srcAxis + fromOffset) * inner, count: block)
        }
    }
}
