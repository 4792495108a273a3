// Reading an ONNX file into the importer's own plain values (Graph, Node, Constant), with every
// check a broken or unsupported file needs: the protobuf parse (swift-protobuf), the opset, the
// one float input, initializers whose data fits their shape, external data beside the file, and
// a node order without cycles. Nothing here touches the host; the interpreter (Interpreter.swift)
// runs what this returns.
import Foundation
import SwiftProtobuf

/// An error of the importer; its text names the file, and the node and operator where there is one.
struct ONNXError: Error, CustomStringConvertible {
    var description: String
    init(_ message: String) { description = message }
}

/// A constant array: an initializer that is not a weight, a Constant node, or the result of shape
/// arithmetic folded while the graph runs. Values are held as Double (exact for int64 shapes up
/// to 2^53, and for every float32).
struct Constant {
    enum Kind: String { case float, int, bool }
    var kind: Kind
    var shape: [Int]
    var values: [Double]

    init(_ kind: Kind, shape: [Int], values: [Double]) {
        self.kind = kind; self.shape = shape; self.values = values
    }
    static func ints(_ v: [Int], shape: [Int]? = nil) -> Constant { Constant(.int, shape: shape ?? [v.count], values: v.map(Double.init)) }
    static func scalar(_ v: Double, _ kind: Kind) -> Constant { Constant(kind, shape: [], values: [v]) }
    var count: Int { values.count }
    var ints: [Int] { values.map { Int($0) } }
}

/// One attribute of a node, as the importer uses it.
enum Attribute {
    case float(Double), int(Int), string(String), floats([Double]), ints([Int]), tensor(Constant)
    /// A kind the importer has no use for (graphs, sparse tensors, type protos, strings lists).
    case unsupported(String)
}

/// A node of the graph.
struct Node {
    var index: Int
    var name: String
    var op: String
    var inputs: [String]
    var outputs: [String]
    var attributes: [String: Attribute]

    /// "node 'NAME' (Op)" for messages.
    var label: String { "node '\(name.isEmpty ? "#\(index)" : name)' (\(op))" }
}

/// A float initializer kept as float32: a candidate weight.
struct FloatTensor {
    var shape: [Int]
    var values: [Float]
}

/// One dimension of the graph input: a number or a symbol (e.g. "batch").
enum Dimension: Equatable {
    case fixed(Int), symbolic(String)
}

/// An ONNX model as the interpreter needs it.
struct Graph {
    /// The default domain's opset.
    var opset: Int
    var inputName: String
    var inputShape: [Dimension]
    var outputName: String
    /// Float initializers (float32, float16 and double read as float32).
    var floats: [String: FloatTensor]
    /// Initializers of other types (int64 shapes, bools).
    var constants: [String: Constant]
    /// In an order where every node comes after the nodes it reads from.
    var nodes: [Node]
}

/// The ONNX element types the importer reads, with their names for messages.
enum ElementType {
    static let names: [Int: String] = [1: "FLOAT", 2: "UINT8", 3: "INT8", 4: "UINT16", 5: "INT16", 6: "INT32", 7: "INT64",
                                       8: "STRING", 9: "BOOL", 10: "FLOAT16", 11: "DOUBLE", 12: "UINT32", 13: "UINT64",
                                       14: "COMPLEX64", 15: "COMPLEX128", 16: "BFLOAT16"]
    static func name(_ t: Int) -> String { names[t] ?? "type \(t)" }
    /// Bytes per element in raw_data for the types read.
    static let sizes: [Int: Int] = [1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8, 16: 2]
}

enum ONNXFile {
    /// The default-domain opsets whose operator semantics the importer implements.
    static let supportedOpsets = 11...23

    /// Reads and checks `path`. Every failure is one ONNXError naming the file and what is wrong.
    static func read(_ path: String, outputName wanted: String?) throws -> Graph {
        let url = URL(fileURLWithPath: path)
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw ONNXError("\(path): no such file")
        }
        guard !isDir.boolValue else { throw ONNXError("\(path) is a directory, not an ONNX file") }
        let bytes: Data
        do { bytes = try Data(contentsOf: url) } catch { throw ONNXError("\(path): cannot read it (\(error.localizedDescription))") }
        guard !bytes.isEmpty else { throw ONNXError("\(path): empty file, not an ONNX model") }
        let model: Onnx_ModelProto
        do {
            var options = BinaryDecodingOptions()
            options.messageDepthLimit = 64
            model = try Onnx_ModelProto(serializedBytes: bytes, options: options)
        } catch {
            throw ONNXError("\(path): not an ONNX model (the protobuf does not parse: \(protobufProblem(error)))")
        }
        guard model.hasGraph, model.irVersion > 0, !model.opsetImport.isEmpty else {
            throw ONNXError("\(path): not an ONNX model (no graph, IR version or opset; is it an ONNX file?)")
        }
        let opset = try defaultOpset(model, path)
        let g = model.graph
        let directory = url.deletingLastPathComponent().path

        var floats: [String: FloatTensor] = [:], constants: [String: Constant] = [:]
        for t in g.initializer {
            let name = t.name
            guard floats[name] == nil, constants[name] == nil else { throw ONNXError("\(path): initializer '\(name)' is given twice") }
            let what = "initializer '\(name)'"
            if [1, 10, 11, 16].contains(Int(t.dataType)) {
                floats[name] = try floatTensor(t, what: what, file: path, directory: directory)
            } else {
                constants[name] = try constant(t, what: what, file: path, directory: directory)
            }
        }

        let known = Set(floats.keys).union(constants.keys)
        let inputs = g.input.filter { !known.contains($0.name) }
        guard inputs.count == 1 else {
            let names = inputs.map { "'\($0.name)'" }.joined(separator: ", ")
            throw ONNXError(inputs.isEmpty ? "\(path): the graph has no input; a pag model takes one image batch"
                                           : "\(path): the graph has \(inputs.count) inputs (\(names)); a pag model takes exactly one (the image batch)")
        }
        let input = inputs[0]
        guard case .tensorType(let tt)? = input.type.value else {
            throw ONNXError("\(path): input '\(input.name)' is not a tensor")
        }
        guard tt.elemType == 1 else {
            throw ONNXError("\(path): input '\(input.name)' has element type \(ElementType.name(Int(tt.elemType))); a pag model takes float32 (FLOAT) images")
        }
        guard tt.hasShape else { throw ONNXError("\(path): input '\(input.name)' has no shape; pag needs at least its rank") }
        let shape: [Dimension] = tt.shape.dim.map { d in
            switch d.value {
            case .dimValue(let v)?: return .fixed(Int(v))
            case .dimParam(let p)?: return .symbolic(p)
            case nil: return .symbolic("?")
            }
        }
        guard shape.count >= 2 else {
            throw ONNXError("\(path): input '\(input.name)' has rank \(shape.count); pag needs a batch dimension and a sample shape")
        }
        if case .fixed(let b) = shape[0], b < 1 { throw ONNXError("\(path): input '\(input.name)' has batch size \(b)") }

        let outputs = g.output.map(\.name)
        let output: String
        if let wanted, !wanted.isEmpty {
            guard outputs.contains(wanted) else {
                throw ONNXError("\(path): onnx.output '\(wanted)' is not an output of the graph (it has \(outputs.map { "'\($0)'" }.joined(separator: ", ")))")
            }
            output = wanted
        } else {
            guard outputs.count == 1 else {
                throw ONNXError(outputs.isEmpty ? "\(path): the graph has no output"
                                                : "\(path): the graph has \(outputs.count) outputs (\(outputs.map { "'\($0)'" }.joined(separator: ", "))); choose the logits with --set onnx.output=NAME")
            }
            output = outputs[0]
        }

        var nodes: [Node] = []
        for (i, n) in g.node.enumerated() {
            var attributes: [String: Attribute] = [:]
            let label = "node '\(n.name.isEmpty ? "#\(i)" : n.name)' (\(n.opType))"
            for a in n.attribute {
                attributes[a.name] = try attribute(a, node: label, file: path, directory: directory)
            }
            guard n.domain.isEmpty || n.domain == "ai.onnx" else {
                throw ONNXError("\(path): \(label) is from operator domain '\(n.domain)', which pag does not implement (only the default ONNX domain)")
            }
            nodes.append(Node(index: i, name: n.name, op: n.opType, inputs: n.input, outputs: n.output, attributes: attributes))
        }
        let ordered = try topologicalOrder(nodes, available: known.union([input.name]), file: path)
        guard ordered.contains(where: { $0.outputs.contains(output) }) || known.contains(output) || output == input.name else {
            throw ONNXError("\(path): no node computes the graph's output '\(output)'")
        }
        return Graph(opset: opset, inputName: input.name, inputShape: shape, outputName: output,
                     floats: floats, constants: constants, nodes: ordered)
    }

    static func protobufProblem(_ error: Error) -> String {
        if let e = error as? BinaryDecodingError {
            switch e {
            case .truncated: return "truncated"
            case .malformedProtobuf: return "malformed"
            case .messageDepthLimit: return "nested too deeply"
            default: return "\(e)"
            }
        }
        return "\(error)"
    }

    static func defaultOpset(_ model: Onnx_ModelProto, _ path: String) throws -> Int {
        guard let entry = model.opsetImport.first(where: { $0.domain.isEmpty || $0.domain == "ai.onnx" }) else {
            throw ONNXError("\(path): imports no opset of the default ONNX domain")
        }
        let v = Int(entry.version)
        guard supportedOpsets.contains(v) else {
            throw ONNXError("\(path): opset \(v) is outside the supported range \(supportedOpsets.lowerBound)...\(supportedOpsets.upperBound) (re-export with e.g. torch.onnx.export(..., opset_version=17))")
        }
        return v
    }

    /// Kahn's order over the nodes; a cycle or a value nobody provides is an error naming a node.
    static func topologicalOrder(_ nodes: [Node], available: Set<String>, file: String) throws -> [Node] {
        var producer: [String: Int] = [:]
        for n in nodes {
            for o in n.outputs where !o.isEmpty {
                if let other = producer[o] {
                    throw ONNXError("\(file): \(n.label) and \(nodes[other].label) both write '\(o)'")
                }
                if available.contains(o) { throw ONNXError("\(file): \(n.label) writes '\(o)', which is also an input or initializer") }
                producer[o] = n.index
            }
        }
        var waiting = [Int](repeating: 0, count: nodes.count)
        var readers: [Int: [Int]] = [:]
        for n in nodes {
            for i in n.inputs where !i.isEmpty && !available.contains(i) {
                guard let p = producer[i] else {
                    throw ONNXError("\(file): \(n.label) reads '\(i)', which no node, initializer or input provides")
                }
                waiting[n.index] += 1
                readers[p, default: []].append(n.index)
            }
        }
        var ready = nodes.filter { waiting[$0.index] == 0 }.map(\.index)
        var order: [Node] = []
        var head = 0
        while head < ready.count {
            let k = ready[head]; head += 1
            order.append(nodes[k])
            for r in readers[k] ?? [] {
                waiting[r] -= 1
                if waiting[r] == 0 { ready.append(r) }
            }
        }
        if order.count < nodes.count, let stuck = nodes.first(where: { waiting[$0.index] > 0 }) {
            throw ONNXError("\(file): the graph has a cycle through \(stuck.label)")
        }
        return order
    }

    // MARK: Tensors

    /// The bytes of a tensor: raw_data, or its external file (location relative to the model's folder).
    static func rawBytes(_ t: Onnx_TensorProto, what: String, file: String, directory: String) throws -> Data? {
        if t.dataLocation == .external {
            var fields: [String: String] = [:]
            for e in t.externalData { fields[e.key] = e.value }
            guard let location = fields["location"], !location.isEmpty else {
                throw ONNXError("\(file): \(what) keeps its data outside the file but names no location")
            }
            guard !location.hasPrefix("/"), !location.split(separator: "/").contains("..") else {
                throw ONNXError("\(file): \(what) names external data '\(location)' outside the model's folder")
            }
            let dataPath = directory + "/" + location
            guard let handle = FileHandle(forReadingAtPath: dataPath) else {
                throw ONNXError("\(file): external data file '\(location)' of \(what) is missing (looked for \(dataPath))")
            }
            defer { try? handle.close() }
            let offset = UInt64(fields["offset"].flatMap { UInt64($0) } ?? 0)
            let size = (try? FileManager.default.attributesOfItem(atPath: dataPath)[.size] as? UInt64) ?? 0
            let length = fields["length"].flatMap { UInt64($0) } ?? (size >= offset ? size - offset : 0)
            guard offset <= size, length <= size - offset else {
                throw ONNXError("\(file): \(what) wants bytes \(offset)..<\(offset + length) of '\(location)', which has \(size)")
            }
            try handle.seek(toOffset: offset)
            return handle.readData(ofLength: Int(length))
        }
        return t.hasRawData ? t.rawData : nil
    }

    static func shape(_ t: Onnx_TensorProto, what: String, file: String) throws -> (shape: [Int], count: Int) {
        guard t.dims.allSatisfy({ $0 >= 0 && $0 < 1 << 40 }) else {
            throw ONNXError("\(file): \(what) has invalid dimensions \(t.dims)")
        }
        let shape = t.dims.map { Int($0) }
        let (count, overflow) = shape.reduce((1, false)) { acc, d in
            let (p, o) = acc.0.multipliedReportingOverflow(by: d); return (p, acc.1 || o)
        }
        guard !overflow, count < 1 << 34 else { throw ONNXError("\(file): \(what) has \(shape) elements, too many") }
        return (shape, count)
    }

    /// A float initializer as float32.
    static func floatTensor(_ t: Onnx_TensorProto, what: String, file: String, directory: String) throws -> FloatTensor {
        let (shape, count) = try self.shape(t, what: what, file: file)
        let type = Int(t.dataType)
        if let raw = try rawBytes(t, what: what, file: file, directory: directory) {
            let size = ElementType.sizes[type]!
            guard raw.count == count * size else {
                throw ONNXError("\(file): \(what) has \(raw.count) bytes of data, but its shape \(shape) of \(ElementType.name(type)) needs \(count * size)")
            }
            return FloatTensor(shape: shape, values: raw.withUnsafeBytes { b -> [Float] in
                switch type {
                case 1: return (0..<count).map { Float(bitPattern: UInt32(littleEndian: b.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) }
                case 11: return (0..<count).map { Float(Double(bitPattern: UInt64(littleEndian: b.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self)))) }
                case 10: return (0..<count).map { Float(Float16(bitPattern: UInt16(littleEndian: b.loadUnaligned(fromByteOffset: $0 * 2, as: UInt16.self)))) }
                default: return (0..<count).map { Float(bitPattern: UInt32(UInt16(littleEndian: b.loadUnaligned(fromByteOffset: $0 * 2, as: UInt16.self))) << 16) }
                }
            })
        }
        let values: [Float]
        switch type {
        case 1: values = t.floatData
        case 11: values = t.doubleData.map { Float($0) }
        case 10: values = t.int32Data.map { Float(Float16(bitPattern: UInt16(truncatingIfNeeded: $0))) }
        default: values = t.int32Data.map { Float(bitPattern: UInt32(UInt16(truncatingIfNeeded: $0)) << 16) }
        }
        guard values.count == count else {
            throw ONNXError("\(file): \(what) has \(values.count) values, but its shape \(shape) needs \(count)")
        }
        return FloatTensor(shape: shape, values: values)
    }

    /// An integer or bool tensor (or a float one, for Constant nodes and attributes) as a Constant.
    static func constant(_ t: Onnx_TensorProto, what: String, file: String, directory: String) throws -> Constant {
        let type = Int(t.dataType)
        if [1, 10, 11, 16].contains(type) {
            let f = try floatTensor(t, what: what, file: file, directory: directory)
            return Constant(.float, shape: f.shape, values: f.values.map(Double.init))
        }
        guard let size = ElementType.sizes[type] else {
            throw ONNXError("\(file): \(what) has element type \(ElementType.name(type)), which pag does not read")
        }
        let (shape, count) = try self.shape(t, what: what, file: file)
        let kind: Constant.Kind = type == 9 ? .bool : .int
        if let raw = try rawBytes(t, what: what, file: file, directory: directory) {
            guard raw.count == count * size else {
                throw ONNXError("\(file): \(what) has \(raw.count) bytes of data, but its shape \(shape) of \(ElementType.name(type)) needs \(count * size)")
            }
            let values: [Double] = raw.withUnsafeBytes { b in
                (0..<count).map { i -> Double in
                    let o = i * size
                    switch type {
                    case 2, 9: return Double(b[o])
                    case 3: return Double(Int8(bitPattern: b[o]))
                    case 4: return Double(UInt16(littleEndian: b.loadUnaligned(fromByteOffset: o, as: UInt16.self)))
                    case 5: return Double(Int16(littleEndian: b.loadUnaligned(fromByteOffset: o, as: Int16.self)))
                    case 6: return Double(Int32(littleEndian: b.loadUnaligned(fromByteOffset: o, as: Int32.self)))
                    case 12: return Double(UInt32(littleEndian: b.loadUnaligned(fromByteOffset: o, as: UInt32.self)))
                    case 13: return Double(UInt64(littleEndian: b.loadUnaligned(fromByteOffset: o, as: UInt64.self)))
                    default: return Double(Int64(littleEndian: b.loadUnaligned(fromByteOffset: o, as: Int64.self)))
                    }
                }
            }
            return Constant(kind, shape: shape, values: values)
        }
        let values: [Double]
        switch type {
        case 7: values = t.int64Data.map(Double.init)
        case 13, 12: values = t.uint64Data.map(Double.init)
        default: values = t.int32Data.map(Double.init)
        }
        guard values.count == count else {
            throw ONNXError("\(file): \(what) has \(values.count) values, but its shape \(shape) needs \(count)")
        }
        return Constant(kind, shape: shape, values: values)
    }

    static func attribute(_ a: Onnx_AttributeProto, node: String, file: String, directory: String) throws -> Attribute {
        switch a.type {
        case .float: return .float(Double(a.f))
        case .int: return .int(Int(a.i))
        case .string: return .string(String(decoding: a.s, as: UTF8.self))
        case .floats: return .floats(a.floats.map(Double.init))
        case .ints: return .ints(a.ints.map { Int($0) })
        case .tensor: return .tensor(try constant(a.t, what: "attribute '\(a.name)' of \(node)", file: file, directory: directory))
        case .undefined:
            // Files from old writers leave the type out: take the field that is set.
            if a.hasT { return .tensor(try constant(a.t, what: "attribute '\(a.name)' of \(node)", file: file, directory: directory)) }
            if !a.ints.isEmpty { return .ints(a.ints.map { Int($0) }) }
            if !a.floats.isEmpty { return .floats(a.floats.map(Double.init)) }
            if a.hasS { return .string(String(decoding: a.s, as: UTF8.self)) }
            if a.hasF { return .float(Double(a.f)) }
            if a.hasI { return .int(Int(a.i)) }
            return .unsupported("undefined")
        default: return .unsupported("\(a.type)")
        }
    }
}
