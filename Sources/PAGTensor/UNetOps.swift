#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CPAGKernels

// Primitives of diffusion U-Nets (EDM's DDPM++ and ADM networks): sine and cosine, SiLU,
// nearest-neighbour upsampling, and the sinusoidal noise embedding. Backward rules are written
// in differentiable operations, so every one differentiates to any order.

extension Tensor {
    /// Sine.
    public func sin() -> Tensor {
        let out = mapUnary(UnaryOp(Int(PAG_U_SIN)), self, cost: 8)
        return Tensor.record(out, "sin", [self]) { g, _ in [g * self.cos()] }
    }

    /// Cosine.
    public func cos() -> Tensor {
        let out = mapUnary(UnaryOp(Int(PAG_U_COS)), self, cost: 8)
        return Tensor.record(out, "cos", [self]) { g, _ in [-(g * self.sin())] }
    }

    /// SiLU (swish): x * sigmoid(x), one fused pass.
    public func silu() -> Tensor {
        let out = mapUnary(UnaryOp(Int(PAG_U_SILU)), self, cost: 8)
        return Tensor.record(out, "silu", [self]) { g, _ in
            if GradMode.isEnabled {
                // Recorded backward: in differentiable operations, exact to any order.
                let s = self.sigmoid()
                return [g * (s + self * s * (1 - s))]
            }
            return [mapBinary(BinaryOp(Int(PAG_B_SILU_BACKWARD)), g, self, outShape: self.shape)]
        }
    }

    /// Nearest-neighbour upsampling of NCHW input by an integer factor: every pixel becomes a
    /// factor x factor block (EDM's resampling with the [1, 1] filter, and F.interpolate's
    /// 'nearest'). Its adjoint is a factor x factor sum pool.
    public func upsampleNearest2d(factor: Int) -> Tensor {
        precondition(rank == 4, "upsample_nearest2d: input must be NCHW, got shape \(shape)")
        precondition(factor >= 1, "upsample_nearest2d: factor must be >= 1, got \(factor)")
        if factor == 1 { return self * 1 }
        let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3])
        let oh = h * factor, ow = w * factor
        let out = Tensor(uninitialized: [n, c, oh, ow])
        let px = pointer, po = out.pointer
        Parallel.forEach(n * c * h, cost: ow * factor) { r in
            for row in r {
                let src = px + row * w
                let dst0 = po + row * factor * ow
                for x in 0..<w {
                    let v = src[x]
                    for k in 0..<factor { dst0[x * factor + k] = v }
                }
                for k in 1..<factor { (dst0 + k * ow).update(from: dst0, count: ow) }
            }
        }
        return Tensor.record(out, "upsample_nearest2d", [self]) { g, _ in
            [g.avgPool2d(kernel: factor) * Float(factor * factor)]
        }
    }

    /// The sinusoidal embedding of a vector of noise labels [N] (EDM's PositionalEmbedding):
    /// [N, channels] = [cos(x f_0) ... cos(x f_{h-1}), sin(x f_0) ... sin(x f_{h-1})] with
    /// h = channels / 2 and f_j = (1 / maxPositions)^(j / (h - endpoint)), frequencies rounded
    /// to float32 as PyTorch computes them.
    public func positionalEmbedding(channels: Int, maxPositions: Double = 10000, endpoint: Bool = false) -> Tensor {
        precondition(rank == 1, "positional_embedding: input must be a vector [N], got shape \(shape)")
        precondition(channels >= 2 && channels % 2 == 0, "positional_embedding: channels must be even and >= 2, got \(channels)")
        let half = channels / 2
        let denom = Float(half - (endpoint ? 1 : 0))
        precondition(denom > 0, "positional_embedding: channels \(channels) with endpoint needs at least 4 channels")
        let base = Float(1 / maxPositions)
        let freqs = Tensor((0..<half).map { powf(base, Float($0) / denom) }, shape: [1, half])
        let arg = self.reshape([shape[0], 1]) * freqs
        return Tensor.concat([arg.cos(), arg.sin()], axis: 1)
    }
}
