import CPAGKernels

// Matrix products on oneDNN's sgemm. The transpose flags let backward rules multiply by a
// transposed operand without copying it.

extension Tensor {
    /// op(a) · op(b) for 2-D tensors, op = transpose when the flag is set; also accepts
    /// rank-3 tensors with equal leading (batch) dims.
    public static func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool = false, transposeB: Bool = false) -> Tensor {
        ShapeRules.require { try ShapeRules.matmul(a.shape, b.shape, transposeA: transposeA, transposeB: transposeB) }
        if a.rank == 3 && b.rank == 3 {
            let parts = (0..<a.shape[0]).map { i -> Tensor in
                let ai = a.slice(axis: 0, i..<(i + 1)).reshape(Array(a.shape.dropFirst()))
                let bi = b.slice(axis: 0, i..<(i + 1)).reshape(Array(b.shape.dropFirst()))
                let c = matmul(ai, bi, transposeA: transposeA, transposeB: transposeB)
                return c.reshape([1] + c.shape)
            }
            return concat(parts, axis: 0)
        }
        let m = transposeA ? a.shape[1] : a.shape[0]
        let k = transposeA ? a.shape[0] : a.shape[1]
        let n = transposeB ? b.shape[0] : b.shape[1]
        let out = Tensor(uninitialized: [m, n])
        if k == 0 { out.pointer.update(repeating: 0, count: out.count) } else {
            let rc = pag_sgemm(transposeA ? 1 : 0, transposeB ? 1 : 0, Int64(m), Int64(n), Int64(k), 1,
                               a.pointer, Int64(a.shape[1]), b.pointer, Int64(b.shape[1]), 0, out.pointer, Int64(n))
            precondition(rc == 0, "oneDNN sgemm failed with status \(rc)")
        }
        return record(out, "matmul", [a, b]) { g, needs in
            var ga: Tensor?, gb: Tensor?
            if needs[0] {
                ga = transposeA ? matmul(b, g, transposeA: transposeB, transposeB: true)
                                : matmul(g, b, transposeB: !transposeB)
            }
            if needs[1] {
                gb = transposeB ? matmul(g, a, transposeA: true, transposeB: transposeA)
                                : matmul(a, g, transposeA: !transposeA)
            }
            return [ga, gb]
        }
    }

    /// Fully connected layer with PyTorch's layout: x [..., in], weight [out, in], bias [out].
    public static func linear(_ x: Tensor, weight: Tensor, bias: Tensor? = nil) -> Tensor {
        ShapeRules.require { try ShapeRules.linear(x.shape, weight.shape, bias?.shape) }
        let flat = x.rank == 2 ? x : x.reshape([-1, weight.shape[1]])
        var y = matmul(flat, weight, transposeB: true)
        if let bias { y = y + bias }
        return x.rank == 2 ? y : y.reshape(Array(x.shape.dropLast()) + [weight.shape[0]])
    }
}
