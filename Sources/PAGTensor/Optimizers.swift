import CPAGKernels
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An optimizer updates parameters in place from their accumulated `.grad`, with PyTorch's
/// update formulas. Parameters without a gradient are skipped.
public protocol Optimizer: AnyObject {
    var learningRate: Float { get set }
    func step()
    func zeroGrad()
    /// The optimizer's state (momentum buffers, moment estimates) by name, for checkpoints.
    /// Names use the parameter's index: "momentum_buffer.3", "exp_avg.0", "exp_avg_sq.0".
    func stateTensors() -> [(name: String, tensor: Tensor)]
    /// Steps taken so far (Adam's bias correction depends on it).
    var stepCount: Int { get }
    /// Restores state saved by `stateTensors()`; throws when a tensor is missing or misshapen.
    func loadState(_ state: [String: Tensor], stepCount: Int) throws
}

/// A checkpointed optimizer state that does not fit the parameters.
public struct OptimizerStateError: Error, CustomStringConvertible {
    public var description: String
}

func restore(_ name: String, _ state: [String: Tensor], like param: Tensor) throws -> Tensor {
    guard let t = state[name] else { throw OptimizerStateError(description: "optimizer state '\(name)' is missing") }
    guard t.count == param.count else {
        throw OptimizerStateError(description: "optimizer state '\(name)' has \(t.count) values, parameter has \(param.count)")
    }
    return t.copy().reshape(param.shape).detached()
}

extension Optimizer {
    func forEachParam(_ params: [Tensor], _ body: (Int, UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void) {
        for (i, p) in params.enumerated() {
            guard let g = p.grad else { continue }
            precondition(g.shape == p.shape, "gradient shape \(g.shape) does not match parameter shape \(p.shape)")
            body(i, p.pointer, g.pointer, p.count)
        }
    }
}

/// Stochastic gradient descent with momentum, dampening, Nesterov and L2 weight decay
/// (torch.optim.SGD).
public final class SGD: Optimizer {
    public let params: [Tensor]
    public var learningRate: Float
    public let momentum: Float, dampening: Float, weightDecay: Float, nesterov: Bool
    private var buffers: [Tensor?]

    public init(params: [Tensor], learningRate: Float, momentum: Float = 0, dampening: Float = 0,
                weightDecay: Float = 0, nesterov: Bool = false) {
        precondition(!nesterov || (momentum > 0 && dampening == 0), "SGD: Nesterov needs momentum > 0 and no dampening")
        self.params = params; self.learningRate = learningRate; self.momentum = momentum
        self.dampening = dampening; self.weightDecay = weightDecay; self.nesterov = nesterov
        buffers = Array(repeating: nil, count: params.count)
    }

    public func step() {
        stepCount += 1
        let lr = learningRate, mom = momentum, damp = dampening, wd = weightDecay, nest = nesterov
        forEachParam(params) { i, p, g, n in
            var buf: UnsafeMutablePointer<Float>? = nil
            var first = false
            if mom != 0 {
                if buffers[i] == nil { buffers[i] = Tensor.zeros([n]); first = true }
                buf = buffers[i]!.pointer
            }
            Parallel.forEach(n) { r in
                let lo = r.lowerBound
                pag_simd_sgd(Int64(r.count), p + lo, g + lo, buf.map { $0 + lo }, lr, mom, damp, wd, nest ? 1 : 0, first ? 1 : 0)
            }
        }
    }

    public func zeroGrad() { for p in params { p.grad = nil } }

    public private(set) var stepCount = 0

    public func stateTensors() -> [(name: String, tensor: Tensor)] {
        buffers.enumerated().compactMap { i, b in b.map { ("momentum_buffer.\(i)", $0.reshape(params[i].shape)) } }
    }

    public func loadState(_ state: [String: Tensor], stepCount: Int) throws {
        self.stepCount = stepCount
        for i in params.indices {
            buffers[i] = state["momentum_buffer.\(i)"] == nil ? nil : try restore("momentum_buffer.\(i)", state, like: params[i]).reshape([params[i].count])
        }
    }
}

/// Adam (torch.optim.Adam, with optional L2 weight decay added to the gradient).
public final class Adam: Optimizer {
    public let params: [Tensor]
    public var learningRate: Float
    public let beta1: Float, beta2: Float, eps: Float, weightDecay: Float
    private var m: [Tensor], v: [Tensor]
    public private(set) var stepCount = 0

    public init(params: [Tensor], learningRate: Float = 1e-3, beta1: Float = 0.9, beta2: Float = 0.999,
                eps: Float = 1e-8, weightDecay: Float = 0) {
        self.params = params; self.learningRate = learningRate; self.beta1 = beta1; self.beta2 = beta2
        self.eps = eps; self.weightDecay = weightDecay
        m = params.map { Tensor.zeros($0.shape) }
        v = params.map { Tensor.zeros($0.shape) }
    }

    public func step() {
        stepCount += 1
        let b1 = beta1, b2 = beta2, e = eps, wd = weightDecay
        let bc1 = 1 - powf(b1, Float(stepCount)), bc2 = 1 - powf(b2, Float(stepCount))
        let stepSize = learningRate / bc1, bc2Sqrt = bc2.squareRoot()
        forEachParam(params) { i, p, g, n in
            let pm = m[i].pointer, pv = v[i].pointer
            Parallel.forEach(n, cost: 4) { r in
                let lo = r.lowerBound
                pag_simd_adam(Int64(r.count), p + lo, g + lo, pm + lo, pv + lo, b1, b2, e, wd, stepSize, bc2Sqrt)
            }
        }
    }

    public func zeroGrad() { for p in params { p.grad = nil } }

    public func stateTensors() -> [(name: String, tensor: Tensor)] {
        params.indices.flatMap { i in [("exp_avg.\(i)", m[i]), ("exp_avg_sq.\(i)", v[i])] }
    }

    public func loadState(_ state: [String: Tensor], stepCount: Int) throws {
        let newM = try params.indices.map { try restore("exp_avg.\($0)", state, like: params[$0]) }
        let newV = try params.indices.map { try restore("exp_avg_sq.\($0)", state, like: params[$0]) }
        m = newM; v = newV; self.stepCount = stepCount
    }
}

/// Learning-rate schedules, indexed by epoch (or step) t starting at 0.
public enum LRSchedule: Equatable, Sendable {
    case constant
    /// lr * gamma^(floor(t / stepSize)) (torch.optim.lr_scheduler.StepLR).
    case step(stepSize: Int, gamma: Float)
    /// etaMin + (lr - etaMin) (1 + cos(pi t / tMax)) / 2 (CosineAnnealingLR, closed form).
    case cosine(tMax: Int, etaMin: Float)

    public func learningRate(base: Float, at t: Int) -> Float {
        switch self {
        case .constant: return base
        case let .step(stepSize, gamma): return base * powf(gamma, Float(t / max(stepSize, 1)))
        case let .cosine(tMax, etaMin):
            let tc = Float(min(t, tMax))
            return etaMin + (base - etaMin) * (1 + cosf(Float.pi * tc / Float(max(tMax, 1)))) / 2
        }
    }
}
