import CPAGKernels
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Differentiable elementwise operations. Each backward rule is written with differentiable
// operations. Where a rule needs the op's own output (exp, tanh, sigmoid, sqrt) it reuses the
// saved value for first-order gradients and recomputes it from the input when the backward
// pass is itself recorded, so the output's dependence on the input is not lost.

// The ops' formulas live in Sources/CPAGKernels/simd_loops.h (PAG_U_* / PAG_B_* in pag_simd.h).

/// Sums a broadcast gradient back to the shape of the operand it came from.
func unbroadcast(_ g: Tensor, to shape: [Int]) -> Tensor {
    g.shape == shape ? g : g.sum(to: shape)
}

func broadcastShape(_ a: Tensor, _ b: Tensor, _ op: String) -> [Int] {
    ShapeRules.require { try ShapeRules.broadcast(op, a.shape, b.shape) }
}

extension Tensor {
    public static func + (a: Tensor, b: Tensor) -> Tensor {
        let shape = broadcastShape(a, b, "add")
        let out = mapBinary(BinaryOp(PAG_B_ADD), a, b, outShape: shape)
        return record(out, "add", [a, b]) { g, _ in [unbroadcast(g, to: a.shape), unbroadcast(g, to: b.shape)] }
    }

    public static func - (a: Tensor, b: Tensor) -> Tensor {
        let out = mapBinary(BinaryOp(PAG_B_SUB), a, b, outShape: broadcastShape(a, b, "sub"))
        return record(out, "sub", [a, b]) { g, needs in
            [unbroadcast(g, to: a.shape), needs[1] ? unbroadcast(-g, to: b.shape) : nil]
        }
    }

    public static func * (a: Tensor, b: Tensor) -> Tensor {
        let out = mapBinary(BinaryOp(PAG_B_MUL), a, b, outShape: broadcastShape(a, b, "mul"))
        return record(out, "mul", [a, b]) { g, needs in
            [needs[0] ? unbroadcast(g * b, to: a.shape) : nil,
             needs[1] ? unbroadcast(g * a, to: b.shape) : nil]
        }
    }

    public static func / (a: Tensor, b: Tensor) -> Tensor {
        let out = mapBinary(BinaryOp(PAG_B_DIV), a, b, outShape: broadcastShape(a, b, "div"))
        return record(out, "div", [a, b]) { g, needs in
            [needs[0] ? unbroadcast(g / b, to: a.shape) : nil,
             needs[1] ? unbroadcast(-(g * a) / (b * b), to: b.shape) : nil]
        }
    }

    public static prefix func - (x: Tensor) -> Tensor { x * -1 }

    public static func * (x: Tensor, s: Float) -> Tensor {
        let out = mapUnary(UnaryOp(PAG_U_SCALE, s), x)
        return record(out, "scale", [x]) { g, _ in [g * s] }
    }
    public static func * (s: Float, x: Tensor) -> Tensor { x * s }
    public static func / (x: Tensor, s: Float) -> Tensor { x * (1 / s) }

    public static func + (x: Tensor, s: Float) -> Tensor {
        let out = mapUnary(UnaryOp(PAG_U_ADD_SCALAR, s), x)
        return record(out, "add_scalar", [x]) { g, _ in [g] }
    }
    public static func + (s: Float, x: Tensor) -> Tensor { x + s }
    public static func - (x: Tensor, s: Float) -> Tensor { x + (-s) }
    public static func - (s: Float, x: Tensor) -> Tensor { (-x) + s }

    /// e^x.
    public func exp() -> Tensor {
        let out = mapUnary(UnaryOp(PAG_U_EXP), self, cost: 8)
        let saved = out.detached()
        return Tensor.record(out, "exp", [self]) { g, _ in [g * (GradMode.isEnabled ? self.exp() : saved)] }
    }

    /// Natural logarithm.
    public func log() -> Tensor {
        let out = mapUnary(UnaryOp(PAG_U_LOG), self, cost: 8)
        return Tensor.record(out, "log", [self]) { g, _ in [g / self] }
    }

    /// Square root.
    public func sqrt() -> Tensor {
        let out = mapUnary(UnaryOp(PAG_U_SQRT), self, cost: 4)
        let saved = out.detached()
        return Tensor.record(out, "sqrt", [self]) { g, _ in
            [g / ((GradMode.isEnabled ? self.sqrt() : saved) * 2)]
        }
    }

    /// x².
    public func square() -> Tensor {
        let out = mapUnary(UnaryOp(PAG_U_SQUARE), self)
        return Tensor.record(out, "square", [self]) { g, _ in [g * self * 2] }
    }

    /// x^p for a constant exponent p.
    public func pow(_ p: Float) -> Tensor {
        if p == 2 { return square() }
        if p == 1 { return self * 1 }
        let out = mapUnary(UnaryOp(PAG_U_POW, p), self, cost: 16)
        return Tensor.record(out, "pow", [self]) { g, _ in [g * self.pow(p - 1) * p] }
    }

    /// |x| (gradient 0 at 0, like PyTorch).
    public func abs() -> Tensor {
        let out = mapUnary(UnaryOp(PAG_U_ABS), self)
        return Tensor.record(out, "abs", [self]) { g, _ in [g.mulSign(of: self)] }
    }

    /// g * sign(x), linear in g; x is treated as a constant (its derivative is 0 almost everywhere).
    func mulSign(of x: Tensor) -> Tensor {
        let out = mapBinary(BinaryOp(PAG_B_MUL_SIGN), self, x, outShape: shape)
        return Tensor.record(out, "mul_sign", [self]) { g, _ in [g.mulSign(of: x)] }
    }

    /// max(x, 0).
    public func relu() -> Tensor {
        let out = mapUnary(UnaryOp(PAG_U_RELU), self)
        return Tensor.record(out, "relu", [self]) { g, _ in [g.masked(where: self)] }
    }

    /// g where x > 0, else 0: linear in g, x is a constant. ReLU's backward, differentiable again.
    func masked(where x: Tensor) -> Tensor {
        let out = mapBinary(BinaryOp(PAG_B_MASK_POSITIVE), self, x, outShape: shape)
        return Tensor.record(out, "relu_backward", [self]) { g, _ in [g.masked(where: x)] }
    }

    /// Clamps into [low, high] (gradient passes where low <= x <= high, like PyTorch).
    public func clamp(min low: Float = -.infinity, max high: Float = .infinity) -> Tensor {
        let out = mapUnary(UnaryOp(PAG_U_CLAMP, low, high), self)
        return Tensor.record(out, "clamp", [self]) { g, _ in [g.masked(inRange: low, high, of: self)] }
    }

    func masked(inRange lo: Float, _ hi: Float, of x: Tensor) -> Tensor {
        let out = mapBinary(BinaryOp(PAG_B_MASK_RANGE, lo, hi), self, x, outShape: shape)
        return Tensor.record(out, "clamp_backward", [self]) { g, _ in [g.masked(inRange: lo, hi, of: x)] }
    }

    /// Hyperbolic tangent.
    public func tanh() -> Tensor {
        let out = mapUnary(UnaryOp(PAG_U_TANH), self, cost: 8)
        let saved = out.detached()
        return Tensor.record(out, "tanh", [self]) { g, _ in
            let y = GradMode.isEnabled ? self.tanh() : saved
            return [g * (1 - y.square())]
        }
    }

    /// Logistic sigmoid.
    public func sigmoid() -> Tensor {
        let out = mapUnary(UnaryOp(PAG_U_SIGMOID), self, cost: 8)
        let saved = out.detached()
        return Tensor.record(out, "sigmoid", [self]) { g, _ in
            let y = GradMode.isEnabled ? self.sigmoid() : saved
            return [g * y * (1 - y)]
        }
    }

    /// log(1 + e^(beta x)) / beta, and x itself where beta x > threshold (PyTorch's softplus).
    public func softplus(beta: Float = 1, threshold: Float = 20) -> Tensor {
        let out = mapUnary(UnaryOp(PAG_U_SOFTPLUS, beta, threshold), self, cost: 16)
        return Tensor.record(out, "softplus", [self]) { g, _ in
            // d/dx = sigmoid(beta x) below the threshold, 1 above it.
            let s = (self * beta).sigmoid()
            let linear = mapUnary(UnaryOp(PAG_U_THRESHOLD_MASK, beta, threshold), self)
            return [g * (s + linear * (1 - s))]
        }
    }

    /// The error function erf(x) = 2/sqrt(pi) * integral_0^x e^(-t^2) dt (exact GELU's part).
    public func erf() -> Tensor {
        let out = Tensor(uninitialized: shape)
        let px = pointer, po = out.pointer
        Parallel.forEach(count, cost: 16) { r in for i in r { po[i] = Foundation.erff(px[i]) } }
        return Tensor.record(out, "erf", [self]) { g, _ in [g * (-self.square()).exp() * Float(2 / Double.pi.squareRoot())] }
    }
}
