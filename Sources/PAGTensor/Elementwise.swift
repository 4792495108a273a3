#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Differentiable elementwise operations. Each backward rule is written with differentiable
// operations. Where a rule needs the op's own output (exp, tanh, sigmoid, sqrt) it reuses the
// saved value for first-order gradients and recomputes it from the input when the backward
// pass is itself recorded, so the output's dependence on the input is not lost.

struct AddK: BinaryKernel { @inline(__always) func f(_ a: Float, _ b: Float) -> Float { a + b } }
struct SubK: BinaryKernel { @inline(__always) func f(_ a: Float, _ b: Float) -> Float { a - b } }
struct MulK: BinaryKernel { @inline(__always) func f(_ a: Float, _ b: Float) -> Float { a * b } }
struct DivK: BinaryKernel { @inline(__always) func f(_ a: Float, _ b: Float) -> Float { a / b } }
/// a where b > 0, else 0: the ReLU backward, linear in a.
struct MaskPositiveK: BinaryKernel { @inline(__always) func f(_ a: Float, _ b: Float) -> Float { b > 0 ? a : 0 } }
/// a where lo <= b <= hi, else 0: the clamp backward, linear in a.
struct MaskRangeK: BinaryKernel {
    let lo: Float, hi: Float
    @inline(__always) func f(_ a: Float, _ b: Float) -> Float { (b >= lo && b <= hi) ? a : 0 }
}
/// a * sign(b): the abs backward, linear in a.
struct MulSignK: BinaryKernel {
    @inline(__always) func f(_ a: Float, _ b: Float) -> Float { b > 0 ? a : (b < 0 ? -a : 0) }
}

struct ScaleK: UnaryKernel { let s: Float; @inline(__always) func f(_ x: Float) -> Float { x * s } }
struct AddScalarK: UnaryKernel { let s: Float; @inline(__always) func f(_ x: Float) -> Float { x + s } }
struct ExpK: UnaryKernel { @inline(__always) func f(_ x: Float) -> Float { expf(x) } }
struct LogK: UnaryKernel { @inline(__always) func f(_ x: Float) -> Float { logf(x) } }
struct SqrtK: UnaryKernel { @inline(__always) func f(_ x: Float) -> Float { x.squareRoot() } }
struct SquareK: UnaryKernel { @inline(__always) func f(_ x: Float) -> Float { x * x } }
struct PowK: UnaryKernel { let p: Float; @inline(__always) func f(_ x: Float) -> Float { powf(x, p) } }
struct AbsK: UnaryKernel { @inline(__always) func f(_ x: Float) -> Float { abs(x) } }
struct ReluK: UnaryKernel { @inline(__always) func f(_ x: Float) -> Float { x > 0 ? x : 0 } }
struct ClampK: UnaryKernel {
    let lo: Float, hi: Float
    @inline(__always) func f(_ x: Float) -> Float { min(max(x, lo), hi) }
}
struct TanhK: UnaryKernel { @inline(__always) func f(_ x: Float) -> Float { tanhf(x) } }
struct SigmoidK: UnaryKernel { @inline(__always) func f(_ x: Float) -> Float { 1 / (1 + expf(-x)) } }
struct SoftplusK: UnaryKernel {
    let beta: Float, threshold: Float
    @inline(__always) func f(_ x: Float) -> Float {
        beta * x > threshold ? x : log1pf(expf(beta * x)) / beta
    }
}

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
        let out = mapBinary(AddK(), a, b, outShape: shape)
        return record(out, "add", [a, b]) { g, _ in [unbroadcast(g, to: a.shape), unbroadcast(g, to: b.shape)] }
    }

    public static func - (a: Tensor, b: Tensor) -> Tensor {
        let out = mapBinary(SubK(), a, b, outShape: broadcastShape(a, b, "sub"))
        return record(out, "sub", [a, b]) { g, needs in
            [unbroadcast(g, to: a.shape), needs[1] ? unbroadcast(-g, to: b.shape) : nil]
        }
    }

    public static func * (a: Tensor, b: Tensor) -> Tensor {
        let out = mapBinary(MulK(), a, b, outShape: broadcastShape(a, b, "mul"))
        return record(out, "mul", [a, b]) { g, needs in
            [needs[0] ? unbroadcast(g * b, to: a.shape) : nil,
             needs[1] ? unbroadcast(g * a, to: b.shape) : nil]
        }
    }

    public static func / (a: Tensor, b: Tensor) -> Tensor {
        let out = mapBinary(DivK(), a, b, outShape: broadcastShape(a, b, "div"))
        return record(out, "div", [a, b]) { g, needs in
            [needs[0] ? unbroadcast(g / b, to: a.shape) : nil,
             needs[1] ? unbroadcast(-(g * a) / (b * b), to: b.shape) : nil]
        }
    }

    public static prefix func - (x: Tensor) -> Tensor { x * -1 }

    public static func * (x: Tensor, s: Float) -> Tensor {
        let out = mapUnary(ScaleK(s: s), x)
        return record(out, "scale", [x]) { g, _ in [g * s] }
    }
    public static func * (s: Float, x: Tensor) -> Tensor { x * s }
    public static func / (x: Tensor, s: Float) -> Tensor { x * (1 / s) }

    public static func + (x: Tensor, s: Float) -> Tensor {
        let out = mapUnary(AddScalarK(s: s), x)
        return record(out, "add_scalar", [x]) { g, _ in [g] }
    }
    public static func + (s: Float, x: Tensor) -> Tensor { x + s }
    public static func - (x: Tensor, s: Float) -> Tensor { x + (-s) }
    public static func - (s: Float, x: Tensor) -> Tensor { (-x) + s }

    /// e^x.
    public func exp() -> Tensor {
        let out = mapUnary(ExpK(), self, cost: 8)
        let saved = out.detached()
        return Tensor.record(out, "exp", [self]) { g, _ in [g * (GradMode.isEnabled ? self.exp() : saved)] }
    }

    /// Natural logarithm.
    public func log() -> Tensor {
        let out = mapUnary(LogK(), self, cost: 8)
        return Tensor.record(out, "log", [self]) { g, _ in [g / self] }
    }

    /// Square root.
    public func sqrt() -> Tensor {
        let out = mapUnary(SqrtK(), self, cost: 4)
        let saved = out.detached()
        return Tensor.record(out, "sqrt", [self]) { g, _ in
            [g / ((GradMode.isEnabled ? self.sqrt() : saved) * 2)]
        }
    }

    /// x².
    public func square() -> Tensor {
        let out = mapUnary(SquareK(), self)
        return Tensor.record(out, "square", [self]) { g, _ in [g * self * 2] }
    }

    /// x^p for a constant exponent p.
    public func pow(_ p: Float) -> Tensor {
        if p == 2 { return square() }
        if p == 1 { return self * 1 }
        let out = mapUnary(PowK(p: p), self, cost: 16)
        return Tensor.record(out, "pow", [self]) { g, _ in [g * self.pow(p - 1) * p] }
    }

    /// |x| (gradient 0 at 0, like PyTorch).
    public func abs() -> Tensor {
        let out = mapUnary(AbsK(), self)
        return Tensor.record(out, "abs", [self]) { g, _ in [g.mulSign(of: self)] }
    }

    /// g * sign(x), linear in g; x is treated as a constant (its derivative is 0 almost everywhere).
    func mulSign(of x: Tensor) -> Tensor {
        let out = mapBinary(MulSignK(), self, x, outShape: shape)
        return Tensor.record(out, "mul_sign", [self]) { g, _ in [g.mulSign(of: x)] }
    }

    /// max(x, 0).
    public func relu() -> Tensor {
        let out = mapUnary(ReluK(), self)
        return Tensor.record(out, "relu", [self]) { g, _ in [g.masked(where: self)] }
    }

    /// g where x > 0, else 0: linear in g, x is a constant. ReLU's backward, differentiable again.
    func masked(where x: Tensor) -> Tensor {
        let out = mapBinary(MaskPositiveK(), self, x, outShape: shape)
        return Tensor.record(out, "relu_backward", [self]) { g, _ in [g.masked(where: x)] }
    }

    /// Clamps into [low, high] (gradient passes where low <= x <= high, like PyTorch).
    public func clamp(min low: Float = -.infinity, max high: Float = .infinity) -> Tensor {
        let out = mapUnary(ClampK(lo: low, hi: high), self)
        return Tensor.record(out, "clamp", [self]) { g, _ in [g.masked(inRange: low, high, of: self)] }
    }

    func masked(inRange lo: Float, _ hi: Float, of x: Tensor) -> Tensor {
        let out = mapBinary(MaskRangeK(lo: lo, hi: hi), self, x, outShape: shape)
        return Tensor.record(out, "clamp_backward", [self]) { g, _ in [g.masked(inRange: lo, hi, of: x)] }
    }

    /// Hyperbolic tangent.
    public func tanh() -> Tensor {
        let out = mapUnary(TanhK(), self, cost: 8)
        let saved = out.detached()
        return Tensor.record(out, "tanh", [self]) { g, _ in
            let y = GradMode.isEnabled ? self.tanh() : saved
            return [g * (1 - y.square())]
        }
    }

    /// Logistic sigmoid.
    public func sigmoid() -> Tensor {
        let out = mapUnary(SigmoidK(), self, cost: 8)
        let saved = out.detached()
        return Tensor.record(out, "sigmoid", [self]) { g, _ in
            let y = GradMode.isEnabled ? self.sigmoid() : saved
            return [g * y * (1 - y)]
        }
    }

    /// log(1 + e^(beta x)) / beta, and x itself where beta x > threshold (PyTorch's softplus).
    public func softplus(beta: Float = 1, threshold: Float = 20) -> Tensor {
        let out = mapUnary(SoftplusK(beta: beta, threshold: threshold), self, cost: 16)
        return Tensor.record(out, "softplus", [self]) { g, _ in
            // d/dx = sigmoid(beta x) below the threshold, 1 above it.
            let s = (self * beta).sigmoid()
            let linear = mapUnary(ThresholdMaskK(beta: beta, threshold: threshold), self)
            return [g * (s + linear * (1 - s))]
        }
    }
}

/// 1 where beta x > threshold (softplus is the identity there), else 0. A constant mask.
struct ThresholdMaskK: UnaryKernel {
    let beta: Float, threshold: Float
    @inline(__always) func f(_ x: Float) -> Float { beta * x > threshold ? 1 : 0 }
}
