// The values an ONNX graph computes with while pag runs it: host tensors (float data, recorded for
// differentiation) and constants (shape arithmetic, integer and bool tensors, small float
// constants), which are folded in Swift as the graph runs and become host tensors only where a
// float operation meets a tensor.
import PAGPluginKit

enum Value {
    case tensor(Tensor)
    case constant(Constant)

    var shape: [Int] {
        switch self {
        case .tensor(let t): return t.shape
        case .constant(let c): return c.shape
        }
    }
}

/// NumPy broadcasting of two shapes, or nil when they do not broadcast.
func broadcastShapes(_ a: [Int], _ b: [Int]) -> [Int]? {
    let n = max(a.count, b.count)
    var out = [Int](repeating: 1, count: n)
    for i in 0..<n {
        let x = i < n - a.count ? 1 : a[i - (n - a.count)]
        let y = i < n - b.count ? 1 : b[i - (n - b.count)]
        guard x == y || x == 1 || y == 1 else { return nil }
        out[i] = x == 1 ? y : x
    }
    return out
}

/// Row-major strides of a shape.
func strides(_ shape: [Int]) -> [Int] {
    var s = [Int](repeating: 1, count: shape.count)
    var acc = 1
    for i in stride(from: shape.count - 1, through: 0, by: -1) { s[i] = acc; acc *= shape[i] }
    return s
}

extension Constant {
    /// The element of a broadcast view at flat index `i` of `shape`.
    func broadcastIndex(_ i: Int, to shape: [Int], outStrides: [Int]) -> Int {
        var idx = 0, rem = i
        let offset = shape.count - self.shape.count
        let mine = strides(self.shape)
        for d in 0..<shape.count {
            let coord = rem / outStrides[d]; rem %= outStrides[d]
            if d >= offset, self.shape[d - offset] != 1 { idx += coord * mine[d - offset] }
        }
        return idx
    }

    /// Elementwise f over two broadcast constants.
    static func zip(_ a: Constant, _ b: Constant, kind: Kind, _ f: (Double, Double) -> Double) throws -> Constant {
        guard let shape = broadcastShapes(a.shape, b.shape) else {
            throw ONNXError("shapes \(a.shape) and \(b.shape) do not broadcast")
        }
        let n = shape.reduce(1, *), st = strides(shape)
        if a.shape == shape && b.shape == shape {
            return Constant(kind, shape: shape, values: (0..<n).map { f(a.values[$0], b.values[$0]) })
        }
        return Constant(kind, shape: shape, values: (0..<n).map {
            f(a.values[a.broadcastIndex($0, to: shape, outStrides: st)], b.values[b.broadcastIndex($0, to: shape, outStrides: st)])
        })
    }

    func map(_ kind: Kind? = nil, _ f: (Double) -> Double) -> Constant {
        Constant(kind ?? self.kind, shape: shape, values: values.map(f))
    }

    /// Reshaped (same values).
    func reshaped(_ s: [Int]) -> Constant { Constant(kind, shape: s, values: values) }

    /// Elements along `axis` at `indices` (Gather), negative indices counted from the end.
    func gather(_ indices: Constant, axis: Int) throws -> Constant {
        let dim = shape[axis]
        let outer = shape[..<axis].reduce(1, *), inner = shape[(axis + 1)...].reduce(1, *)
        var out: [Double] = []
        out.reserveCapacity(outer * indices.count * inner)
        for o in 0..<outer {
            for raw in indices.ints {
                let k = raw < 0 ? raw + dim : raw
                guard k >= 0 && k < dim else { throw ONNXError("index \(raw) is out of range for a dimension of size \(dim)") }
                let base = (o * dim + k) * inner
                out.append(contentsOf: values[base..<(base + inner)])
            }
        }
        return Constant(kind, shape: Array(shape[..<axis]) + indices.shape + Array(shape[(axis + 1)...]), values: out)
    }

    /// Joined along `axis`.
    static func concat(_ parts: [Constant], axis: Int) throws -> Constant {
        guard let first = parts.first else { throw ONNXError("nothing to concatenate") }
        let rank = first.shape.count
        for p in parts where p.shape.count != rank || (0..<rank).contains(where: { $0 != axis && p.shape[$0] != first.shape[$0] }) {
            throw ONNXError("cannot concatenate shapes \(parts.map(\.shape)) along axis \(axis)")
        }
        let outer = first.shape[..<axis].reduce(1, *)
        var out: [Double] = []
        for o in 0..<outer {
            for p in parts {
                let chunk = p.shape[axis...].reduce(1, *)
                out.append(contentsOf: p.values[(o * chunk)..<((o + 1) * chunk)])
            }
        }
        var shape = first.shape
        shape[axis] = parts.map { $0.shape[axis] }.reduce(0, +)
        return Constant(parts.contains { $0.kind == .float } ? .float : first.kind, shape: shape, values: out)
    }

    /// Reordered axes.
    func transposed(_ perm: [Int]) -> Constant {
        let outShape = perm.map { shape[$0] }, inSt = strides(shape), outSt = strides(outShape)
        let n = values.count
        var out = [Double](repeating: 0, count: n)
        for i in 0..<n {
            var rem = i, src = 0
            for d in 0..<perm.count { let c = rem / outSt[d]; rem %= outSt[d]; src += c * inSt[perm[d]] }
            out[i] = values[src]
        }
        return Constant(kind, shape: outShape, values: out)
    }

    /// Elements start..<end by step along axis (Slice with clamped bounds).
    func sliced(axis: Int, start: Int, end: Int, step: Int) -> Constant {
        var picks: [Int] = []
        var k = start
        while step > 0 ? k < end : k > end { picks.append(k); k += step }
        return (try? gather(.ints(picks), axis: axis)) ?? self
    }

    /// Broadcast to `shape` (Expand).
    func expanded(to target: [Int]) throws -> Constant {
        guard let s = broadcastShapes(shape, target) else { throw ONNXError("cannot expand \(shape) to \(target)") }
        let n = s.reduce(1, *), st = strides(s)
        return Constant(kind, shape: s, values: (0..<n).map { values[broadcastIndex($0, to: s, outStrides: st)] })
    }
}
