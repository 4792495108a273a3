import CPAGPlugin
import PAGTensor

// The diffusion U-Net operations of the pag_host table (ABI 1.3): silu, sin, cos, group_norm,
// attention, upsample_nearest2d, positional_embedding. Same pattern as HostTableOps.swift:
// check shapes and arguments, then call the engine.

@inline(__always)
private func unetUnary(_ c: OpaquePointer?, _ x: OpaquePointer?, _ op: StaticString,
                       _ f: (Tensor) throws -> Tensor) -> OpaquePointer? {
    guard let ctx = CallContext.from(c) else { return nil }
    return ctx.op(op) { try f(try ctx.tensor(x, op, 1)) }
}

extension HostTable {
    static func installUNetOps(_ h: inout pag_host) {
        h.silu = { c, x in unetUnary(c, x, "silu") { $0.silu() } }
        h.sin = { c, x in unetUnary(c, x, "sin") { $0.sin() } }
        h.cos = { c, x in unetUnary(c, x, "cos") { $0.cos() } }
        h.group_norm = { c, x, groups, w, b, eps in
            withContext(c) { ctx in
                ctx.op("group_norm") {
                    let op: StaticString = "group_norm"
                    let input = try ctx.tensor(x, op, 1)
                    let weight = try ctx.optionalTensor(w, op, 3), bias = try ctx.optionalTensor(b, op, 4)
                    guard input.rank >= 2 else { throw RuntimeError("group_norm: input must be [N, C, ...], got \(input.shape)") }
                    let ch = input.shape[1]
                    guard groups >= 1, ch % Int(groups) == 0 else {
                        throw RuntimeError("group_norm: \(ch) channels do not split into \(groups) groups")
                    }
                    for (name, t) in [("weight", weight), ("bias", bias)] {
                        if let t, t.shape != [ch] { throw RuntimeError("group_norm: \(name) shape \(t.shape), expected [\(ch)]") }
                    }
                    guard eps >= 0, eps.isFinite else { throw RuntimeError("group_norm: eps must be >= 0, got \(eps)") }
                    return input.groupNorm(groups: Int(groups), weight: weight, bias: bias, eps: eps)
                }
            }
        }
        h.attention = { c, q, k, v in
            withContext(c) { ctx in
                ctx.op("attention") {
                    let tq = try ctx.tensor(q, "attention", 1), tk = try ctx.tensor(k, "attention", 2)
                    let tv = try ctx.tensor(v, "attention", 3)
                    guard tq.rank == 3, tk.rank == 3, tv.rank == 3, tq.shape[0] == tk.shape[0], tq.shape[0] == tv.shape[0],
                          tq.shape[1] == tk.shape[1], tk.shape[2] == tv.shape[2], tq.shape[1] > 0 else {
                        throw RuntimeError("attention: q \(tq.shape), k \(tk.shape), v \(tv.shape) do not fit (q, k: [B, C, L]; v: [B, C', Lk])")
                    }
                    return Tensor.attention(q: tq, k: tk, v: tv)
                }
            }
        }
        h.upsample_nearest2d = { c, x, factor in
            unetUnary(c, x, "upsample_nearest2d") { t in
                guard t.rank == 4 else { throw RuntimeError("upsample_nearest2d: input must be [N, C, H, W], got \(t.shape)") }
                guard factor >= 1, factor <= 64 else { throw RuntimeError("upsample_nearest2d: factor must be in 1...64, got \(factor)") }
                return t.upsampleNearest2d(factor: Int(factor))
            }
        }
        h.positional_embedding = { c, x, channels, maxPositions, endpoint in
            unetUnary(c, x, "positional_embedding") { t in
                guard t.rank == 1 else { throw RuntimeError("positional_embedding: input must be a vector [N], got \(t.shape)") }
                guard channels >= (endpoint != 0 ? 4 : 2), channels % 2 == 0 else {
                    throw RuntimeError("positional_embedding: channels must be even and >= \(endpoint != 0 ? 4 : 2), got \(channels)")
                }
                guard maxPositions > 0, maxPositions.isFinite else {
                    throw RuntimeError("positional_embedding: max_positions must be positive, got \(maxPositions)")
                }
                return t.positionalEmbedding(channels: Int(channels), maxPositions: maxPositions, endpoint: endpoint != 0)
            }
        }
    }
}
