/// Reverse-mode automatic differentiation.
///
/// Every differentiable operation records a `GradFn`: its inputs and a backward rule that maps
/// the gradient of the output to gradients of the inputs. Backward rules are written with the
/// same differentiable operations, so when `grad` runs with `createGraph: true` the gradients
/// it returns are themselves recorded and can be differentiated again (double backpropagation).

/// The record of one operation in the graph.
public final class GradFn {
    public let name: String
    let inputs: [Tensor]
    /// Maps the output gradient to one gradient per input; `needs[i]` says whether input i's
    /// gradient is wanted (others may be returned as nil to skip work).
    let backward: (_ gradOutput: Tensor, _ needs: [Bool]) -> [Tensor?]

    init(_ name: String, _ inputs: [Tensor], _ backward: @escaping (Tensor, [Bool]) -> [Tensor?]) {
        self.name = name
        self.inputs = inputs
        self.backward = backward
    }
}

/// Whether operations are being recorded. Off inside `noGrad` and inside first-order backward.
public enum GradMode {
    @TaskLocal static var enabledLocal: Bool = true
    public static var isEnabled: Bool { enabledLocal }
}

/// Runs `body` without recording operations (for evaluation, optimizer updates, attacks).
public func noGrad<T>(_ body: () throws -> T) rethrows -> T {
    try GradMode.$enabledLocal.withValue(false) { try body() }
}

/// Runs `body` with recording switched on or off.
func withGradMode<T>(_ on: Bool, _ body: () throws -> T) rethrows -> T {
    try GradMode.$enabledLocal.withValue(on) { try body() }
}

extension Tensor {
    /// Builds the output tensor of an operation, recording it when any input is differentiable.
    static func record(_ out: Tensor, _ name: String, _ inputs: [Tensor],
                       _ backward: @escaping (Tensor, [Bool]) -> [Tensor?]) -> Tensor {
        if recorded(inputs) { out.gradFn = GradFn(name, inputs, backward) }
        return out
    }

    /// Whether an operation on `inputs` is recorded now (an op may skip keeping what only its
    /// backward needs when it is not).
    static func recorded(_ inputs: [Tensor]) -> Bool {
        GradMode.isEnabled && inputs.contains { $0.isDifferentiable }
    }
}

public enum AutogradError: Error, CustomStringConvertible {
    case notDifferentiable(String)
    case shapeMismatch(String)
    public var description: String {
        switch self {
        case .notDifferentiable(let s), .shapeMismatch(let s): return s
        }
    }
}

/// Gradients of `outputs` (weighted by `gradOutputs`, default ones) with respect to `inputs`.
///
/// With `createGraph: true` the returned gradients are recorded and differentiable, which is
/// what gradient-norm regularization needs. An input that the outputs do not depend on gets a
/// zero gradient when `allowUnused` is true, and an error otherwise.
public func grad(of outputs: [Tensor], wrt inputs: [Tensor], gradOutputs: [Tensor]? = nil,
                 createGraph: Bool = false, allowUnused: Bool = true) throws -> [Tensor] {
    for (i, o) in outputs.enumerated() where !o.isDifferentiable {
        throw AutogradError.notDifferentiable("output \(i) (shape \(o.shape)) does not depend on any tensor that requires grad")
    }
    let seeds: [Tensor]
    if let g = gradOutputs {
        precondition(g.count == outputs.count, "one gradOutput per output")
        for (o, s) in zip(outputs, g) where o.shape != s.shape {
            throw AutogradError.shapeMismatch("gradOutput shape \(s.shape) does not match output shape \(o.shape)")
        }
        seeds = g
    } else {
        seeds = outputs.map { Tensor.ones($0.shape) }
    }

    // Topological order of every tensor reachable from the outputs (iterative DFS).
    var order: [Tensor] = []
    var visited = Set<ObjectIdentifier>()
    var stack: [(Tensor, Int)] = outputs.map { ($0, 0) }
    while let (t, next) = stack.popLast() {
        if next == 0 {
            if visited.contains(ObjectIdentifier(t)) { continue }
            visited.insert(ObjectIdentifier(t))
        }
        if let fn = t.gradFn, next < fn.inputs.count {
            stack.append((t, next + 1))
            let child = fn.inputs[next]
            if child.isDifferentiable, !visited.contains(ObjectIdentifier(child)) { stack.append((child, 0)) }
        } else {
            order.append(t)
        }
    }

    // Which tensors lie on a path to a requested input: only those need gradients.
    let targets = Set(inputs.map { ObjectIdentifier($0) })
    var needed = Set<ObjectIdentifier>()
    for t in order {  // children come before parents in `order`
        let id = ObjectIdentifier(t)
        if targets.contains(id) { needed.insert(id); continue }
        if let fn = t.gradFn, fn.inputs.contains(where: { needed.contains(ObjectIdentifier($0)) }) {
            needed.insert(id)
        }
    }

    var grads: [ObjectIdentifier: Tensor] = [:]
    try withGradMode(createGraph) {
        for (o, s) in zip(outputs, seeds) {
            let id = ObjectIdentifier(o)
            grads[id] = grads[id].map { $0 + s } ?? s
        }
        for t in order.reversed() {
            let id = ObjectIdentifier(t)
            guard needed.contains(id), !targets.contains(id) || t.gradFn != nil,
                  let fn = t.gradFn, let g = grads[id] else { continue }
            let needs = fn.inputs.map { needed.contains(ObjectIdentifier($0)) }
            if !needs.contains(true) { continue }
            let inGrads = fn.backward(g, needs)
            if !targets.contains(id) { grads[id] = nil }  // free as soon as it is consumed
            for (i, input) in fn.inputs.enumerated() where needs[i] {
                guard let gi = inGrads[i] else { continue }
                if gi.shape != input.shape {
                    throw AutogradError.shapeMismatch("backward of \(fn.name) gave gradient shape \(gi.shape) for input shape \(input.shape)")
                }
                let iid = ObjectIdentifier(input)
                grads[iid] = grads[iid].map { $0 + gi } ?? gi
            }
        }
    }
    return try inputs.enumerated().map { (i, x) in
        if let g = grads[ObjectIdentifier(x)] { return g }
        if allowUnused { return Tensor.zeros(x.shape) }
        throw AutogradError.notDifferentiable("input \(i) (shape \(x.shape)) was not used to compute the outputs")
    }
}

/// Convenience for a single output and input.
public func grad(of output: Tensor, wrt input: Tensor, createGraph: Bool = false) throws -> Tensor {
    try grad(of: [output], wrt: [input], createGraph: createGraph)[0]
}

extension Tensor {
    /// Accumulates d(self)/d(leaf) into `leaf.grad` for every leaf with `requiresGrad` that this
    /// tensor depends on (PyTorch's `loss.backward()`). The graph is not kept.
    public func backward() throws {
        var leaves: [Tensor] = []
        var seen = Set<ObjectIdentifier>()
        var stack: [Tensor] = [self]
        while let t = stack.popLast() {
            guard seen.insert(ObjectIdentifier(t)).inserted else { continue }
            if t.gradFn == nil, t.requiresGrad { leaves.append(t) }
            if let fn = t.gradFn { stack.append(contentsOf: fn.inputs.filter { $0.isDifferentiable }) }
        }
        let gs = try PAGTensor.grad(of: [self], wrt: leaves)
        noGrad {
            for (leaf, g) in zip(leaves, gs) {
                if let old = leaf.grad { leaf.grad = old + g } else { leaf.grad = g.detached() }
            }
        }
    }
}
