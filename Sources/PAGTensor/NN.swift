import CPAGKernels
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Neural-network operations: softmax family, losses, batch norm, dropout, per-sample norms.

/// How a loss combines per-sample values.
public enum Reduction: String, Sendable { case mean, sum, none }

extension Tensor {
    /// log(softmax(x)) along `axis`, computed stably (max subtracted).
    public func logSoftmax(axis: Int = -1) -> Tensor {
        let ax = Shape.axis(axis, rank: rank)
        let outer = shape[..<ax].reduce(1, *), n = shape[ax], inner = shape[(ax + 1)...].reduce(1, *)
        let out = Tensor(uninitialized: shape)
        let px = pointer, po = out.pointer
        Parallel.forEach(outer * inner, cost: n * 8) { r in
            pag_simd_log_softmax(Int64(r.lowerBound), Int64(r.upperBound), Int64(n), Int64(inner), px, po)
        }
        let saved = out.detached()
        return Tensor.record(out, "log_softmax", [self]) { g, _ in
            let p = (GradMode.isEnabled ? self.logSoftmax(axis: ax) : saved).exp()
            return [g - p * g.sum(axes: [ax], keepDims: true)]
        }
    }

    /// softmax(x) along `axis`.
    public func softmax(axis: Int = -1) -> Tensor { logSoftmax(axis: axis).exp() }

    /// Cross-entropy of logits [N, C] against integer labels in 0..<C (PyTorch's F.cross_entropy),
    /// with optional label smoothing.
    public static func crossEntropy(_ logits: Tensor, labels: [Int], labelSmoothing: Float = 0,
                                    reduction: Reduction = .mean) -> Tensor {
        ShapeRules.require { try ShapeRules.crossEntropy(logits.shape, labels: labels, smoothing: labelSmoothing) }
        let n = logits.shape[0], c = logits.shape[1]
        // Target distribution: (1 - eps) one-hot + eps / C, a constant.
        let target = Tensor.full([n, c], labelSmoothing / Float(c))
        for (i, y) in labels.enumerated() {
            target.pointer[i * c + y] += 1 - labelSmoothing
        }
        let perSample = -(logits.logSoftmax(axis: 1) * target).sum(axes: [1])
        switch reduction {
        case .mean: return perSample.mean()
        case .sum: return perSample.sum()
        case .none: return perSample
        }
    }

    /// Mean squared error (PyTorch's F.mse_loss).
    public static func mse(_ a: Tensor, _ b: Tensor, reduction: Reduction = .mean) -> Tensor {
        precondition(a.shape == b.shape, "mse: shapes \(a.shape) and \(b.shape) differ")
        let sq = (a - b).square()
        switch reduction {
        case .mean: return sq.mean()
        case .sum: return sq.sum()
        case .none: return sq
        }
    }

    /// Lp norm of each sample over all dims but the first: [N, ...] -> [N]. p is 1 or 2.
    public func normPerSample(p: Int = 2) -> Tensor {
        precondition(rank >= 1, "norm_per_sample needs a batch dimension")
        let axes = Array(1..<rank)
        switch p {
        case 1: return abs().sum(axes: axes)
        case 2: return square().sum(axes: axes).sqrt()
        default: preconditionFailure("norm_per_sample: p must be 1 or 2, got \(p)")
        }
    }

    /// Dropout: zeroes each element with probability p and scales the rest by 1/(1-p) in
    /// training; identity otherwise.
    public func dropout(p: Float, training: Bool, rng: inout RandomGenerator) -> Tensor {
        precondition(p >= 0 && p < 1, "dropout: probability \(p) outside [0, 1)")
        guard training, p > 0 else { return self }
        let mask = Tensor(uninitialized: shape)
        rng.fillDropoutMask(mask.pointer, count: count, p: p, keep: 1 / (1 - p))
        return self * mask
    }

    /// Batch normalization over NCHW (or NC) input, PyTorch semantics: in training it
    /// normalizes with the batch statistics (biased variance) and updates the running
    /// statistics in place with `momentum` (unbiased variance); in evaluation it uses them.
    public static func batchNorm(_ x: Tensor, weight: Tensor?, bias: Tensor?,
                                 runningMean: Tensor?, runningVar: Tensor?,
                                 training: Bool, momentum: Float = 0.1, eps: Float = 1e-5) -> Tensor {
        ShapeRules.require {
            try ShapeRules.batchNorm(x.shape, [("weight", weight?.shape), ("bias", bias?.shape), ("running_mean", runningMean?.shape),
                                               ("running_var", runningVar?.shape)],
                                     training: training, hasRunning: runningMean != nil && runningVar != nil)
        }
        if training {
            // One fused node (BatchNorm.swift); its backward is differentiable to any order.
            return batchNormTraining(x, weight: weight, bias: bias, runningMean: runningMean, runningVar: runningVar,
                                     momentum: momentum, eps: eps)
        }
        guard let rm = runningMean, let rv = runningVar else {
            preconditionFailure("batch_norm: evaluation mode needs running_mean and running_var")
        }
        // y = x * scale + shift, the per-channel factors from differentiable [C] operations and
        // the full-size pass one fused node (four broadcast passes, each with its backward, before).
        var scale = (rv + eps).pow(-0.5)
        if let weight { scale = scale * weight }
        var shift = -(rm * scale)
        if let bias { shift = shift + bias }
        return channelAffine(x, scale: scale, shift: shift)
    }
}
