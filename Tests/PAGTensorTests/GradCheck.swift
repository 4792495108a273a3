import XCTest
@testable import PAGTensor

/// Finite-difference checks of first and second derivatives.
///
/// The checked function is wrapped in a scalar loss L = sum(R * f) + 0.1 * sum(f^2) with a fixed
/// random R: the quadratic term makes the Hessian depend on the op's Jacobian and, through the
/// recorded backward pass, on its backward rule being differentiable. A wrong first-derivative
/// rule fails the gradient check; a backward rule that is not itself differentiable (or wrong)
/// fails the Hessian-vector-product check.
struct GradCheck {
    var eps: Float = 2e-3
    var tolerance: Float = 2e-2

    /// The loss as a function of the inputs.
    static func loss(_ f: ([Tensor]) -> Tensor, _ xs: [Tensor], _ r: Tensor) -> Tensor {
        let y = f(xs)
        return (y * r).sum() + y.square().sum() * 0.1
    }

    static func relativeError(_ a: [Float], _ b: [Float]) -> Float {
        var diff: Double = 0, na: Double = 0, nb: Double = 0
        for (x, y) in zip(a, b) {
            diff += Double((x - y) * (x - y)); na += Double(x * x); nb += Double(y * y)
        }
        return Float(diff.squareRoot() / max(na.squareRoot(), nb.squareRoot(), 1e-3))
    }

    /// Checks d L / d inputs against central differences, element by element.
    func checkGradient(_ name: String, _ inputs: [Tensor], file: StaticString = #filePath, line: UInt = #line,
                       _ f: @escaping ([Tensor]) -> Tensor) throws {
        var rng = RandomGenerator(seed: 7, stream: name)
        let probe = f(inputs.map { $0.detached() })
        let r = Tensor.randn(probe.shape, rng: &rng)
        let xs = inputs.map { t -> Tensor in let c = t.copy(); c.requiresGrad = true; return c }
        let analytic = try grad(of: [Self.loss(f, xs, r)], wrt: xs)
        for (k, x) in xs.enumerated() {
            var numeric = [Float](repeating: 0, count: x.count)
            for i in 0..<x.count {
                let base = x.pointer[i]
                x.pointer[i] = base + eps
                let lp = Self.loss(f, xs, r).item
                x.pointer[i] = base - eps
                let lm = Self.loss(f, xs, r).item
                x.pointer[i] = base
                numeric[i] = (lp - lm) / (2 * eps)
            }
            let err = Self.relativeError(analytic[k].values, numeric)
            XCTAssertLessThan(err, tolerance, "\(name): gradient of input \(k) is off (relative error \(err))\nanalytic \(analytic[k].values.prefix(6))\nnumeric  \(numeric.prefix(6))", file: file, line: line)
        }
    }

    /// Checks the Hessian-vector product H v (via grad of <grad L, v> with createGraph) against
    /// central differences of the gradient along v.
    func checkHessianVector(_ name: String, _ inputs: [Tensor], file: StaticString = #filePath, line: UInt = #line,
                            _ f: @escaping ([Tensor]) -> Tensor) throws {
        var rng = RandomGenerator(seed: 11, stream: name)
        let probe = f(inputs.map { $0.detached() })
        let r = Tensor.randn(probe.shape, rng: &rng)
        let vs = inputs.map { Tensor.randn($0.shape, rng: &rng) }
        let xs = inputs.map { t -> Tensor in let c = t.copy(); c.requiresGrad = true; return c }

        let g = try grad(of: [Self.loss(f, xs, r)], wrt: xs, createGraph: true)
        XCTAssertTrue(g.contains { $0.isDifferentiable }, "\(name): gradient was not recorded with createGraph", file: file, line: line)
        let dot = zip(g, vs).map { ($0 * $1).sum() }.reduce(Tensor(scalar: 0)) { $0 + $1 }
        let hv = try grad(of: [dot], wrt: xs)

        func gradientAt(_ shift: Float) throws -> [Tensor] {
            let moved = zip(inputs, vs).map { (x, v) -> Tensor in
                let c = noGrad { x + v * shift }.copy(); c.requiresGrad = true; return c
            }
            return try grad(of: [Self.loss(f, moved, r)], wrt: moved)
        }
        let gp = try gradientAt(eps), gm = try gradientAt(-eps)
        for k in 0..<xs.count {
            let numeric = zip(gp[k].values, gm[k].values).map { ($0 - $1) / (2 * eps) }
            let err = Self.relativeError(hv[k].values, numeric)
            XCTAssertLessThan(err, tolerance, "\(name): Hessian-vector product for input \(k) is off (relative error \(err))\nanalytic \(hv[k].values.prefix(6))\nnumeric  \(numeric.prefix(6))", file: file, line: line)
        }
    }

    /// Both checks.
    func check(_ name: String, _ inputs: [Tensor], file: StaticString = #filePath, line: UInt = #line,
               _ f: @escaping ([Tensor]) -> Tensor) throws {
        try checkGradient(name, inputs, file: file, line: line, f)
        try checkHessianVector(name, inputs, file: file, line: line, f)
    }
}

/// Random test input; `awayFromZero` keeps |x| >= margin so kinks (relu, abs) are not straddled.
func randomInput(_ shape: [Int], seed: UInt64, scale: Float = 1, awayFromZero margin: Float = 0, positive: Bool = false) -> Tensor {
    var rng = RandomGenerator(seed: seed)
    let t = Tensor.randn(shape, std: scale, rng: &rng)
    for i in 0..<t.count {
        var v = t.pointer[i]
        if positive { v = Swift.abs(v) + 0.5 }
        if margin > 0 && Swift.abs(v) < margin { v = v < 0 ? v - margin : v + margin }
        t.pointer[i] = v
    }
    return t
}
