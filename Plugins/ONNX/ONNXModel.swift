// The `onnx` model plugin (libPAGONNX.so): any classifier exported to ONNX, rebuilt from host
// operations at load. Its float weights become the model's parameters under their names in the
// file, so it trains, checkpoints and resumes like a built-in model.
import Foundation
import PAGPluginKit

/// What an initializer is to pag.
enum Role: Int, Comparable {
    /// Folded in Swift (scalars, integer shapes, exponents, clip bounds).
    case constant = 0
    /// Saved with the model, not trained (BatchNorm statistics, input mean and std).
    case buffer = 1
    /// Trained.
    case parameter = 2
    static func < (a: Role, b: Role) -> Bool { a.rawValue < b.rawValue }

    /// The role of each float initializer, from the slots of the nodes that read it.
    static func of(_ graph: Graph) -> [String: Role] {
        var roles: [String: Role] = [:]
        for n in graph.nodes {
            for (slot, name) in n.inputs.enumerated() {
                guard let f = graph.floats[name] else { continue }
                let big = f.values.count > 1
                let role: Role
                switch (n.op, slot) {
                case ("BatchNormalization", 3), ("BatchNormalization", 4): role = .buffer
                case ("BatchNormalization", _), ("Conv", 1), ("Conv", 2), ("Gemm", _), ("MatMul", _), ("PRelu", 1),
                     ("LayerNormalization", 1), ("LayerNormalization", 2), ("InstanceNormalization", 1), ("InstanceNormalization", 2):
                    role = .parameter
                case ("Sub", 1), ("Div", 1): role = big ? .buffer : .constant
                case ("Add", _), ("Mul", _), ("Sub", 0), ("Div", 0), ("Concat", _), ("Expand", 0), ("Where", 1), ("Where", 2):
                    role = big ? .parameter : .constant
                default: role = .constant
                }
                roles[name] = Swift.max(roles[name] ?? .constant, role)
            }
        }
        return roles
    }
}

struct ONNXModel: ModelPlugin {
    static let name = "onnx"
    static let version = "1.0.0"
    static let summary = "Any classifier exported to ONNX (opset 11-23), rebuilt from pag's operations; weights trainable under their ONNX names"
    static let hyperparameters: [Hyperparameter] = [
        .file("file", help: "the .onnx file (required; `--model PATH.onnx` sets it); external data is read from beside it"),
        .string("input_range", default: "-1,1", help: "LO,HI: the input scale the model expects; pag's [-1, 1] images are mapped onto it (0,1 for most PyTorch models); gradients stay in pag's scale"),
        .bool("strip_softmax", default: false, help: "when the graph ends in Softmax or LogSoftmax, use its input (the logits) as the output"),
        .string("output", default: "", help: "the graph output to use when it has several (default: its only one)"),
    ]

    let graph: Graph
    let parameters: [(name: String, handle: pag_tensor)]
    /// x_model = x * scale + shift maps pag's [-1, 1] onto input_range.
    let scale: Float, shift: Float
    let fixedBatch: Int?
    let stripSoftmax: Bool
    let sampleShape: [Int]

    init(context: Context) throws {
        let path = try context.string("file")
        guard !path.isEmpty else {
            throw PluginKitError("no ONNX file: give --model PATH.onnx or --set onnx.file=PATH")
        }
        (scale, shift) = try Self.inputMapping(try context.string("input_range"))
        stripSoftmax = try context.bool("strip_softmax")
        let output = try context.string("output")
        do {
            graph = try ONNXFile.read(path, outputName: output.isEmpty ? nil : output)
        } catch let e as ONNXError { throw PluginKitError(e.description) }
        let unsupported = graph.nodes.filter { !Interpreter.supported.contains($0.op) }
        if let first = unsupported.first {
            let ops = Set(unsupported.map(\.op)).sorted().joined(separator: ", ")
            throw PluginKitError("\(path): \(first.label) uses operator '\(first.op)', which pag's ONNX import does not implement (unsupported here: \(ops); docs/models-from-pytorch.md lists the supported ones)")
        }

        // The sample shape: the file's, with symbolic dimensions taken from the data.
        var sample: [Int] = []
        for (i, d) in graph.inputShape.dropFirst().enumerated() {
            switch d {
            case .fixed(let v): sample.append(v)
            case .symbolic(let name):
                guard let data = context.data, data.sampleShape.count == graph.inputShape.count - 1 else {
                    throw PluginKitError("\(path): input dimension \(i + 1) is symbolic ('\(name)'); pag takes it from the data set, but none of rank \(graph.inputShape.count - 1) was given")
                }
                sample.append(data.sampleShape[i])
            }
        }
        sampleShape = sample
        if case .fixed(let b) = graph.inputShape[0] { fixedBatch = b } else { fixedBatch = nil }
        // A broken or hostile file must not make the dry run allocate without bound.
        let elements = sample.reduce(1) { $0.multipliedReportingOverflow(by: Swift.max($1, 0)).overflow ? Int.max : $0 * Swift.max($1, 0) }
        guard sample.allSatisfy({ $0 >= 1 }), elements <= 1 << 26, (fixedBatch ?? 1) >= 1, (fixedBatch ?? 1) <= 1 << 16 else {
            throw PluginKitError("\(path): the input shape \(graph.inputShape) is not a usable image batch (sample \(sample); at most 2^26 elements per sample and a batch of 1 to 65536)")
        }

        // Weights: declared under their file names (characters outside [A-Za-z0-9_.] become '_').
        let roles = Role.of(graph)
        var declared: [(String, pag_tensor)] = [], used = Set<String>()
        for name in graph.floats.keys.sorted() {
            let f = graph.floats[name]!
            let role = roles[name] ?? .constant
            guard role != .constant else { continue }
            var clean = String(name.unicodeScalars.map { s -> Character in
                ("a"..."z").contains(s) || ("A"..."Z").contains(s) || ("0"..."9").contains(s) || s == "_" || s == "." ? Character(s) : "_"
            })
            while clean.hasPrefix(".") { clean.removeFirst() }
            while clean.hasSuffix(".") { clean.removeLast() }
            if clean.isEmpty { clean = "weight" }
            var unique = clean, k = 1
            while used.contains(unique) { unique = "\(clean)_\(k)"; k += 1 }
            used.insert(unique)
            let initial = try context.tensor(f.values, shape: f.shape)
            declared.append((name, role == .parameter ? try context.declareParameter(unique, initial) : try context.declareBuffer(unique, initial)))
        }
        parameters = declared

        // A dry run on one batch checks every node's attributes and shapes now, before any work.
        let probe = try context.zeros([fixedBatch ?? 1] + sample)
        let out: Tensor
        do {
            out = try context.withGradient(enabled: false) { try self.outputs(probe, train: false, context: context) }
        } catch let e as PluginKitError {
            throw PluginKitError(e.message.hasPrefix(path) ? e.message : "\(path): \(e.message)")
        }
        guard out.rank == 2 else {
            throw PluginKitError("\(path): the model's output has shape \(out.shape) for a batch of \(fixedBatch ?? 1); pag needs logits [N, classes]")
        }
        try context.declareIO(input: sample, outputs: out.shape[1])
    }

    /// Parses input_range "LO,HI" into the affine map from [-1, 1].
    static func inputMapping(_ text: String) throws -> (Float, Float) {
        let parts = text.split(separator: ",").map { Double($0.trimmingCharacters(in: .whitespaces)) }
        guard parts.count == 2, let lo = parts[0], let hi = parts[1], lo.isFinite, hi.isFinite, lo < hi else {
            throw PluginKitError("onnx.input_range must be LO,HI with LO < HI (e.g. 0,1), got '\(text)'")
        }
        return (Float((hi - lo) / 2), Float((hi + lo) / 2))
    }

    func forward(_ x: Tensor, train: Bool) throws -> Tensor {
        guard Array(x.shape.dropFirst()) == sampleShape else {
            throw PluginKitError("input of shape \(x.shape) does not fit the ONNX model's samples \(sampleShape)")
        }
        let mapped = scale == 1 && shift == 0 ? x : try x * scale + shift
        return try outputs(mapped, train: train, context: x.context)
    }

    /// The graph's output for x in the model's scale; a file with a fixed batch size runs in chunks of it.
    func outputs(_ x: Tensor, train: Bool, context: Context) throws -> Tensor {
        let weights = Dictionary(uniqueKeysWithValues: parameters.map { ($0.name, Tensor(handle: $0.handle, context: context)) })
        let interpreter = Interpreter(graph: graph, context: context, train: train)
        func run(_ batch: Tensor) throws -> Tensor {
            do {
                var y = try interpreter.tensor(try interpreter.run(batch, parameters: weights, stripSoftmax: stripSoftmax))
                if y.rank > 2, y.shape.dropFirst(2).allSatisfy({ $0 == 1 }) { y = try y.flattened() }
                return y
            } catch let e as ONNXError { throw PluginKitError(e.description) }
        }
        let n = x.shape[0]
        guard let b = fixedBatch, b != n else { return try run(x) }
        // Chunks of the file's batch size; the last one is filled up with zeros and cut back.
        var parts: [Tensor] = []
        var start = 0
        while start < n {
            let count = Swift.min(b, n - start)
            var chunk = try x.slice(axis: 0, start..<(start + count))
            if count < b { chunk = try chunk.padded(axis: 0, before: 0, after: b - count) }
            var y = try run(chunk)
            if count < b { y = try y.slice(axis: 0, 0..<count) }
            parts.append(y)
            start += count
        }
        return parts.count == 1 ? parts[0] : try Tensor.concat(parts, axis: 0)
    }
}

/// The library's entry point.
@_cdecl("pag_plugin_init")
public func pagPluginInit(_ host: UnsafePointer<pag_host>?, _ registry: OpaquePointer?) -> pag_status {
    PluginRegistration.register(ONNXModel.self, host: host, registry: registry)
}
