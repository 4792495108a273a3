// The ONNX operators that move, cut and join values (and the shape arithmetic exporters emit):
// on constants they are folded in Swift, on tensors they become host reshape / permute / slice /
// pad / concat operations.
import PAGPluginKit

extension Interpreter {
    func shapeOp(_ n: Node, _ ins: [Value?], _ input: (Int) throws -> Value, _ optional: (Int) -> Value?) throws -> [Value] {
        switch n.op {
        case "Shape":
            let s = try input(0).shape
            let r = s.count
            func clampAxis(_ a: Int) -> Int { Swift.min(Swift.max(a < 0 ? a + r : a, 0), r) }
            let start = clampAxis(try n.int("start", 0)), end = clampAxis(try n.int("end", r))
            return [.constant(.ints(start < end ? Array(s[start..<end]) : []))]
        case "Size": return [.constant(.scalar(Double(try input(0).shape.reduce(1, *)), .int))]
        case "Reshape":
            let x = try input(0)
            let target = try constant(try input(1), n, "shape").ints
            let allowZero = try n.int("allowzero", 0) != 0
            let shape = try resolvedShape(target, from: x.shape, allowZero: allowZero, n)
            return [try reshape(x, shape)]
        case "Flatten":
            let x = try input(0)
            let s = x.shape
            let axis = try n.int("axis", 1)
            let a = axis < 0 ? axis + s.count : axis
            guard a >= 0 && a <= s.count else { throw ONNXError("\(n.label): axis \(axis) is out of range for rank \(s.count)") }
            return [try reshape(x, [s[..<a].reduce(1, *), s[a...].reduce(1, *)])]
        case "Transpose":
            let x = try input(0)
            let rank = x.shape.count
            let perm = try n.ints("perm") ?? Array((0..<rank).reversed())
            guard perm.count == rank, Set(perm) == Set(0..<rank) else { throw ONNXError("\(n.label): perm \(perm) is not a permutation of \(rank) axes") }
            switch x {
            case .constant(let c): return [.constant(c.transposed(perm))]
            case .tensor(let t): return [.tensor(perm == Array(0..<rank) ? t : try t.permuted(perm))]
            }
        case "Squeeze":
            let x = try input(0)
            let s = x.shape
            let axes = try optional(1).map { try constant($0, n, "axes").ints } ?? n.ints("axes")
            let drop = try Set((axes ?? s.indices.filter { s[$0] == 1 }).map { try Self.axis($0, rank: s.count, n) })
            for a in drop where s[a] != 1 { throw ONNXError("\(n.label): cannot squeeze axis \(a) of size \(s[a]) (shape \(s))") }
            return [try reshape(x, s.indices.filter { !drop.contains($0) }.map { s[$0] })]
        case "Unsqueeze":
            let x = try input(0)
            let s = x.shape
            guard let axes = try optional(1).map({ try constant($0, n, "axes").ints }) ?? n.ints("axes") else {
                throw ONNXError("\(n.label): needs axes")
            }
            let rank = s.count + axes.count
            let added = try Set(axes.map { try Self.axis($0, rank: rank, n) })
            guard added.count == axes.count else { throw ONNXError("\(n.label): axes \(axes) repeat an axis") }
            var out: [Int] = [], k = 0
            for i in 0..<rank { if added.contains(i) { out.append(1) } else { out.append(s[k]); k += 1 } }
            return [try reshape(x, out)]
        case "Concat":
            let parts = try (0..<ins.count).compactMap { i -> Value? in optional(i) }
            guard let first = parts.first else { throw ONNXError("\(n.label): needs inputs") }
            let axis = try Self.axis(try n.int("axis", 0), rank: Swift.max(first.shape.count, 1), n)
            let constants = parts.compactMap { v -> Constant? in if case .constant(let c) = v { return c } else { return nil } }
            if constants.count == parts.count { return [.constant(try .concat(constants, axis: axis))] }
            let tensors = try parts.map(tensor).filter { $0.shape.indices.contains(axis) ? $0.shape[axis] > 0 : true }
            return [.tensor(tensors.count == 1 ? tensors[0] : try Tensor.concat(tensors, axis: axis))]
        case "Split":
            let x = try input(0)
            let s = x.shape
            let axis = try Self.axis(try n.int("axis", 0), rank: s.count, n)
            var sizes = try optional(1).map { try constant($0, n, "split").ints } ?? n.ints("split")
            if sizes == nil {
                let parts = try n.int("num_outputs", n.outputs.count)
                let chunk = (s[axis] + parts - 1) / parts
                sizes = (0..<parts).map { Swift.min(chunk, Swift.max(s[axis] - $0 * chunk, 0)) }
            }
            guard let sizes, sizes.reduce(0, +) == s[axis], sizes.count == n.outputs.count else {
                throw ONNXError("\(n.label): split sizes \(sizes ?? []) do not divide dimension \(s[axis]) into \(n.outputs.count) outputs")
            }
            var start = 0
            return try sizes.map { size in
                defer { start += size }
                return try slice(x, axis: axis, start: start, end: start + size, step: 1)
            }
        case "Slice":
            let x = try input(0)
            let s = x.shape
            let starts = try constant(try input(1), n, "starts").values, ends = try constant(try input(2), n, "ends").values
            let axes = try optional(3).map { try constant($0, n, "axes").ints } ?? Array(0..<starts.count)
            let steps = try optional(4).map { try constant($0, n, "steps").ints } ?? [Int](repeating: 1, count: starts.count)
            guard starts.count == ends.count, axes.count == starts.count, steps.count == starts.count else {
                throw ONNXError("\(n.label): starts, ends, axes and steps differ in length")
            }
            var v = x
            for i in 0..<starts.count {
                let axis = try Self.axis(axes[i], rank: s.count, n), dim = s[axis], step = steps[i]
                guard step != 0 else { throw ONNXError("\(n.label): step 0") }
                // Clamped as the specification says (bounds may be +-2^63 for "to the end").
                func index(_ raw: Double) -> Int {
                    let r = raw < -1e18 ? -Double(dim) - 1 : (raw > 1e18 ? Double(dim) + 1 : raw)
                    return Int(r < 0 ? r + Double(dim) : r)
                }
                var b = index(starts[i]), e = index(ends[i])
                if step > 0 { b = Swift.min(Swift.max(b, 0), dim); e = Swift.min(Swift.max(e, 0), dim) }
                else { b = Swift.min(Swift.max(b, 0), dim - 1); e = Swift.min(Swift.max(e, -1), dim - 1) }
                v = try slice(v, axis: axis, start: b, end: e, step: step)
            }
            return [v]
        case "Expand":
            let x = try input(0)
            let target = try constant(try input(1), n, "shape").ints
            guard let shape = broadcastShapes(x.shape, target) else { throw ONNXError("\(n.label): cannot expand \(x.shape) to \(target)") }
            switch x {
            case .constant(let c): return [.constant(try c.expanded(to: shape))]
            case .tensor(let t): return [.tensor(t.shape == shape ? t : try t.broadcast(to: shape))]
            }
        case "Pad": return [try pad(n, ins, input, optional)]
        case "Gather":
            let x = try input(0)
            let indices = try constant(try input(1), n, "indices")
            let axis = try Self.axis(try n.int("axis", 0), rank: x.shape.count, n)
            switch x {
            case .constant(let c): return [.constant(try c.gather(indices, axis: axis))]
            case .tensor(let t):
                let dim = t.shape[axis]
                let picks = try indices.ints.map { k -> Int in
                    let j = k < 0 ? k + dim : k
                    guard j >= 0 && j < dim else { throw ONNXError("\(n.label): index \(k) is out of range for size \(dim)") }
                    return j
                }
                let parts = try picks.map { try t.slice(axis: axis, $0..<($0 + 1)) }
                let joined = parts.count == 1 ? parts[0] : try Tensor.concat(parts, axis: axis)
                var shape = t.shape
                shape.replaceSubrange(axis...axis, with: indices.shape)
                return [.tensor(try joined.reshaped(shape))]
            }
        case "Cast", "CastLike":
            let x = try input(0)
            let to: Int
            if n.op == "CastLike" {
                guard case .constant(let like) = try input(1) else { return [x] }
                to = like.kind == .float ? 1 : (like.kind == .bool ? 9 : 7)
            } else {
                to = try n.int("to", 1)
            }
            let isFloat = [1, 10, 11, 16].contains(to)
            switch x {
            case .tensor(let t):
                guard isFloat else { throw ONNXError("\(n.label): a cast of a computed tensor to \(ElementType.name(to)) is not supported (it has no gradient)") }
                return [.tensor(t)]
            case .constant(let c):
                if isFloat { return [.constant(c.map(.float) { Double(Float($0)) })] }
                if to == 9 { return [.constant(c.map(.bool) { $0 != 0 ? 1 : 0 })] }
                return [.constant(c.map(.int) { $0.rounded(.towardZero) })]
            }
        case "ConstantOfShape":
            let shape = try constant(try input(0), n, "shape").ints
            var fill = Constant.scalar(0, .float)
            if case .tensor(let c)? = n.attribute("value") { fill = c }
            guard fill.count == 1 else { throw ONNXError("\(n.label): value must have one element") }
            return [.constant(Constant(fill.kind, shape: shape, values: [Double](repeating: fill.values[0], count: shape.reduce(1, *))))]
        case "Range":
            let start = try constant(try input(0), n, "start"), limit = try constant(try input(1), n, "limit"), delta = try constant(try input(2), n, "delta")
            let (a, b, d) = (start.values[0], limit.values[0], delta.values[0])
            guard d != 0 else { throw ONNXError("\(n.label): delta 0") }
            let count = Swift.max(Int(((b - a) / d).rounded(.up)), 0)
            guard count < 1 << 24 else { throw ONNXError("\(n.label): \(count) elements, too many") }
            return [.constant(Constant(start.kind, shape: [count], values: (0..<count).map { a + Double($0) * d }))]
        case "Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "And", "Or":
            let a = try constant(try input(0), n, "first input"), b = try constant(try input(1), n, "second input")
            let f: (Double, Double) -> Bool
            switch n.op {
            case "Equal": f = { $0 == $1 }
            case "Less": f = { $0 < $1 }
            case "Greater": f = { $0 > $1 }
            case "LessOrEqual": f = { $0 <= $1 }
            case "GreaterOrEqual": f = { $0 >= $1 }
            case "And": f = { $0 != 0 && $1 != 0 }
            default: f = { $0 != 0 || $1 != 0 }
            }
            return [.constant(try .zip(a, b, kind: .bool) { f($0, $1) ? 1 : 0 })]
        case "Not": return [.constant(try constant(try input(0), n, "input").map(.bool) { $0 == 0 ? 1 : 0 })]
        case "Mod":
            // Shape arithmetic (window partitions of Swin, patch grids): folded on constants.
            let a = try constant(try input(0), n, "first input"), b = try constant(try input(1), n, "second input")
            let fmod = try n.int("fmod", 0) != 0
            let kind: Constant.Kind = a.kind == .float || b.kind == .float ? .float : .int
            guard fmod || kind == .int else { throw ONNXError("\(n.label): Mod of floats needs fmod=1") }
            guard !b.values.contains(0) else { throw ONNXError("\(n.label): division by zero") }
            return [.constant(try .zip(a, b, kind: kind) { x, y in
                let r = x.truncatingRemainder(dividingBy: y)
                return fmod || r == 0 || (r < 0) == (y < 0) ? r : r + y  // integer Mod takes the divisor's sign
            })]
        case "ScatterND":
            // Attention masks built from constants (Swin): folded.
            let data = try constant(try input(0), n, "data"), indices = try constant(try input(1), n, "indices")
            let updates = try constant(try input(2), n, "updates")
            guard try n.string("reduction", "none") == "none" else { throw ONNXError("\(n.label): only reduction 'none' is supported") }
            guard let k = indices.shape.last, k >= 1, k <= data.shape.count else { throw ONNXError("\(n.label): indices \(indices.shape) do not index data \(data.shape)") }
            let inner = data.shape[k...].reduce(1, *), rows = indices.count / k
            guard updates.count == rows * inner else { throw ONNXError("\(n.label): updates \(updates.shape) do not fit indices \(indices.shape) on data \(data.shape)") }
            var out = data.values
            let strides = (0..<k).map { data.shape[($0 + 1)...].reduce(1, *) }
            for r in 0..<rows {
                var offset = 0
                for j in 0..<k {
                    var i = Int(indices.values[r * k + j])
                    if i < 0 { i += data.shape[j] }
                    guard i >= 0, i < data.shape[j] else { throw ONNXError("\(n.label): index \(i) is out of range for dimension \(j) of \(data.shape)") }
                    offset += i * strides[j]
                }
                for e in 0..<inner { out[offset + e] = updates.values[r * inner + e] }
            }
            return [.constant(Constant(data.kind, shape: data.shape, values: out))]
        case "Where":
            let condition = try constant(try input(0), n, "condition")
            let a = try input(1), b = try input(2)
            if case .constant(let ca) = a, case .constant(let cb) = b {
                let picked = try Constant.zip(condition, ca, kind: ca.kind) { $0 != 0 ? $1 : 0 }
                let other = try Constant.zip(condition, cb, kind: cb.kind) { $0 != 0 ? 0 : $1 }
                return [.constant(try .zip(picked, other, kind: ca.kind == .float || cb.kind == .float ? .float : ca.kind, +))]
            }
            // A constant branch is folded to where(condition, branch, 0) first, so an infinity in it
            // (attention masks) is never multiplied by zero.
            func part(_ v: Value, keep: Bool) throws -> Value {
                switch v {
                case .constant(let c): return .constant(try .zip(condition, c, kind: .float) { ($0 != 0) == keep ? $1 : 0 })
                case .tensor(let t): return .tensor(try t * tensor(.constant(condition.map(.float) { ($0 != 0) == keep ? 1 : 0 })))
                }
            }
            return [try arithmetic("Add", try part(a, keep: true), try part(b, keep: false))]
        default:
            throw ONNXError("\(n.label): operator '\(n.op)' is not supported")
        }
    }

    /// Reshape's target with 0 (copy, unless allowzero) and -1 (infer) resolved.
    func resolvedShape(_ target: [Int], from s: [Int], allowZero: Bool, _ n: Node) throws -> [Int] {
        var out = try target.enumerated().map { i, d -> Int in
            if d == 0 && !allowZero {
                guard i < s.count else { throw ONNXError("\(n.label): shape \(target) copies dimension \(i) of \(s), which has none") }
                return s[i]
            }
            return d
        }
        let total = s.reduce(1, *)
        if let k = out.firstIndex(of: -1) {
            let known = out.enumerated().filter { $0.offset != k }.map(\.element).reduce(1, *)
            guard known > 0, total % known == 0 else { throw ONNXError("\(n.label): cannot reshape \(s) to \(target)") }
            out[k] = total / known
        }
        guard out.allSatisfy({ $0 >= 0 }), out.reduce(1, *) == total else { throw ONNXError("\(n.label): cannot reshape \(s) to \(target)") }
        return out
    }

    func reshape(_ v: Value, _ shape: [Int]) throws -> Value {
        switch v {
        case .constant(let c): return .constant(c.reshaped(shape))
        case .tensor(let t): return .tensor(t.shape == shape ? t : try t.reshaped(shape))
        }
    }

    /// Elements start, start + step, ... before end along axis (bounds already clamped).
    func slice(_ v: Value, axis: Int, start: Int, end: Int, step: Int) throws -> Value {
        if case .constant(let c) = v { return .constant(c.sliced(axis: axis, start: start, end: end, step: step)) }
        guard case .tensor(let t) = v else { fatalError("unreachable") }
        let dim = t.shape[axis]
        if step == 1 {
            if start == 0 && end == dim { return v }
            return .tensor(try t.slice(axis: axis, start..<Swift.max(end, start)))
        }
        if step > 1 {
            // Every step-th element: cut, pad to a multiple of step, fold the step into an axis, keep index 0.
            let cut = try t.slice(axis: axis, start..<Swift.max(end, start))
            let length = Swift.max(end - start, 0), count = (length + step - 1) / step
            let padded = count * step == length ? cut : try cut.padded(axis: axis, before: 0, after: count * step - length)
            var folded = padded.shape
            folded.replaceSubrange(axis...axis, with: [count, step])
            var shape = padded.shape
            shape[axis] = count
            return .tensor(try padded.reshaped(folded).slice(axis: axis + 1, 0..<1).reshaped(shape))
        }
        // Negative steps (flips): one slice per element, joined in order.
        var picks: [Int] = []
        var k = start
        while k > end { picks.append(k); k += step }
        let parts = try picks.map { try t.slice(axis: axis, $0..<($0 + 1)) }
        return .tensor(parts.count == 1 ? parts[0] : try Tensor.concat(parts, axis: axis))
    }

    func pad(_ n: Node, _ ins: [Value?], _ input: (Int) throws -> Value, _ optional: (Int) -> Value?) throws -> Value {
        let x = try tensor(try input(0))
        let rank = x.rank
        let pads = try optional(1).map { try constant($0, n, "pads").ints } ?? n.ints("pads") ?? []
        let value = try optional(2).map { try constant($0, n, "constant_value").values.first ?? 0 } ?? n.float("value", 0)
        let axes = try optional(3).map { try constant($0, n, "axes").ints.map { try Self.axis($0, rank: rank, n) } } ?? Array(0..<rank)
        guard pads.count == 2 * axes.count else { throw ONNXError("\(n.label): \(pads.count) pads for \(axes.count) axes") }
        let mode = try n.string("mode", "constant")
        guard ["constant", "reflect", "edge"].contains(mode) else { throw ONNXError("\(n.label): mode '\(mode)' is not constant, reflect or edge") }
        var y = x
        for (i, axis) in axes.enumerated() {
            var before = pads[i], after = pads[i + axes.count]
            // Negative pads crop.
            if before < 0 || after < 0 {
                let dim = y.shape[axis]
                y = try y.slice(axis: axis, Swift.max(-before, 0)..<(dim - Swift.max(-after, 0)))
                before = Swift.max(before, 0); after = Swift.max(after, 0)
            }
            guard before > 0 || after > 0 else { continue }
            let dim = y.shape[axis]
            switch mode {
            case "constant":
                y = value == 0 ? try y.padded(axis: axis, before: before, after: after)
                               : try (try (y - Float(value)).padded(axis: axis, before: before, after: after)) + Float(value)
            default:
                guard mode == "edge" || (before < dim && after < dim) else {
                    throw ONNXError("\(n.label): reflect padding of \(before), \(after) needs more than \(dim) elements")
                }
                func at(_ k: Int) throws -> Tensor { try y.slice(axis: axis, k..<(k + 1)) }
                let head = try (0..<before).map { j in try at(mode == "edge" ? 0 : before - j) }
                let tail = try (0..<after).map { j in try at(mode == "edge" ? dim - 1 : dim - 2 - j) }
                y = try Tensor.concat(head + [y] + tail, axis: axis)
            }
        }
        return .tensor(y)
    }
}
