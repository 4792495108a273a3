// The diffusion U-Net operations of ABI 1.3 (silu, sin, cos, group_norm, attention,
// upsample_nearest2d, positional_embedding): the layers of EDM's DDPM++ and ADM networks.

extension Tensor {
    /// x * sigmoid(x) (SiLU, swish).
    public func silu() throws -> Tensor { try wrap(host.pointee.silu(ctx, handle), "silu") }
    /// Sine.
    public func sin() throws -> Tensor { try wrap(host.pointee.sin(ctx, handle), "sin") }
    /// Cosine.
    public func cos() throws -> Tensor { try wrap(host.pointee.cos(ctx, handle), "cos") }

    /// Group normalization of [N, C, ...] over `groups` groups of C / groups channels
    /// (PyTorch's F.group_norm); weight and bias [C] are optional.
    public func groupNorm(groups: Int, weight: Tensor? = nil, bias: Tensor? = nil, eps: Float = 1e-5) throws -> Tensor {
        try wrap(host.pointee.group_norm(ctx, handle, Int32(groups), weight?.handle, bias?.handle, eps), "group_norm")
    }

    /// Dot-product attention, channel-first: q, k [B, C, L], v [B, C', Lk] ->
    /// v · softmax(qᵀk / √C)ᵀ, [B, C', Lq].
    public static func attention(q: Tensor, k: Tensor, v: Tensor) throws -> Tensor {
        try q.wrap(q.host.pointee.attention(q.ctx, q.handle, k.handle, v.handle), "attention")
    }

    /// Nearest-neighbour upsampling of NCHW input by an integer factor.
    public func upsampleNearest2d(factor: Int = 2) throws -> Tensor {
        try wrap(host.pointee.upsample_nearest2d(ctx, handle, Int32(factor)), "upsample_nearest2d")
    }

    /// The sinusoidal embedding [N, channels] = [cos(x f_j) | sin(x f_j)] of noise labels x [N],
    /// f_j = (1 / maxPositions)^(j / (channels / 2 - endpoint)).
    public func positionalEmbedding(channels: Int, maxPositions: Double = 10000, endpoint: Bool = false) throws -> Tensor {
        try wrap(host.pointee.positional_embedding(ctx, handle, Int32(channels), maxPositions, endpoint ? 1 : 0),
                 "positional_embedding")
    }
}
