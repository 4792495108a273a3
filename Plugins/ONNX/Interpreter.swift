// Runs an ONNX graph on the host: each node becomes host operations (so every objective and
// measurement, double backpropagation included, works on an imported model), and shape
// arithmetic (Shape, Gather, Concat, Cast, ...) is folded on constants in Swift. Operators follow
// the ONNX specification (onnx.ai/onnx/operators), for the opsets ONNXFile.supportedOpsets names.
import PAGPluginKit

extension Node {
    func attribute(_ name: String) -> Attribute? { attributes[name] }
    func int(_ name: String, _ fallback: Int) throws -> Int {
        switch attributes[name] {
        case nil: return fallback
        case .int(let v)?: return v
        default: throw ONNXError("\(label): attribute '\(name)' must be an integer")
        }
    }
    func float(_ name: String, _ fallback: Double) throws -> Double {
        switch attributes[name] {
        case nil: return fallback
        case .float(let v)?: return v
        case .int(let v)?: return Double(v)
        default: throw ONNXError("\(label): attribute '\(name)' must be a float")
        }
    }
    func ints(_ name: String) throws -> [Int]? {
        switch attributes[name] {
        case nil: return nil
        case .ints(let v)?: return v
        case .int(let v)?: return [v]
        default: throw ONNXError("\(label): attribute '\(name)' must be a list of integers")
        }
    }
    func string(_ name: String, _ fallback: String) throws -> String {
        switch attributes[name] {
        case nil: return fallback
        case .string(let v)?: return v
        default: throw ONNXError("\(label): attribute '\(name)' must be a string")
        }
    }
}

/// One run of the graph on a batch.
struct Interpreter {
    let graph: Graph
    let context: Context
    let train: Bool

    /// The operators this importer implements.
    static let supported: Set<String> = [
        "Conv", "Gemm", "MatMul", "Add", "Sub", "Mul", "Div", "Pow", "Sum", "Mean", "Max", "Min",
        "Relu", "LeakyRelu", "PRelu", "Elu", "Selu", "Celu", "Softplus", "Softsign", "Sigmoid", "HardSigmoid", "Tanh", "Clip",
        "HardSwish", "Gelu", "Erf", "Exp", "Log", "Sqrt", "Neg", "Abs", "Reciprocal", "Mish",
        "Softmax", "LogSoftmax", "BatchNormalization", "LayerNormalization", "InstanceNormalization",
        "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool",
        "ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceSumSquare", "ReduceL1", "ReduceL2",
        "Flatten", "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Concat", "Split", "Slice", "Expand", "Pad",
        "Identity", "Dropout", "Constant", "Shape", "Size", "Gather", "Cast", "CastLike", "ConstantOfShape", "Range",
        "Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "Not", "And", "Or", "Where",
        "Floor", "Ceil", "Round", "Sign", "Mod", "ScatterND",
    ]

    // MARK: Values

    func tensor(_ v: Value) throws -> Tensor {
        switch v {
        case .tensor(let t): return t
        case .constant(let c):
            guard c.kind != .bool || true else { return try context.tensor([], shape: []) }
            return try context.tensor(c.values.map { Float($0) }, shape: c.shape)
        }
    }

    func constant(_ v: Value?, _ node: Node, _ what: String) throws -> Constant {
        guard let v else { throw ONNXError("\(node.label): its \(what) is missing") }
        guard case .constant(let c) = v else {
            throw ONNXError("\(node.label): its \(what) is computed from the image batch; pag needs it to be a constant (shape arithmetic is folded, data-dependent shapes are not supported)")
        }
        return c
    }

    static func axis(_ a: Int, rank: Int, _ node: Node) throws -> Int {
        let k = a < 0 ? a + rank : a
        guard k >= 0 && k < rank else { throw ONNXError("\(node.label): axis \(a) is out of range for rank \(rank)") }
        return k
    }

    // MARK: Running

    /// Runs the graph on x (already in the model's input scale) and returns the output.
    func run(_ x: Tensor, parameters: [String: Tensor], stripSoftmax: Bool) throws -> Value {
        var env: [String: Value] = [graph.inputName: .tensor(x)]
        for (k, t) in parameters { env[k] = .tensor(t) }
        for (k, c) in graph.constants { env[k] = .constant(c) }
        // Float initializers that are neither trained nor buffers (scalars, clip bounds) fold.
        for (k, f) in graph.floats where env[k] == nil {
            env[k] = .constant(Constant(.float, shape: f.shape, values: f.values.map(Double.init)))
        }
        // Each value is dropped after its last reader, so activations are freed during the pass.
        var lastUse: [String: Int] = [:]
        for (i, n) in graph.nodes.enumerated() { for name in n.inputs { lastUse[name] = i } }
        var output = graph.outputName
        if stripSoftmax, let last = graph.nodes.last(where: { $0.outputs.contains(output) }),
           last.op == "Softmax" || last.op == "LogSoftmax" {
            output = last.inputs[0]
        }
        lastUse[output] = Int.max
        for (i, node) in graph.nodes.enumerated() {
            let ins = node.inputs.map { $0.isEmpty ? nil : env[$0] }
            let outs: [Value]
            do { outs = try apply(node, ins) } catch let e as ONNXError {
                throw e.description.contains(node.label) ? e : ONNXError("\(node.label): \(e.description)")
            } catch let e as PluginKitError {
                throw ONNXError("\(node.label): \(e.message)")
            }
            for (name, v) in zip(node.outputs, outs) where !name.isEmpty { env[name] = v }
            for name in node.inputs where lastUse[name] == i && name != graph.inputName { env[name] = nil }
            if node.outputs.contains(output) { break }
        }
        guard let result = env[output] else { throw ONNXError("the graph did not compute its output '\(output)'") }
        return result
    }

    // MARK: Operators

    func apply(_ n: Node, _ ins: [Value?]) throws -> [Value] {
        func input(_ i: Int) throws -> Value {
            guard i < ins.count, let v = ins[i] else { throw ONNXError("\(n.label): input \(i + 1) is missing") }
            return v
        }
        func optional(_ i: Int) -> Value? { i < ins.count ? ins[i] : nil }
        func t(_ i: Int) throws -> Tensor { try tensor(try input(i)) }
        func one(_ v: Tensor) -> [Value] { [.tensor(v)] }

        switch n.op {
        case "Identity": return [try input(0)]
        case "Constant": return [.constant(try constantNode(n))]
        case "Add", "Sub", "Mul", "Div": return [try arithmetic(n.op, try input(0), try input(1))]
        case "Sum", "Mean":
            var acc = try input(0)
            for i in 1..<ins.count { acc = try arithmetic("Add", acc, try input(i)) }
            return [n.op == "Mean" ? try arithmetic("Div", acc, .constant(.scalar(Double(ins.count), .float))) : acc]
        case "Max", "Min":
            var acc = try input(0)
            for i in 1..<ins.count { acc = try extremum(n.op == "Max", acc, try input(i)) }
            return [acc]
        case "Pow": return [try power(try input(0), try input(1))]
        case "MatMul": return one(try matmul(try t(0), try t(1)))
        case "Gemm": return one(try gemm(n, ins))
        case "Conv": return one(try convolution(n, try t(0), try t(1), optional(2).map(tensor)))
        case "MaxPool", "AveragePool":
            if n.outputs.count > 1 && !n.outputs[1].isEmpty {
                throw ONNXError("\(n.label): the Indices output is not supported")
            }
            return one(try pooling(n, try t(0)))
        case "GlobalAveragePool", "GlobalMaxPool":
            let x = try t(0)
            let axes = Array(2..<x.rank)
            return one(n.op == "GlobalAveragePool" ? try x.mean(axes: axes, keepDims: true) : try x.amax(axes: axes, keepDims: true))
        case "BatchNormalization": return one(try batchNorm(n, ins))
        case "LayerNormalization":
            if n.outputs.count > 1 && n.outputs.dropFirst().contains(where: { !$0.isEmpty && $0 != "" }) {
                // Mean and InvStdDev outputs are for training graphs; a reader of them fails when it runs.
            }
            return one(try layerNorm(n, try t(0), optional(1).map(tensor), optional(2).map(tensor)))
        case "InstanceNormalization": return one(try instanceNorm(n, try t(0), try t(1), try t(2)))
        case "Softmax", "LogSoftmax": return one(try softmax(n, try t(0), log: n.op == "LogSoftmax"))
        case "Relu", "Sigmoid", "Tanh", "Exp", "Log", "Sqrt", "Neg", "Abs", "Erf", "Softplus", "Softsign", "Reciprocal",
             "HardSigmoid", "HardSwish", "LeakyRelu", "Elu", "Selu", "Celu", "Gelu", "Mish", "Floor", "Ceil", "Round", "Sign":
            if case .constant(let c) = try input(0) { return [.constant(try foldUnary(n, c))] }
            return one(try activation(n, try t(0)))
        case "PRelu":
            let x = try t(0), slope = try t(1)
            return one(try x.relu() - (try (try (-x).relu()) * slope))
        case "Clip": return [try clip(n, ins)]
        case "Dropout":
            let x = try input(0)
            let ratio = try optional(1).map { try constant($0, n, "ratio").values[0] } ?? (try n.float("ratio", 0.5))
            let training = try optional(2).map { try constant($0, n, "training_mode").values[0] != 0 } ?? false
            guard train || training, ratio > 0, case .tensor(let tx) = x else { return [x] }
            return one(try tx.dropout(p: Float(ratio), training: true))
        case "ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceSumSquare", "ReduceL1", "ReduceL2":
            return one(try reduce(n, try t(0), optional(1)))
        default:
            return try shapeOp(n, ins, input, optional)
        }
    }

    // MARK: Arithmetic

    func arithmetic(_ op: String, _ a: Value, _ b: Value) throws -> Value {
        if case .constant(let ca) = a, case .constant(let cb) = b {
            let isInt = ca.kind != .float && cb.kind != .float
            let kind: Constant.Kind = isInt ? .int : .float
            switch op {
            case "Add": return .constant(try .zip(ca, cb, kind: kind, +))
            case "Sub": return .constant(try .zip(ca, cb, kind: kind, -))
            case "Mul": return .constant(try .zip(ca, cb, kind: kind, *))
            default: return .constant(try .zip(ca, cb, kind: kind) { x, y in isInt ? (x / y).rounded(.towardZero) : x / y })
            }
        }
        // A scalar constant on a tensor: one host op, no broadcast of a 1-element tensor.
        if case .tensor(let ta) = a, case .constant(let cb) = b, cb.count == 1, cb.shape.count <= ta.rank, op != "Div" {
            let s = Float(cb.values[0])
            switch op {
            case "Add": return .tensor(try ta + s)
            case "Sub": return .tensor(try ta - s)
            default: return .tensor(try ta * s)
            }
        }
        if case .constant(let ca) = a, case .tensor(let tb) = b, ca.count == 1, ca.shape.count <= tb.rank, op != "Div" {
            let s = Float(ca.values[0])
            switch op {
            case "Add": return .tensor(try tb + s)
            case "Sub": return .tensor(try (-tb) + s)
            default: return .tensor(try tb * s)
            }
        }
        let x = try tensor(a), y = try tensor(b)
        switch op {
        case "Add": return .tensor(try x + y)
        case "Sub": return .tensor(try x - y)
        case "Mul": return .tensor(try x * y)
        default: return .tensor(try x / y)
        }
    }

    /// Elementwise max or min: (a + b ± |a - b|) / 2 on tensors, folded on constants.
    func extremum(_ isMax: Bool, _ a: Value, _ b: Value) throws -> Value {
        if case .constant(let ca) = a, case .constant(let cb) = b {
            return .constant(try .zip(ca, cb, kind: ca.kind == .float || cb.kind == .float ? .float : .int) { isMax ? Swift.max($0, $1) : Swift.min($0, $1) })
        }
        let x = try tensor(a), y = try tensor(b)
        let d = try (x - y).abs()
        return .tensor(try (isMax ? (try x + y) + d : (try x + y) - d) * 0.5)
    }

    func power(_ a: Value, _ b: Value) throws -> Value {
        if case .constant(let ca) = a, case .constant(let cb) = b {
            return .constant(try .zip(ca, cb, kind: ca.kind) { Foundation_pow($0, $1) })
        }
        let x = try tensor(a)
        if case .constant(let cb) = b, cb.count == 1 {
            let p = cb.values[0]
            if p == 1 { return .tensor(x) }
            if p == 2 { return .tensor(try x.squared()) }
            if p == 0.5 { return .tensor(try x.sqrt()) }
            return .tensor(try x.pow(Float(p)))
        }
        return .tensor(try (try tensor(b) * x.log()).exp())
    }

    func matmul(_ a: Tensor, _ b: Tensor) throws -> Tensor {
        var sa = a.shape, sb = b.shape
        var x = a, y = b
        let aVector = sa.count == 1, bVector = sb.count == 1
        if aVector { x = try x.reshaped([1, sa[0]]); sa = [1, sa[0]] }
        if bVector { y = try y.reshaped([sb[0], 1]); sb = [sb[0], 1] }
        guard sa.count >= 2, sb.count >= 2, sa[sa.count - 1] == sb[sb.count - 2] else {
            throw ONNXError("MatMul of shapes \(a.shape) and \(b.shape): inner dimensions differ")
        }
        let m = sa[sa.count - 2], k = sa[sa.count - 1], nn = sb[sb.count - 1]
        var out: Tensor, outShape: [Int]
        if sb.count == 2 {
            outShape = Array(sa.dropLast()) + [nn]
            out = sa.count == 2 ? try x.matmul(y) : try x.reshaped([-1, k]).matmul(y).reshaped(outShape)
        } else {
            guard let batch = broadcastShapes(Array(sa.dropLast(2)), Array(sb.dropLast(2))) else {
                throw ONNXError("MatMul of shapes \(a.shape) and \(b.shape): batch dimensions do not broadcast")
            }
            let count = batch.reduce(1, *)
            let xa = Array(sa.dropLast(2)) == batch ? x : try x.broadcast(to: batch + [m, k])
            let yb = Array(sb.dropLast(2)) == batch ? y : try y.broadcast(to: batch + [k, nn])
            outShape = batch + [m, nn]
            out = try xa.reshaped([count, m, k]).matmul(yb.reshaped([count, k, nn])).reshaped(outShape)
        }
        if aVector { outShape.remove(at: outShape.count - 2) }
        if bVector { outShape.removeLast() }
        return aVector || bVector ? try out.reshaped(outShape) : out
    }

    func gemm(_ n: Node, _ ins: [Value?]) throws -> Tensor {
        guard ins.count >= 2, let va = ins[0], let vb = ins[1] else { throw ONNXError("\(n.label): needs inputs A and B") }
        let a = try tensor(va), b = try tensor(vb)
        let c = ins.count > 2 ? try ins[2].map(tensor) : nil
        let alpha = try n.float("alpha", 1), beta = try n.float("beta", 1)
        let ta = try n.int("transA", 0) != 0, tb = try n.int("transB", 0) != 0
        guard a.rank == 2, b.rank == 2 else { throw ONNXError("\(n.label): A and B must be matrices, got \(a.shape) and \(b.shape)") }
        if !ta, tb, alpha == 1, beta == 1, c.map({ $0.rank == 1 && $0.shape[0] == b.shape[0] }) ?? true {
            return try a.linear(weight: b, bias: c)  // PyTorch's nn.Linear: x W^T + b
        }
        var y = try a.matmul(b, transposeSelf: ta, transposeOther: tb)
        if alpha != 1 { y = try y * Float(alpha) }
        if let c { y = try y + (beta == 1 ? c : try c * Float(beta)) }
        return y
    }

    // MARK: Convolution and pooling

    /// Explicit begin/end padding per spatial axis from pads or auto_pad.
    static func padding(_ n: Node, input: [Int], kernel: [Int], strides: [Int], dilations: [Int]) throws -> (begin: [Int], end: [Int]) {
        let d = kernel.count
        let autoPad = try n.string("auto_pad", "NOTSET")
        switch autoPad {
        case "NOTSET":
            let pads = try n.ints("pads") ?? [Int](repeating: 0, count: 2 * d)
            guard pads.count == 2 * d, pads.allSatisfy({ $0 >= 0 }) else {
                throw ONNXError("\(n.label): pads \(pads) must be \(2 * d) non-negative numbers")
            }
            return (Array(pads[..<d]), Array(pads[d...]))
        case "VALID": return ([Int](repeating: 0, count: d), [Int](repeating: 0, count: d))
        case "SAME_UPPER", "SAME_LOWER":
            var begin: [Int] = [], end: [Int] = []
            for i in 0..<d {
                let out = (input[i] + strides[i] - 1) / strides[i]
                let total = Swift.max(0, (out - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - input[i])
                let small = total / 2
                begin.append(autoPad == "SAME_UPPER" ? small : total - small)
                end.append(autoPad == "SAME_UPPER" ? total - small : small)
            }
            return (begin, end)
        default: throw ONNXError("\(n.label): auto_pad '\(autoPad)' is not NOTSET, SAME_UPPER, SAME_LOWER or VALID")
        }
    }

    func convolution(_ n: Node, _ x0: Tensor, _ w0: Tensor, _ bias: Tensor?) throws -> Tensor {
        var x = x0, w = w0
        let oneD = x.rank == 3
        if oneD { x = try x.reshaped(Array(x.shape.prefix(2)) + [1, x.shape[2]]); w = try w.reshaped(Array(w.shape.prefix(2)) + [1, w.shape[2]]) }
        guard x.rank == 4, w.rank == 4 else {
            throw ONNXError("\(n.label): pag runs 1-D and 2-D convolutions; input \(x0.shape), weight \(w0.shape)")
        }
        func pair(_ name: String) throws -> [Int] {
            guard let v = try n.ints(name) else { return [1, 1] }
            guard v.count == (oneD ? 1 : 2), v.allSatisfy({ $0 >= 1 }) else { throw ONNXError("\(n.label): \(name) \(v) must be \(oneD ? 1 : 2) positive numbers") }
            return oneD ? [1, v[0]] : v
        }
        let strides = try pair("strides"), dilations = try pair("dilations")
        let group = try n.int("group", 1)
        let kernel = [w.shape[2], w.shape[3]]
        if let ks = try n.ints("kernel_shape"), ks != (oneD ? [kernel[1]] : kernel) {
            throw ONNXError("\(n.label): kernel_shape \(ks) disagrees with the weight's shape \(w0.shape)")
        }
        var (begin, end) = try Self.padding(n, input: [x.shape[2], x.shape[3]].suffix(oneD ? 1 : 2).map { $0 }, kernel: kernel.suffix(oneD ? 1 : 2).map { $0 },
                                            strides: strides.suffix(oneD ? 1 : 2).map { $0 }, dilations: dilations.suffix(oneD ? 1 : 2).map { $0 })
        if oneD { begin = [0] + begin; end = [0] + end }
        guard group >= 1, x.shape[1] % group == 0, w.shape[0] % group == 0, w.shape[1] * group == x.shape[1] else {
            throw ONNXError("\(n.label): group \(group) does not fit input \(x0.shape) and weight \(w0.shape)")
        }
        var y: Tensor
        if group == 1, dilations == [1, 1], begin == end {
            y = try x.conv2d(weight: w, bias: bias, stride: (strides[0], strides[1]), padding: (begin[0], begin[1]))
        } else {
            y = try x.conv2d(weight: w, bias: bias, stride: strides, padding: [begin[0], begin[1], end[0], end[1]],
                             dilation: dilations, groups: group)
        }
        if oneD { y = try y.reshaped([y.shape[0], y.shape[1], y.shape[3]]) }
        return y
    }

    /// Output size of a pooling window along one axis, with PyTorch's ceil_mode rule.
    static func poolOutput(_ size: Int, _ k: Int, _ s: Int, _ b: Int, _ e: Int, _ d: Int, ceil: Bool) -> Int {
        let span = size + b + e - d * (k - 1) - 1
        guard ceil else { return span / s + 1 }
        var out = (span + s - 1) / s + 1
        if (out - 1) * s >= size + b { out -= 1 }
        return out
    }

    func pooling(_ n: Node, _ x: Tensor) throws -> Tensor {
        guard x.rank == 4 else { throw ONNXError("\(n.label): pag pools NCHW (4-D) input, got \(x.shape)") }
        guard let kernel = try n.ints("kernel_shape"), kernel.count == 2, kernel.allSatisfy({ $0 >= 1 }) else {
            throw ONNXError("\(n.label): needs kernel_shape with two positive sizes")
        }
        let isMax = n.op == "MaxPool"
        let strides = try n.ints("strides") ?? [1, 1]
        let dilations = try n.ints("dilations") ?? [1, 1]
        guard strides.count == 2, dilations.count == 2, strides.allSatisfy({ $0 >= 1 }), dilations.allSatisfy({ $0 >= 1 }) else {
            throw ONNXError("\(n.label): strides \(strides) and dilations \(dilations) must be two positive numbers each")
        }
        if try n.int("storage_order", 0) != 0 { throw ONNXError("\(n.label): storage_order 1 (column major) is not supported") }
        guard isMax || dilations == [1, 1] else { throw ONNXError("\(n.label): AveragePool with dilations is not supported") }
        let ceil = try n.int("ceil_mode", 0) != 0
        let countPad = try n.int("count_include_pad", 0) != 0
        let (begin, end) = try Self.padding(n, input: [x.shape[2], x.shape[3]], kernel: kernel, strides: strides, dilations: dilations)
        let h = x.shape[2], w = x.shape[3]
        let ceilMatters = ceil && (0..<2).contains { i in
            Self.poolOutput([h, w][i], kernel[i], strides[i], begin[i], end[i], dilations[i], ceil: true)
                != Self.poolOutput([h, w][i], kernel[i], strides[i], begin[i], end[i], dilations[i], ceil: false)
        }
        let square = kernel[0] == kernel[1] && strides[0] == strides[1] && dilations == [1, 1] && begin == end
            && begin[0] == begin[1] && 2 * begin[0] <= kernel[0] && !ceilMatters
        if square && isMax { return try x.maxPool2d(kernel: kernel[0], stride: strides[0], padding: begin[0]) }
        if square && !isMax && (countPad || begin[0] == 0) { return try x.avgPool2d(kernel: kernel[0], stride: strides[0], padding: begin[0]) }
        return try x.pool2d(max: isMax, kernel: kernel, stride: strides, padding: [begin[0], begin[1], end[0], end[1]],
                            dilation: dilations, ceilMode: ceil, countIncludePad: countPad)
    }

    // MARK: Normalization

    func batchNorm(_ n: Node, _ ins: [Value?]) throws -> Tensor {
        guard ins.count >= 5, let vx = ins[0], let vs = ins[1], let vb = ins[2], let vm = ins[3], let vv = ins[4] else {
            throw ONNXError("\(n.label): needs X, scale, B, input_mean and input_var")
        }
        if try n.int("training_mode", 0) != 0 { throw ONNXError("\(n.label): training_mode 1 graphs are not supported (export the model in eval mode)") }
        let x = try tensor(vx)
        // ONNX's momentum weighs the old running value; PyTorch's (and pag's) the new batch value.
        let momentum = Float(1 - (try n.float("momentum", 0.9)))
        return try x.batchNorm(weight: try tensor(vs), bias: try tensor(vb), runningMean: try tensor(vm), runningVar: try tensor(vv),
                               training: train, momentum: momentum, eps: Float(try n.float("epsilon", 1e-5)))
    }

    func layerNorm(_ n: Node, _ x: Tensor, _ scale: Tensor?, _ bias: Tensor?) throws -> Tensor {
        let axis = try Self.axis(try n.int("axis", -1), rank: x.rank, n)
        let axes = Array(axis..<x.rank)
        let eps = Float(try n.float("epsilon", 1e-5))
        let centred = try x - x.mean(axes: axes, keepDims: true)
        let variance = try centred.squared().mean(axes: axes, keepDims: true)
        var y = try centred / (variance + eps).sqrt()
        if let scale { y = try y * scale }
        if let bias { y = try y + bias }
        return y
    }

    func instanceNorm(_ n: Node, _ x: Tensor, _ scale: Tensor, _ bias: Tensor) throws -> Tensor {
        guard x.rank >= 3 else { throw ONNXError("\(n.label): needs input [N, C, ...], got \(x.shape)") }
        let axes = Array(2..<x.rank)
        let eps = Float(try n.float("epsilon", 1e-5))
        let centred = try x - x.mean(axes: axes, keepDims: true)
        let variance = try centred.squared().mean(axes: axes, keepDims: true)
        let perChannel = [x.shape[1]] + [Int](repeating: 1, count: x.rank - 2)
        return try (centred / (variance + eps).sqrt()) * scale.reshaped(perChannel) + bias.reshaped(perChannel)
    }

    func softmax(_ n: Node, _ x: Tensor, log: Bool) throws -> Tensor {
        if graph.opset < 13 {
            // Before opset 13, (Log)Softmax flattens the input to 2-D at axis (default 1).
            let axis = try Self.axis(try n.int("axis", 1), rank: x.rank, n)
            let shape = x.shape
            let flat = try x.reshaped([shape[..<axis].reduce(1, *), shape[axis...].reduce(1, *)])
            return try (log ? flat.logSoftmax(axis: 1) : flat.softmax(axis: 1)).reshaped(shape)
        }
        let axis = try Self.axis(try n.int("axis", -1), rank: x.rank, n)
        return try log ? x.logSoftmax(axis: axis) : x.softmax(axis: axis)
    }

    // MARK: Elementwise

    func activation(_ n: Node, _ x: Tensor) throws -> Tensor {
        switch n.op {
        case "Relu": return try x.relu()
        case "Sigmoid": return try x.sigmoid()
        case "Tanh": return try x.tanh()
        case "Exp": return try x.exp()
        case "Log": return try x.log()
        case "Sqrt": return try x.sqrt()
        case "Neg": return try -x
        case "Abs": return try x.abs()
        case "Erf": return try x.erf()
        case "Reciprocal": return try (try context.scalar(1)) / x
        // ONNX's Softplus has no threshold; PyTorch's 20 changes it by under 2e-9.
        case "Softplus": return try x.softplus(beta: 1, threshold: 20)
        case "Softsign": return try x / (x.abs() + 1)
        case "Mish": return try x * x.softplus(beta: 1, threshold: 20).tanh()
        case "HardSigmoid":
            let alpha = Float(try n.float("alpha", 0.2)), beta = Float(try n.float("beta", 0.5))
            return try (x * alpha + beta).clamped(min: 0, max: 1)
        case "HardSwish": return try x * (x * Float(1.0 / 6.0) + 0.5).clamped(min: 0, max: 1)
        case "LeakyRelu":
            let alpha = Float(try n.float("alpha", 0.01))
            return try x.relu() * (1 - alpha) + x * alpha
        case "Elu", "Celu", "Selu":
            let alpha = Float(try n.float("alpha", n.op == "Selu" ? 1.67326319217681884765625 : 1))
            let negative = n.op == "Celu" ? try ((x / alpha).clamped(max: 0).exp() - 1) * alpha
                                          : try (x.clamped(max: 0).exp() - 1) * alpha
            let y = try x.relu() + negative
            return n.op == "Selu" ? try y * Float(try n.float("gamma", 1.05070102214813232421875)) : y
        case "Gelu":
            switch try n.string("approximate", "none") {
            case "none": return try x * ((x * Float(1 / 2.0.squareRoot())).erf() + 1) * 0.5
            case "tanh":
                let inner = try (x + x.pow(3) * 0.044715) * Float((2 / Double.pi).squareRoot())
                return try x * (inner.tanh() + 1) * 0.5
            case let other: throw ONNXError("\(n.label): approximate '\(other)' is not none or tanh")
            }
        default:
            throw ONNXError("\(n.label): \(n.op) of a computed tensor has no gradient; pag supports it on constants only")
        }
    }

    func foldUnary(_ n: Node, _ c: Constant) throws -> Constant {
        switch n.op {
        case "Neg": return c.map { -$0 }
        case "Abs": return c.map { Swift.abs($0) }
        case "Sqrt": return c.map(.float) { $0.squareRoot() }
        case "Exp": return c.map(.float) { Foundation_exp($0) }
        case "Log": return c.map(.float) { Foundation_log($0) }
        case "Reciprocal": return c.map(.float) { 1 / $0 }
        case "Relu": return c.map { Swift.max($0, 0) }
        case "Floor": return c.map { $0.rounded(.down) }
        case "Ceil": return c.map { $0.rounded(.up) }
        case "Round": return c.map { $0.rounded(.toNearestOrEven) }
        case "Sign": return c.map { $0 > 0 ? 1 : ($0 < 0 ? -1 : 0) }
        default:
            var t = try activation(n, try tensor(.constant(c)))
            t = try t.detached()
            return Constant(.float, shape: c.shape, values: try t.scalars().map(Double.init))
        }
    }

    func clip(_ n: Node, _ ins: [Value?]) throws -> Value {
        guard let first = ins.first, let v = first else { throw ONNXError("\(n.label): needs an input") }
        var low = -Double.infinity, high = Double.infinity
        if graph.opset < 11 {
            low = try n.float("min", -.infinity); high = try n.float("max", .infinity)
        } else {
            if ins.count > 1, let m = ins[1] { low = try constant(m, n, "min").values[0] }
            if ins.count > 2, let m = ins[2] { high = try constant(m, n, "max").values[0] }
        }
        if case .constant(let c) = v { return .constant(c.map { Swift.min(Swift.max($0, low), high) }) }
        guard low <= high else { throw ONNXError("\(n.label): min \(low) is above max \(high)") }
        return .tensor(try tensor(v).clamped(min: Float(low), max: Float(high)))
    }

    func reduce(_ n: Node, _ x: Tensor, _ axesInput: Value?) throws -> Tensor {
        var axes: [Int]? = try axesInput.map { try constant($0, n, "axes").ints } ?? n.ints("axes")
        if axes?.isEmpty ?? true {
            if try n.int("noop_with_empty_axes", 0) != 0 { return x }
            axes = nil
        }
        let normalized = try axes.map { try $0.map { try Self.axis($0, rank: x.rank, n) } }
        let keep = try n.int("keepdims", 1) != 0
        switch n.op {
        case "ReduceMean": return try x.mean(axes: normalized, keepDims: keep)
        case "ReduceSum": return try x.sum(axes: normalized, keepDims: keep)
        case "ReduceMax": return try x.amax(axes: normalized, keepDims: keep)
        case "ReduceMin": return try x.amin(axes: normalized, keepDims: keep)
        case "ReduceSumSquare": return try x.squared().sum(axes: normalized, keepDims: keep)
        case "ReduceL1": return try x.abs().sum(axes: normalized, keepDims: keep)
        default: return try x.squared().sum(axes: normalized, keepDims: keep).sqrt()
        }
    }

    func constantNode(_ n: Node) throws -> Constant {
        if case .tensor(let c)? = n.attribute("value") { return c }
        if case .float(let f)? = n.attribute("value_float") { return .scalar(f, .float) }
        if case .floats(let f)? = n.attribute("value_floats") { return Constant(.float, shape: [f.count], values: f) }
        if case .int(let i)? = n.attribute("value_int") { return .scalar(Double(i), .int) }
        if case .ints(let i)? = n.attribute("value_ints") { return .ints(i) }
        throw ONNXError("\(n.label): has no value pag reads (value, value_float(s), value_int(s))")
    }
}

// Foundation's math without importing Foundation into every file's namespace.
import Foundation
@inline(__always) func Foundation_pow(_ a: Double, _ b: Double) -> Double { Foundation.pow(a, b) }
@inline(__always) func Foundation_exp(_ a: Double) -> Double { Foundation.exp(a) }
@inline(__always) func Foundation_log(_ a: Double) -> Double { Foundation.log(a) }
