#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CPAGKernels

// Dot-product attention in the channel-first layout of diffusion U-Nets (EDM's UNetBlock):
// q, k, v [B, C, L] (B = batch x heads, C channels per head, L = H x W positions),
//   P = softmax over k of (q^T k) / sqrt(C)    [B, Lq, Lk]
//   out = v P^T                                [B, C, Lq]
// The forward runs two sgemm calls per batch entry on the tensors' buffers (no slicing copies)
// and a fused row softmax. The backward is written in differentiable operations:
//   dv = dout P,  dP = dout^T v,  dS = P * (dP - rowsum(dP * P)),
//   dq = k dS^T / sqrt(C),  dk = q dS / sqrt(C)
// with P rebuilt from q and k by differentiable operations when the backward is recorded, so
// derivatives of any order are exact.

extension Tensor {
    /// softmax(q^T k / sqrt(C)) applied to v, for q, k, v [B, C, L] (see above): [B, C, L].
    public static func attention(q: Tensor, k: Tensor, v: Tensor) -> Tensor {
        precondition(q.rank == 3 && k.rank == 3 && v.rank == 3, "attention: q, k, v must be [B, C, L], got \(q.shape), \(k.shape), \(v.shape)")
        precondition(q.shape[0] == k.shape[0] && q.shape[0] == v.shape[0] && q.shape[1] == k.shape[1] && k.shape[2] == v.shape[2],
                     "attention: shapes \(q.shape), \(k.shape), \(v.shape) do not fit (q, k: [B, C, L]; v: [B, C', Lk])")
        let (b, c, lq) = (q.shape[0], q.shape[1], q.shape[2])
        let lk = k.shape[2], cv = v.shape[1]
        let scale = 1 / Float(c).squareRoot()
        let p = Tensor(uninitialized: [b, lq, lk])
        let out = Tensor(uninitialized: [b, cv, lq])
        for i in 0..<b {
            let pq = q.pointer + i * c * lq, pk = k.pointer + i * c * lk, pv = v.pointer + i * cv * lk
            let pp = p.pointer + i * lq * lk, po = out.pointer + i * cv * lq
            // S = q^T k * scale: [Lq, C] x [C, Lk].
            var rc = pag_sgemm(1, 0, Int64(lq), Int64(lk), Int64(c), scale, pq, Int64(lq), pk, Int64(lk), 0, pp, Int64(lk))
            precondition(rc == 0, "oneDNN sgemm failed with status \(rc)")
            softmaxRows(pp, rows: lq, cols: lk)
            // out = v P^T: [C', Lk] x [Lk, Lq].
            rc = pag_sgemm(0, 1, Int64(cv), Int64(lq), Int64(lk), 1, pv, Int64(lk), pp, Int64(lk), 0, po, Int64(lq))
            precondition(rc == 0, "oneDNN sgemm failed with status \(rc)")
        }
        let saved = p
        return record(out, "attention", [q, k, v]) { g, needs in
            let probs = GradMode.isEnabled
                ? (matmul(q, k, transposeA: true) * scale).softmax(axis: 2)
                : saved
            var gq: Tensor?, gk: Tensor?, gv: Tensor?
            if needs[2] { gv = matmul(g, probs) }
            if needs[0] || needs[1] {
                let dp = matmul(g, v, transposeA: true)
                let ds = probs * (dp - (dp * probs).sum(axes: [2], keepDims: true))
                if needs[0] { gq = matmul(k, ds, transposeB: true) * scale }
                if needs[1] { gk = matmul(q, ds) * scale }
            }
            return [gq, gk, gv]
        }
    }
}

/// In-place softmax of each row of a [rows, cols] row-major block.
private func softmaxRows(_ p: UnsafeMutablePointer<Float>, rows: Int, cols: Int) {
    Parallel.forEach(rows, cost: cols * 8) { r in
        for row in r {
            let x = p + row * cols
            var m = -Float.infinity
            for j in 0..<cols { m = Swift.max(m, x[j]) }
            var s: Float = 0
            for j in 0..<cols { let e = expf(x[j] - m); x[j] = e; s += e }
            let inv = 1 / s
            for j in 0..<cols { x[j] *= inv }
        }
    }
}
